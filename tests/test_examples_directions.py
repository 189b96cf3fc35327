"""examples/directions.py runs end to end (the pictures the README shows) in a fresh process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "directions.py"


def test_directions_example_draws_its_pictures(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "explained variance" in done.stdout and "cluster sizes" in done.stdout
    for name in ("digits-ae-principal-directions.png", "digits-ae-clusters.png"):
        assert Image.open(tmp_path / name).size[0] > 300
