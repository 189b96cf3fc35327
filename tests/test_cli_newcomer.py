"""The command line as a newcomer uses it: mistakes that got a misleading answer (a failure
after the work was done, advice for another option)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn

    class VAE(nn.Module):
        latent_dim = 4

        def __init__(self):
            super().__init__()
            self.body = nn.Linear(16, 8)
            self.dec = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 16))

        def encode(self, x):
            h = self.body(x)
            return h[:, :4], h[:, 4:]

        def decode(self, z):
            return self.dec(z)

    def build():
        torch.manual_seed(0)
        return VAE()
    """
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "vae.py").write_text(MODEL)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(12, 16)).astype(np.float32))
    torch.manual_seed(0)
    return tmp_path


def cli(folder: Path, *words: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentsweep", *words], cwd=folder, capture_output=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names are bytes")
def test_an_output_path_stdout_cannot_encode_is_shown_escaped_not_a_failure_after_the_work(folder: Path):
    # a folder name that is not UTF-8 (bytes from another system), under a strict UTF-8 locale:
    # the sweep was written, then printing its path failed the command (exit 1, "'utf-8' codec
    # can't encode character '\udcff'", naming no option)
    out = os.fsdecode(b"out\xff")
    done = cli(folder, "traverse", "--model", "vae.py:build", "--data", "x.npy", "--out", out, "--no-progress",
               "--anchors", "2", "--steps", "3", env={"PYTHONIOENCODING": "utf-8:strict"})
    assert done.returncode == 0, done.stderr
    assert b"wrote traversal.npz to out\\udcff" in done.stdout
    assert b"codec" not in done.stderr
    assert (folder / out / "traversal.npz").is_file()


def test_a_non_ascii_output_folder_under_an_ascii_stdout(folder: Path):
    done = cli(folder, "sample", "--model", "vae.py:build", "-n", "2", "--out", "sortie-é",
               env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert b"to sortie-\\xe9" in done.stdout


def test_a_wrong_latent_dim_is_named_with_the_size_the_model_takes(folder: Path):
    # it advised --latent-shape C,H,W (for structured codes), the one option not at fault
    done = cli(folder, "sample", "--model", "vae.py:build", "-n", "2", "--latent-dim", "9")
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len([line for line in lines if line.startswith("latentsweep: error:")]) == 1
    assert "--latent-dim 9 may not be the decoder's latent size (the model's latent_dim is 4): pass --latent-dim 4" \
        in lines[-1]
    assert "--latent-shape" not in lines[-1]
    assert "Traceback" not in done.stderr.decode()


def test_a_right_latent_dim_for_a_decoder_of_structured_codes_still_gets_latent_shape(folder: Path):
    (folder / "conv.py").write_text(textwrap.dedent(
        """
        from torch import nn

        class Generator(nn.Module):  # DCGAN-style: codes [N, 4, 1, 1]
            latent_dim = 4

            def __init__(self):
                super().__init__()
                self.decoder = nn.ConvTranspose2d(4, 1, 4)
        """
    ))
    done = cli(folder, "sample", "--model", "conv.py:Generator", "-n", "2", "--latent-dim", "4")
    assert done.returncode == 1
    line = done.stderr.decode().strip().splitlines()[-1]
    assert line.startswith("latentsweep: error: ") and "pass --latent-shape C,H,W" in line, line
    assert "may not be the decoder's latent size" not in line


def test_a_channels_last_image_shape_is_named_in_the_options_words(folder: Path):
    # "decoder outputs of shape (16,) are not images ... pass --image-shape H,W or C,H,W", to a
    # user who had passed it, channels last
    done = cli(folder, "traverse", "--model", "vae.py:build", "--data", "x.npy", "--image-shape", "4,4,1",
               "--out", "o", "--no-progress")
    assert done.returncode == 2, done.stderr
    assert ("--image-shape (4, 4, 1) reads as channels last (H, W, C); images here are (C, H, W): pass --image-shape "
            "1,4,4") in done.stderr.decode(), done.stderr
