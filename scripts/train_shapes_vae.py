#!/usr/bin/env python
"""Reproduce python/latentsweep/demo/weights/shapes-beta-vae.safetensors.

    .venv/bin/python scripts/train_shapes_vae.py                 # ~5 min on 2 loaded CPU cores
    .venv/bin/python scripts/train_shapes_vae.py --out /tmp/w.safetensors --steps 500

A beta-VAE (beta = 4, Bernoulli likelihood) on latentsweep.datasets.Shapes: fresh factors are
drawn every step (the data set is procedural), Adam, fixed seeds, deterministic algorithms and
one CPU thread, so a rerun with the same torch build and CPU gives the same file. The weights are
saved as float16 (the file stays well under 1 MB); the metadata holds the recipe and the scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from latentsweep.datasets import Shapes
from latentsweep.demo.shapes_vae import SHAPES_VAE_NAME, ShapesVAE

OUT = Path(__file__).resolve().parents[1] / "python" / "latentsweep" / "demo" / "weights" / f"{SHAPES_VAE_NAME}.safetensors"
RECIPE = {"steps": 8000, "batch_size": 128, "lr": 1e-3, "beta": 4.0, "seed": 0, "latent_dim": 10, "hidden": 128}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    args = parser.parse_args()
    recipe = dict(RECIPE, steps=args.steps)

    torch.manual_seed(recipe["seed"])
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    data = Shapes()
    data_generator = torch.Generator().manual_seed(recipe["seed"] + 1)
    noise_generator = torch.Generator().manual_seed(recipe["seed"] + 2)
    model = ShapesVAE(recipe["latent_dim"], hidden=recipe["hidden"])
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    started = time.perf_counter()
    for step in range(1, recipe["steps"] + 1):
        x = data.observations(data.sample_factors(recipe["batch_size"], data_generator))
        mu, logvar = model.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=noise_generator)
        logits_recon = model.decoder.out(model.decoder.trunk(z)).reshape_as(x)
        recon = F.binary_cross_entropy_with_logits(logits_recon, x, reduction="sum") / x.shape[0]
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum() / x.shape[0]
        loss = recon + recipe["beta"] * kl
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 500 == 0 or step == recipe["steps"]:
            print(f"step {step}: recon {recon.item():.2f} kl {kl.item():.2f} ({time.perf_counter() - started:.0f} s)", flush=True)
    model.eval()
    with torch.inference_mode():
        x = data.observations(data.sample_factors(2048, torch.Generator().manual_seed(123)))
        mu, logvar = model.encoder(x)
        kl_dims = (0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)).mean(dim=0)
    summary = {"train_seconds": round(time.perf_counter() - started, 1),
               "kl_per_dim": [round(float(v), 3) for v in kl_dims]}
    print(json.dumps(summary))
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata={"latentsweep_demo": json.dumps({"recipe": recipe, **summary})})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
