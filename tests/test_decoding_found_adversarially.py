"""Decoders as people write them, from an adversarial pass: output objects, distributions and
tuples whose default part is not the decoded outputs, transforms that drop the batch, and
float16 decoders given codes beyond float16 (each case failed before its fix: a raw
NotImplementedError, an error that blamed the decoder for what it did not return, or silent
outputs of infinite codes)."""

from __future__ import annotations

import collections
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import latentsweep as ls

ANCHORS = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
LINEAR = nn.Linear(4, 5)


def traverse(decoder, anchors=ANCHORS, **options):
    return ls.traverse(decoder, anchors, steps=3, progress=False, **options)


@dataclass
class Images:  # an output object whose one tensor has none of the usual names
    images: torch.Tensor
    note: str = "decoded"


class Decoded:  # a plain object, the same
    def __init__(self, pixels):
        self.pixels = pixels


@dataclass
class TwoTensors:
    first: torch.Tensor
    second: torch.Tensor


@pytest.mark.parametrize("wrap", [Images, Decoded])
def test_an_output_objects_only_tensor_is_used_as_the_rule_says(wrap):
    """OUTPUT_RULE: "a dict or an output object gives ... its only tensor"; an object was refused
    as "the decoder must return a torch.Tensor, got Images"."""
    expected = traverse(LINEAR)
    result = traverse(lambda z: wrap(LINEAR(z)))
    torch.testing.assert_close(result.outputs, expected.outputs)
    assert result.output_space == "decoder output"


def test_an_output_object_with_several_tensors_asks_which_one():
    with pytest.raises(TypeError, match=r"returned a TwoTensors with tensors \['first', 'second'\].*"
                                        r"output='<attribute>'"):
        traverse(lambda z: TwoTensors(LINEAR(z), LINEAR(z)))
    assert traverse(lambda z: TwoTensors(LINEAR(z), LINEAR(z)), output="second").out_shape == (5,)


def test_a_distribution_without_a_mean_is_refused_by_name():
    """TransformedDistribution.mean raises NotImplementedError: it came out raw."""
    def decoder(z):
        normal = torch.distributions.Normal(LINEAR(z), 1.0)
        return torch.distributions.TransformedDistribution(normal, [torch.distributions.transforms.SigmoidTransform()])

    with pytest.raises(TypeError, match="returned a TransformedDistribution, which has no mean.*output="):
        traverse(decoder)
    assert traverse(decoder, output=lambda d: d.base_dist.mean).out_shape == (5,)


@pytest.mark.parametrize("make", [
    lambda x: torch.distributions.Categorical(logits=x),
    lambda x: torch.distributions.Cauchy(x, 1.0),
])
def test_a_distribution_whose_mean_is_undefined_is_not_blamed_on_the_decoder(make):
    """Categorical's and Cauchy's means are NaN by definition: the error said "the decoder
    returned NaN or Inf at anchors [0, 1, 2]"."""
    with pytest.raises(TypeError, match="whose mean is undefined.*output="):
        traverse(lambda z: make(LINEAR(z)))


def test_a_tuple_whose_first_element_is_not_the_outputs_says_so():
    """(loss, recon): the default rule takes the first element, and the error said "the decoder
    returned shape ()" of a decoder that returned a tuple."""
    step = collections.namedtuple("Step", "loss recon")
    with pytest.raises(ValueError, match=r"returned a Step, and the part of it used \(its first element\) has shape "
                                         r"\(\) for a batch of 2 codes.*output="):
        traverse(lambda z: step(LINEAR(z).sum(), LINEAR(z)))
    assert traverse(lambda z: step(LINEAR(z).sum(), LINEAR(z)), output="recon").out_shape == (5,)


@pytest.mark.parametrize(("decoder", "output", "message"), [
    (lambda z: (None, LINEAR(z)), None, r"must return a torch.Tensor, got tuple, and the part of it used \(its first element\) is None"),
    (lambda z: ((LINEAR(z),),), None, r"got tuple, and the part of it used \(its first element\) is a tuple"),
    (lambda z: {"x_hat": None, "kl": LINEAR(z)}, "x_hat", r"got dict, and the part of it used \(output='x_hat'\) is None"),
    (lambda z: (LINEAR(z),), lambda out: out[0][0], r"part of it used \(output=<lambda>\) has shape \(5,\) for a batch of 2"),
])
def test_a_picked_part_that_is_not_one_output_per_code_is_named(decoder, output, message):
    """Said as "the decoder must return a torch.Tensor, got NoneType" (or "returned shape (5,)")."""
    with pytest.raises((TypeError, ValueError), match=message):
        traverse(decoder, output=output)


def test_an_output_transform_that_drops_the_batch_is_named():
    with pytest.raises(ValueError, match=r"output_transform returned shape \(1, 5\) for a batch of 2 codes"):
        traverse(LINEAR, output_transform=lambda x: x[:1])


def test_codes_beyond_a_float16_decoders_range_are_refused():
    """float32 codes of 1e5 were cast to the float16 parameters' dtype as inf: a decoder ending in
    tanh decoded them to finite outputs without a word, another was blamed for NaN."""
    decoder = nn.Sequential(nn.Linear(4, 5), nn.Tanh()).half()
    with pytest.raises(ValueError, match=r"codes reach beyond the largest torch.float16 \(6.55e\+04\), the dtype of "
                                         r"the decoder's parameters"):
        traverse(decoder, torch.full((1, 4), 1e5))
    with pytest.raises(ValueError, match="codes reach beyond the largest torch.float16"):
        traverse(decoder, torch.zeros(1, 4), mode="absolute", span=1e5)
    # within the range: decoded in float16 as before
    assert traverse(decoder, torch.full((1, 4), 100.0)).outputs.dtype == torch.float16


def test_codes_beyond_a_float16_decoders_range_are_refused_along_directions():
    decoder = nn.Sequential(nn.Linear(4, 5), nn.Tanh()).half()
    direction = torch.tensor([[0.6, 0.8, 0.0, 0.0]])
    with pytest.raises(ValueError, match="codes reach beyond the largest torch.float16"):
        traverse(decoder, torch.zeros(1, 4), directions=direction, mode="absolute", span=1e5)
    # the coordinate along u replaced: anchors near the limit stay within it
    near = traverse(decoder, torch.full((1, 4), 6e4), directions=direction, mode="absolute", span=1e4)
    assert near.outputs.isfinite().all()


@pytest.mark.parametrize("directions", [None, torch.nn.functional.normalize(torch.randn(3, 4), dim=1)])
def test_the_grids_code_bound_holds_every_code(directions):
    """Where the bound says every code fits the decoder's dtype, no batch is scanned: a bound
    below some code would let that code through as inf."""
    from latentsweep.grid_spec import grid_spec

    anchors = torch.randn(5, 4, generator=torch.Generator().manual_seed(3)) * 7
    spec = grid_spec("test", anchors, mode="prior", span=3.0, steps=6, dims=None, logvar=None, values=None,
                     reference=None, prior_std=40.0, directions=directions)
    codes = (ls.traversal_codes(spec.anchors, spec.dims, spec.values) if directions is None
             else ls.direction_codes(spec.anchors, spec.directions, spec.values))
    assert float(codes.abs().max()) <= spec.code_bound()


@pytest.fixture
def scanned(monkeypatch) -> list[bool]:
    """Whether each decoder call scanned its cast codes for values beyond the decoder's dtype."""
    seen = []
    original = ls.decoding.DecoderCall._cast

    def cast(self, codes):
        seen.append(self._scan_codes)
        return original(self, codes)

    monkeypatch.setattr(ls.decoding.DecoderCall, "_cast", cast)
    return seen


def test_a_grid_within_a_float16_decoders_range_is_not_scanned_batch_by_batch(scanned):
    """The scan waits for the device at every batch (a float16 MLP on an H200 took 1.4x as
    long): skipped where the grid's bound fits the parameters' dtype."""
    decoder = nn.Sequential(nn.Linear(4, 5), nn.Tanh()).half()
    traverse(decoder, torch.full((3, 4), 100.0), batch_size=4)
    assert scanned and not any(scanned)
    scanned.clear()
    with pytest.raises(ValueError, match="codes reach beyond"):
        traverse(decoder, torch.zeros(3, 4), mode="absolute", span=1e5, batch_size=4)
    assert scanned and all(scanned)


def test_codes_beyond_a_bfloat16_decoders_range_are_refused_from_float64_anchors():
    decoder = nn.Linear(4, 5).bfloat16()
    with pytest.raises(ValueError, match=r"codes reach beyond the largest torch.bfloat16"):
        traverse(decoder, torch.zeros(1, 4, dtype=torch.float64), mode="absolute", span=1e39)


def test_an_output_transform_that_returns_integers_is_named():
    """Said as "the decoder must return floating-point outputs, got torch.bool"."""
    with pytest.raises(TypeError, match="output_transform must return floating-point outputs, got torch.bool"):
        traverse(LINEAR, output_transform=lambda x: x > 0)


@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_paths_within_a_float16_decoders_range_are_not_scanned_batch_by_batch(scanned, path):
    """interpolate's grids are written by its own code writer: their bound is the paths' peak."""
    decoder = nn.Sequential(nn.Linear(4, 5), nn.Tanh()).half()
    start, end = torch.full((2, 4), 100.0), torch.full((2, 4), -50.0)
    end[:, 0] = 60.0
    ls.interpolate(decoder, start, end, path=path, steps=5, batch_size=4, progress=False)
    assert scanned and not any(scanned)
    scanned.clear()
    with pytest.raises(ValueError, match="codes reach beyond"):
        ls.interpolate(decoder, torch.zeros(1, 4), torch.full((1, 4), 7e4), steps=5, batch_size=4, progress=False)
    assert scanned and all(scanned)


def test_a_decoders_own_error_on_its_first_call_says_what_it_was_given():
    """A conv decoder given flat codes said only torch's "Expected 3D (unbatched) or 4D (batched)
    input to conv_transpose2d, but got input of size: [2, 16]", with no word of latent_shape."""
    decoder = nn.ConvTranspose2d(4, 1, 3)
    with pytest.raises(RuntimeError, match="conv_transpose2d") as caught:
        ls.traverse(decoder, torch.randn(2, 16), steps=3, progress=False)
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "first call, given codes [2, 16] float32 on cpu" in notes[0], notes
    assert "latent_shape=(C, H, W)" in notes[0]
    # Structured codes are named in their shape, without the hint; the library's own errors get no note.
    with pytest.raises(RuntimeError) as caught:
        ls.traverse(nn.ConvTranspose2d(3, 1, 3), torch.randn(2, 4, 2, 2), steps=3, progress=False)
    assert caught.value.__notes__ == [
        "latentsweep.traverse: the decoder raised this on its first call, given codes [2, 4, 2, 2] float32 on cpu "
        "(the anchors)"]
    with pytest.raises(TypeError, match="must return a torch.Tensor") as caught:
        ls.traverse(lambda z: z.tolist(), torch.randn(2, 3), steps=3, progress=False)
    assert not getattr(caught.value, "__notes__", None)


def test_a_decoder_error_not_about_shapes_gets_no_note_and_an_interpolation_names_its_starts():
    # (a decoder that broke for its own reasons was told about structured codes)
    def broken(codes):
        raise RuntimeError("the decoder broke on this rank")

    with pytest.raises(RuntimeError) as caught:
        ls.traverse(broken, torch.randn(2, 3), steps=3, progress=False)
    assert not getattr(caught.value, "__notes__", None)
    with pytest.raises(RuntimeError) as caught:
        ls.interpolate(nn.ConvTranspose2d(4, 1, 3), torch.randn(2, 16), torch.randn(2, 16), steps=3, progress=False)
    assert caught.value.__notes__ == [
        "latentsweep.interpolate: the decoder raised this on its first call, given codes [2, 16] float32 on cpu (the "
        "paths' starts); a decoder that takes structured codes gets them from endpoints of that shape ([P, C, H, W]) "
        "or latent_shape=(C, H, W)"]
