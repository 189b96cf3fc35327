"""Found by following README's "Directions, clusters and paths" as a user with a plain
autoencoder (and a VAE): principal directions, user directions, the direction grid, axis
alignment. Each test failed before its fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import plots
from latentsweep.alignment import axis_alignment
from picture_models import small_decoder


def _ticks(figure) -> tuple[list[str], str]:
    ax = figure.axes[0]
    return [t.get_text() for t in ax.get_xticklabels()], ax.get_xlabel()


def test_direction_grid_labels_float16_prior_offsets_as_traversal_grid_does():
    """Half-precision anchors traversed in mode "prior": their offsets from the anchor differ by
    float16's rounding. traversal_grid labelled the columns -2 .. +2, but direction_grid (in the
    report beside it, too) had its own stricter rule and fell back to step numbers with a range
    per row."""
    g = torch.Generator().manual_seed(0)
    anchors = (torch.randn(2, 6, generator=g) * 3).half()
    pcs = ls.principal_directions(torch.randn(300, 6, generator=g) * torch.linspace(3, 0.5, 6), k=3)
    result = ls.traverse(small_decoder(64, 1, 8, 8), anchors, directions=pcs, steps=5, progress=False)
    grid = plots.direction_grid(result.outputs[0], pcs, values=result.values[0],
                                anchor_values=result.anchor_values[0])
    labels, axis = _ticks(grid)
    assert labels == ["-2", "-1", "0", "+1", "+2"]
    assert axis == "offset from the anchor along the direction"
    assert all("\n" not in t.get_text().split("var")[-1] for t in grid.axes[0].get_yticklabels())  # no per-row range
    assert _ticks(ls.traversal_grid(result))[1] == "offset along u from the anchor"  # (the same rule there)
    # Values that really differ per row still get step numbers and a range per row.
    labels, axis = _ticks(plots.direction_grid(result.outputs[0], pcs, values=result.values[0] * torch.tensor(
        [[1.0], [2.0], [3.0]], dtype=torch.float16)))
    assert (labels, axis) == (["0", "1", "2", "3", "4"], "step")


def test_direction_grid_float32_values_equal_up_to_rounding_are_one_set_of_columns():
    """Values [K, S] whose rows agree but for the last bits (computed per direction) were
    labelled by step numbers: the rule asked for exact equality without anchor_values."""
    values = torch.linspace(-2, 2, 5).repeat(3, 1)
    values[1] = values[1] * (1 + 2**-23)
    outputs = torch.rand(3, 5, 8, 8)
    pcs = ls.Directions.from_vectors(torch.eye(6)[:3])
    assert _ticks(plots.direction_grid(outputs, pcs, values=values)) == (
        ["-2", "-1", "0", "+1", "+2"], "coordinate along the direction")


@pytest.mark.parametrize("names, match", [
    ("smile", r"got the string 'smile'; for one direction, pass \['smile'\]"),
    (3, "names must be a sequence of K=1 names, got int"),
    (torch.tensor([1]), "got Tensor"),
])
def test_from_vectors_refuses_names_that_are_not_a_sequence_of_names(names, match):
    """names="smile" for one direction said "1 vectors but 5 names" (a string is a sequence of
    letters), and names="ab" for two silently named them "a" and "b"."""
    with pytest.raises(TypeError, match=f"latentsweep.Directions.from_vectors: .*{match}"):
        ls.Directions.from_vectors(torch.ones(1, 4), names=names)
    with pytest.raises(TypeError, match="got the string 'ab'"):
        ls.Directions.from_vectors(torch.eye(4)[:2], names="ab")
    assert ls.Directions.from_vectors(torch.eye(4)[:2], names=np.array(["x", "y"])).names == ("x", "y")
    assert ls.Directions.from_vectors(torch.eye(4)[:2], names=(1, 2)).names == ("1", "2")


def test_huge_broadcast_directions_are_refused_before_allocating():
    """A broadcast view of 10^11 values (4 bytes of storage) raised the allocator's
    RuntimeError ("you tried to allocate 800000000000 bytes") from inside torch."""
    huge = torch.ones(1, 1).expand(10**6, 10**5)
    for call in (lambda: ls.unit_directions(huge), lambda: ls.Directions.from_vectors(huge),
                 lambda: ls.traverse(lambda z: z, torch.zeros(1, 10**5), directions=huge, progress=False)):
        with pytest.raises(ValueError, match=r"normalising the directions \[K=1000000, D=100000\] needs .* GiB"):
            call()
    with pytest.raises(ValueError, match=r"latentsweep.Directions: checking the vectors \[K=1000000, D=100000\]"):
        ls.Directions((torch.ones(1, 1) / 10**2.5).expand(10**6, 10**5), ("u",) * 10**6)
    with pytest.raises(ValueError, match=r"latentsweep.Directions.project: reading the codes \[N=10000000000, D=3\]"):
        ls.Directions.from_vectors(torch.eye(3)).project(torch.ones(1, 1).expand(10**10, 3))


def test_principal_directions_says_why_k_is_too_large():
    """Three codes of six latents have two components: "k must be <= 2" said no more."""
    with pytest.raises(ValueError, match=r"k must be <= 2, the most components codes \[N=3, D=6\] have "
                                         r"\(min\(N - 1, D\)\), got 4"):
        ls.principal_directions(torch.randn(3, 6), k=4)


def test_axis_alignment_of_one_latent_is_a_share_of_one():
    """The top component of one latent's codes is that latent: its eigenvalue came out an ulp
    above the variance, a share of 1.0000000000000004 and a ratio under 1."""
    for seed in range(20):
        codes = torch.randn(100, 1, generator=torch.Generator().manual_seed(seed))
        axes = axis_alignment(codes)
        assert axes.top_component_share == 1.0 and axes.ratio == 1.0
    tiny = torch.randn(100, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1, 1e-9, 1e-9])
    assert axis_alignment(tiny).top_component_share <= 1.0


def test_clusters_compare_by_their_values():
    """Two clusterings of the same codes compared with == raised "Boolean value of Tensor with
    more than one value is ambiguous" (the dataclass's own == on tensors), as results once did."""
    codes = torch.randn(60, 3, generator=torch.Generator().manual_seed(1))
    first, again = ls.clusters(codes, k=3), ls.clusters(codes, k=3)
    assert first == again and not first != again
    assert first != ls.clusters(codes, k=2) and first != ls.clusters(codes.double(), k=3)
    assert first != "clusters"
    with pytest.raises(TypeError, match="unhashable"):
        hash(first)  # (mutable tensors, as Directions and TraversalResult)


def test_cluster_panel_takes_the_interpolation_that_interpolate_returns():
    """README's path between two clusters is ls.interpolate(...) (what report(interpolations=)
    takes); cluster_panel refused it with "interpolation must be a tensor or a numeric array, got
    an array of object"."""
    codes = torch.randn(60, 3, generator=torch.Generator().manual_seed(2))
    found = ls.clusters(codes, k=3)
    weights = torch.randn(3, 16, generator=torch.Generator().manual_seed(3))
    decoder = lambda z: torch.sigmoid(z @ weights).view(-1, 1, 4, 4)  # noqa: E731
    (i, j) = found.closest_and_farthest()[1]
    path = ls.interpolate(decoder, found.centroids[i], found.centroids[j], steps=5, progress=False)
    for figure in (plots.cluster_panel(found, interpolation=path, pair=(i, j)),
                   plots.cluster_panel(found, interpolation={(i, j): path})):
        strip = figure.axes[-1]
        assert strip.get_title() == f"from cluster {i} to {j}"
        drawn = plots.cluster_panel(found, interpolation=path.outputs[0], pair=(i, j)).axes[-1]
        np.testing.assert_array_equal(strip.images[0].get_array(), drawn.images[0].get_array())
    two = ls.interpolate(decoder, found.centroids[:2], found.centroids[1:], steps=5, progress=False)
    with pytest.raises(ValueError, match=r"cluster_panel: interpolation is an Interpolation of 2 paths; pass one"):
        plots.cluster_panel(found, interpolation=two, pair=(0, 1))
    unkept = ls.interpolate(decoder, found.centroids[0], found.centroids[1], steps=5, progress=False,
                            keep_outputs=False)
    with pytest.raises(ValueError, match=r"outputs were not kept \(keep_outputs=False\)"):
        plots.cluster_panel(found, interpolation=unkept, pair=(0, 1))


def test_direction_codes_take_directions_as_traverse_does():
    """README writes grid = ls.direction_codes(pcs.mean, pcs.vectors, values); the same call
    with pcs itself, which traverse and traversal_values take, was "directions must be a
    torch.Tensor, got Directions"."""
    codes = torch.randn(80, 5, generator=torch.Generator().manual_seed(4)) * torch.tensor([3.0, 2, 1, 0.5, 0.1])
    pcs = ls.principal_directions(codes, k=3)
    values = torch.linspace(-2, 2, 7)
    torch.testing.assert_close(ls.direction_codes(pcs.mean, pcs, values),
                               ls.direction_codes(pcs.mean, pcs.vectors, values), rtol=0, atol=0)
    torch.testing.assert_close(ls.direction_codes(codes[:2], pcs[1], values),
                               ls.direction_codes(codes[:2], pcs.vectors[1], values), rtol=0, atol=0)


def test_directions_take_python_slices_and_refuse_a_bool():
    """The message names "a slice" among the indices, but pcs[::-1] (the weakest component
    first) and pcs[3:0:-1] were "cannot select directions" (torch refuses negative steps);
    pcs[True] picked every direction."""
    pcs = ls.principal_directions(torch.randn(50, 4, generator=torch.Generator().manual_seed(5)))
    assert pcs[::-1].names == ("PC4", "PC3", "PC2", "PC1") and pcs[3:0:-2].names == ("PC4", "PC2")
    assert torch.equal(pcs[::-1].explained_variance, pcs.explained_variance.flip(0))
    with pytest.raises(IndexError, match=r"slice\(5, None, None\) selects none of the 4 direction\(s\)"):
        pcs[5:]
    with pytest.raises(IndexError, match=r"\[\] selects none"):
        pcs[[]]
    with pytest.raises(TypeError, match="index must be an int in -K..K-1, .*, got True"):
        pcs[True]


def test_principal_directions_of_codes_that_require_grad():
    """Codes straight from an encoder called outside torch.no_grad gave Directions whose
    tensors required grad (a graph through the passes over the codes) and torch's "Converting a
    tensor with requires_grad=True to a scalar" warning from inside principal.py; clusters() and
    axis_alignment() detach theirs."""
    encoder = torch.nn.Linear(8, 4)
    with torch.no_grad():
        expected = ls.principal_directions(encoder(torch.randn(100, 8, generator=torch.Generator().manual_seed(6))))
    codes = encoder(torch.randn(100, 8, generator=torch.Generator().manual_seed(6)))
    assert codes.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("exact", "randomized"):
            pcs = ls.principal_directions(codes, method=method)
            assert not any(t.requires_grad for t in (pcs.vectors, pcs.explained_variance, pcs.mean))
    assert ls.principal_directions(codes) == expected


def test_axis_alignment_refuses_a_huge_broadcast_view_at_once():
    """principal_directions and clusters refuse codes whose values exceed the memory before
    passing over them; axis_alignment read a broadcast view [10^12, 2] block by block (hours)."""
    with pytest.raises(ValueError, match=r"axis_alignment: reading the codes \[N=1000000000000, D=2\] needs .* GiB"):
        axis_alignment(torch.randn(1, 2).expand(10**12, 2))
