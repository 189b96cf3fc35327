"""traverse() rejects bad input and bad decoders with clear messages."""

from __future__ import annotations

import re

import pytest
import torch

import latentsweep as ls
from latentsweep import _checks
from sweep_models import rowwise_decoder

ANCHORS = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))


def test_decoder_must_be_callable():
    with pytest.raises(TypeError, match="decoder must be callable"):
        ls.traverse("not a model", ANCHORS)


def test_decoder_returning_a_non_tensor():
    with pytest.raises(TypeError, match="must return a torch.Tensor, got list"):
        ls.traverse(lambda z: rowwise_decoder(z).tolist(), ANCHORS)


def test_decoder_returning_the_wrong_batch():
    with pytest.raises(ValueError, match="one output per code"):
        ls.traverse(lambda z: rowwise_decoder(z)[:1], ANCHORS)


def test_decoder_returning_integers():
    with pytest.raises(TypeError, match="floating-point"):
        ls.traverse(lambda z: (rowwise_decoder(z) * 10).long(), ANCHORS)


@pytest.mark.parametrize("out", [None, "sweep.zarr", "sweep.npy"])
def test_decoder_returning_empty_outputs(tmp_path, out):
    """No features: every effect would be 0/0 (it was reported as zeros in memory, a raw
    TypeError from a store's checksum)."""
    with pytest.raises(ValueError, match=r"traverse: the decoder returned empty outputs \(shape \(2, 0\): no features"):
        ls.traverse(lambda z: z[:, :0], ANCHORS, out=None if out is None else tmp_path / out)


def test_values_beyond_the_anchors_dtype_are_named():
    values = torch.tensor([1e39, 2e39], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"traverse: values reaches 2e\+39, beyond the largest torch.float32 \(3.4e\+38\)"):
        ls.traverse(rowwise_decoder, ANCHORS, values=values)
    ls.traverse(lambda z: z, ANCHORS.double(), values=values, keep_outputs=False)  # float64 anchors hold them


def test_labels_of_names_its_argument():
    result = ls.traverse(rowwise_decoder, ANCHORS, steps=3)
    assert result.labels_of(result.ranking[:2]) == [f"z{int(d)}" for d in result.ranking[:2]]
    for bad in (2.0, None, "z1"):
        with pytest.raises(TypeError, match="labels_of: indices must be an int or a sequence of ints"):
            result.labels_of(bad)


def test_decoder_changing_output_shape():
    calls = []

    def shifty(codes):
        calls.append(1)
        out = rowwise_decoder(codes)
        return out if len(calls) < 3 else out.reshape(len(codes), -1)

    with pytest.raises(ValueError, match=r"output shape changed from \[3, 4\] torch.float32 to \[12\]"):
        ls.traverse(shifty, ANCHORS, batch_size=8)


@pytest.mark.parametrize("batch_size", [1, 4, "auto"])
def test_decoder_changing_output_dtype_is_refused_at_any_batch_size(batch_size):
    """The executor checks the dtype as the probe does: it had cast float16 outputs silently to
    the first call's float32 (refused or not depending on which of the two saw the change)."""
    calls = []

    def shifty(codes):
        calls.append(1)
        out = rowwise_decoder(codes)
        return out if len(calls) < 2 else out.half()

    with pytest.raises(ValueError, match=r"output shape changed from \[3, 4\] torch.float32 to \[3, 4\] "
                                         r"torch.float16 per code between two calls"):
        ls.traverse(shifty, ANCHORS, steps=3, batch_size=batch_size, progress=False)


def test_decoder_returning_nan_names_the_grid_points():
    def nan_at_large_values(codes):
        out = rowwise_decoder(codes)
        return torch.where(codes[:, 2:3, None] > 100, float("nan"), out)

    values = torch.tensor([0.0, 1.0, 200.0])  # step 2 of latent 2 breaks the decoder
    with pytest.raises(ValueError, match=r"NaN or Inf for 1 grid point.*rows 5..9.*latent dim 2, step 2"):
        ls.traverse(nan_at_large_values, ANCHORS, values=values, batch_size=5)


def test_decoder_returning_nan_at_the_anchors():
    with pytest.raises(ValueError, match="NaN or Inf at anchors"):
        ls.traverse(lambda z: rowwise_decoder(z) / 0 * 0, ANCHORS)


@pytest.mark.parametrize("bad", [{1: float("inf")}, {2: float("-inf")}, {0: float("inf"), 3: float("-inf")}])
def test_infinite_outputs_at_the_anchors_are_named(bad):
    """One checked sum finds them (+inf and -inf together sum to NaN); the rows are named."""
    def decoder(codes):
        out = rowwise_decoder(codes)
        for row, value in bad.items():
            out[(codes == ANCHORS[row]).all(dim=1), 0] = value
        return out

    with pytest.raises(ValueError, match=re.escape(f"NaN or Inf at anchors {sorted(bad)}")):
        ls.traverse(decoder, ANCHORS)


@pytest.mark.parametrize("dtype, huge", [(torch.float64, 1e308), (torch.float32, 3e38), (torch.float16, 6e4)])
def test_huge_finite_outputs_at_the_anchors_are_accepted(dtype, huge):
    """Outputs near their dtype's largest value overflow the checking sum (float32 for float32
    and float16 outputs, float64 for float64); the element check then passes them."""
    result = ls.traverse(lambda z: (rowwise_decoder(z) * 0 + huge).to(dtype), ANCHORS.to(dtype), steps=3)
    assert torch.equal(result.effect, torch.zeros_like(result.effect))


def test_non_finite_anchors():
    bad = ANCHORS.clone()
    bad[1, 3] = float("inf")
    with pytest.raises(ValueError, match=r"anchors has 1 non-finite.*\(1, 3\)"):
        ls.traverse(rowwise_decoder, bad)


class OutOfMemoryAbove:
    """Raises the CPU allocator's out-of-memory error for batches larger than `limit`."""

    def __init__(self, limit: int):
        self.limit = limit
        self.batches: list[int] = []

    def __call__(self, codes):
        self.batches.append(len(codes))
        if len(codes) > self.limit:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")
        return rowwise_decoder(codes)


def test_out_of_memory_halves_the_batch_once(capsys):
    decoder = OutOfMemoryAbove(limit=8)
    # (a ProcessWarning: under torchrun the command line says it from the rank that retried)
    with pytest.warns(_checks.ProcessWarning, match="retrying with batch_size=8"):
        result = ls.traverse(decoder, ANCHORS, steps=5, batch_size=16)
    assert result.batch_size == 8
    assert capsys.readouterr().err == ""  # reported through warnings, not print
    expected = ls.traverse(rowwise_decoder, ANCHORS, steps=5, batch_size=8)
    assert torch.equal(result.outputs, expected.outputs)
    assert torch.equal(result.sensitivity, expected.sensitivity)


def test_out_of_memory_again_halves_again():
    decoder = OutOfMemoryAbove(limit=3)
    with pytest.warns(_checks.ProcessWarning) as warned:
        result = ls.traverse(decoder, ANCHORS, steps=5, batch_size=16)
    retries = [str(w.message) for w in warned if "out of memory" in str(w.message)]
    # (the anchors' probe decodes 2 at a time, within the limit; the sweep: 16 -> 8 -> 4 -> 2)
    assert [text.split(";")[0].rsplit("=", 1)[1] for text in retries] == ["16", "8", "4"]
    assert result.batch_size == 2
    expected = ls.traverse(rowwise_decoder, ANCHORS, steps=5, batch_size=2)
    assert torch.equal(result.outputs, expected.outputs)
    assert torch.equal(result.sensitivity, expected.sensitivity)


def test_out_of_memory_at_one_code_is_a_clear_error_without_arguments_the_caller_lacks():
    # (explain and the command line have no batch_size=/memory_budget= to advise)
    with pytest.raises(RuntimeError, match=r"ran out of memory at batch size 1 \(one code at a time\).* on cpu") as raised:
        with pytest.warns(RuntimeWarning, match="retrying with batch_size=1"):
            ls.traverse(OutOfMemoryAbove(limit=0), ANCHORS, steps=5, batch_size=4)
    assert "=" not in str(raised.value)


def test_cuda_out_of_memory_error_type_is_recognised():
    from latentsweep._batching import is_out_of_memory

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": "big"}, ValueError, "batch_size must be an int >= 1 or .auto., got .big."),
        ({"memory_budget": -1}, ValueError, "memory_budget must be >= 1"),
        ({"resume": True}, ValueError, "resume=True needs out="),
        ({"out": 42}, TypeError, "out must be a str or os.PathLike, got int"),
        ({"keep_outputs": "no"}, TypeError, "keep_outputs must be True or False"),
        ({"cuda_graph": True}, ValueError, "cuda_graph=True needs a CUDA device"),
        ({"mode": "posterior"}, ValueError, "needs logvar"),
        ({"mode": "sideways"}, ValueError, "mode must be one of"),
        ({"steps": 0}, ValueError, "steps must be >= 1"),
        ({"dims": [7]}, ValueError, r"dims must lie in \[0, 6\)"),
        ({"values": torch.ones(2, 3)}, ValueError, "values must be"),
        ({"progress": "yes"}, TypeError, "progress must be True, False or None"),
        ({"device": "warp-drive"}, ValueError, "device must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ls.traverse(rowwise_decoder, ANCHORS, **kwargs)


def test_resume_and_overwrite_together(tmp_path):
    with pytest.raises(ValueError, match="contradict"):
        ls.traverse(rowwise_decoder, ANCHORS, out=tmp_path / "s.zarr", resume=True, overwrite=True)


def test_resume_without_a_store(tmp_path):
    with pytest.raises(ValueError, match="no sweep at"):
        ls.traverse(rowwise_decoder, ANCHORS, out=tmp_path / "missing.zarr", resume=True)


def test_outputs_too_large_for_memory_are_refused_before_allocating():
    def wide(codes):
        return torch.zeros(len(codes), 1_000_000)

    with pytest.raises(ValueError, match="keeping all outputs in memory needs .* GiB"):
        ls.traverse(wide, torch.zeros(2, 3), steps=100_000, batch_size=4)


def test_a_file_in_the_way_of_the_store_is_named(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(ValueError, match=r"^latentsweep.traverse: out='.*afile/x.zarr': the file '.*afile' is in the way"):
        ls.traverse(rowwise_decoder, ANCHORS, steps=3, out=tmp_path / "afile" / "x.zarr", progress=False)
    assert (tmp_path / "afile").read_text() == "mine"


def test_out_of_memory_of_a_batch_that_cannot_change_is_said_without_halving():
    # (cuda_graph=True: a graph replays the batch size it captured; a halved batch was copied into
    # the captured one, a shape error. Its sweep needs a GPU: the rule is tested on the helper.)
    from latentsweep.decoder_probe import retry_halved

    sizes = []

    def run(size):
        sizes.append(size)
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")

    with pytest.raises(RuntimeError, match=r"^f: the decoder ran out of memory at batch size 16, which a CUDA graph"):
        retry_halved("f", run, 16, torch.device("cpu"), fixed=ls.sweep._GRAPH_SIZE_FIXED)
    assert sizes == [16]
