"""Models as people write them (issue 13 items 1-3): bound methods run in eval mode and get
their dtype, decoders that wrap their outputs are unwrapped by one documented rule, and an
output transform says which space the effects are measured in."""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import latentsweep as ls
from latentsweep import decoding
from sweep_models import mlp_decoder

ANCHORS = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))


class DropoutVAE(nn.Module):
    """A VAE with Dropout in both halves, called through its bound methods."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.5), nn.Linear(16, 12))
        self.dec = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 5))
        self.to(dtype)

    def encode(self, x):
        h = self.enc(x)
        return h[:, :6], h[:, 6:]

    def decode(self, z):
        return self.dec(z)


def test_encode_puts_the_module_of_a_bound_method_in_eval_mode_and_restores_it():
    vae = DropoutVAE().train()
    x = torch.randn(20, 5)
    first = ls.encode(vae.encode, x)
    second = ls.encode(vae.encode, x, batch_size=7)
    assert torch.allclose(first.mu, second.mu, atol=1e-6) and torch.allclose(first.logvar, second.logvar, atol=1e-6)
    with torch.no_grad():
        vae.eval()
        expected = vae.encode(x)
        vae.train()
    assert torch.allclose(first.mu, expected[0], atol=1e-6)
    assert vae.training and all(m.training for m in vae.modules())


def test_traverse_puts_the_module_of_a_bound_method_in_eval_mode_and_restores_it():
    vae = DropoutVAE().train()
    first = ls.traverse(vae.decode, ANCHORS, steps=5, progress=False)
    second = ls.traverse(vae.decode, ANCHORS, steps=5, progress=False, batch_size=4)
    torch.testing.assert_close(first.outputs, second.outputs)
    assert vae.training and all(m.training for m in vae.modules())
    vae.eval()
    assert torch.allclose(first.anchor_outputs, vae.decode(ANCHORS).detach(), atol=1e-6)


def test_a_partial_of_a_bound_method_is_in_eval_mode_too():
    import functools

    vae = DropoutVAE().train()
    decode = functools.partial(vae.decode)
    first = ls.traverse(decode, ANCHORS, steps=3, progress=False)
    second = ls.traverse(decode, ANCHORS, steps=3, progress=False)
    torch.testing.assert_close(first.outputs, second.outputs)


def _run(x, module):
    return module(x)


def _run_first(module, x):
    return module(x)


@pytest.mark.parametrize("wrap", [
    lambda module: functools.partial(_run_first, module),
    lambda module: functools.partial(_run, module=module),
    lambda module: (lambda x, m=module: m(x)),
    lambda module: (lambda x, *, m=module: m(x)),
], ids=["partial argument", "partial keyword", "lambda default", "lambda keyword-only default"])
def test_modules_a_callable_takes_as_arguments_run_in_eval_mode(wrap):
    """A module reached through a partial's arguments or a lambda's defaults ran in training
    mode: BatchNorm's running mean moved, dropout was on."""
    vae = DropoutVAE().train()
    encoder = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4)).train()
    before = encoder[1].running_mean.clone()
    x = torch.randn(16, 5) + 3
    codes = ls.encode(wrap(encoder), x, progress=False).mu
    assert torch.equal(encoder[1].running_mean, before) and encoder.training
    with torch.no_grad():
        expected = encoder.eval()(x)
    torch.testing.assert_close(codes, expected)
    first = ls.traverse(wrap(vae.dec), ANCHORS, steps=3, progress=False)
    second = ls.traverse(wrap(vae.dec), ANCHORS, steps=3, progress=False)
    torch.testing.assert_close(first.outputs, second.outputs)
    assert vae.training and all(m.training for m in vae.modules())


@pytest.mark.parametrize("model_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("data_dtype", [torch.float16, torch.float32, torch.float64])
def test_data_is_cast_to_the_dtype_of_a_bound_methods_module(model_dtype, data_dtype):
    vae = DropoutVAE(model_dtype)
    x = torch.randn(8, 5).to(data_dtype)
    posterior = ls.encode(vae.encode, x)  # failed with "mat1 and mat2 must have the same dtype"
    assert posterior.mu.dtype == model_dtype
    posterior_np = ls.encode(vae.encode, x.double().numpy())
    assert posterior_np.mu.dtype == model_dtype
    result = ls.traverse(vae.decode, ANCHORS.to(data_dtype), steps=3, progress=False)
    assert result.outputs.dtype == model_dtype
    # The grid keeps the anchors' own precision; only the decoder sees its dtype.
    assert result.values.dtype == data_dtype


def test_a_parameterless_callable_gets_the_data_in_its_own_dtype():
    seen = []

    def encoder(x):
        seen.append(x.dtype)
        return x[:, :2]

    ls.encode(encoder, torch.randn(4, 3, dtype=torch.float64))
    assert seen == [torch.float64]


# ---- decoders that wrap their outputs --------------------------------------------------------

BASE = mlp_decoder(latent_dim=6, features=20)


@dataclass
class DecoderOutput:  # as diffusers' AutoencoderKL.decode returns it (without the Mapping base)
    sample: torch.Tensor


class DiffusersLikeOutput(collections.OrderedDict):  # diffusers' BaseOutput is an OrderedDict
    pass


def wrapped(kind):
    def decoder(z):
        x = BASE(z)
        if kind == "tuple":
            return (x, torch.zeros(()))
        if kind == "list":
            return [x]
        if kind == "dict":
            return {"x_hat": x, "kl": torch.zeros(())}
        if kind == "dict_one_tensor":
            return {"pixels": x, "note": "hello"}
        if kind == "object":
            return DecoderOutput(sample=x)
        if kind == "ordered_dict":
            return DiffusersLikeOutput(sample=x)
        if kind == "distribution":
            return torch.distributions.Normal(x, 1.0)
        raise AssertionError(kind)

    return decoder


@pytest.mark.parametrize("kind", ["tuple", "list", "dict", "dict_one_tensor", "object", "ordered_dict", "distribution"])
def test_wrapped_outputs_are_unwrapped_by_the_documented_rule(kind):
    expected = ls.traverse(BASE, ANCHORS, steps=4, progress=False)
    result = ls.traverse(wrapped(kind), ANCHORS, steps=4, progress=False)
    torch.testing.assert_close(result.outputs, expected.outputs)
    torch.testing.assert_close(result.dim_effect, expected.dim_effect)
    assert result.output_space == "decoder output"


def test_output_chooses_a_key_an_attribute_an_index_or_a_callable():
    def two(z):
        return {"mean": BASE(z), "scale": BASE(z) * 0 + 2.0}

    scale = ls.traverse(two, ANCHORS, steps=3, output="scale", progress=False)
    assert torch.all(scale.outputs == 2.0) and scale.output_space == "decoder output['scale']"
    second = ls.traverse(lambda z: (z.sum(1, keepdim=True), BASE(z)), ANCHORS, steps=3, output=1, progress=False)
    torch.testing.assert_close(second.outputs, ls.traverse(BASE, ANCHORS, steps=3, progress=False).outputs)
    by_attribute = ls.traverse(wrapped("object"), ANCHORS, steps=3, output="sample", progress=False)
    assert by_attribute.out_shape == (20,)
    by_callable = ls.traverse(two, ANCHORS, steps=3, output=lambda out: out["mean"] * 2, progress=False)
    assert by_callable.output_space == "decoder output via <lambda>"


@pytest.mark.parametrize(
    ("decoder", "output", "error", "message"),
    [
        (lambda z: {"a": BASE(z), "b": BASE(z)}, None, TypeError, r"keys \['a', 'b'\].*output='<key>'"),
        (lambda z: {"a": BASE(z)}, "b", ValueError, r"output='b'.*keys \['a'\]"),
        (lambda z: (BASE(z),), 3, ValueError, "output=3 is out of range"),
        (lambda z: BASE(z), 0, ValueError, "output=0 is a tuple index.*Tensor"),
        (lambda z: DecoderOutput(BASE(z)), "pixels", ValueError, "output='pixels'.*DecoderOutput"),
        (lambda z: (), None, TypeError, "empty tuple"),
        (lambda z: object(), None, TypeError, "must return a torch.Tensor"),
        (BASE, 1.5, TypeError, "output must be None, a key"),
    ],
)
def test_outputs_that_cannot_be_unwrapped_are_refused_clearly(decoder, output, error, message):
    with pytest.raises(error, match=message):
        ls.traverse(decoder, ANCHORS, steps=3, output=output, progress=False)


# ---- output transforms ------------------------------------------------------------------------


def logits_decoder(z):
    return z @ torch.linspace(-1, 1, 6 * 4).view(6, 4) * 3


@pytest.mark.parametrize("transform", ["sigmoid", torch.sigmoid])
def test_output_transform_applies_before_the_statistics(transform):
    result = ls.traverse(logits_decoder, ANCHORS, steps=5, output_transform=transform, progress=False)
    expected = ls.traverse(lambda z: torch.sigmoid(logits_decoder(z)), ANCHORS, steps=5, progress=False)
    torch.testing.assert_close(result.outputs, expected.outputs)
    torch.testing.assert_close(result.effect, expected.effect)
    torch.testing.assert_close(result.sensitivity, expected.sensitivity)
    assert result.output_space == "sigmoid(decoder output)"
    assert float(result.outputs.min()) >= 0 and float(result.outputs.max()) <= 1


def test_output_and_transform_compose_and_name_the_space():
    result = ls.traverse(lambda z: {"logits": logits_decoder(z)}, ANCHORS, steps=3,
                         output="logits", output_transform="tanh", progress=False)
    assert result.output_space == "tanh(decoder output['logits'])"
    torch.testing.assert_close(result.outputs, torch.tanh(ls.traverse(logits_decoder, ANCHORS, steps=3, progress=False).outputs))


@pytest.mark.parametrize(
    ("transform", "error", "message"),
    [
        ("softplus", ValueError, "output_transform must be one of 'sigmoid', 'tanh', 'exp'"),
        (3, TypeError, "output_transform must be None, a name"),
        (lambda x: x.tolist(), TypeError, "output_transform must return a tensor, got list"),
    ],
)
def test_bad_output_transforms_are_refused(transform, error, message):
    with pytest.raises(error, match=message):
        ls.traverse(logits_decoder, ANCHORS, steps=3, output_transform=transform, progress=False)


def test_a_stored_sweep_remembers_its_output_space(tmp_path):
    path = tmp_path / "sweep.zarr"
    ls.traverse(logits_decoder, ANCHORS, steps=3, output_transform="sigmoid", out=path, progress=False)
    with pytest.raises(ValueError, match="output_space"):
        ls.traverse(logits_decoder, ANCHORS, steps=3, out=path, resume=True, progress=False)
    again = ls.traverse(logits_decoder, ANCHORS, steps=3, output_transform="sigmoid", out=path, resume=True, progress=False)
    assert again.points_computed == 0 and again.output_space == "sigmoid(decoder output)"


def test_the_documented_rule_is_the_one_in_the_docstrings():
    assert decoding.OUTPUT_RULE in " ".join(decoding.decoder_call.__doc__.split())
    assert "OUTPUT_RULE" in ls.traverse.__doc__
    assert np.all([k in decoding.OUTPUT_RULE for k in decoding.OUTPUT_KEYS])
