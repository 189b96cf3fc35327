"""Defects of explain and report found by an adversarial pass (thirty-fourth session): each test
failed before its fix."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

import latentsweep as ls

FAST = dict(progress=False, steps=3)


def test_principal_directions_spanning_the_codes_carry_all_of_their_variance(tmp_path):
    """Three orthonormal float32 PCs of 3-D codes summed to 1.0000000244: ">100%" (the demo's
    digits-ae report said ">99.99%" for its 8 of 8)."""
    torch.manual_seed(1)
    x = torch.randn(200, 6)
    page = ls.explain(nn.Linear(6, 3), nn.Linear(3, 6), x, out=tmp_path, **FAST).read_text()
    assert re.findall(r"Together they carry ([^ ]+) of the codes", page) == ["100%"]


@pytest.mark.parametrize("seed", [2, 3, 4, 7])  # (seeds whose two float32 shares summed above 1)
def test_fewer_principal_directions_than_latents_never_carry_more_than_all_of_it(tmp_path, seed):
    """Codes of 3 latents in a plane: explain keeps its 2 principal directions, whose shares
    summed to 1 + rounding (">100%" for these seeds); fewer directions than latents carry at
    most all of the variance, so it reads ">99.99%"."""
    torch.manual_seed(seed)
    encoder = nn.Linear(6, 3)
    with torch.no_grad():
        encoder.weight[2] = encoder.weight[0] + encoder.weight[1]  # (the third latent: the sum of the others)
        encoder.bias[2] = 0.0
    page = ls.explain(encoder, nn.Linear(3, 6), torch.randn(200, 6), out=tmp_path, **FAST).read_text()
    assert re.findall(r"(\d) direction\(s\) traversed", page) == ["2"]
    assert re.findall(r"Together they carry ([^ ]+) of the codes", page) == ["&gt;99.99%"]


def _clusters_and_decoder():
    torch.manual_seed(0)
    found = ls.clusters(torch.randn(60, 4), k=3)
    decoder = nn.Sequential(nn.Linear(4, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    return found, decoder


def test_a_path_of_another_latent_space_is_refused(tmp_path):
    found, _ = _clusters_and_decoder()
    other = nn.Sequential(nn.Linear(2, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    path = ls.interpolate(other, torch.zeros(2), torch.ones(2), progress=False)
    with pytest.raises(ValueError, match=r"interpolations\[\(0, 1\)\] is a path in codes of D=2 latents, but the "
                                         r"clusters' codes have D=4"):
        ls.report(tmp_path / "r.html", clusters=found, interpolations={(0, 1): path})


@pytest.mark.parametrize("start, end, wrong", [
    ("away", 1, "start"),  # from arbitrary codes
    (1, 0, "start"),       # the path from 1 to 0 under the key (0, 1)
    (0, 2, "end"),
], ids=["arbitrary start", "reversed", "another end"])
def test_a_path_not_between_the_keys_centroids_is_refused(tmp_path, start, end, wrong):
    """A path from any two points (or under the reversed key) was described as the one between
    the clusters: "Along the linear path from 0 to 1 the output moves by ..."."""
    found, decoder = _clusters_and_decoder()
    centroids = found.centroids
    begin = torch.full((4,), 5.0) if start == "away" else centroids[start]
    path = ls.interpolate(decoder, begin, centroids[end], progress=False)
    with pytest.raises(ValueError, match=rf"interpolations\[\(0, 1\)\] must go from centroid 0 to centroid 1 of "
                                         rf"clusters, but its {wrong} is .* away from centroid"):
        ls.report(tmp_path / "r.html", clusters=found, interpolations={(0, 1): path})


def test_the_path_between_the_keys_centroids_is_described(tmp_path):
    found, decoder = _clusters_and_decoder()
    path = ls.interpolate(decoder, found.centroids[0], found.centroids[1], progress=False)
    page = ls.report(tmp_path / "r.html", clusters=found, interpolations={(0, 1): path}).read_text()
    assert "path from 0 to 1" in page


def test_codes_that_differ_only_by_float_rounding_are_not_clustered_nor_traversed(tmp_path):
    """300 copies of one input, encoded in two batches, gave codes ~1e-7 apart: KMeans found two
    "clusters" of +-inf SDs, and its principal direction was traversed over 2.4e-7."""
    torch.manual_seed(0)
    mixing = torch.linalg.qr(torch.randn(10, 3))[0]

    def encoder(x):
        return (x @ mixing) * 0.95, torch.full((len(x), 3), math.log(0.1))

    x = torch.randn(1, 10).repeat(300, 1)
    posterior = ls.encode(encoder, x, progress=False)
    assert not bool((posterior.mu == posterior.mu[0]).all())  # (they do differ, by rounding)
    with pytest.raises(ValueError, match="the codes do not vary: all 300 inputs have the same code up to float "
                                         "rounding, so there are no clusters to find"):
        ls.explain(encoder, nn.Linear(3, 10), x, clusters=2, out=tmp_path, **FAST)
    with pytest.raises(ValueError, match="up to float rounding, so there is no principal direction to traverse"):
        ls.explain(encoder, nn.Linear(3, 10), x, directions="pca", out=tmp_path, **FAST)


def test_explains_cluster_errors_name_explain_and_its_arguments(tmp_path):
    x = torch.randn(3, 6)
    with pytest.raises(ValueError, match=r"^latentsweep.explain: clusters must be <= 2, got 4"):
        ls.explain(nn.Linear(6, 2), nn.Linear(2, 6), x, clusters=4, out=tmp_path, **FAST)
    x = torch.randn(20, 6)
    with pytest.raises(ValueError, match=r"^latentsweep.explain: needs 2 <= clusters < N=20, got 1 cluster\(s\) in "
                                         r"labels"):
        ls.explain(nn.Linear(6, 2), nn.Linear(2, 6), x, labels=[0] * 20, out=tmp_path, **FAST)


@pytest.mark.parametrize("call", [
    lambda tmp_path: ls.explain(nn.Linear(6, 2), nn.Linear(2, 6), torch.randn(20, 6), out="a\x00b", **FAST),
    lambda tmp_path: ls.report("a\x00.html", posterior=ls.Posterior(torch.randn(10, 3))),
], ids=["explain", "report"])
def test_a_path_with_a_nul_character_is_refused_by_name(tmp_path, call):
    with pytest.raises(ValueError, match=r"cannot write .*embedded null byte"):
        call(tmp_path)


def test_centroid_outputs_and_paths_of_other_output_shapes_are_refused_before_drawing(tmp_path):
    """Refused in cluster_panel's words ("interpolation"), after the earlier pictures were drawn."""
    found, decoder = _clusters_and_decoder()
    path = ls.interpolate(decoder, found.centroids[0], found.centroids[1], progress=False)  # [1, 8, 8] outputs
    with pytest.raises(ValueError, match=r"^latentsweep.report: interpolations\[\(0, 1\)\] decodes to outputs of "
                                         r"shape \[1, 8, 8\], but centroid_outputs are of shape \[64\]"):
        ls.report(tmp_path / "r.html", clusters=found, centroid_outputs=torch.rand(3, 64),
                  interpolations={(0, 1): path})
