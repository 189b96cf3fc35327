"""Structured latents end to end: a spatial VAE's [N, C, H, W] codes (here C=3, H=W=2)
and a 1-D one's [N, C, L]: the Posterior unwrapped by one rule, directions that know their
latent shape, the diagnosis naming latents z[c,h,w] as the report and the traversals do,
axis_alignment on structured codes, and coordinates that move the decoder input's element."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.alignment import axis_alignment
from latentsweep.latent_shape import latents_text

SHAPE = (3, 2, 2)
D = math.prod(SHAPE)
GEN = torch.Generator().manual_seed(18)
CODES = torch.randn(40, *SHAPE, generator=GEN, dtype=torch.float64)


def decoder(z: torch.Tensor) -> torch.Tensor:
    """[B, 3, 2, 2] -> [B, 1, 4, 4]: refuses flat codes, as a convolutional decoder does."""
    assert z.shape[1:] == SHAPE, z.shape
    return torch.nn.functional.interpolate(torch.tanh(z).sum(1, keepdim=True) + z[:, :1], scale_factor=2)


def spatial_posterior(n: int = 40, collapsed_channel: int | None = None) -> ls.Posterior:
    mu, logvar = CODES[:n].clone(), torch.full((n, *SHAPE), -1.0, dtype=torch.float64)
    if collapsed_channel is not None:  # the prior exactly: no KL, no variance of the means
        mu[:, collapsed_channel] = 0.0
        logvar[:, collapsed_channel] = 0.0
    return ls.Posterior(mu, logvar)


# ---- one rule unwraps a Posterior given as anchors or reference --------------------------------
def test_a_posterior_is_unwrapped_by_one_helper_for_traverse_and_traversal_values():
    from latentsweep import grid_spec, traversal
    from latentsweep.posterior import unwrapped

    posterior = spatial_posterior()
    anchors, logvar, reference = unwrapped(posterior[:2], None, posterior)
    assert anchors.shape == (2, *SHAPE) and logvar.shape == (2, *SHAPE) and reference.shape == (40, D)
    assert torch.equal(anchors.reshape(2, D), posterior.mu[:2])
    given = torch.zeros(2, D, dtype=torch.float64)
    flat, kept, _ = unwrapped(posterior[:2], given, None, flat=True)
    assert flat.shape == (2, D) and kept is given
    assert unwrapped(CODES, None, CODES) == (CODES, None, CODES)  # tensors pass through
    # Neither module reads a Posterior's fields itself any more.
    for module in (grid_spec, traversal):
        source = open(module.__file__).read()
        assert "anchors.mu" not in source and "reference.mu" not in source, module.__name__
    for mode, options in (("posterior", {}), ("empirical", {"reference": posterior})):
        values = ls.traversal_values(posterior[:2], mode=mode, steps=5, **options)
        result = ls.traverse(decoder, posterior[:2], mode=mode, steps=5, progress=False, **options)
        assert torch.equal(result.values, values), mode


# ---- directions that know their latent shape ------------------------------------------------------
def test_channel_directions_of_another_latent_shape_are_refused():
    """channel_directions((2, 6, 1)) has D=12 like (3, 2, 2): its 'channel 0' silently moved
    elements of two of the anchors' channels, labelled as one channel. Shapes with the same
    channels ((3, 4): the same blocks of the flat code) are the same directions."""
    anchors = CODES[:2]
    for wrong in ((2, 6, 1), (12,), (4, 3)):
        with pytest.raises(ValueError, match=r"directions are for latents of shape .* but the anchors' latent "
                                             r"shape is \[3, 2, 2\] \(3 channel\(s\)\); make them for this shape"):
            ls.traverse(decoder, anchors, directions=ls.channel_directions(wrong, dtype=torch.float64), steps=3,
                        progress=False)
        with pytest.raises(ValueError, match="directions are for latents of shape"):
            ls.traversal_values(anchors, directions=ls.channel_directions(wrong, dtype=torch.float64), steps=3)
    right = ls.channel_directions(SHAPE, dtype=torch.float64)
    assert ls.traverse(decoder, anchors, directions=ls.channel_directions((3, 4), dtype=torch.float64), steps=3,
                       progress=False).values.shape == (2, 3, 3)
    assert right.latent_shape == SHAPE and right[[0, 2]].latent_shape == SHAPE and right.to(torch.float32).latent_shape == SHAPE
    result = ls.traverse(decoder, anchors, directions=right[1:], steps=3, progress=False)
    assert result.labels == ("channel 1", "channel 2")
    # Flat anchors carry no shape: channel directions of D elements fit a decoder that reshapes.
    flat = ls.traverse(lambda z: decoder(z.reshape(-1, *SHAPE)), anchors.reshape(2, D), directions=right, steps=3,
                       progress=False)
    assert torch.equal(flat.outputs, ls.traverse(decoder, anchors, directions=right, steps=3, progress=False).outputs)


def test_directions_from_structured_codes_carry_their_shape_and_flat_ones_fit_any():
    posterior = spatial_posterior()
    pcs = ls.principal_directions(posterior)
    assert pcs.latent_shape == SHAPE and ls.principal_directions(CODES).latent_shape == SHAPE
    assert ls.principal_directions(posterior.mu).latent_shape is None
    between = ls.clusters(posterior, k=3, seed=0).directions(0, 1)
    assert between.latent_shape == SHAPE
    assert ls.clusters(posterior.mu, k=3, seed=0).directions(0, 1).latent_shape is None
    # PCA of the flat means still traverses structured anchors (the same vectors)
    flat_pcs = ls.principal_directions(posterior.mu)[:2]
    got = ls.traverse(decoder, posterior[:2], directions=flat_pcs, steps=3, progress=False)
    assert torch.equal(got.outputs, ls.traverse(decoder, posterior[:2], directions=pcs[:2], steps=3,
                                                progress=False).outputs)
    other = ls.Posterior(posterior.mu, posterior.logvar, latent_shape=(4, 3))
    with pytest.raises(ValueError, match=r"latents of shape \[4, 3\] \(4 channel\(s\); pca: PC1, PC2\)"):
        ls.traverse(decoder, posterior[:2], directions=ls.principal_directions(other)[:2], steps=3, progress=False)
    with pytest.raises(ValueError, match=r"latentsweep.Directions: latent_shape=\(2, 2\) holds 4 values but the "
                                         r"codes have D=12"):
        ls.Directions(pcs.vectors, pcs.names, latent_shape=(2, 2))
    with pytest.raises(TypeError, match="latentsweep.Directions: latent_shape must be a tuple of ints"):
        ls.Directions(pcs.vectors, pcs.names, latent_shape=12)
    assert ls.Directions(pcs.vectors, pcs.names, latent_shape=[3, 2, 2]).latent_shape == SHAPE
    assert ls.Directions(pcs.vectors, pcs.names) != ls.Directions(pcs.vectors, pcs.names, latent_shape=SHAPE)


# ---- the diagnosis names structured latents as the report and the traversals do -----------------
def test_the_diagnosis_text_names_structured_latents_as_the_traversals_do():
    """The diagnosis' table, findings, flags and recommendation said "dims 4-7" where the HTML
    report's table (in the same page) and every traversal said z[1,0,0] .. z[1,1,1]."""
    diagnosis = ls.diagnose(spatial_posterior(collapsed_channel=1))
    assert diagnosis.flag("collapsed").dims == [4, 5, 6, 7]
    text = str(diagnosis)
    lines = diagnosis.table().splitlines()
    assert lines[0].split()[:3] == ["dim", "latent", "KL"] and lines[5].split()[:2] == ["4", "z[1,0,0]"]
    assert "[collapsed] latents z[1,:,:]:" in text and "dims 4-7" not in text
    assert "Latents z[1,:,:] have KL under" in text  # the finding
    assert "Latents z[1,:,:] collapsed to the prior" in diagnosis.recommendation
    assert "collapsed (latents z[1,:,:])" in diagnosis.summary()
    assert "(dims=diagnosis.active_dims: 0-3, 8-11)" in text  # the values to pass stay flat indices
    assert str(diagnosis.flag("collapsed")).startswith("[collapsed] dims 4-7:")  # a Flag alone knows no shape
    # flat codes keep their text
    structured = spatial_posterior(collapsed_channel=1)
    flat = ls.diagnose(ls.Posterior(structured.mu, structured.logvar))
    assert "collapsed (dims 4-7)" in flat.summary() and flat.table().splitlines()[0].split()[:2] == ["dim", "KL"]


def test_the_training_markdown_and_the_demo_text_name_structured_latents_as_the_diagnosis_does():
    # (TensorBoard's markdown said "(latents 4-7)" and the demo's text "dims 4-7" beside z[1,:,:])
    from latentsweep.demo.summary import finding_text
    from latentsweep.integrations._common import diagnosis_markdown

    diagnosis = ls.diagnose(spatial_posterior(collapsed_channel=1))
    assert "- **collapsed** (latents z[1,:,:]):" in diagnosis_markdown(diagnosis, step=3)
    assert "`collapsed` on latents z[1,:,:]" in finding_text(diagnosis)


def test_latents_text_names_runs_and_whole_channels():
    assert latents_text([4, 5, 6, 7], SHAPE) == "z[1,:,:]"
    assert latents_text(list(range(12)), SHAPE) == "z[0:3,:,:]"
    assert latents_text([0, 1, 2, 3, 4, 6, 7], SHAPE) == "z[0,0,0]-z[1,0,0], z[1,1,0]-z[1,1,1]"
    assert latents_text([3, 4], SHAPE) == "z[0,1,1]-z[1,0,0]"
    assert latents_text([1, 2, 4, 5], (3, 2)) == "z[0,1]-z[1,0], z[2,:]"
    assert latents_text([0, 1], (2, 1, 1)) == "z[0:2,:,:]"


# ---- axis_alignment reads structured codes as principal_directions and clusters do -------------
def test_axis_alignment_takes_structured_codes_and_a_posterior():
    """It refused [N, C, H, W] codes ("must be [N, D]") and a Posterior (TypeError), which
    principal_directions and clusters take."""
    expected = axis_alignment(CODES.reshape(40, D))
    assert axis_alignment(CODES) == expected and axis_alignment(spatial_posterior()) == expected
    with pytest.raises(ValueError, match=r"axis_alignment: codes must be \[N, D\] with N >= 2"):
        axis_alignment(CODES[:1])


# ---- coordinates move that element of the decoder's input, in every layout and dtype ------------
@pytest.mark.parametrize("shape", [(3, 2, 2), (3, 4), (1, 2, 2), (5, 1, 1)])
def test_a_coordinate_moves_that_element_of_the_decoders_input(shape):
    anchors = torch.randn(2, *shape, generator=GEN, dtype=torch.float64)
    seen = []

    def spy(z):
        seen.append(z.clone())
        return z.flatten(1).sum(1, keepdim=True)

    index = tuple(n - 1 for n in shape)  # the last element: every axis other than 0
    dim = int(np.ravel_multi_index(index, shape))
    result = ls.traverse(spy, anchors, dims=[dim], steps=3, batch_size=6, progress=False)
    codes = torch.cat(seen)[-6:].view(2, 3, *shape)  # (the sweep may probe the decoder first)
    moved = (codes != anchors[:, None]).nonzero()[:, 2:]
    assert moved.unique(dim=0).tolist() == [list(index)]
    assert torch.equal(codes[(slice(None), slice(None), *index)], result.values[:, 0])
    assert result.labels == (f"z[{','.join(map(str, index))}]",)


@pytest.mark.parametrize("layout", ["channels_last", "transposed", "float32", "bfloat16", "requires_grad"])
def test_structured_anchors_in_any_layout_match_plain_torch(layout):
    anchors = CODES[:2]
    given = {
        "channels_last": anchors.contiguous(memory_format=torch.channels_last),
        "transposed": anchors.transpose(2, 3).contiguous().transpose(2, 3),  # same values, other strides
        "float32": anchors.float(), "bfloat16": anchors.bfloat16(), "requires_grad": anchors.clone().requires_grad_(),
    }[layout]
    result = ls.traverse(decoder, given, dims=[1, 6], steps=3, progress=False)
    flat = given.detach().reshape(2, D)
    assert torch.equal(result.anchors, flat) and result.latent_shape == SHAPE
    for a in range(2):
        for k, d in enumerate((1, 6)):
            for s in range(3):
                code = flat[a].clone()
                code[d] = result.values[a, k, s]
                torch.testing.assert_close(result.outputs[a, k, s], decoder(code.view(1, *SHAPE))[0], rtol=0, atol=0)


def test_the_html_reports_flags_name_structured_latents_as_the_diagnosis_does():
    # (the report's flag headers said "collapsed dims 4-7" beside its z[1,0,0] table)
    from latentsweep.html_report import _flags

    html = _flags(ls.diagnose(spatial_posterior(collapsed_channel=1)))
    assert "<code>collapsed</code> latents z[1,:,:]</h3>" in html and "dims 4-7" not in html


def test_clusters_given_a_count_as_its_labels_says_to_pass_k():
    # (clusters(codes, 4) said "labels must be 1-D with one label per code (N=10), got shape ()")
    with pytest.raises(TypeError, match=r"labels must be \[N\] cluster labels, got the int 4; for 4 KMeans clusters "
                                        r"pass k=4"):
        ls.clusters(torch.randn(10, 2), 4)
