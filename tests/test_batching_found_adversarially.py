"""Defects found by an adversarial pass over the batch-size choice (_batching) and the plan."""

from __future__ import annotations

import math

import pytest
import torch

from sweep_models import rowwise_decoder

import latentsweep as ls
from latentsweep import _batching

ANCHORS = torch.randn(64, 8, generator=torch.Generator().manual_seed(5))
STEPS = 200  # 102,400 rows: the trials' share of the sweep pays for trying 64, then 256


class LimitedDecoder:
    """rowwise_decoder on a fake clock (fastest at 256 codes per call) that refuses batches
    larger than ``largest``, as a decoder with a fixed maximum batch (an exported engine) does."""

    def __init__(self, largest: int):
        self.now, self.sizes, self.largest = 0.0, [], largest

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        self.sizes.append(codes.shape[0])
        if codes.shape[0] > self.largest:
            raise ValueError(f"this decoder takes at most {self.largest} codes per call")
        self.now += codes.shape[0] * 1e-4 * (1 + abs(math.log(codes.shape[0] / 256, 4)))
        return rowwise_decoder(codes)


def test_a_decoder_failing_at_a_size_the_trials_chose_says_so(monkeypatch):
    """batch_size='auto' timed 256 codes per call on its own; the decoder's error (its own type
    and text, unchanged) says that this size came from the trials, and how to avoid them."""
    decoder = LimitedDecoder(largest=100)
    monkeypatch.setattr(_batching, "_clock", lambda: decoder.now)
    with pytest.raises(ValueError, match="at most 100 codes") as caught:
        ls.traverse(decoder, ANCHORS, steps=STEPS, progress=False)
    assert 256 in decoder.sizes
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "batch_size='auto' timed batch size 256" in notes and "explicit batch_size=" in notes
    # the advice works: an explicit size decodes no trials
    decoder.sizes.clear()
    result = ls.traverse(decoder, ANCHORS, steps=STEPS, progress=False, batch_size=64)
    assert result.batch_size == 64 and max(decoder.sizes) <= 64


def test_out_of_memory_at_the_first_size_timed_is_halved_as_an_explicit_size_is(monkeypatch):
    """The start size of the trials running out of memory ended the sweep with the allocator's
    error, where the same size passed as batch_size= was halved once (with a warning) and went
    on, as the README says of the chosen size."""

    def decoder(codes: torch.Tensor) -> torch.Tensor:
        if codes.shape[0] > 200:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")
        return rowwise_decoder(codes)

    anchors = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    start = _batching.CPU_START_BATCH  # the trials start there (whatever the probe's estimate)
    monkeypatch.setattr(_batching, "start_index", lambda sizes, estimate: sizes.index(start))
    explicit = ls.traverse(decoder, anchors, steps=STEPS, batch_size=_batching.CPU_START_BATCH, progress=False)
    with pytest.warns(RuntimeWarning, match=rf"out of memory at batch_size={_batching.CPU_START_BATCH}; retrying"):
        chosen = ls.traverse(decoder, anchors, steps=STEPS, progress=False)
    assert chosen.batch_size == explicit.batch_size == _batching.CPU_START_BATCH // 2
    for name in ("effect", "dim_effect", "sensitivity"):
        assert torch.equal(getattr(chosen, name), getattr(explicit, name)), name
