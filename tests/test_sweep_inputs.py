"""Reproducers from issue 12 that concern the sweep engine: float64 statistics, decoders that
write into their input, what the store accepts, and messages that name the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentsweep as ls
from sweep_models import rowwise_decoder
from sweep_reference import reference_sweep

ANCHORS = torch.randn(6, 4, generator=torch.Generator().manual_seed(5))


def test_float64_outputs_get_float64_statistics():
    result = ls.traverse(lambda z: 1e6 + 1e-3 * z, torch.zeros(1, 2, dtype=torch.float64), steps=5)
    expected_effect = torch.tensor([1e-3, 5e-4, 0, 5e-4, 1e-3], dtype=torch.float64)
    for k in range(2):  # latent k moves feature k only, by 1e-3 per unit; values -2..2
        # (the decoder's own float64 rounding of 1e6 + 1e-3 z is ~1e-10, relative 2e-7 here)
        torch.testing.assert_close(result.effect[0, k], expected_effect, rtol=1e-6, atol=1e-15)
    torch.testing.assert_close(result.sensitivity, torch.eye(2, dtype=torch.float64) * 1e-3, rtol=1e-6, atol=1e-15)
    assert result.dim_effect.dtype == result.sensitivity.dtype == result.effect.dtype == torch.float64
    assert bool((result.dim_effect > 0).all())


@pytest.mark.parametrize("suffix", [None, ".zarr", ".npy"])
def test_float64_statistics_match_the_float64_reference(tmp_path, suffix):
    anchors = ANCHORS.double()

    def decoder(codes):
        return 1e4 + rowwise_decoder(codes) * 1e-4  # float32 would lose all of it

    out = None if suffix is None else tmp_path / f"sweep{suffix}"
    result = ls.traverse(decoder, anchors, steps=6, batch_size=7, out=out)
    expected = reference_sweep(decoder, anchors, result.dims, result.values)
    torch.testing.assert_close(result.effect, expected["effect"], rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(result.sensitivity, expected["sensitivity"], rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(result.dim_effect, expected["dim_effect"], rtol=1e-9, atol=1e-15)


def test_float32_statistics_are_float32_and_accurate():
    result = ls.traverse(rowwise_decoder, ANCHORS, steps=6, batch_size=7)
    expected = reference_sweep(rowwise_decoder, ANCHORS, result.dims, result.values)
    assert result.sensitivity.dtype == torch.float32
    torch.testing.assert_close(result.sensitivity.double(), expected["sensitivity"], rtol=1e-5, atol=1e-6)


def test_a_decoder_writing_into_its_input_cannot_change_the_anchors():
    anchors = ANCHORS.clone()

    def vandal(codes):
        out = rowwise_decoder(codes)
        codes.mul_(0).add_(1e3)  # in place, on whatever it was given
        return out

    result = ls.traverse(vandal, anchors, steps=5, batch_size=4)
    assert torch.equal(anchors, ANCHORS)  # the caller's tensor is untouched
    clean = ls.traverse(rowwise_decoder, ANCHORS, steps=5, batch_size=4)
    assert torch.equal(result.anchor_outputs, clean.anchor_outputs)
    assert torch.equal(result.outputs, clean.outputs)


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
@pytest.mark.parametrize("kind", ["bfloat16", "requires_grad"])
def test_the_store_accepts_what_the_api_accepts(tmp_path, suffix, kind):
    anchors = ANCHORS.bfloat16() if kind == "bfloat16" else ANCHORS.clone().requires_grad_(True)
    decoder = (lambda z: rowwise_decoder(z.float())) if kind == "bfloat16" else rowwise_decoder
    memory = ls.traverse(decoder, anchors, steps=4)
    stored = ls.traverse(decoder, anchors, steps=4, out=tmp_path / f"sweep{suffix}")
    assert torch.equal(stored.sensitivity, memory.sensitivity)
    assert np.array_equal(np.asarray(stored.outputs), memory.outputs.numpy())
    reopened = ls.open_sweep(tmp_path / f"sweep{suffix}")
    assert torch.equal(reopened.anchors, anchors.detach().float())


def test_zero_anchors_get_a_message_that_names_them():
    with pytest.raises(ValueError, match="anchors must hold at least one code"):
        ls.traverse(rowwise_decoder, torch.zeros(0, 4))


def test_empirical_mode_with_one_step_into_a_store(tmp_path):
    reference = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="traversals of one step have no slope"):
        result = ls.traverse(rowwise_decoder, ANCHORS, mode="empirical", steps=1, reference=reference,
                             out=tmp_path / "e.zarr")
    assert result.values.shape == (6, 4, 1)
    assert torch.equal(result.sensitivity, torch.zeros_like(result.sensitivity))  # no range, no slope


def test_a_decoder_whose_width_changes_between_probe_batches():
    def batch_dependent(codes):
        return codes.new_ones(codes.shape[0], codes.shape[0])

    # the 6 anchors are probed 2 (2 wide), then 4 at a time
    with pytest.raises(ValueError, match="output shape changed from \\[2\\] .* to \\[4\\]"):
        ls.traverse(batch_dependent, ANCHORS, steps=3, batch_size=4)


def test_the_meta_device_is_refused_clearly():
    with pytest.raises(ValueError, match="device='meta' holds no values"):
        ls.traverse(rowwise_decoder, ANCHORS, steps=3, device="meta")


def test_stored_outputs_with_an_empty_index_read_everything(tmp_path):
    result = ls.traverse(rowwise_decoder, ANCHORS, steps=3, out=tmp_path / "s.zarr")
    everything = np.asarray(result.outputs)
    assert np.array_equal(result.outputs[()], everything)
    assert np.array_equal(result.outputs[...], everything)
    assert np.array_equal(result.outputs[2, 1], everything[2, 1])


def test_many_processes_keeping_outputs_need_a_store(monkeypatch):
    from latentsweep import distributed

    monkeypatch.setattr(distributed, "join", lambda fn, shard, device, **kw: distributed.Workers(rank=0, world=2, grouped=True))
    with pytest.raises(ValueError, match="with 2 processes and keep_outputs=True, pass out="):
        ls.traverse(rowwise_decoder, ANCHORS, steps=3)


def test_distributed_false_sweeps_alone_inside_a_process_group(monkeypatch):
    """distributed=False (rank 0 of a training job, the other ranks busy): no collective call."""
    from latentsweep import distributed

    def grouped(fn, shard, device, *, distributed=True, group=None):
        if distributed:
            raise AssertionError("a process-local sweep must not join the process group")
        return real_join(fn, shard, device, distributed=False, group=group)

    real_join = distributed.join
    monkeypatch.setattr(distributed, "join", grouped)
    alone = ls.traverse(rowwise_decoder, ANCHORS, steps=3, distributed=False)
    monkeypatch.undo()
    assert torch.equal(alone.effect, ls.traverse(rowwise_decoder, ANCHORS, steps=3).effect)
    with pytest.raises(TypeError, match="distributed must be True or False"):
        ls.traverse(rowwise_decoder, ANCHORS, steps=3, distributed="no")


def test_batch_size_arrays_get_a_clear_error():
    """An array's == is elementwise: batch_size=np.array([1, 2]) once raised numpy's ambiguity error."""
    for value in [np.array([1, 2]), np.array([[3]])]:
        with pytest.raises(TypeError, match="batch_size must be an int"):
            ls.traverse(rowwise_decoder, ANCHORS, steps=3, batch_size=value)


@pytest.mark.parametrize("values", [[0.0, 1.0, 0.0], [[0.0, 1.0, 2.0], [0.0, 2.0, 1.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]])
def test_values_that_turn_back_are_refused(values):
    """The sensitivity divides a traversal's summed |change| by its span |last - first|: for
    values 0, 1, 0 that was 0, and a latent that moved the outputs got a sensitivity of 0."""
    with pytest.raises(ValueError, match=r"values must be non-decreasing or non-increasing along the steps"):
        ls.traverse(rowwise_decoder, ANCHORS, values=torch.tensor(values), dims=[0, 1, 2, 3][: 1 if len(values) == 3
                                                                                              else 4], progress=False)


def test_monotone_values_either_way_and_constant_ones_are_accepted():
    values = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0], [-1.0, -1.0, 3.0]])
    result = ls.traverse(rowwise_decoder, ANCHORS, values=values, progress=False)
    assert torch.equal(result.sensitivity[2], torch.zeros_like(result.sensitivity[2]))  # no span, no slope
    assert bool((result.sensitivity[[0, 1, 3]] > 0).any(dim=1).all())


def test_finite_outputs_that_overflow_the_statistics_are_not_called_nan():
    """|y - x0| of finite float32 outputs +-3e38 overflows: the message says so (it had said the
    decoder returned NaN or Inf), with the points, whether the outputs are kept or not."""
    def huge(codes):
        return torch.sign(codes[:, :1]).repeat(1, 3) * 3e38

    for keep_outputs in (True, False):
        with pytest.raises(ValueError, match=r"the statistics overflowed float32 at 1 grid point\(s\) .*\(anchor 0, "
                                             r"latent dim 0, step 0\): the decoder's outputs there are finite"):
            ls.traverse(huge, torch.tensor([[0.5, 0, 0, 0]]), values=torch.tensor([-1.0, 1.0]), dims=[0],
                        keep_outputs=keep_outputs, progress=False)
    with pytest.raises(ValueError, match="the decoder returned NaN or Inf"):
        ls.traverse(lambda codes: huge(codes) * 10, torch.tensor([[0.5, 0, 0, 0]]), values=torch.tensor([-1.0, 1.0]),
                    dims=[0], progress=False)


def test_infinity_made_by_the_output_transform_is_not_called_the_decoders():
    """exp of finite outputs (100 * code) overflows float32: the message names the transform's
    space, at the anchors (the probe) and in the grid (the executor)."""
    def scaled(codes):
        return codes * 100.0

    with pytest.raises(ValueError, match=r"exp\(decoder output\) is NaN or Inf for \d+ grid point"):
        ls.traverse(scaled, torch.zeros(2, 3), span=2.0, output_transform="exp", progress=False)
    with pytest.raises(ValueError, match=r"exp\(decoder output\) is NaN or Inf at anchors \[0\]"):
        ls.traverse(scaled, torch.full((1, 3), 2.0), span=0.5, output_transform="exp", progress=False)
    with pytest.raises(ValueError, match="the decoder returned NaN or Inf for"):  # no transform: the decoder's
        ls.traverse(lambda codes: torch.exp(scaled(codes)), torch.zeros(2, 3), span=2.0, progress=False)


def test_a_sensitivity_that_overflows_is_refused():
    """A span of 2e-40 divides a slope of 2 into 1e40: not a float32; it was returned as Inf."""
    def step(codes):
        return torch.sign(codes[:, :1]).repeat(1, 3)

    with pytest.raises(ValueError, match=r"the sensitivity overflowed float32 in rows \[0\]"):
        ls.traverse(step, torch.tensor([[0.5, 0, 0, 0]]), values=torch.tensor([-1e-40, 1e-40]), dims=[0],
                    progress=False)
    result = ls.traverse(step, torch.tensor([[0.5, 0, 0, 0]]), values=torch.tensor([-1e-30, 1e-30]), dims=[0],
                         progress=False)
    assert torch.allclose(result.sensitivity, torch.full((1, 3), 1e30))


@pytest.mark.parametrize("call", [
    lambda: ls.traverse(rowwise_decoder, ANCHORS, steps=10**12, keep_outputs=False, progress=False),
    lambda: ls.traverse(rowwise_decoder, ANCHORS, values=torch.zeros(1).expand(10**12), dims=[0],
                        keep_outputs=False, progress=False),
    lambda: ls.traversal_values(ANCHORS, steps=10**12),
])
def test_sizes_beyond_the_machine_are_refused_before_allocating(call):
    with pytest.raises(ValueError, match=r"needs [\d,.]+ GiB, more than (50% of )?this CPU's [\d,.]+ GiB"):
        call()


@pytest.mark.parametrize("call", [lambda: ls.sample(torch.zeros(2, 4), torch.zeros(2, 4), 2**40),
                                  lambda: ls.sample_prior(2**40, 8)])
def test_samples_beyond_the_machine_name_what_did_not_fit(call):
    """The ops' own argument checks come first (the same errors from the op and the wrapper);
    then the size is refused before allocating (an overcommitted allocation would succeed)."""
    with pytest.raises(ValueError, match=r"the samples \[.*\] needs [\d,.]+ GiB, more than .* draw fewer \(n=\)"):
        call()


def test_result_helpers_check_their_arguments():
    result = ls.traverse(rowwise_decoder, ANCHORS, steps=3, progress=False)
    with pytest.raises(ValueError, match="top must be >= 0"):
        result.summary(top=-1)
    with pytest.raises(TypeError, match="top must be an int"):
        result.summary(top=2.5)
    with pytest.raises(ValueError, match=r"labels_of: indices must be among this sweep's latent indices \[0, 1, 2, 3\], "
                                         r"got \[99\]"):
        result.labels_of([99])
    assert result.labels_of(result.ranking[:2]) == [result.labels[int(i)] for i in result.ranking[:2]]
    assert result.labels_of(1) == [result.labels[1]]


def test_a_sweep_traverses_each_latent_once():
    """dims 0, 0: two traversals of one latent, labelled and ranked twice; refused (traversal_values
    and traversal_codes, plain functions of their arguments, still take repeats)."""
    with pytest.raises(ValueError, match=r"dims must be distinct, got \[0\] more than once"):
        ls.traverse(rowwise_decoder, ANCHORS, dims=[0, 2, 0], steps=3, progress=False)
    assert ls.traversal_values(ANCHORS, dims=[0, 0], steps=3).shape == (6, 2, 3)
