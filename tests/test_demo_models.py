"""The shipped demo models: interfaces, loading, and the properties the demo exists to show.

The properties use the definitions of issue 4 (``tests/latent_oracle.py``), so a retrain
(scripts/train_demo_models.py) that loses them fails here.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from latent_oracle import latent_stats
from latentsweep.demo.data import load_digits_data, load_wine_data
from latentsweep.demo.registry import DEMO_MODELS, load_demo_model, weights_path
from latentsweep.demo.models import DigitsAE, DigitsVAE, TabularVAE

NAMES = ["digits-vae", "digits-vae-relu-heads", "digits-ae", "wine-vae"]
VAE_NAMES = ["digits-vae", "digits-vae-relu-heads", "wine-vae"]


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


@pytest.fixture(scope="module")
def wine():
    return load_wine_data()


@pytest.fixture(scope="module")
def outputs(digits, wine):
    """name -> (x, mu, logvar or None, reconstruction of the posterior mean), on all the data."""
    result = {}
    for name in NAMES:
        x = digits[0] if DEMO_MODELS[name].dataset == "digits" else wine[0]
        model = load_demo_model(name)
        with torch.no_grad():
            enc = model.encoder(x)
            mu, logvar = enc if isinstance(enc, tuple) else (enc, None)
            result[name] = (x, mu, logvar, model.decoder(mu).reshape(x.shape))
    return result


def test_registry_lists_the_four_models():
    assert sorted(DEMO_MODELS) == sorted(NAMES)
    with pytest.raises(KeyError, match="unknown demo model"):
        load_demo_model("mnist-vae")


def test_package_reexports_the_api():
    demo = importlib.import_module("latentsweep.demo")
    if getattr(demo, "__file__", None) is None:
        pytest.skip("editable install predates latentsweep/demo/__init__.py: reinstall it")
    for name in ("DEMO_MODELS", "load_demo_model", "load_digits_data", "load_wine_data", "DigitsVAE"):
        assert hasattr(demo, name)


@pytest.mark.parametrize("name", NAMES)
def test_weights_ship_in_the_package_and_are_small(name):
    path = weights_path(name)
    assert path.is_file()
    assert len(path.read_bytes()) < 512 * 1024


@pytest.mark.parametrize("name", NAMES)
def test_loading_is_deterministic_finite_and_in_eval_mode(name, digits, wine):
    a, b = load_demo_model(name), load_demo_model(name)
    assert not a.training and not any(m.training for m in a.modules())
    for (key, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.isfinite(pa).all(), key
        assert torch.equal(pa, pb), key
    x = (digits[0] if DEMO_MODELS[name].dataset == "digits" else wine[0])[:16]
    with torch.no_grad():
        for ya, yb in zip(a(x), b(x)):
            assert torch.equal(ya, yb)


@pytest.mark.parametrize("name", ["digits-vae", "digits-vae-relu-heads"])
def test_digits_vae_interface(name, digits):
    model = load_demo_model(name)
    x = digits[0][:5]
    with torch.no_grad():
        mu, logvar = model.encoder(x)
        images = model.decoder(mu)
        recon, mu2, logvar2 = model(x)
    assert mu.shape == logvar.shape == (5, 10)
    assert images.shape == recon.shape == (5, 1, 8, 8)
    assert 0 <= images.min() and images.max() <= 1
    assert torch.equal(recon, images) and torch.equal(mu2, mu) and torch.equal(logvar2, logvar)


def test_digits_ae_interface(digits):
    model = load_demo_model("digits-ae")
    with torch.no_grad():
        z = model.encoder(digits[0][:5])
        images = model.decoder(z)
    assert isinstance(z, torch.Tensor) and z.shape == (5, 8)
    assert images.shape == (5, 1, 8, 8) and 0 <= images.min() and images.max() <= 1


def test_wine_vae_interface(wine):
    x, labels, feature_names = wine
    assert x.shape == (178, 13) and x.dtype == torch.float32 and len(feature_names) == 13
    assert torch.allclose(x.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(13), atol=1e-4)
    model = load_demo_model("wine-vae")
    with torch.no_grad():
        mu, logvar = model.encoder(x[:5])
        out = model.decoder(mu)
    assert mu.shape == logvar.shape == (5, 4) and out.shape == (5, 13)


def test_digits_data(digits):
    x, labels = digits
    assert x.shape == (1797, 64) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1 and len(labels) == 1797


@pytest.mark.parametrize("name", NAMES)
def test_reconstruction_beats_the_mean_baseline(name, outputs):
    x, _, _, recon = outputs[name]
    mse = (recon - x).square().mean()
    baseline = (x.mean(0) - x).square().mean()
    assert mse < 0.5 * baseline


def test_digit_reconstructions_are_recognisable(digits, outputs):
    """The nearest data digit other than the original has the original's label (0.988 for the
    data itself), i.e. the reconstructions look like the right digit."""
    x, labels = digits
    labels = torch.as_tensor(labels)
    for name, least in [("digits-vae", 0.93), ("digits-ae", 0.93), ("digits-vae-relu-heads", 0.85)]:
        dist = torch.cdist(outputs[name][3], x)
        dist.fill_diagonal_(float("inf"))
        accuracy = (labels[dist.argmin(dim=1)] == labels).double().mean()
        assert accuracy >= least, name


def test_digits_vae_has_a_confident_encoder_and_collapsed_dims(outputs):
    """The user's problem: +-2 posterior SDs moves z by almost nothing; some dims carry nothing."""
    _, mu, logvar, _ = outputs["digits-vae"]
    stats = latent_stats(mu, logvar)
    assert stats.active.sum() >= 3
    assert stats.median_active_posterior_sd() < 0.1
    assert stats.collapsed.sum() >= 2
    assert mu.min() < 0 and logvar.min() < 0  # linear heads


def test_relu_heads_model_has_nonnegative_means_and_logvars(outputs):
    _, mu, logvar, _ = outputs["digits-vae-relu-heads"]
    stats = latent_stats(mu, logvar)
    assert mu.min() >= 0
    # Some dims the decoder uses have many exact zeros (not only dead, all-zero dims).
    assert ((stats.zero_fraction >= 0.05) & stats.active).any()
    assert logvar.min() >= 0


def test_digits_ae_codes_do_not_follow_the_prior(outputs):
    _, z, _, _ = outputs["digits-ae"]
    stats = latent_stats(z)
    mismatched = (stats.aggregate_mean.abs() > 0.5) | (stats.aggregate_sd < 0.5) | (stats.aggregate_sd > 2)
    assert mismatched.float().mean() >= 0.75


def test_wine_vae_uses_its_latents(outputs):
    x, mu, logvar, recon = outputs["wine-vae"]
    stats = latent_stats(mu, logvar)
    assert stats.active.sum() >= 3
    assert 1 - (recon - x).square().mean() / x.var(0, unbiased=False).mean() >= 0.7


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: DigitsVAE(0), ValueError, "DigitsVAE: latent_dim must be >= 1, got 0"),  # (built empty layers)
        (lambda: DigitsVAE(-1), ValueError, "DigitsVAE: latent_dim must be >= 1"),  # (torch's negative dimension)
        (lambda: DigitsVAE(2.5), TypeError, "DigitsVAE: latent_dim must be an int, got float"),
        (lambda: DigitsVAE(hidden=0), ValueError, "DigitsVAE: hidden must be >= 1"),
        (lambda: DigitsAE(latent_dim=None), TypeError, "DigitsAE: latent_dim must be an int"),
        (lambda: TabularVAE(0), ValueError, "TabularVAE: num_features must be >= 1"),
        (lambda: TabularVAE(True), TypeError, "TabularVAE: num_features must be an int, got bool"),
        (lambda: load_demo_model(["digits-vae"]), TypeError, "load_demo_model: name must be a str"),  # (unhashable)
    ],
)
def test_demo_model_sizes_and_names_are_checked(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_the_shapes_vae_checks_its_sizes():
    from latentsweep.demo.shapes_vae import ShapesVAE

    with pytest.raises(ValueError, match="ShapesVAE: latent_dim must be >= 1"):
        ShapesVAE(0)
