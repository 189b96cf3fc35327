"""report(pictures=...): a traversal of many latents kept for its statistics alone, and its
drawn latents' grids, GIFs and response curves from a sweep of those latents; and explain,
which kept every traversed latent's outputs to draw max_dims of them (11 GB of outputs, a
12.4 GiB peak, at [4, 16, 16] latents of 3 x 128 x 128 outputs to draw 12 latents)."""

from __future__ import annotations

import re

import pytest
import torch

import latentsweep as ls
from latentsweep import explanation
from latentsweep.report_pictures import drawn_dims
from picture_models import small_decoder, synthetic_posterior

POSTERIOR = synthetic_posterior(60, seed=3)  # KL: z1 > z3 > z2 > z0 > collapsed z4, z5
ANCHORS = POSTERIOR[:3]
SWEEP = dict(steps=5, progress=False)


def _inline_pictures(path) -> list[str]:
    """Every picture of a report page (PNG figures and GIFs), as their base64 text."""
    return re.findall(r'src="data:image/(?:png|gif);base64,([^"]+)"', path.read_text(encoding="utf-8"))


def _sweeps(decoder, mode="prior", **options):
    """(every latent with its outputs, every latent without, the two of largest KL with)."""
    full = ls.traverse(decoder, ANCHORS, mode=mode, **SWEEP, **options)
    statistics = ls.traverse(decoder, ANCHORS, mode=mode, keep_outputs=False, **SWEEP, **options)
    drawn = drawn_dims("test", statistics, ls.diagnose(POSTERIOR), 2)
    return full, statistics, ls.traverse(decoder, ANCHORS, mode=mode, dims=drawn, **SWEEP, **options)


@pytest.mark.parametrize("decoder", [small_decoder(3 * 8 * 8, 3, 8, 8), small_decoder(14)], ids=["images", "table"])
def test_the_pictures_of_a_statistics_only_traversal_are_those_of_the_whole_one(tmp_path, decoder):
    """Every picture the same, byte for byte: the grids, GIFs and response curves of the two
    latents drawn (max_dims=2) from pictures=, the effects and sensitivities from the traversal
    of all six (14 features: the response curves' 10 chosen by all six latents' sensitivity)."""
    full, statistics, pictured = _sweeps(decoder)
    assert pictured.dims.tolist() == [1, 3]  # the two of largest KL, as the grid orders them
    options = dict(posterior=POSTERIOR, max_dims=2, dpi=30, anchor_indices=(0, 2))
    whole = ls.report(tmp_path / "whole.html", results={"prior": full}, **options)
    split = ls.report(tmp_path / "split.html", results={"prior": statistics}, pictures={"prior": pictured}, **options)
    expected = _inline_pictures(whole)
    assert len(expected) == (7 if decoder[-1].__class__.__name__ == "Unflatten" else 5)
    assert _inline_pictures(split) == expected
    without = ls.report(tmp_path / "without.html", results={"prior": statistics}, **options)
    assert len(_inline_pictures(without)) < len(expected)  # (the pictures do come from pictures=)


def test_a_direction_sweeps_latent_twin_is_drawn_from_the_pictures(tmp_path):
    decoder = small_decoder(3 * 8 * 8, 3, 8, 8)
    full, statistics, pictured = _sweeps(decoder)
    along = ls.traverse(decoder, ANCHORS, directions=ls.principal_directions(POSTERIOR, k=2), **SWEEP)
    options = dict(posterior=POSTERIOR, max_dims=2, dpi=30, gifs=False, directions=along)
    whole = ls.report(tmp_path / "whole.html", results={"prior": full}, **options)
    split = ls.report(tmp_path / "split.html", results={"prior": statistics}, pictures={"prior": pictured}, **options)
    assert _inline_pictures(split) == _inline_pictures(whole)
    # A twin that kept no outputs is no longer drawn (traversal_grid refused it after the sweeps)
    alone = ls.report(tmp_path / "alone.html", results={"prior": statistics}, **options)
    assert len(_inline_pictures(alone)) == len(_inline_pictures(whole)) - 2  # its grid and the twin's


@pytest.fixture(scope="module")
def sweeps():
    return _sweeps(small_decoder(3 * 8 * 8, 3, 8, 8))


@pytest.mark.parametrize("pictures, error, message", [
    (["x"], TypeError, r"pictures must be a mapping name -> TraversalResult .* got list"),
    ({"other": "picture"}, ValueError, r"pictures has 'other', which is none of the results' names \['prior'\]"),
    ({"prior": 3}, TypeError, r"pictures\['prior'\] must be a TraversalResult, got int"),
    ({"prior": "statistics"}, ValueError, r"pictures\['prior'\] holds no outputs \(traversed with keep_outputs=False\)"),
    ({"prior": "z0 z2"}, ValueError, r"pictures\['prior'\] lacks 2 of the latents the report draws of "
                                     r"results\['prior'\] \(z1, z3\): traverse dims=\[1, 3\] \(the max_dims=2 of "
                                     r"largest KL\)"),
    ({"prior": "other anchors"}, ValueError, r"pictures\['prior'\] is not a traversal of results\['prior'\]'s grid: "
                                             r"it must start from the same anchors"),
    ({"prior": "other steps"}, ValueError, r"pictures\['prior'\] is not a traversal of results\['prior'\]'s grid"),
    ({"prior": "other span"}, ValueError, r"pictures\['prior'\] is not a traversal of results\['prior'\]'s grid: the values of latent z1 differ \(another span"),
    ({"prior": "directions"}, ValueError, r"pictures\['prior'\] and results\['prior'\] must traverse latents"),
])
def test_pictures_that_are_not_the_drawn_latents_of_the_same_grid_are_refused(tmp_path, sweeps, pictures, error,
                                                                            message):
    decoder = small_decoder(3 * 8 * 8, 3, 8, 8)
    full, statistics, pictured = sweeps
    made = {
        "picture": pictured, "statistics": statistics,
        "z0 z2": ls.traverse(decoder, ANCHORS, dims=[0, 2], **SWEEP),
        "other anchors": ls.traverse(decoder, POSTERIOR[3:6], dims=[1, 3], **SWEEP),
        "other steps": ls.traverse(decoder, ANCHORS, dims=[1, 3], steps=4, progress=False),
        "other span": ls.traverse(decoder, ANCHORS, dims=[1, 3], span=1.0, **SWEEP),
        "directions": ls.traverse(decoder, ANCHORS, directions=torch.eye(6)[[1, 3]], **SWEEP),
    }
    if isinstance(pictures, dict):
        pictures = {name: made.get(value, value) for name, value in pictures.items()}
    with pytest.raises(error, match=r"^latentsweep\.report: " + message):
        ls.report(tmp_path / "r.html", results={"prior": statistics}, pictures=pictures, posterior=POSTERIOR,
                  max_dims=2)
    assert not (tmp_path / "r.html").exists()


# --- explain ------------------------------------------------------------------------------------------


def _recorded_sweeps(monkeypatch) -> list[dict]:
    calls = []
    sweep = explanation.traverse

    def recording(decoder, anchors, **options):
        result = sweep(decoder, anchors, **options)
        if options.get("values") is None:  # (not the probe of the outputs' shape)
            calls.append(dict(mode=result.mode, dims=result.dims.tolist(), kept=result.outputs is not None))
        return result

    monkeypatch.setattr(explanation, "traverse", recording)
    return calls


UNDRAWN_BYTES = 4 * 3 * 5 * (3 * 8 * 8) * 4  # the outputs of 4 of 6 latents, 3 anchors x 5 steps, float32


def test_explain_keeps_the_outputs_of_the_drawn_latents_only(monkeypatch, tmp_path):
    monkeypatch.setattr(explanation, "SEPARATE_PICTURES_FROM_BYTES", UNDRAWN_BYTES - 1)
    calls = _recorded_sweeps(monkeypatch)
    decoder = small_decoder(3 * 8 * 8, 3, 8, 8)
    path = ls.explain(None, decoder, None, posterior=POSTERIOR, out=tmp_path, anchors=3, steps=5, dims=range(6),
                      max_dims=2, dpi=30, progress=False)
    assert calls == [dict(mode="prior", dims=[0, 1, 2, 3, 4, 5], kept=False), dict(mode="prior", dims=[1, 3], kept=True),
                     dict(mode="posterior", dims=[0, 1, 2, 3, 4, 5], kept=False),
                     dict(mode="posterior", dims=[1, 3], kept=True)]
    # the same pictures as a report of the whole traversals with their outputs
    full = {"prior": ls.traverse(decoder, ANCHORS, **SWEEP),
            "posterior": ls.traverse(decoder, ANCHORS, mode="posterior", **SWEEP)}
    whole = ls.report(tmp_path / "whole.html", results=full, posterior=POSTERIOR, max_dims=2, dpi=30)
    assert _inline_pictures(path) == _inline_pictures(whole)
    calls.clear()
    ls.explain(None, decoder, None, posterior=POSTERIOR, out=tmp_path / "all", anchors=3, steps=5, dims=range(6),
               max_dims=6, dpi=30, progress=False)
    assert [call["kept"] for call in calls] == [True, True]  # no more latents than drawn: one sweep each
    calls.clear()
    monkeypatch.setattr(explanation, "SEPARATE_PICTURES_FROM_BYTES", UNDRAWN_BYTES)
    ls.explain(None, decoder, None, posterior=POSTERIOR, out=tmp_path / "small", anchors=3, steps=5, dims=range(6),
               max_dims=2, dpi=30, progress=False)
    assert [call["kept"] for call in calls] == [True, True]  # the undrawn latents' outputs are small: kept


def test_explains_memory_check_counts_the_statistics_and_the_drawn_latents_outputs(monkeypatch, tmp_path):
    """Six latents of 2,048 outputs, 2 drawn: the outputs of six were counted (and refused) though
    two are kept."""
    from latentsweep import _checks
    from latentsweep.sinks import Geometry

    monkeypatch.setattr(explanation, "SEPARATE_PICTURES_FROM_BYTES", 0)
    decoder = small_decoder(2048)
    held = 2 * (Geometry(3, 6, 5, (2048,), torch.float32).result_bytes(False)
                + Geometry(3, 2, 5, (2048,), torch.float32).result_bytes(True))
    monkeypatch.setattr(_checks, "physical_memory", lambda: 2 * held)
    options = dict(posterior=POSTERIOR, anchors=3, steps=5, dims=range(6), dpi=30, progress=False)
    ls.explain(None, decoder, None, out=tmp_path / "two", max_dims=2, **options)
    with pytest.raises(ValueError, match=r"keeping its sweeps' results, 270 decoded outputs of shape \[2048\] "
                                         r"\(anchors x traversals x steps: latents in mode 'prior' 3 x 6 x 5 "
                                         r"\(statistics only\); latents in mode 'prior', the 3 drawn 3 x 3 x 5; "):
        ls.explain(None, decoder, None, out=tmp_path / "three", max_dims=3, **options)


def test_explains_memory_check_counts_a_running_sweeps_statistics_beside_the_results(monkeypatch, tmp_path):
    """64 latents of F outputs, one drawn: the results hold 528 F bytes and a running sweep
    merges 1,024 F more (its float64 sums and the CPU's own): 1,552 F on a machine of 1,400 F,
    where each traverse alone (its 256 F of results and 1,024 F merged) passed its own check."""
    from latentsweep import _checks

    monkeypatch.setattr(explanation, "SEPARATE_PICTURES_FROM_BYTES", 0)
    features, latents = 2048, 64
    gen = torch.Generator().manual_seed(0)
    posterior = ls.Posterior(torch.randn(20, latents, generator=gen), torch.full((20, latents), -4.0))
    decoder = torch.nn.Linear(latents, features)
    monkeypatch.setattr(_checks, "physical_memory", lambda: 1400 * features)  # (each traverse alone: 1,280 F)
    with pytest.raises(ValueError, match=r"explain: keeping its sweeps' results beside a running sweep's statistics "
                                         r"\(merged in float64, 0\.0 GiB\), 260 decoded outputs .*, needs 0\.0 GiB, "
                                         r"more than this CPU's 0\.0 GiB; pass fewer steps, anchors or dims$"):
        ls.explain(None, decoder, None, posterior=posterior, out=tmp_path, anchors=1, steps=2, max_dims=1,
                   progress=False)
    monkeypatch.setattr(_checks, "physical_memory", lambda: 1600 * features)
    ls.explain(None, decoder, None, posterior=posterior, out=tmp_path, anchors=1, steps=2, max_dims=1, dpi=30,
               progress=False)
