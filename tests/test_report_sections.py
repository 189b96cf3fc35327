"""The report's direction and cluster sections (issue 8 item 9): every sentence is built from the
numbers and checked against them here (a direct numpy computation where the sentence computes
something), the pictures are where they belong, and bad arguments are named."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.report_texts import (
    cluster_sentences,
    direction_sentences,
    pair_sentence,
    side_by_side_sentence,
    variance_shares,
)
from picture_models import LATENT_DIM, small_decoder, synthetic_posterior
from test_report_texts import headings, numbers_after, text_of

N = 80


@pytest.fixture(scope="module")
def decoder():
    return small_decoder(16, 1, 4, 4)


@pytest.fixture(scope="module")
def posterior():
    return synthetic_posterior(N, seed=5)


@pytest.fixture(scope="module")
def along(decoder, posterior):
    pcs = ls.principal_directions(posterior, k=3)
    return ls.traverse(decoder, posterior[:2], directions=pcs, steps=5, progress=False)


@pytest.fixture(scope="module")
def latents(decoder, posterior):
    return ls.traverse(decoder, posterior[:2], dims=[0, 1, 2, 3], steps=5, progress=False)


@pytest.fixture(scope="module")
def found(posterior):
    return ls.clusters(posterior, k=3, seed=0)


def test_variance_shares_are_the_variance_along_each_direction_over_the_total(posterior):
    g = torch.Generator().manual_seed(0)
    units = ls.unit_directions(torch.randn(3, LATENT_DIM, generator=g))
    codes = posterior.mu.double().numpy()
    covariance = np.cov(codes, rowvar=False)
    expected = [float(u @ covariance @ u) / np.trace(covariance) for u in units.double().numpy()]
    np.testing.assert_allclose(variance_shares(posterior.mu, units), expected, rtol=1e-9)
    pcs = ls.principal_directions(posterior)
    np.testing.assert_allclose(variance_shares(posterior.mu, pcs.vectors), pcs.explained_variance_ratio, rtol=1e-5)
    assert all(np.isnan(variance_shares(torch.ones(5, 3), torch.eye(3))))


def test_the_direction_sentences_say_what_the_numbers_say(along, posterior):
    first, together, moves = direction_sentences(along, posterior.mu)
    count, anchors, steps, width = numbers_after(first, r"{} direction\(s\) traversed from {} anchor\(s\) in {} steps "
                                                       r"\(mode 'prior'\), each over {} in z")
    assert (count, anchors, steps) == (3, 2, 5)
    assert width == pytest.approx(float((along.values[..., -1] - along.values[..., 0]).abs().mean()), rel=5e-3)
    share = numbers_after(together, r"Together they carry {}% of the codes' variance\.")[0]
    pcs = ls.principal_directions(posterior, k=3)
    assert share == pytest.approx(100 * float(pcs.explained_variance_ratio.sum()), abs=0.5)
    effects = along.dim_effect.tolist()
    best, worst = int(np.argmax(effects)), int(np.argmin(effects))
    most, least = numbers_after(moves, rf"most along {re.escape(along.labels[best])}, by {{}}, and least along "
                                       rf"{re.escape(along.labels[worst])}, by {{}} ")
    assert most == pytest.approx(effects[best], rel=5e-3) and least == pytest.approx(effects[worst], rel=5e-3)
    # Without codes there is no variance to state; directions that are not orthogonal say so.
    assert len(direction_sentences(along)) == 2
    skewed = ls.traverse(small_decoder(16, 1, 4, 4), posterior[:1], directions=torch.tensor([[1.0, 0, 0, 0, 0, 0],
                         [1.0, 1.0, 0, 0, 0, 0]]), steps=3, progress=False)
    assert "not orthogonal" in direction_sentences(skewed, posterior.mu)[1]


def test_the_side_by_side_sentence_names_each_largest_effect_with_its_range(latents, along):
    sentence = side_by_side_sentence(latents, along)
    effect_l, width_l, effect_d, width_d = numbers_after(
        sentence, r"at most {} \(z\d, traversed over {} in z\), the directions by at most {} \(.*, over {}\)")
    k_l, k_d = int(latents.dim_effect.argmax()), int(along.dim_effect.argmax())
    assert effect_l == pytest.approx(float(latents.dim_effect[k_l]), rel=5e-3)
    assert effect_d == pytest.approx(float(along.dim_effect[k_d]), rel=5e-3)
    assert width_l == pytest.approx(float((latents.values[:, k_l, -1] - latents.values[:, k_l, 0]).abs().mean()), rel=5e-3)
    assert width_d == pytest.approx(float((along.values[:, k_d, -1] - along.values[:, k_d, 0]).abs().mean()), rel=5e-3)
    assert f"({latents.labels[k_l]}," in sentence and f"({along.labels[k_d]}," in sentence


def test_the_cluster_sentences_say_what_the_numbers_say(found, posterior):
    counts, separation = cluster_sentences(found)
    sizes = np.bincount(found.labels.numpy())
    assert counts == f"3 clusters of {N} codes (KMeans with k=3), of {sizes.min()} to {sizes.max()} codes each."
    # eta squared from its definition: between-cluster over total sum of squares, per latent.
    codes = posterior.mu.double().numpy()
    labels = found.labels.numpy()
    grand = codes.mean(0)
    between = sum((labels == c).sum() * (codes[labels == c].mean(0) - grand) ** 2 for c in range(3))
    eta = between / ((codes - grand) ** 2).sum(0)
    order = np.argsort(-eta, kind="stable")
    named = re.findall(r"z(\d+) (\d\.\d\d)", separation)
    assert [int(d) for d, _ in named[:3]] == order[:3].tolist()
    assert [float(v) for _, v in named[:3]] == pytest.approx(eta[order[:3]], abs=0.006)
    assert int(named[-1][0]) == order[-1] and "the weakest" in separation


def test_a_pair_sentence_states_the_distance_the_separating_latents_and_the_path(found, decoder):
    (i, j), _ = found.closest_and_farthest()
    path = ls.interpolate(decoder, found.centroids[i], found.centroids[j], steps=9, path="slerp", progress=False)
    sentence = pair_sentence(found, (i, j), "closest", path)
    distance = numbers_after(sentence, r"centroids {} apart in z")[0]
    assert distance == pytest.approx(float(np.linalg.norm(found.centroids[j] - found.centroids[i])), rel=5e-3)
    latents = [int(d) for d in re.findall(r"z(\d+) \(", sentence)]
    assert latents == found.separating_latents(i, j, top=2)
    effects = [float(v) for v in re.findall(r"z\d+ \(([+-][\d.e+-]+) SDs\)", sentence)]
    assert effects == pytest.approx(found.pair_effect(i, j)[latents].tolist(), rel=0.05)
    moved, half = numbers_after(sentence, r"moves by {} in all .* by t = {}\.")
    change = path.change[0].numpy()
    assert moved == pytest.approx(float(change[-1]), rel=5e-3)
    assert half == pytest.approx(float(path.t[np.argmax(change >= change[-1] / 2)]), abs=0.01)
    assert sentence.startswith(f"The closest clusters are {i} and {j}")
    assert pair_sentence(found, (i, j)).startswith(f"Clusters {i} and {j}") and "path" not in pair_sentence(found, (i, j))


def test_the_report_draws_the_sections(tmp_path, decoder, posterior, latents, along, found):
    pairs = found.closest_and_farthest()
    paths = {p: ls.interpolate(decoder, found.centroids[p[0]], found.centroids[p[1]], steps=5, progress=False)
             for p in pairs}
    with torch.no_grad():
        centroid_outputs = decoder(found.centroids)
    page = ls.report(tmp_path / "r.html", posterior=posterior, results={"prior": latents},
                     directions={"principal directions": along}, clusters=found, centroid_outputs=centroid_outputs,
                     interpolations=paths, gifs=False, dpi=30)
    document = page.read_text(encoding="utf-8")
    assert "Traversals along directions" in headings(document) and "Clusters" in headings(document)
    text = text_of(document)
    for sentence in (*direction_sentences(along, posterior.mu), side_by_side_sentence(latents, along),
                     *cluster_sentences(found)):
        assert sentence in text
    for pair, role in zip(pairs, ("closest", "farthest")):
        assert pair_sentence(found, pair, role, paths[pair]) in text
    assert 'alt="latents, anchor 0"' in document and 'alt="principal directions, anchor 0"' in document
    assert 'alt="clusters"' in document
    # Clusters alone are something to report; a tabular direction sweep gets its table and a note.
    alone = text_of(ls.report(tmp_path / "c.html", clusters=found, dpi=30).read_text())
    assert "3 clusters of" in alone
    tabular = ls.traverse(small_decoder(5), posterior[:1], directions=torch.eye(LATENT_DIM)[:2], steps=3,
                          progress=False)
    assert "Tabular outputs" in text_of(ls.report(tmp_path / "t.html", directions=tabular, dpi=30).read_text())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(directions="pca"), TypeError, "directions must be a TraversalResult"),
        (dict(directions={"x": "y"}), TypeError, r"directions\['x'\] must be a TraversalResult"),
        (dict(centroid_outputs=torch.zeros(3, 16)), ValueError, "need clusters="),
        (dict(clusters="k"), TypeError, "clusters must be a latentsweep.Clusters"),
    ],
)
def test_bad_section_arguments_are_named(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        ls.report(tmp_path / "r.html", **kwargs)


def test_sweeps_in_the_wrong_place_and_bad_cluster_parts_are_named(tmp_path, decoder, latents, along, found):
    with pytest.raises(ValueError, match=r"directions\['directions'\] is a traversal of latents; pass it in results="):
        ls.report(tmp_path / "r.html", directions=latents)
    with pytest.raises(ValueError, match=r"centroid_outputs must be \[C=3"):
        ls.report(tmp_path / "r.html", clusters=found, centroid_outputs=torch.zeros(2, 16))
    with pytest.raises(TypeError, match="keys must be cluster pairs"):
        ls.report(tmp_path / "r.html", clusters=found, interpolations={0: None})
    with pytest.raises(ValueError, match="interpolations' pair"):
        ls.report(tmp_path / "r.html", clusters=found, interpolations={(0, 7): None})
    with pytest.raises(TypeError, match="must be an Interpolation of one path"):
        ls.report(tmp_path / "r.html", clusters=found, interpolations={(0, 1): torch.zeros(3)})
    assert not (tmp_path / "r.html").exists()


def test_the_cluster_panel_of_many_labels_is_bounded_and_says_so(tmp_path, decoder):
    """explain(labels=...) with hundreds of classes put a 24,100-pixel-wide panel in the report:
    the report draws the largest DEFAULT_MAX_PANELS clusters and says so, without a warning."""
    import base64
    import io
    import warnings

    from PIL import Image

    from latentsweep.plots._common import DEFAULT_MAX_PANELS, MAX_FIGURE_INCHES

    many, dpi = 60, 30
    codes = torch.randn(3 * many, LATENT_DIM, generator=torch.Generator().manual_seed(0))
    found = ls.clusters(codes, torch.arange(many).repeat(3))
    with torch.no_grad():
        centroid_outputs = decoder(found.centroids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document = ls.report(tmp_path / "r.html", clusters=found, centroid_outputs=centroid_outputs, dpi=dpi).read_text()
    assert f"The {DEFAULT_MAX_PANELS} largest of the {many} clusters are drawn." in text_of(document)
    data = re.search(r'src="data:image/png;base64,([^"]+)" alt="clusters"', document).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] <= MAX_FIGURE_INCHES * dpi
