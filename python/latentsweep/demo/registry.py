"""The shipped demo models: names, how to build each, and loading their weights.

The weights live in ``latentsweep/demo/weights/<name>.safetensors`` inside the package and are
reproduced by ``scripts/train_demo_models.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Callable

from safetensors.torch import load as load_safetensors

from .models import DemoAutoencoder, DigitsAE, DigitsVAE, TabularVAE

WINE_FEATURES = 13


@dataclass(frozen=True)
class DemoModel:
    """One shipped model: ``build()`` gives it untrained; ``dataset`` is "digits" or "wine"."""

    name: str
    build: Callable[[], DemoAutoencoder]
    dataset: str
    description: str


DEMO_MODELS: dict[str, DemoModel] = {
    spec.name: spec
    for spec in (
        DemoModel(
            "digits-vae",
            lambda: DigitsVAE(latent_dim=10),
            "digits",
            "well-trained VAE: confident encoder (tiny posterior SDs) and collapsed dims",
        ),
        DemoModel(
            "digits-vae-relu-heads",
            lambda: DigitsVAE(latent_dim=10, mean_activation="relu", logvar_activation="relu"),
            "digits",
            "the same VAE with the classic mistakes: ReLU on the mean and log-variance heads",
        ),
        DemoModel(
            "digits-ae",
            lambda: DigitsAE(latent_dim=8),
            "digits",
            "plain autoencoder: arbitrary axes, read along principal directions; 10 KMeans clusters of its codes",
        ),
        DemoModel(
            "wine-vae",
            lambda: TabularVAE(num_features=WINE_FEATURES, latent_dim=4),
            "wine",
            "VAE on the 13 standardised wine features (response curves, sensitivity)",
        ),
    )
}


def weights_path(name: str):
    """The packaged weights file of ``name`` (a ``Traversable``; it may not exist before training)."""
    return resources.files(__package__).joinpath("weights", f"{name}.safetensors")


def load_demo_model(name: str) -> DemoAutoencoder:
    """Build the demo model ``name``, load its shipped weights, and return it float32 (as its
    data, whatever torch's default dtype) in eval mode."""
    if not isinstance(name, str):  # (a list failed with "unhashable type")
        raise TypeError(f"latentsweep.demo.load_demo_model: name must be a str, one of {sorted(DEMO_MODELS)}, "
                        f"got {type(name).__name__}")
    if name not in DEMO_MODELS:
        raise KeyError(f"unknown demo model {name!r}; choose one of {sorted(DEMO_MODELS)}")
    model = DEMO_MODELS[name].build().float()
    model.load_state_dict(load_safetensors(weights_path(name).read_bytes()), strict=True)
    return model.eval()
