"""The global random states a library call must leave as it found them."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


@contextlib.contextmanager
def preserve_rng_state():
    """Restores the global random states of torch (CPU, and CUDA when it is initialised), numpy
    and Python afterwards: iterating a DataLoader draws its base seed from torch's, and an
    encoder that samples z draws from it too, so a training loop's random stream would depend
    on whether latentsweep looked at its model."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if not cuda_devices and torch.cuda.is_initialized():
            restart_cuda_generators()


def restart_cuda_generators() -> None:
    """CUDA's generators put back where CUDA started them, for a call during which CUDA started:
    their states could not be saved before it (reading them starts CUDA), and a generator starts
    at its seed (the caller's torch.manual_seed, kept until CUDA starts, or torch's default) with
    no draws taken, which reseeding with that seed restores."""
    for generator in torch.cuda.default_generators:
        generator.manual_seed(generator.initial_seed())


def generator_states(device: torch.device) -> list[torch.Tensor]:
    """The states of the global generators a model on ``device`` draws from (the CPU's, and the
    device's own on CUDA), to compare before and after a call: whether it drew random numbers."""
    states = [torch.random.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def drew_random_numbers(before: list[torch.Tensor], device: torch.device) -> bool:
    """Whether the generators moved since ``before`` (:func:`generator_states`)."""
    return not all(torch.equal(a, b) for a, b in zip(before, generator_states(device)))
