"""Models written as tutorials and libraries write them (pythae's ModelOutput, Keras-style
z_-prefixed names, an SD head that is not positive, a Lightning module holding the VAE), through
encode and the command line's --model route."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import latentsweep as ls
from latentsweep.cli.errors import CliError
from latentsweep.cli.loading import model_part
from latentsweep.findings import posterior_sd_sentence

torch.manual_seed(0)
X = torch.rand(6, 1, 4, 4)
HEAD = nn.Linear(16, 6)  # a mean and a second head of 3 latents


def heads(x):
    with torch.no_grad():
        return HEAD(x.flatten(1)).chunk(2, dim=-1)


class ModelOutput(OrderedDict):
    """pythae's encoder output: an OrderedDict whose entries are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def test_a_pythae_encoders_embedding_and_log_covariance_are_the_mean_and_log_variance():
    """pythae's encoders return ModelOutput(embedding=mu, log_covariance=logvar): refused, as a
    dict without a mean."""
    mu, logvar = heads(X)
    posterior = ls.encode(lambda x: ModelOutput(embedding=heads(x)[0], log_covariance=heads(x)[1]), X,
                          progress=False)
    torch.testing.assert_close(posterior.mu, mu)
    torch.testing.assert_close(posterior.logvar, logvar)
    codes = ls.encode(lambda x: ModelOutput(embedding=heads(x)[0]), X, progress=False)  # pythae's autoencoders
    torch.testing.assert_close(codes.mu, mu)
    assert codes.logvar is None


@pytest.mark.parametrize("keys, to_logvar", [
    (("z_mean", "z_log_var"), lambda h: h),
    (("z_mean", "z_log_sigma"), lambda h: 2 * h),  # Keras' first VAE tutorial: a log SD
    (("Z_MU", "z_std"), lambda h: 2 * torch.log(h.exp())),
    (("mu", "log_sigma_sq"), lambda h: h),  # TensorFlow tutorials' z_log_sigma_sq
    (("z_mean", "z_log_sigma_sq"), lambda h: h),
])
def test_z_prefixed_and_log_sigma_sq_keys_are_read(keys, to_logvar):
    """A 'z_' prefix is ignored for every part (z_log_sigma, z_std were refused while z_logvar
    was read)."""
    mu, second = heads(X)
    std = keys[1] == "z_std"

    def encoder(x):
        m, h = heads(x)
        return {keys[0]: m, keys[1]: h.exp() if std else h}

    posterior = ls.encode(encoder, X, progress=False)
    torch.testing.assert_close(posterior.mu, mu)
    torch.testing.assert_close(posterior.logvar, to_logvar(second))


@pytest.mark.parametrize("key, what", [("sigma", "SD"), ("scale", "SD"), ("var", "variance")])
def test_an_sd_or_variance_that_is_not_positive_is_named_with_what_to_return_instead(key, what):
    """An unconstrained head under 'sigma' (a log SD by another name) was reported as "the
    encoder's logvar has NaN/Inf", a name the encoder never returned."""
    with pytest.raises(ValueError, match=rf"encoder's {what} \(its entry '{key}'\) is <= 0 for batch 0 .*"
                                         r"'log_sigma' \(a log SD\) or 'logvar'"):
        ls.encode(lambda x: {"mu": heads(x)[0], key: heads(x)[1] - 10}, X, progress=False)
    with pytest.raises(ValueError, match=rf"its entry '{key}'\) is <= 0"):  # a ReLU'd head: zeros
        ls.encode(lambda x: {"mu": heads(x)[0], key: torch.zeros_like(heads(x)[1])}, X, progress=False)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.dec = nn.Linear(16, 3), nn.Linear(3, 16)

    def encode(self, x):
        return self.enc(x.flatten(1))

    def decode(self, z):
        return self.dec(z)


class LitVAE(nn.Module):
    """A Lightning-style module: the VAE is an attribute."""

    def __init__(self):
        super().__init__()
        self.vae = VAE()


def test_the_command_line_finds_a_part_by_a_dotted_name_and_suggests_it():
    """--encoder vae.encode was "the model has no encoder ('vae.encode')"; without it the error
    gave no hint that the model holds one."""
    lit = LitVAE()
    assert model_part(lit, ("vae.encode",), "encoder", "--encoder") == lit.vae.encode
    assert model_part(lit, ("vae.dec",), "decoder", "--decoder") is lit.vae.dec
    with pytest.raises(CliError, match=r"the model has no encoder \('encoder' or 'encode'\); name it with --encoder "
                                       r"ATTR \(e\.g\. --encoder vae\.encode, which the model has\)$"):
        model_part(lit, ("encoder", "encode"), "encoder", "--encoder")
    with pytest.raises(CliError, match=r"no decoder \('vae\.nope'\); name it with --decoder ATTR$"):
        model_part(lit, ("vae.nope",), "decoder", "--decoder")
    with pytest.raises(CliError, match=r"no encoder \(''\); name it with --encoder ATTR$"):
        model_part(lit, ("",), "encoder", "--encoder")


def test_a_lightning_style_model_runs_from_the_command_line(tmp_path, monkeypatch, capsys):
    from latentsweep.cli import main

    (tmp_path / "lit_models.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class VAE(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.enc, self.dec = nn.Linear(16, 6), nn.Linear(3, 16)\n"
        "    def encode(self, x):\n        return tuple(self.enc(x.flatten(1)).chunk(2, dim=-1))\n"
        "    def decode(self, z):\n        return self.dec(z)\n"
        "class Lit(nn.Module):\n    def __init__(self):\n"
        "        super().__init__(); torch.manual_seed(0); self.vae = VAE()\n"
    )
    torch.save(torch.rand(12, 1, 4, 4), tmp_path / "x.pt")
    monkeypatch.chdir(tmp_path)
    main(["diagnose", "--model", "lit_models.py:Lit", "--encoder", "vae.encode", "--data", "x.pt"])
    assert "latentsweep diagnosis: 12 inputs, 3 latent dims" in capsys.readouterr().out


def test_an_sd_returned_as_a_tuples_second_element_is_named_as_the_likely_cause():
    """An encoder returning (mu, softplus(h)) has its SD read as a log-variance; the diagnosis
    blamed a ReLU on the log-variance head alone ("Retrain with a linear log-variance head"),
    where returning {"mu": mu, "sigma": sd} is the fix. A ReLU's exact zeros keep the old words."""
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    x = torch.randn(400, 16)

    def encoder(inputs, relu):
        with torch.no_grad():
            h = layer(inputs)
        second = torch.relu(h[:, 4:]) if relu else torch.nn.functional.softplus(h[:, 4:] - 3)
        return 3 * h[:, :4], second

    diagnosis = ls.diagnose(ls.encode(lambda b: encoder(b, relu=False), x, progress=False))
    finding = next(f for f in diagnosis.findings() if f.code == "relu-heads")
    assert finding.headline == "Check what the encoder returns as the log-variance"
    assert 'return {"mu": mu, "sigma": sd}' in finding.text and "No logvar on dims 0-3 is exactly 0" in finding.text
    assert 'return {"mu": mu, "sigma": sd}' in diagnosis.flag("nonnegative-logvar").recommendation
    assert "perhaps SDs read as log-variances" in posterior_sd_sentence(diagnosis)

    diagnosis = ls.diagnose(ls.encode(lambda b: encoder(b, relu=True), x, progress=False))
    finding = next(f for f in diagnosis.findings() if f.code == "relu-heads")
    assert finding.headline == "Retrain with a linear log-variance head"
    assert "sigma" not in finding.text and "sigma" not in diagnosis.flag("nonnegative-logvar").recommendation
    assert "a ReLU on the log-variance head keeps" in posterior_sd_sentence(diagnosis)


class DiagonalGaussianDistribution:
    """diffusers' posterior object (diffusers.models.autoencoders.vae): attributes, not a dict."""

    def __init__(self, parameters):
        self.parameters = parameters
        self.mean, self.logvar = torch.chunk(parameters, 2, dim=1)
        self.deterministic = False
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)


class AutoencoderKLOutput(ModelOutput):
    """diffusers' encode output: a BaseOutput (an OrderedDict whose entries are attributes) with the
    one entry latent_dist."""


class TinyAutoencoderKL(nn.Module):
    """The shapes of diffusers' AutoencoderKL: [N, 3, 16, 16] images, [N, 4, 2, 2] latents,
    encode -> AutoencoderKLOutput(latent_dist=...), decode -> an object with .sample."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.down = nn.Conv2d(3, 8, 8, stride=8)
        self.up = nn.ConvTranspose2d(4, 3, 8, stride=8)

    def encode(self, x):
        return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(self.down(x)))

    def decode(self, z):
        return ModelOutput(sample=self.up(z))


def test_a_diffusers_style_autoencoder_kl_is_encoded_and_traversed_as_it_is():
    """encode(vae.encode, images) was refused ("a dict with keys ['latent_dist']"), and the
    posterior object alone ("returned a DiagonalGaussianDistribution")."""
    vae = TinyAutoencoderKL()
    images = torch.rand(5, 3, 16, 16)
    posterior = ls.encode(vae.encode, images, progress=False)
    with torch.no_grad():
        mean, logvar = vae.down(images).chunk(2, dim=1)
    assert posterior.latent_shape == (4, 2, 2)
    torch.testing.assert_close(posterior.mu, mean.flatten(1))
    torch.testing.assert_close(posterior.logvar, logvar.flatten(1))
    again = ls.encode(lambda x: vae.encode(x).latent_dist, images, progress=False)  # the object alone
    assert torch.equal(again.mu, posterior.mu) and torch.equal(again.logvar, posterior.logvar)
    result = ls.traverse(vae.decode, posterior[:2], dims=[0, 5], steps=3, progress=False)
    assert result.outputs.shape == (2, 2, 3, 3, 16, 16)


def test_an_object_without_a_mean_attribute_is_still_refused_with_the_expected_forms():
    class Opaque:
        def __init__(self, x):
            self.hidden = x

    with pytest.raises(TypeError, match=r"returned a Opaque for batch 0; expected a \(mu, logvar\) tuple, a dict "
                                        r"\(or an object's attributes\)"):
        ls.encode(lambda x: Opaque(x), X, progress=False)
    with pytest.raises(TypeError, match=r"returned a dict with keys \['latent_dist'\] for batch 0"):
        ls.encode(lambda x: {"latent_dist": Opaque(x)}, X, progress=False)  # (not a posterior: not unwrapped)


def test_a_distribution_other_than_normal_is_refused_not_read_by_its_attributes():
    """Laplace has .loc and .scale attributes, but its scale is not a Gaussian SD."""
    def encoder(x):
        mu, second = heads(x)
        return torch.distributions.Laplace(mu, second.exp())

    with pytest.raises(TypeError, match=r"the encoder returned a Laplace for batch 0"):
        ls.encode(encoder, X, progress=False)
    with pytest.raises(TypeError, match=r"the encoder returned a Laplace for batch 0"):
        ls.encode(lambda x: {"latent_dist": encoder(x)}, X, progress=False)


def test_a_dataclass_output_is_read_by_its_fields_with_or_without_slots():
    import dataclasses

    for slots in (False, True):
        @dataclasses.dataclass(slots=slots)
        class EncoderOutput:
            mu: torch.Tensor
            log_var: torch.Tensor

        posterior = ls.encode(lambda x: EncoderOutput(*heads(x)), X, progress=False)
        mu, logvar = heads(X)
        torch.testing.assert_close(posterior.mu, mu)
        torch.testing.assert_close(posterior.logvar, logvar)
