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
