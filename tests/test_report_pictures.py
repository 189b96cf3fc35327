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


DIRECTIONS = ls.principal_directions(POSTERIOR, k=5)


def test_a_direction_sweeps_grid_is_drawn_from_the_pictures_of_its_first_directions(tmp_path):
    """A sweep of five directions kept for its statistics alone, its grid (max_dims=2: the first
    two) from pictures= of the first two: every picture byte for byte as from the whole sweep."""
    decoder = small_decoder(3 * 8 * 8, 3, 8, 8)
    full = ls.traverse(decoder, ANCHORS, directions=DIRECTIONS, **SWEEP)
    statistics = ls.traverse(decoder, ANCHORS, directions=DIRECTIONS, keep_outputs=False, **SWEEP)
    first = ls.traverse(decoder, ANCHORS, directions=DIRECTIONS[:2], **SWEEP)
    options = dict(posterior=POSTERIOR, max_dims=2, dpi=30, gifs=False, anchor_indices=(0, 2))
    whole = ls.report(tmp_path / "whole.html", directions={"pcs": full}, **options)
    split = ls.report(tmp_path / "split.html", directions={"pcs": statistics}, pictures={"pcs": first}, **options)
    expected = _inline_pictures(whole)
    assert _inline_pictures(split) == expected
    alone = ls.report(tmp_path / "alone.html", directions={"pcs": statistics}, **options)
    assert len(_inline_pictures(alone)) == len(expected) - 2  # (its grid of each anchor)
    assert "The outputs were not kept" in alone.read_text(encoding="utf-8")
    # (the tables come from the sweep of all five)
    assert "<td>PC5 (" in split.read_text(encoding="utf-8")


@pytest.mark.parametrize("picture, message", [
    ("statistics", r"pictures\['pcs'\] holds no outputs"),
    ("one", r"pictures\['pcs'\] holds 1 directions, fewer than the 2 the report draws of directions\['pcs'\]: "
            r"traverse its first 2 directions \(directions=\.\.\.\[:2\]\)"),
    ("later", r"pictures\['pcs'\] does not traverse the first 2 directions of directions\['pcs'\] \(the same vectors "
              r"and names, in order\)"),
    ("latents", r"pictures\['pcs'\] and directions\['pcs'\] must traverse directions"),
    ("other span", r"pictures\['pcs'\] is not a traversal of directions\['pcs'\]'s grid: its values along the "
                   r"directions differ"),
    ("other anchors", r"pictures\['pcs'\] is not a traversal of directions\['pcs'\]'s grid: it must start from the "
                      r"same anchors"),
])
def test_pictures_that_are_not_the_first_directions_of_the_same_grid_are_refused(tmp_path, picture, message):
    decoder = small_decoder(3 * 8 * 8, 3, 8, 8)
    made = {
        "statistics": dict(directions=DIRECTIONS[:2], keep_outputs=False),
        "one": dict(directions=DIRECTIONS[:1]),
        "later": dict(directions=DIRECTIONS[1:3]),
        "latents": dict(dims=[0, 1]),
        "other span": dict(directions=DIRECTIONS[:2], span=1.0),
    }
    if picture == "other anchors":
        given = ls.traverse(decoder, POSTERIOR[3:6], directions=DIRECTIONS[:2], **SWEEP)
    else:
        given = ls.traverse(decoder, ANCHORS, **SWEEP, **made[picture])
    statistics = ls.traverse(decoder, ANCHORS, directions=DIRECTIONS, keep_outputs=False, **SWEEP)
    with pytest.raises(ValueError, match=r"^latentsweep\.report: " + message):
        ls.report(tmp_path / "r.html", directions={"pcs": statistics}, pictures={"pcs": given}, posterior=POSTERIOR,
                  max_dims=2)
    assert not (tmp_path / "r.html").exists()


def test_a_pictures_name_of_both_a_result_and_a_direction_sweep_is_refused(tmp_path, sweeps):
    full, statistics, pictured = sweeps
    along = ls.traverse(small_decoder(3 * 8 * 8, 3, 8, 8), ANCHORS, directions=DIRECTIONS[:2], **SWEEP)
    with pytest.raises(ValueError, match=r"^latentsweep\.report: pictures has 'prior', the name of a result and of a "
                                         r"direction sweep: give them different names"):
        ls.report(tmp_path / "r.html", results={"prior": statistics}, directions={"prior": along},
                  pictures={"prior": pictured}, posterior=POSTERIOR, max_dims=2)


@pytest.fixture(scope="module")
def sweeps():
    return _sweeps(small_decoder(3 * 8 * 8, 3, 8, 8))


@pytest.mark.parametrize("pictures, error, message", [
    (["x"], TypeError, r"pictures must be a mapping name -> TraversalResult .* got list"),
    ({"other": "picture"}, ValueError, r"pictures has 'other', which names none of the results \['prior'\] nor of "
                                        r"the direction sweeps \[\]"),
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


def test_explain_keeps_the_outputs_of_the_first_directions_only(monkeypatch, tmp_path):
    """Five directions of its own, two drawn (max_dims=2): the sweep of five keeps its statistics
    alone, the first two are swept again with their outputs; the report's pictures are those of
    explain keeping the five's outputs."""
    monkeypatch.setattr(explanation, "SEPARATE_PICTURES_FROM_BYTES", 3 * 3 * 5 * (3 * 8 * 8) * 4 - 1)
    calls = []
    sweep = explanation.traverse

    def recording(decoder, anchors, **options):
        result = sweep(decoder, anchors, **options)
        if result.directions is not None:
            calls.append((result.directions.shape[0], result.outputs is not None))
        return result

    monkeypatch.setattr(explanation, "traverse", recording)
    decoder = small_decoder(3 * 8 * 8, 3, 8, 8)
    plain = ls.Posterior(POSTERIOR.mu)  # (a plain autoencoder's codes: no latent sweep)
    options = dict(posterior=plain, anchors=3, steps=5, max_dims=2, dpi=30, progress=False)
    path = ls.explain(None, decoder, None, out=tmp_path / "split", directions=DIRECTIONS, **options)
    assert calls == [(5, False), (2, True)]
    calls.clear()
    monkeypatch.setattr(explanation, "SEPARATE_PICTURES_FROM_BYTES", 3 * 3 * 5 * (3 * 8 * 8) * 4)
    whole = ls.explain(None, decoder, None, out=tmp_path / "whole", directions=DIRECTIONS, **options)
    assert calls == [(5, True)]  # (the three undrawn directions' outputs are small: one sweep keeps them)
    assert _inline_pictures(path) == _inline_pictures(whole)
    assert "<td>PC5 (" in path.read_text(encoding="utf-8")  # (the table: from the sweep of all five)
    calls.clear()
    ls.explain(None, decoder, None, out=tmp_path / "all", directions=DIRECTIONS[:2], **options)
    assert calls == [(2, True)]  # no more directions than drawn: one sweep


def test_explains_memory_check_counts_the_first_directions_outputs_only(monkeypatch, tmp_path):
    from latentsweep import _checks

    monkeypatch.setattr(explanation, "SEPARATE_PICTURES_FROM_BYTES", 0)
    monkeypatch.setattr(_checks, "physical_memory", lambda: 16 << 10)  # (enough for the probe of one traversal)
    with pytest.raises(ValueError, match=r"\(anchors x traversals x steps: your directions 3 x 5 x 5 \(statistics "
                                         r"only\); your directions, the first 2 3 x 2 x 5\)"):
        ls.explain(None, small_decoder(3 * 8 * 8, 3, 8, 8), None, posterior=ls.Posterior(POSTERIOR.mu),
                   out=tmp_path, directions=DIRECTIONS, anchors=3, steps=5, max_dims=2, progress=False)


def test_a_direction_picture_of_the_first_48_still_says_the_grid_draws_48_of_them(tmp_path):
    """max_dims=None draws at most 48 directions, with a warning naming all of them: drawn from
    pictures= of the first 48, the warning still counts the sweep's 50."""
    decoder = torch.nn.Sequential(torch.nn.Linear(50, 3 * 4 * 4), torch.nn.Unflatten(1, (3, 4, 4)))
    posterior = ls.Posterior(torch.randn(60, 50, generator=torch.Generator().manual_seed(0)))
    vectors = torch.eye(50)
    statistics = ls.traverse(decoder, posterior[:1], directions=vectors, keep_outputs=False, steps=2, progress=False)
    first = ls.traverse(decoder, posterior[:1], directions=vectors[:48], steps=2, progress=False)
    with pytest.warns(UserWarning, match=r"drawing 48 of 50 directions; pass max_dims= to draw more"):
        ls.report(tmp_path / "r.html", directions={"u": statistics}, pictures={"u": first}, max_dims=None, dpi=20,
                  gifs=False)
