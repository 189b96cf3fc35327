"""Demo models and data for latentsweep: small trained autoencoders on scikit-learn's bundled
data sets (nothing is downloaded).

>>> from latentsweep.demo import load_demo_model, load_digits_data
>>> model = load_demo_model("digits-vae")
>>> x, labels = load_digits_data()
>>> mu, logvar = model.encoder(x)          # [1797, 10] each
>>> images = model.decoder(mu)             # [1797, 1, 8, 8] in [0, 1]

Models (``DEMO_MODELS``): "digits-vae", "digits-vae-relu-heads", "digits-ae", "wine-vae".
See README.md in this folder for how the weights were produced and what they show.
"""

from .data import load_digits_data, load_wine_data
from .models import DemoAutoencoder, DigitsAE, DigitsVAE, TabularVAE
from .registry import DEMO_MODELS, DemoModel, load_demo_model

__all__ = [
    "DEMO_MODELS",
    "DemoAutoencoder",
    "DemoModel",
    "DigitsAE",
    "DigitsVAE",
    "TabularVAE",
    "load_demo_model",
    "load_digits_data",
    "load_wine_data",
]
