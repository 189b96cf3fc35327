"""The README's examples run end to end in a fresh process, as a newcomer runs them: a broken
example fails here, not in a user's hands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_quickstart_prints_the_two_modes(tmp_path):
    out = run(tmp_path, str(EXAMPLES / "quickstart.py")).stdout
    assert "posterior mode" in out and "prior mode" in out and "first 10 grid rows: (10, 8)" in out


@pytest.mark.parametrize("loop", ["--plain", "lightning"])
def test_training_with_traversals_logs_its_snapshots(tmp_path, loop):
    pytest.importorskip("tensorboard")
    if loop == "lightning":
        pytest.importorskip("lightning")
    flags = ["--plain"] if loop == "--plain" else []
    done = run(tmp_path, str(EXAMPLES / "train_with_traversals.py"), *flags, "--epochs", "1", "--every", "1",
               "--out", str(tmp_path / "runs"))
    assert "logged to" in done.stdout
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 10_000  # (images, not only the loss)
    if loop == "--plain":
        assert "epoch 1: " in done.stdout and "latent dims (VAE" in done.stdout
    else:
        assert list((tmp_path / "runs").rglob("*.png"))  # the CSV logger's folder gets the pictures


def test_directions_example_draws_its_pictures(tmp_path):
    done = run(tmp_path, str(EXAMPLES / "directions.py"), "--out", str(tmp_path))
    assert "explained variance" in done.stdout and "cluster sizes" in done.stdout
    for name in ("digits-ae-principal-directions.png", "digits-ae-clusters.png"):
        assert Image.open(tmp_path / name).size[0] > 300
