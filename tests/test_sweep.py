"""traverse(): exactness against a full-output reference at any batch size, sinks, results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from statistics_state import sums_by_latent
from sweep_models import mlp_decoder, rowwise_decoder
from sweep_reference import reference_sweep

BATCH_SIZES = [1, 3, 7, 16, 64, 10_000]  # single rows, ragged, exact divisors, more than the grid


@pytest.fixture
def anchors() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_matches_full_output_reference(anchors, batch_size):
    result = ls.traverse(rowwise_decoder, anchors, steps=8, dims=[0, 2, 5], batch_size=batch_size)
    ref = reference_sweep(rowwise_decoder, anchors, result.dims, result.values)
    assert torch.equal(result.outputs, ref["outputs"])
    assert torch.equal(result.anchor_outputs, ref["anchor_outputs"])
    torch.testing.assert_close(result.effect.double(), ref["effect"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(result.dim_effect.double(), ref["dim_effect"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(result.sensitivity.double(), ref["sensitivity"], rtol=1e-5, atol=1e-6)
    order = torch.argsort(ref["dim_effect"], descending=True, stable=True)
    assert result.ranking.tolist() == result.dims[order].tolist()


def test_statistics_do_not_depend_on_batch_size(anchors):
    """With a batch-independent decoder the streaming statistics are bitwise identical: chunks
    straddling traversals are carried exactly."""
    results = [ls.traverse(rowwise_decoder, anchors, steps=9, batch_size=b, keep_outputs=False) for b in BATCH_SIZES]
    for other in results[1:]:
        assert torch.equal(other.effect, results[0].effect)
        assert torch.equal(other.dim_effect, results[0].dim_effect)
        assert torch.equal(other.sensitivity, results[0].sensitivity)


def test_mlp_decoder_within_float_tolerance(anchors):
    decoder = mlp_decoder()
    result = ls.traverse(decoder, anchors, steps=5, batch_size=9)
    ref = reference_sweep(decoder, anchors, result.dims, result.values)
    torch.testing.assert_close(result.outputs, ref["outputs"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.sensitivity.double(), ref["sensitivity"], rtol=1e-4, atol=1e-5)


def test_shapes_and_result_fields(anchors):
    result = ls.traverse(rowwise_decoder, anchors, steps=5, dims=[1, 3])
    assert result.values.shape == (4, 2, 5)
    assert result.outputs.shape == (4, 2, 5, 3, 4)
    assert result.anchor_outputs.shape == (4, 3, 4)
    assert result.effect.shape == (4, 2, 5)
    assert result.sensitivity.shape == (2, 12)
    assert result.out_shape == (3, 4)
    assert result.num_points == 40 and result.points_computed == 40
    assert result.points_per_second > 0 and result.wall_time > 0
    assert set(result.ranking.tolist()) == {1, 3}
    assert "anchors x" in result.summary() and "TraversalResult" in repr(result)


def test_modes_and_explicit_values(anchors):
    logvar = torch.full_like(anchors, -4.0)
    posterior = ls.traverse(rowwise_decoder, ls.Posterior(anchors, logvar), mode="posterior", steps=5)
    prior = ls.traverse(rowwise_decoder, anchors, mode="prior", steps=5)
    torch.testing.assert_close(posterior.values, ls.traversal_values(anchors, mode="posterior", logvar=logvar, steps=5))
    # the point of the package: prior-scaled traversals move the output far more
    assert float(prior.dim_effect.mean()) > 5 * float(posterior.dim_effect.mean())
    explicit = ls.traverse(rowwise_decoder, anchors, values=torch.linspace(-1, 1, 3), dims=[0])
    assert explicit.mode == "values"
    assert torch.equal(explicit.values, torch.linspace(-1, 1, 3).expand(4, 1, 3))


def test_one_anchor_and_one_step(anchors):
    with pytest.warns(RuntimeWarning, match=r"^latentsweep\.traverse: traversals of one step have no slope: the "
                                            r"sensitivity is 0 for every latent .* pass steps >= 2"):
        result = ls.traverse(rowwise_decoder, anchors[0], steps=1)
    assert result.values.shape == (1, 6, 1)
    assert torch.equal(result.sensitivity, torch.zeros(6, 12))  # no movement, no slope


def test_keep_outputs_false(anchors):
    result = ls.traverse(rowwise_decoder, anchors, steps=4, keep_outputs=False)
    assert result.outputs is None
    assert result.effect.shape == (4, 6, 4)


def test_nn_module_runs_in_eval_mode_and_is_restored(anchors):
    decoder = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Dropout(0.5))
    decoder.train()
    first = ls.traverse(decoder, anchors, steps=3)
    second = ls.traverse(decoder, anchors, steps=3)
    assert torch.equal(first.outputs, second.outputs)  # no dropout noise
    assert decoder.training and decoder[1].training


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_store_round_trip(tmp_path, anchors, suffix):
    path = tmp_path / f"sweep{suffix}"
    memory = ls.traverse(rowwise_decoder, anchors, steps=6, batch_size=10)
    stored = ls.traverse(rowwise_decoder, anchors, steps=6, batch_size=10, out=path)
    assert stored.store == path
    assert np.array_equal(np.asarray(stored.outputs), memory.outputs.numpy())
    assert stored.outputs.shape == (4, 6, 6, 3, 4)
    assert np.array_equal(np.asarray(stored.outputs[2]), memory.outputs[2].numpy())
    assert np.array_equal(np.asarray(stored.outputs[1:3, 4]), memory.outputs[1:3, 4].numpy())
    assert torch.equal(stored.effect, memory.effect)
    assert torch.equal(stored.sensitivity, memory.sensitivity)
    if suffix == ".npy":  # a plain .npy: anyone can memory-map it
        mapped = np.load(path, mmap_mode="r")
        assert mapped.shape == (4, 6, 6, 3, 4) and np.array_equal(mapped, memory.outputs.numpy())


def test_store_records_parameters_plan_and_completion(tmp_path, anchors):
    import zarr

    path = tmp_path / "sweep.zarr"
    ls.traverse(rowwise_decoder, anchors, steps=6, batch_size=10, out=path, keep_outputs=False)
    meta = dict(zarr.open_group(path, mode="r").attrs["latentsweep"])
    assert meta["plan"]["batch_size"] == 10 and meta["plan"]["chunk_rows"] == 10
    assert meta["plan"]["unit_rows"] % 6 == 0 and meta["plan"]["unit_rows"] % 10 == 0
    assert meta["keep_outputs"] is False and meta["params"]["grid"] == [4, 6, 6]
    assert meta["params"]["mode"] == "prior"
    assert "outputs" not in zarr.open_group(path, mode="r")
    status = ls.sweep_status(path)
    assert status.complete and status.done_rows == status.total_rows == 4 * 6 * 6


def test_existing_store_is_refused_then_overwritten(tmp_path, anchors):
    path = tmp_path / "sweep.zarr"
    ls.traverse(rowwise_decoder, anchors, steps=3, out=path)
    with pytest.raises(ValueError, match="resume=True.*overwrite=True"):
        ls.traverse(rowwise_decoder, anchors, steps=3, out=path)
    with pytest.raises(ValueError, match="different parameters"):
        ls.traverse(rowwise_decoder, anchors, steps=4, out=path, resume=True)
    replaced = ls.traverse(rowwise_decoder, anchors, steps=4, out=path, overwrite=True)
    assert replaced.values.shape[2] == 4


def test_a_foreign_directory_is_never_overwritten(tmp_path, anchors):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(ValueError, match="not a latentsweep sweep store"):
        ls.traverse(rowwise_decoder, anchors, steps=3, out=precious, overwrite=True)
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_progress_bar_on_request(anchors, capsys):
    ls.traverse(rowwise_decoder, anchors, steps=3, progress=True)
    assert "traverse" in capsys.readouterr().err
    ls.traverse(rowwise_decoder, anchors, steps=3, progress=False)
    assert capsys.readouterr().err == ""
    ls.traverse(rowwise_decoder, anchors, steps=3)  # default: a bar only on a terminal
    assert capsys.readouterr().err == ""


def test_statistics_state_round_trip():
    """The checkpoint of the C++ statistics restores the exact state."""
    from latentsweep._extension import _C

    anchors = torch.randn(3, 4)
    values = ls.traversal_values(anchors, steps=5)
    x0 = rowwise_decoder(anchors).reshape(3, -1)
    grid = ls.traversal_codes(anchors, range(4), values)
    outputs = rowwise_decoder(grid).reshape(len(grid), -1)
    full = _C.SweepStatistics(x0, values)
    full.update(outputs, 0)
    half = _C.SweepStatistics(x0, values)
    half.update(outputs[:23], 0)
    resumed = _C.SweepStatistics(x0, values)
    resumed.load_state(half.state())
    assert resumed.next_row == 23
    resumed.update(outputs[23:], 23)
    assert torch.equal(resumed.sensitivity(), full.sensitivity())
    assert torch.equal(resumed.dim_effect(), full.dim_effect())


def test_statistics_order_and_invalidation():
    """Chunks must come in grid order; after a failed chunk the statistics refuse to be used or
    updated until the unit is reset (a sweep records whole units only)."""
    from latentsweep._extension import _C

    anchors = torch.randn(2, 3)
    values = ls.traversal_values(anchors, steps=4)
    x0 = rowwise_decoder(anchors).reshape(2, -1)
    outputs = rowwise_decoder(ls.traversal_codes(anchors, range(3), values)).reshape(24, -1)
    stats = _C.SweepStatistics(x0, values)
    stats.update(outputs[:12], 0)
    with pytest.raises(RuntimeError, match="grid order"):
        stats.update(outputs[14:15], 14)
    stats.invalidate()
    for use in (lambda: stats.update(outputs[12:16], 12), stats.state, stats.dim_effect, stats.sensitivity):
        with pytest.raises(RuntimeError, match="failed chunk"):
            use()
    stats.reset(12)  # the second unit, alone
    stats.update(outputs[12:], 12)
    alone = _C.SweepStatistics(x0, values)
    alone.reset(12)
    alone.update(outputs[12:], 12)
    assert torch.equal(stats.sensitivity(), alone.sensitivity())


def _statistics_of(outputs: torch.Tensor, x0: torch.Tensor, values: torch.Tensor, chunk: int = 17,
                   generic_path: bool = False):
    """effect, dim_effect, sensitivity of a SweepStatistics fed ``outputs`` in chunks
    (``generic_path``: the device-generic path instead of the fused kernel)."""
    from latentsweep._extension import _C

    stats, effects = _C.SweepStatistics(x0, values), []
    stats._set_generic_path(generic_path)
    for start in range(0, outputs.shape[0], chunk):
        effects.append(stats.update(outputs[start : start + chunk], start))
    return torch.cat(effects), stats.dim_effect(), stats.sensitivity()


def _statistics_problem():
    generator = torch.Generator().manual_seed(7)
    anchors = torch.randn(3, 5, generator=generator)
    values = ls.traversal_values(anchors, steps=6)
    x0 = rowwise_decoder(anchors).reshape(3, -1)
    outputs = rowwise_decoder(ls.traversal_codes(anchors, range(5), values)).reshape(90, -1)
    return outputs, x0, values


def test_fused_cpu_kernels_match_the_generic_path():
    """The fused CPU kernels (float32, float64) and the device-generic path (torch ops, run here
    on the CPU in float64) agree; each fused kernel gives the same bits at any chunking."""
    outputs, x0, values = _statistics_problem()
    fused = _statistics_of(outputs, x0, values)
    fused64 = _statistics_of(outputs.double(), x0.double(), values)
    assert fused[0].dtype == torch.float32 and fused64[0].dtype == torch.float64
    # chunks inside one traversal, across traversals, and spanning several traversals of one
    # dim (the generic path folds those by dim)
    for chunk in (1, 4, 17, 90):
        generic = _statistics_of(outputs.double(), x0.double(), values, chunk=chunk, generic_path=True)
        for name, a, b, c in zip(["effect", "dim_effect", "sensitivity"], fused, fused64, generic):
            # a traversal's steps are summed in float32 by the float32 kernel
            torch.testing.assert_close(a.double(), c, rtol=1e-6, atol=1e-7, msg=f"{name} (float32), chunk {chunk}")
            torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-14, msg=f"{name} (float64), chunk {chunk}")
        for dtype, whole in ((torch.float32, fused), (torch.float64, fused64)):
            chunked = _statistics_of(outputs.to(dtype), x0.to(dtype), values, chunk=chunk)
            for name, a, b in zip(["effect", "dim_effect", "sensitivity"], whole, chunked):
                assert torch.equal(a, b), f"{name} ({dtype}), chunk {chunk}"


def _statistics_in_the_documented_order(outputs: torch.Tensor, x0: torch.Tensor, values: torch.Tensor):
    """effect, dim_effect, sensitivity added in the order cpp/latentsweep/statistics_layout.h
    fixes, one torch operation at a time (each rounds once, like the kernels' operations):
    feature blocks of 128, in each 8 accumulators in the outputs' precision, their sums and the
    blocks' in float64; a traversal's slope in step order, weighted and added in grid order."""
    num_anchors, num_dims, num_steps = values.shape
    features = outputs.shape[1]
    y = outputs.view(num_anchors, num_dims, num_steps, features)
    distance = (y - x0[:, None, None, :]).abs()
    total = torch.zeros(num_anchors, num_dims, num_steps, dtype=torch.float64)
    for f0 in range(0, features, 128):
        block = distance[..., f0:f0 + 128]
        lanes = torch.zeros(*block.shape[:3], 8, dtype=block.dtype)
        for g in range(0, block.shape[-1], 8):
            group = block[..., g:g + 8]
            lanes[..., :group.shape[-1]] += group
        partial = torch.zeros_like(total)
        for lane in range(8):
            partial += lanes[..., lane].double()
        total += partial
    mean = total / features
    dim_sum = torch.zeros(num_dims, dtype=torch.float64)
    for a in range(num_anchors):  # grid order: anchor, then step, for every dim alike
        for step in range(num_steps):
            dim_sum += mean[a, :, step]
    span = (values[:, :, -1].double() - values[:, :, 0].double()).abs()
    inv_range = torch.where(span > 0, span.reciprocal(), torch.zeros_like(span))
    sensitivity_sum = torch.zeros(num_dims, features, dtype=torch.float64)
    for a in range(num_anchors):
        slope = torch.zeros(num_dims, features, dtype=outputs.dtype)
        for step in range(1, num_steps):
            slope += (y[a, :, step] - y[a, :, step - 1]).abs()
        sensitivity_sum += slope.double() * inv_range[a][:, None]
    return (mean.to(outputs.dtype).reshape(-1), dim_sum / (num_anchors * num_steps),
            sensitivity_sum / num_anchors)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("features", [7, 130, 1100])
@pytest.mark.parametrize("steps", [1, 2, 6])
def test_fused_cpu_kernel_adds_in_the_documented_order(features, steps, dtype):
    """The fused kernel's bits are the documented order's (the contract the CUDA kernel, stores
    resumed across versions and every process count rely on), not merely close to a reference:
    a kernel change that regroups a sum fails here. Short last blocks and lanes included."""
    from conftest import num_threads

    generator = torch.Generator().manual_seed(features * 10 + steps)
    anchors = torch.randn(3, 5, generator=generator)
    values = ls.traversal_values(anchors, steps=steps, dims=range(4))
    x0 = torch.rand(3, features, generator=generator, dtype=dtype)
    outputs = torch.rand(3 * 4 * steps, features, generator=generator, dtype=dtype) * 3
    expected = _statistics_in_the_documented_order(outputs, x0, values)
    for threads, chunk in ((1, 5), (2, 17), (2, outputs.shape[0])):
        with num_threads(threads):
            fused = _statistics_of(outputs, x0, values, chunk=chunk)
        for name, a, b in zip(["effect", "dim_effect", "sensitivity"], fused, expected):
            assert torch.equal(a, b), f"{name}: {threads} threads, chunks of {chunk}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("features", [260, 300, 400, 784, 1100])
def test_statistics_do_not_depend_on_the_thread_count(features, dtype):
    """The fused kernel's feature blocks (128 wide, the last one short) fix the bits; threads
    share them in runs balanced by width, so a block skipped or done twice would show here.
    Chunks of 160 rows: too few traversals of 21 steps for row ranges (4 per thread), enough
    elements for the thread pool (at least torch's grain, 32768)."""
    from conftest import num_threads

    generator = torch.Generator().manual_seed(features)
    anchors = torch.randn(3, 5, generator=generator)
    values = ls.traversal_values(anchors, steps=21)
    x0 = torch.rand(3, features, generator=generator, dtype=dtype)
    outputs = torch.rand(315, features, generator=generator, dtype=dtype)
    with num_threads(1):
        alone = _statistics_of(outputs, x0, values, chunk=160)
    for threads in (2, 3, 5):
        with num_threads(threads):
            shared = _statistics_of(outputs, x0, values, chunk=160)
        for name, a, b in zip(["effect", "dim_effect", "sensitivity"], alone, shared):
            assert torch.equal(a, b), f"{name} with {threads} threads, {features} features"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [1, 2, 5, 21])
def test_statistics_in_row_ranges_do_not_depend_on_the_thread_count(steps, dtype):
    """Chunks of enough traversals are shared by threads in row ranges (split at traversal
    starts; later ranges' sensitivity terms kept, then added in grid order): the same bits as
    one thread, for chunks that start and end inside traversals, and one-step traversals."""
    from conftest import num_threads

    generator = torch.Generator().manual_seed(steps)
    anchors = torch.randn(4, 5, generator=generator)
    values = ls.traversal_values(anchors, steps=steps)
    rows, features = 4 * 5 * steps, 3000  # even the smallest chunk reaches the thread pool's grain
    x0 = torch.rand(4, features, generator=generator, dtype=dtype)
    outputs = torch.rand(rows, features, generator=generator, dtype=dtype)
    for chunk in (4 * steps * 2 + 3, 4 * steps * 3 + 1, rows):  # 2, 3 ranges or more, uneven
        with num_threads(1):
            alone = _statistics_of(outputs, x0, values, chunk=chunk)
        for threads in (2, 3, 5):
            with num_threads(threads):
                shared = _statistics_of(outputs, x0, values, chunk=chunk)
            for name, a, b in zip(["effect", "dim_effect", "sensitivity"], alone, shared):
                assert torch.equal(a, b), f"{name}: {threads} threads, chunks of {chunk}, {steps} steps"


def test_statistics_kernels_are_bitwise_equal_across_cpu_capabilities(tmp_path):
    """The portable and the AVX2 builds of the statistics kernel (chosen once per process by
    LATENTSWEEP_CPU_CAPABILITY) give the same bits, for float32 and float64 outputs."""
    from conftest import cpu_has_avx2_kernels

    if not cpu_has_avx2_kernels() or ls.build_info()["cpu_capability"] != "avx2":
        pytest.skip("this process does not run the AVX2 kernels")
    outputs, x0, values = _statistics_problem()
    torch.save({"outputs": outputs, "x0": x0, "values": values}, tmp_path / "problem.pt")
    script = (
        "import sys, torch; sys.path.insert(0, sys.argv[2]); import latentsweep as ls; "
        "from test_sweep import _statistics_of; p = torch.load(sys.argv[1] + '/problem.pt'); "
        "torch.save({'stats': _statistics_of(p['outputs'], p['x0'], p['values']), "
        "'stats64': _statistics_of(p['outputs'].double(), p['x0'].double(), p['values']), "
        "'capability': ls.build_info()['cpu_capability']}, sys.argv[1] + '/default.pt')"
    )
    env = {**os.environ, "LATENTSWEEP_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(Path(__file__).parent)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    portable = torch.load(tmp_path / "default.pt")
    assert portable["capability"] == "default"
    for a, b in zip(_statistics_of(outputs, x0, values), portable["stats"]):
        assert torch.equal(a, b)
    for a, b in zip(_statistics_of(outputs.double(), x0.double(), values), portable["stats64"]):
        assert a.dtype == torch.float64 and torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_matches_cpu(anchors, cuda_graph):
    decoder = mlp_decoder()
    cpu = ls.traverse(decoder, anchors, steps=6, batch_size=16)
    gpu = ls.traverse(decoder.cuda(), anchors.cuda(), steps=6, batch_size=16, cuda_graph=cuda_graph)
    torch.testing.assert_close(gpu.outputs, cpu.outputs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu.sensitivity, cpu.sensitivity, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu.effect, cpu.effect, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("features", [7, 130, 784, 1100])
@pytest.mark.parametrize("steps", [1, 2, 6, 21, 70])
def test_cuda_statistics_kernel_matches_the_cpu_kernel_bit_for_bit(steps, features, dtype):
    """The CUDA kernel does the CPU kernel's operations in its order: for the same outputs the
    same bits, for chunks that start and end inside traversals or hold many, feature blocks with a
    short last one, one-step traversals; the device-generic path on CUDA agrees within rounding."""
    generator = torch.Generator().manual_seed(features * 100 + steps)
    num_anchors = max(3, 200 // steps)  # ~1000 rows: several thread blocks of traversals
    anchors = torch.randn(num_anchors, 5, generator=generator)
    values = ls.traversal_values(anchors, steps=steps)
    rows = num_anchors * 5 * steps
    x0 = torch.rand(num_anchors, features, generator=generator, dtype=dtype)
    outputs = torch.rand(rows, features, generator=generator, dtype=dtype)
    chunks = (7, 2 * steps + 3, 97, rows) + ((1,) if features == 7 else ())
    for chunk in chunks:
        cpu = _statistics_of(outputs, x0, values, chunk=chunk)
        gpu = _statistics_of(outputs.cuda(), x0.cuda(), values, chunk=chunk)
        for name, a, b in zip(["effect", "dim_effect", "sensitivity"], cpu, gpu):
            assert b.dtype == a.dtype and torch.equal(a, b.cpu()), f"{name}: chunks of {chunk}"
    generic = _statistics_of(outputs.cuda(), x0.cuda(), values, chunk=97, generic_path=True)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    for name, a, b in zip(["effect", "dim_effect", "sensitivity"], cpu, generic):
        torch.testing.assert_close(b.cpu().double(), a.double(), **tolerance, msg=name)


def test_a_grid_from_another_op_plugs_into_the_executor(anchors):
    """A code writer (e.g. traversals along directions) replaces the built-in grid: same row
    order, same planner, sinks and merge. Here it writes the axis-aligned grid in Python, so
    the results must equal the built-in one's bit for bit."""
    from latentsweep._extension import _C

    dims = torch.arange(anchors.shape[1])
    values = ls.traversal_values(anchors, steps=5)

    def python_grid(start: int, count: int, out: torch.Tensor) -> None:
        ls.traversal_codes(anchors, dims, values, start=start, count=count, out=out)

    results = []
    for writer in (None, python_grid):
        stats = _C.SweepStatistics(rowwise_decoder(anchors).reshape(anchors.shape[0], -1), values)
        rows = []
        executor = _C.SweepExecutor("latentsweep.traverse", rowwise_decoder, anchors, dims, values, 7, [3, 4], writer)
        executor.run(stats, 0, stats.total_rows, lambda s, c, o, e: rows.append(o.clone()), True, None)
        results.append((torch.cat(rows), stats.sensitivity()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def _one_buffer(decoder):
    """The decoder, returning its outputs in the same tensor at every call (as a CUDA graph's
    static outputs are)."""
    buffer = {}

    def decode(codes: torch.Tensor) -> torch.Tensor:
        outputs = decoder(codes)
        return buffer.setdefault(outputs.shape, torch.empty_like(outputs)).copy_(outputs)

    return decode


def _views_of_one_buffer(decoder, rows: int = 1000):
    """The decoder, returning a view of the first rows of one preallocated buffer whatever the
    batch (a decoder that writes into its own output buffer): each call overwrites the last."""
    buffer = []

    def decode(codes: torch.Tensor) -> torch.Tensor:
        outputs = decoder(codes)
        if not buffer:
            buffer.append(outputs.new_empty((rows, *outputs.shape[1:])))
        return buffer[0][: codes.shape[0]].copy_(outputs)

    return decode


@pytest.mark.parametrize("batch_size", [3, 64, "auto"])
def test_a_decoder_returning_views_of_one_buffer_gives_the_same_results(anchors, batch_size):
    """The anchors' outputs (x0) are copied: kept as the decoder's own tensor, the grid's calls
    overwrote them, and every effect and sensitivity was measured from the wrong x0."""
    fresh = ls.traverse(rowwise_decoder, anchors, steps=5, batch_size=batch_size, progress=False)
    viewed = ls.traverse(_views_of_one_buffer(rowwise_decoder), anchors, steps=5, batch_size=batch_size,
                         progress=False)
    for name in ("anchor_outputs", "outputs", "effect", "dim_effect", "sensitivity"):
        assert torch.equal(getattr(viewed, name), getattr(fresh, name)), name
    start, end = anchors[:2], anchors[2:]
    assert torch.equal(ls.interpolate(_views_of_one_buffer(rowwise_decoder), start, end, steps=4, progress=False).change,
                       ls.interpolate(rowwise_decoder, start, end, steps=4, progress=False).change)


UNITS = [(0, 35), (35, 50), (50, 100), (100, 120)]  # of the 120-row grid below, S = 5


def _executor_problem(anchors, device, returns):
    from latentsweep._extension import _C

    anchors = anchors.to(device)
    dims = torch.arange(anchors.shape[1], device=device)
    values = ls.traversal_values(anchors, steps=5)
    decoder = rowwise_decoder if returns == "new tensors" else _one_buffer(rowwise_decoder)
    stats = _C.SweepStatistics(rowwise_decoder(anchors).reshape(anchors.shape[0], -1), values)
    executor = _C.SweepExecutor("latentsweep.traverse", decoder, anchors, dims, values, 7, [3, 4], None, False)
    return executor, stats


@pytest.mark.parametrize("returns", ["new tensors", "one buffer"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_units_in_one_executor_run_equal_units_run_one_at_a_time(anchors, device, returns):
    """run_units decodes several units as one run (on CUDA one pipeline, the statistics beside
    the decoder): each chunk's outputs and effect and each unit's sums equal, bit for bit, those
    of the units run one at a time (reset, run, state: the rows of the latents the unit touches,
    every other row +0.0); also for a decoder that returns the same tensor at every call, whose
    outputs the next chunk overwrites."""
    from latentsweep.merge import unit_latents

    def record(into):
        return lambda start, count, outputs, effect: into.append((start, outputs.clone(), effect.clone()))

    executor, stats = _executor_problem(anchors, device, returns)
    together, sums = [], {}
    executor.run_units(stats, UNITS, record(together), True, None, lambda i, unit: sums.setdefault(i, unit))
    assert sorted(sums) == [0, 1, 2, 3]

    executor, stats = _executor_problem(anchors, device, returns)
    alone = []
    for i, (start, stop) in enumerate(UNITS):
        stats.reset(start)
        executor.run(stats, start, stop, record(alone), True, None)
        state = sums_by_latent(stats.state(), anchors.shape[1], 5)
        first, count = unit_latents(start, stop, 5, anchors.shape[1])
        touched = torch.tensor([(first + j) % anchors.shape[1] for j in range(count)], dtype=torch.long)
        others = torch.ones(anchors.shape[1], dtype=torch.bool)
        others[touched] = False
        for name in ("dim_effect_sum", "sensitivity_sum"):
            assert sums[i][name].device.type == "cpu" and torch.equal(sums[i][name], state[name][touched]), (i, name)
            assert not state[name][others].any() and not state[name][others].signbit().any(), (i, name)
    assert [row[0] for row in together] == [row[0] for row in alone]
    for (start, *a), (_, *b) in zip(together, alone):
        assert all(torch.equal(x, y) for x, y in zip(a, b)), start
    reference = reference_sweep(rowwise_decoder, anchors, torch.arange(anchors.shape[1]),
                                ls.traversal_values(anchors, steps=5))
    assert torch.equal(torch.cat([row[1] for row in together]).cpu(), reference["outputs"].reshape(120, 3, 4))


def test_a_failed_executor_run_keeps_its_finished_units(anchors):
    """A chunk that fails in the third unit: the first two units were reported, the statistics
    are invalid until reset, and rows past the failure were never reported."""
    executor, stats = _executor_problem(anchors, "cpu", "new tensors")
    done, rows = [], []

    def sink(start, count, outputs, effect):
        if start >= 63:
            raise OSError("disk full")
        rows.append(start)

    with pytest.raises(OSError, match="disk full"):
        executor.run_units(stats, UNITS, sink, False, None, lambda i, unit: done.append(i))
    assert done == [0, 1] and max(rows) < 63
    with pytest.raises(RuntimeError, match="after a failed chunk"):
        stats.state()
    for bad in ([(0, 0)], [(35, 200)], [(-5, 10)]):
        with pytest.raises(RuntimeError, match="bad unit rows"):
            executor.run_units(stats, bad, None, False, None, None)
    with pytest.raises(RuntimeError, match="traversal's first row"):
        executor.run_units(stats, [(3, 10)], None, False, None, None)
