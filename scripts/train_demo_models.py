#!/usr/bin/env python
"""Reproduce the demo weights shipped in python/latentsweep/demo/weights/.

    .venv/bin/python scripts/train_demo_models.py                  # all four models
    .venv/bin/python scripts/train_demo_models.py --only digits-ae --out /tmp/weights

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)`` and one CPU thread (a
different thread count changes the order of float sums). Bit-identical weights need the same
torch build and CPU; elsewhere the numbers printed should land close to those in the README.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

import latentsweep

# Submodules, not the package: an editable install made before latentsweep/demo/__init__.py
# existed imports latentsweep.demo as a namespace package.
from latentsweep.demo.data import load_digits_data, load_wine_data
from latentsweep.demo.registry import DEMO_MODELS

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "python" / "latentsweep" / "demo" / "weights"


@dataclass(frozen=True)
class Recipe:
    """How one model is trained. ``variational=False`` trains a plain AE on the squared error."""

    epochs: int
    lr: float
    batch_size: int
    seed: int = 0
    variational: bool = True
    beta: float = 1.0  # weight of the KL term
    kl_warmup_epochs: int = 0  # KL weight ramps linearly from 0 to beta over these epochs


# The VAEs use a Gaussian likelihood with a learned noise scale (a "calibrated decoder", Rybkin
# et al. 2021): the plain beta = 1 ELBO. Early on the scale is large, so the KL term wins and the
# dims the decoder has not started to use collapse to the prior; as the scale shrinks, the
# surviving dims get very confident encoders (posterior SD << 1). That is the demo's point.
RECIPES: dict[str, Recipe] = {
    "digits-vae": Recipe(epochs=500, lr=2e-3, batch_size=128),
    # Without a KL warm-up every ReLU mean unit dies in the first epochs (a constant model).
    "digits-vae-relu-heads": Recipe(epochs=500, lr=2e-3, batch_size=128, kl_warmup_epochs=30),
    "digits-ae": Recipe(epochs=200, lr=2e-3, batch_size=128, variational=False),
    "wine-vae": Recipe(epochs=400, lr=2e-3, batch_size=32),
}


def set_deterministic(seed: int) -> None:
    torch.manual_seed(seed)  # parameter initialisation
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def load_data(dataset: str) -> tuple[torch.Tensor, object]:
    if dataset == "digits":
        return load_digits_data()
    x, labels, _ = load_wine_data()
    return x, labels


def kl_per_input(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over dims, ``[B]``."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)


def kl_weight(recipe: Recipe, epochs_done: float) -> float:
    if recipe.kl_warmup_epochs == 0:
        return recipe.beta
    return recipe.beta * min(1.0, epochs_done / recipe.kl_warmup_epochs)


def train(model: torch.nn.Module, x: torch.Tensor, recipe: Recipe) -> dict[str, float]:
    """Adam with a cosine learning rate to 0 (the late, slow phase freezes collapsed dims)."""
    gen = torch.Generator().manual_seed(recipe.seed)  # shuffling and reparameterisation noise
    log_noise_sd = torch.zeros((), requires_grad=True)  # the learned likelihood scale
    params = list(model.parameters()) + ([log_noise_sd] if recipe.variational else [])
    opt = torch.optim.Adam(params, lr=recipe.lr)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.epochs * steps_per_epoch)
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), recipe.batch_size):
            xb = x[order[start : start + recipe.batch_size]]
            if recipe.variational:
                mu, logvar = model.encoder(xb)
                z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
                err = (model.decoder(z).reshape(xb.shape) - xb).square()
                nll = (0.5 * err * torch.exp(-2 * log_noise_sd) + log_noise_sd).sum(dim=1)
                beta = kl_weight(recipe, epoch + start / len(x))
                loss = (nll + beta * kl_per_input(mu, logvar)).mean()
            else:
                z = model.encoder(xb)
                loss = (model.decoder(z).reshape(xb.shape) - xb).square().sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return {"noise_sd": math.exp(log_noise_sd.item())} if recipe.variational else {}


def nearest_other_digit_accuracy(images: torch.Tensor, x: torch.Tensor, labels) -> float:
    """How often image i's nearest data digit other than x[i] has x[i]'s label (recognisability;
    0.988 for the data itself)."""
    dist = torch.cdist(images, x)
    dist.fill_diagonal_(float("inf"))
    labels = torch.as_tensor(labels)
    return (labels[dist.argmin(dim=1)] == labels).double().mean().item()


def summarize(name: str, model: torch.nn.Module, x: torch.Tensor, labels) -> dict:
    """The numbers behind the demo's claims (issue 4, item 2 definitions), on the whole data set."""
    with torch.no_grad():
        out = model.encoder(x)
        mu, logvar = out if isinstance(out, tuple) else (out, None)
        recon = model.decoder(mu).reshape(x.shape)
    mse = (recon - x).square().mean().item()
    baseline = (x.mean(dim=0) - x).square().mean().item()  # the mean image / mean row
    summary = {"recon_mse": mse, "mean_baseline_mse": baseline, "r2": 1.0 - mse / baseline}
    if DEMO_MODELS[name].dataset == "digits":
        summary["recon_1nn_accuracy"] = nearest_other_digit_accuracy(recon, x, labels)
    d = latentsweep.diagnose(latentsweep.Posterior(mu, logvar))
    per_dim = {
        "aggregate_mean": d.mean,
        "aggregate_sd": d.sd,
        "var_mu": d.mu_variance,
        "zero_fraction": d.zero_fraction,
    }
    if logvar is not None:
        collapsed = d.flag("collapsed")
        per_dim |= {"kl": d.kl, "posterior_sd": d.posterior_sd, "min_logvar": logvar.amin(dim=0)}
        summary |= {
            "active_dims": d.active_dims,
            "collapsed_dims": collapsed.dims if collapsed else [],
            "median_active_posterior_sd": d.posterior_sd[d.active].median().item() if d.active.any() else None,
            "min_mu": mu.min().item(),
            "min_logvar": logvar.min().item(),
            "flags": [flag.code for flag in d.flags],
        }
    summary["per_dim"] = {k: [round(v, 4) for v in t.tolist()] for k, t in per_dim.items()}
    return summary


def print_summary(name: str, summary: dict, seconds: float) -> None:
    print(f"\n== {name}  (trained in {seconds:.1f} s)")
    for key, value in summary.items():
        if key != "per_dim":
            print(f"  {key:28s} {value:.4f}" if isinstance(value, float) else f"  {key:28s} {value}")
    per_dim = summary["per_dim"]
    print("  dim " + "".join(f"{k:>15s}" for k in per_dim))
    for d in range(len(next(iter(per_dim.values())))):
        print(f"  {d:3d} " + "".join(f"{per_dim[k][d]:15.4f}" for k in per_dim))


def train_and_save(name: str, out: Path) -> tuple[dict, float]:
    """Train one model from its own seed and write ``out/<name>.safetensors``."""
    spec, recipe = DEMO_MODELS[name], RECIPES[name]
    x, labels = load_data(spec.dataset)
    start = time.perf_counter()
    set_deterministic(recipe.seed)
    model = spec.build()  # initialised under the seed
    extra = train(model, x, recipe)
    seconds = time.perf_counter() - start
    summary = summarize(name, model, x, labels) | extra
    # One metadata key: safetensors writes several in hash order, changing the file's bytes.
    provenance = {"name": name, "recipe": asdict(recipe), "summary": summary}
    metadata = {"latentsweep_demo": json.dumps(provenance, sort_keys=True)}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"), metadata=metadata)
    return summary, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=sorted(RECIPES), help="train only these models")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for <name>.safetensors")
    parser.add_argument(
        "--jobs", type=int, default=2, help="models trained in parallel (one thread each)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(RECIPES)
    total = time.perf_counter()
    # Each model runs single-threaded from its own seeds, so parallel jobs do not change the weights.
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {name: pool.submit(train_and_save, name, args.out) for name in names}
        for name, future in futures.items():
            print_summary(name, *future.result())
    print(f"\ntotal {time.perf_counter() - total:.1f} s wall; weights in {args.out}")


if __name__ == "__main__":
    main()
