"""traverse(directions=...): sweeps along unit directions, against a plain-torch reference
(``anchors[a] + (values[a, k, s] - <anchors[a], u_k>) * u_k``, decoded in one call); one-hot
directions give the coordinate sweep; every mode; labels; stores, resume and torchrun."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentsweep as ls
from store_editing import edited_attributes
from sweep_models import mlp_decoder, rowwise_decoder
from sweep_reference import reference_direction_grid, reference_sweep

TESTS = Path(__file__).parent
GEN = torch.Generator().manual_seed(5)
ANCHORS = torch.randn(4, 6, generator=GEN, dtype=torch.float64)
LOGVAR = torch.randn(4, 6, generator=GEN, dtype=torch.float64) - 2
REFERENCE = torch.randn(50, 6, generator=GEN, dtype=torch.float64) * 1.5 + 0.3
RAW = torch.randn(3, 6, generator=GEN, dtype=torch.float64) * 3  # not unit length
UNIT = ls.unit_directions(RAW)
STATISTICS = ("effect", "dim_effect", "sensitivity")
MODE_OPTIONS = {"prior": {}, "absolute": {}, "quantile": {}, "posterior": {"logvar": LOGVAR},
                "empirical": {"reference": REFERENCE}}


def check_against_reference(result, decoder, anchors, unit, *, atol=1e-12):
    expected = reference_sweep(decoder, anchors, torch.arange(unit.shape[0]), result.values,
                               grid=reference_direction_grid(anchors, unit, result.values))
    torch.testing.assert_close(result.outputs, expected["outputs"], rtol=0, atol=atol)
    for name in STATISTICS:
        torch.testing.assert_close(getattr(result, name).double(), expected[name], rtol=1e-9, atol=atol)


@pytest.mark.parametrize("mode", sorted(MODE_OPTIONS))
def test_each_mode_along_directions_matches_the_plain_torch_reference(mode):
    options = MODE_OPTIONS[mode]
    result = ls.traverse(rowwise_decoder, ANCHORS, directions=RAW, mode=mode, steps=7, batch_size=10,
                         progress=False, **options)
    # The values are those of traversal_values along the same directions, every mode keeping its meaning.
    assert torch.equal(result.values, ls.traversal_values(ANCHORS, mode=mode, steps=7, directions=RAW, **options))
    assert torch.equal(result.directions, UNIT)
    assert result.dims.tolist() == [0, 1, 2] and result.labels == ("u0", "u1", "u2")
    assert sorted(result.ranking.tolist()) == [0, 1, 2]
    check_against_reference(result, rowwise_decoder, ANCHORS, UNIT)


def test_a_module_decoder_in_float32():
    decoder = mlp_decoder(6, 9)
    anchors = ANCHORS.float()
    result = ls.traverse(decoder, anchors, directions=RAW.float(), steps=5, progress=False)
    unit = ls.unit_directions(RAW.float())
    check_against_reference(result, decoder, anchors, unit, atol=1e-5)


def test_a_posterior_as_reference_is_its_means():
    # (refused with a TypeError, while principal_directions, clusters and project take one)
    torch.manual_seed(0)
    posterior = ls.Posterior(torch.randn(30, 6), torch.full((30, 6), -1.0))
    decoder = mlp_decoder(6, 9)
    for directions in (None, RAW.float()):
        by_means = ls.traverse(decoder, posterior.mu[:2], directions=directions, mode="empirical",
                               reference=posterior.mu, steps=5, progress=False)
        by_posterior = ls.traverse(decoder, posterior.mu[:2], directions=directions, mode="empirical",
                                   reference=posterior, steps=5, progress=False)
        assert torch.equal(by_means.values, by_posterior.values) and torch.equal(by_means.effect, by_posterior.effect)
        assert torch.equal(ls.traversal_values(posterior.mu[:2], mode="empirical", reference=posterior,
                                               directions=directions, steps=5), by_means.values)


def test_one_direction_given_as_a_vector_is_one_labelled_traversal(tmp_path):
    # ([D] is one direction, as direction_codes documents: its labels counted D of them, and the
    # report then indexed past K = 1)
    decoder = mlp_decoder(6, 9)
    result = ls.traverse(decoder, ANCHORS.float(), directions=torch.eye(6)[1], steps=5, progress=False)
    assert result.labels == ("u0",) and result.dim_effect.shape == (1,)
    ls.report(tmp_path / "r.html", results={"one": result})


@pytest.mark.parametrize("mode", sorted(MODE_OPTIONS))
def test_one_hot_directions_are_the_coordinate_sweep(mode):
    dims = [4, 0, 2]
    options = MODE_OPTIONS[mode]
    kwargs = dict(mode=mode, steps=6, batch_size=7, progress=False, **options)
    coordinates = ls.traverse(rowwise_decoder, ANCHORS, dims=dims, **kwargs)
    along = ls.traverse(rowwise_decoder, ANCHORS, directions=torch.eye(6, dtype=torch.float64)[dims], **kwargs)
    assert torch.equal(along.dims[along.ranking], torch.arange(3)[along.ranking])  # indices into the directions
    if mode == "posterior":
        # The SD along a one-hot u is sqrt(sum_d u_d^2 sigma_d^2) = sigma_d, up to rounding of exp/log.
        torch.testing.assert_close(along.values, coordinates.values, rtol=1e-14, atol=0)
        return
    assert torch.equal(along.values, coordinates.values)
    assert torch.equal(along.outputs, coordinates.outputs)
    for name in STATISTICS:
        assert torch.equal(getattr(along, name), getattr(coordinates, name)), name
    assert torch.tensor(dims)[along.ranking].tolist() == coordinates.ranking.tolist()
    assert coordinates.labels == ("z4", "z0", "z2") and coordinates.directions is None


def test_directions_object_gives_names_with_explained_variance():
    pcs = ls.principal_directions(REFERENCE, k=3)
    result = ls.traverse(rowwise_decoder, ANCHORS, directions=pcs, steps=5, progress=False)
    shares = [f"{float(r):.0%}" for r in pcs.explained_variance_ratio]
    assert result.labels == tuple(f"PC{i + 1} ({shares[i]})" for i in range(3))
    assert torch.equal(result.directions, ls.unit_directions(pcs.vectors))  # normalised again: the same rule
    torch.testing.assert_close(result.directions, pcs.vectors, rtol=0, atol=1e-15)
    summary = result.summary()
    assert "3 directions" in summary and "PC1 (" in summary and "latent" not in summary.splitlines()[0]
    assert result.labels_of(result.ranking) == [result.labels[i] for i in result.ranking.tolist()]
    picked = ls.traverse(rowwise_decoder, ANCHORS, directions=pcs[[0, 2]], steps=5, progress=False)
    assert picked.labels == (result.labels[0], result.labels[2])
    torch.testing.assert_close(picked.effect, result.effect[:, [0, 2]], rtol=0, atol=0)
    user = ls.traverse(rowwise_decoder, ANCHORS, directions=ls.Directions.from_vectors(RAW, ["a", "b", "c"]),
                       steps=5, progress=False)
    assert user.labels == ("a", "b", "c")


@settings(max_examples=10, deadline=None)
@given(anchors=st.integers(1, 3), directions=st.integers(1, 4), steps=st.integers(1, 5),
       latent=st.integers(1, 5), batch=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_any_shape_and_batch_size_matches_the_reference(anchors, directions, steps, latent, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randn(anchors, latent, generator=generator, dtype=torch.float64)
    directions = 1 if latent == 1 else directions  # (one line has one direction each way: repeats are refused)
    raw = torch.randn(directions, latent, generator=generator, dtype=torch.float64) + 0.1
    result = ls.traverse(rowwise_decoder, codes, directions=raw, steps=steps, batch_size=batch, progress=False)
    check_against_reference(result, rowwise_decoder, codes, ls.unit_directions(raw))
    # The row-wise decoder does not depend on the batch: the statistics are the same bits at any size.
    whole = ls.traverse(rowwise_decoder, codes, directions=raw, steps=steps, batch_size=10_000, progress=False)
    for name in STATISTICS:
        assert torch.equal(getattr(result, name), getattr(whole, name)), name


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(directions=RAW, dims=[0]), ValueError, "dims .*or directions, not both.*index them"),
        (dict(directions=torch.zeros(2, 6, dtype=torch.float64)), ValueError, r"direction\(s\) \[0, 1\] are zero"),
        (dict(directions=torch.full((1, 6), float("nan"), dtype=torch.float64)), ValueError, "directions.*NaN"),
        (dict(directions=torch.ones(2, 5, dtype=torch.float64)), ValueError, r"directions must be \[K, D=6\]"),
        (dict(directions=torch.ones(2, 3, 2, dtype=torch.float64)), ValueError, "directions must be"),
        (dict(directions=torch.ones(2, 6, dtype=torch.int64)), TypeError, "directions must be float"),
        (dict(directions="pca"), TypeError, "directions must be a torch.Tensor"),
        (dict(directions=RAW, mode="posterior"), ValueError, "needs logvar"),
        (dict(directions=RAW, mode=np.zeros(2)), TypeError, "mode must be a str"),  # checked before the projections
        (dict(directions=RAW, values=torch.zeros(4, 5)), ValueError, r"values must be .*\[K=3, S\]"),
    ],
)
def test_bad_directions_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        ls.traverse(rowwise_decoder, ANCHORS, steps=5, progress=False, **kwargs)


def test_explicit_values_are_coordinates_along_the_directions():
    values = torch.linspace(-3, 3, 5, dtype=torch.float64)
    result = ls.traverse(rowwise_decoder, ANCHORS, directions=RAW, values=values, progress=False)
    assert result.mode == "values" and torch.equal(result.values, values.expand(4, 3, 5))
    check_against_reference(result, rowwise_decoder, ANCHORS, UNIT)


# ---- stores, resume, processes ---------------------------------------------------------------
class FailingDecoder:
    def __init__(self, fail_on_call: int):
        self.calls, self.fail_on_call = 0, fail_on_call

    def __call__(self, codes):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("interrupted")
        return rowwise_decoder(codes)


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_a_stored_direction_sweep_resumes_and_reopens_with_its_directions(tmp_path, suffix):
    path = tmp_path / f"sweep{suffix}"
    pcs = ls.principal_directions(REFERENCE, k=3)
    kwargs = dict(directions=pcs, steps=6, batch_size=5, progress=False)
    full = ls.traverse(rowwise_decoder, ANCHORS, **kwargs)
    failing = FailingDecoder(fail_on_call=8)  # the probe, 4 calls per unit: in unit 1
    with pytest.raises(RuntimeError, match="interrupted"):
        ls.traverse(failing, ANCHORS, out=path, **kwargs)
    assert 0 < ls.sweep_status(path).done_rows < full.num_points
    failing.fail_on_call = -1
    other = ls.Directions(pcs.vectors.flip(0), pcs.names, source="user")  # other vectors
    with pytest.raises(ValueError, match="differs in: directions"):
        ls.traverse(failing, ANCHORS, out=path, resume=True, **{**kwargs, "directions": other})
    resumed = ls.traverse(failing, ANCHORS, out=path, resume=True, **kwargs)
    assert 0 < resumed.points_computed < full.num_points
    opened = ls.open_sweep(path)
    for got in (resumed, opened):
        for name in STATISTICS:
            assert torch.equal(getattr(got, name), getattr(full, name)), name
        assert np.array_equal(np.asarray(got.outputs), full.outputs.numpy())
        assert torch.equal(got.directions, full.directions) and got.labels == full.labels
        assert torch.equal(got.ranking, full.ranking)
    assert "3 directions" in opened.summary()


def test_a_coordinate_store_reopens_without_directions(tmp_path):
    ls.traverse(rowwise_decoder, ANCHORS, dims=[1, 3], steps=4, out=tmp_path / "c.zarr", progress=False)
    opened = ls.open_sweep(tmp_path / "c.zarr")
    assert opened.directions is None and opened.labels == ("z1", "z3") and opened.latent_shape == (6,)


def test_a_forged_store_without_its_directions_is_damaged(tmp_path):
    path = tmp_path / "d.zarr"
    ls.traverse(rowwise_decoder, ANCHORS, directions=RAW, steps=4, out=path, progress=False)
    with edited_attributes(path) as attrs:
        del attrs["static_crc"]["directions"]
    with pytest.raises(ValueError, match="damaged.*directions do not match"):
        ls.open_sweep(path)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_a_direction_sweep_under_torchrun_is_bitwise_the_single_process_one(tmp_path):
    sys.path.insert(0, str(TESTS))
    from distributed_worker import ANCHORS as W_ANCHORS, BATCH, DIRECTIONS, STEPS

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(TESTS / "distributed_worker.py"), "directions", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert completed.returncode == 0, completed.stderr[:6000]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers
    try:
        single = ls.traverse(mlp_decoder(5, 20), W_ANCHORS, directions=DIRECTIONS, steps=STEPS, batch_size=BATCH,
                             progress=False)
    finally:
        torch.set_num_threads(threads)
    for name in ("directions2", "directions-memory2"):
        for rank in range(2):
            got = dict(np.load(tmp_path / f"{name}-rank{rank}.npz"))
            for key in STATISTICS:
                assert got[key].tobytes() == getattr(single, key).numpy().tobytes(), (name, rank, key)
            if "outputs" in got:
                assert got["outputs"].tobytes() == single.outputs.numpy().tobytes(), (name, rank)
    opened = ls.open_sweep(tmp_path / "directions2.zarr")
    assert torch.equal(opened.directions, ls.unit_directions(DIRECTIONS))


# ---- pictures and the report name the directions ---------------------------------------------
@pytest.fixture(scope="module")
def picture_results():
    pcs = ls.principal_directions(REFERENCE, k=3)
    along = ls.traverse(rowwise_decoder, ANCHORS, directions=pcs, steps=5, progress=False)
    coordinates = ls.traverse(rowwise_decoder, ANCHORS, dims=[0, 2], steps=5, progress=False)
    return along, coordinates


def tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


def test_pictures_label_rows_by_the_results_labels(picture_results):
    along, coordinates = picture_results
    grid = ls.traversal_grid(along, image_shape=(3, 4), order="dims")
    ax = grid.axes[0]
    assert [t.split("\n")[0] for t in tick_texts(ax.get_yticklabels())] == list(along.labels)
    assert ax.get_ylabel() == "direction" and ax.get_xlabel() == "offset along u from the anchor"
    # mode "prior" along u: the columns are offsets from the anchor's own coordinate along u
    assert tick_texts(ax.get_xticklabels()) == ["-2", "-1", "0", "+1", "+2"]

    heatmap = ls.sensitivity_heatmap(along, order="effect")
    order = torch.argsort(along.dim_effect, descending=True, stable=True).tolist()
    assert [t.split(" (effect")[0] for t in tick_texts(heatmap.axes[0].get_yticklabels())] == \
        [along.labels[i] for i in order]
    assert heatmap.axes[0].get_ylabel() == "direction (sorted by effect)"

    curves = ls.response_curves(along, order="dims", max_features=3)
    assert [ax.get_title() for ax in curves.axes[: len(along.labels)]] == list(along.labels)

    bars = ls.effect_bars({"pcs": along, "axes": coordinates})
    assert tick_texts(bars.axes[0].get_xticklabels()) == ["z0", "z2", *along.labels]
    assert bars.axes[0].get_xlabel() == "latent / direction"

    wide = ls.plots.traversal_gif(along, image_shape=(3, 4), tile_size=8)
    narrow = ls.plots.traversal_gif(coordinates, image_shape=(3, 4), tile_size=8)
    assert wide.size[0] / 3 > narrow.size[0] / 2  # cells widen for the longer names


def test_kl_order_is_refused_for_directions(picture_results):
    along, _ = picture_results
    posterior = ls.Posterior(ANCHORS.float(), LOGVAR.float())
    diagnosis = ls.diagnose(posterior)
    with pytest.raises(ValueError, match="order='kl'.*directions"):
        ls.traversal_grid(along, image_shape=(3, 4), diagnosis=diagnosis, order="kl")
    # "auto" with a VAE's diagnosis sorts directions by effect
    figure = ls.traversal_grid(along, image_shape=(3, 4), diagnosis=diagnosis)
    assert figure.axes[0].get_ylabel() == "direction (sorted by effect)"


def test_the_report_ranks_directions_by_label(picture_results, tmp_path):
    along, _ = picture_results
    ls.report(tmp_path / "r.html", results={"principal directions": along}, image_shape=(3, 4), gifs=False)
    page = (tmp_path / "r.html").read_text()
    assert "<th>direction</th>" in page and f"<td>{along.labels[0]}</td>" in page
    assert "3 directions × 5 steps" in page


def test_a_non_finite_output_names_the_direction():
    def decoder(codes):  # NaN wherever the second coordinate is beyond 1.5
        out = rowwise_decoder(codes)
        return torch.where((codes[:, 1] > 1.5)[:, None, None], torch.nan, out)

    with pytest.raises(ValueError, match="NaN or Inf") as caught:
        ls.traverse(decoder, torch.zeros(1, 6, dtype=torch.float64), directions=torch.eye(6, dtype=torch.float64)[[0, 1]],
                    mode="absolute", span=2.0, steps=5, progress=False)
    assert "latent dim 1" in str(caught.value)
    assert "'latent dim k' is direction k: 0 = u0, 1 = u1" in " ".join(caught.value.__notes__)


def test_shards_of_a_direction_sweep_complete_one_store(tmp_path):
    path = tmp_path / "shards.zarr"
    kwargs = dict(directions=RAW, steps=6, batch_size=5, progress=False, keep_outputs=False)
    full = ls.traverse(rowwise_decoder, ANCHORS, **kwargs)
    first = ls.traverse(rowwise_decoder, ANCHORS, out=path, shard=(1, 2), **kwargs)
    assert isinstance(first, ls.StoreStatus) and not first.complete
    with pytest.raises(ValueError, match="differs in: .*directions"):  # a shard of another sweep
        ls.traverse(rowwise_decoder, ANCHORS, out=path, shard=(0, 2), **{**kwargs, "directions": RAW[:2]})
    done = ls.traverse(rowwise_decoder, ANCHORS, out=path, shard=(0, 2), **kwargs)
    for name in STATISTICS:
        assert torch.equal(getattr(done, name), getattr(full, name)), name
    assert torch.equal(done.directions, UNIT) and done.labels == ("u0", "u1", "u2")


@pytest.mark.parametrize("rows, same", [([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], "[0, 2]"),
                                        ([[0.0, 3.0, 0.0], [0.0, 1.5, 0.0]], "[0, 1]")])
def test_repeated_directions_are_refused_as_repeated_dims_are(rows, same):
    """One direction, one traversal, label and rank: a repeat (or a positive multiple) went through,
    the same traversal twice under two names. Opposite directions stay (each its own way)."""
    anchors = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=rf"^latentsweep\.traverse: directions must be distinct, got rows "
                                         rf"{re.escape(same)} \('u\d', 'u\d'\) along the same unit vector"):
        ls.traverse(torch.nn.Identity(), anchors, directions=torch.tensor(rows), steps=3, progress=False)
    opposite = ls.traverse(torch.nn.Identity(), anchors, directions=torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]),
                           steps=3, progress=False)
    assert opposite.labels == ("u0", "u1")


@pytest.mark.parametrize("mode, options", [("prior", {}), ("posterior", {"logvar": LOGVAR}),
                                           ("empirical", {"reference": REFERENCE})])
def test_traverse_normalises_the_directions_once(monkeypatch, mode, options):
    """grid_spec normalised them for the codes (in the anchors' dtype) and values_for again for
    the values (in float64): two passes of one rule. One float64 pass now gives both, and the
    values are traversal_values' bit for bit."""
    calls = []
    normalised = sys.modules["latentsweep.direction_codes"].normalised

    def counted(*args, **kwargs):
        calls.append(kwargs.get("dtype"))
        return normalised(*args, **kwargs)

    monkeypatch.setattr(sys.modules["latentsweep.grid_spec"], "normalised", counted)
    monkeypatch.setattr(sys.modules["latentsweep.traversal"], "normalised", counted)
    result = ls.traverse(rowwise_decoder, ANCHORS, directions=RAW, mode=mode, steps=5, progress=False, **options)
    assert calls == [torch.float64]
    monkeypatch.undo()
    expected = ls.traversal_values(ANCHORS, directions=RAW, mode=mode, steps=5, **options)
    assert torch.equal(result.values, expected)
    assert torch.equal(result.directions, ls.unit_directions(RAW))  # (float64 anchors: the float64 unit rows)
