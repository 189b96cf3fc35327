"""Choosing how many codes go to the decoder at once."""

from __future__ import annotations

import os

import torch

CPU_MAX_BATCH = 8192  # beyond this CPU decoders gain nothing and latency per chunk grows
CUDA_MAX_BATCH = 65536


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_budget(device: torch.device) -> int:
    """Bytes a sweep's buffers may use: half the free GPU memory, or 1 GiB (at most an eighth
    of the RAM) on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    ram = physical_memory()
    return min(1 << 30, ram // 8) if ram else 1 << 30


def bytes_per_row(*, latent_dim: int, features: int, output_bytes: int, activation_bytes: float) -> float:
    """Memory one grid point needs while in flight: two code buffers, the decoder's output
    and activations, its float32 copy for the statistics and two host buffers."""
    return 2 * latent_dim * 4 + features * (3 * output_bytes + 4) + activation_bytes


def auto_batch_size(
    *,
    device: torch.device,
    budget: int,
    latent_dim: int,
    features: int,
    output_bytes: int,
    activation_bytes: float,
    total_rows: int,
) -> int:
    per_row = bytes_per_row(
        latent_dim=latent_dim, features=features, output_bytes=output_bytes, activation_bytes=activation_bytes
    )
    cap = CUDA_MAX_BATCH if device.type == "cuda" else CPU_MAX_BATCH
    return int(max(1, min(budget // max(per_row, 1), cap, total_rows)))


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
    )
