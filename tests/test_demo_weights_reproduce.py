"""The script that reproduces the shipped demo weights still runs and still makes the model the
demo describes (the smallest one, wine-vae: seconds). Its tensors equal the shipped ones on a
CPU like the one that trained them; elsewhere float sums may round apart, so the check here is
what the demo relies on: the weights load into the demo's model, and the model is the healthy
VAE the README's table says (every latent active, no flag)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

import latentsweep as ls
from latentsweep.demo.data import load_wine_data
from latentsweep.demo.registry import DEMO_MODELS, weights_path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_demo_models.py"


def test_the_training_script_reproduces_the_wine_vae(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--only", "wine-vae", "--out", str(tmp_path), "--jobs", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = load_file(tmp_path / "wine-vae.safetensors")
    shipped = load_file(str(weights_path("wine-vae")))
    assert trained.keys() == shipped.keys()
    assert all(trained[k].shape == shipped[k].shape and trained[k].dtype == shipped[k].dtype for k in shipped)
    model = DEMO_MODELS["wine-vae"].build()
    model.load_state_dict(trained, strict=True)
    with torch.no_grad():
        diagnosis = ls.diagnose(ls.encode(model.eval().encoder, load_wine_data()[0], progress=False))
    assert diagnosis.active_dims == [0, 1, 2, 3] and diagnosis.flags == []
