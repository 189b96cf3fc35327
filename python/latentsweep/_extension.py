"""Loads the compiled core (``latentsweep._C``) after checking it matches the running torch."""

from __future__ import annotations

import torch

try:
    from . import _build_config
except ImportError as error:  # pragma: no cover - only on a broken install
    raise ImportError(
        "latentsweep's compiled extension is not installed. Build it against your torch with "
        "`pip install --no-build-isolation .` (see README.md)."
    ) from error


def _release(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0': the part that fixes the C++ ABI."""
    return version.split("+")[0]


if _release(_build_config.TORCH_VERSION) != _release(torch.__version__):
    raise ImportError(
        f"latentsweep was built against torch {_build_config.TORCH_VERSION} but torch "
        f"{torch.__version__} is running. Rebuild it against this torch: "
        "`pip install --no-build-isolation --force-reinstall --no-deps .`"
    )

try:
    from . import _C  # noqa: E402  (registers torch.ops.latentsweep.*)
except ImportError as error:  # pragma: no cover - only on a broken install
    raise ImportError(
        f"latentsweep's compiled extension failed to load ({error}). It was built against torch "
        f"{_build_config.TORCH_VERSION} (CUDA: {_build_config.WITH_CUDA}); rebuild it with "
        "`pip install --no-build-isolation --force-reinstall --no-deps .`"
    ) from error

ops = torch.ops.latentsweep


def build_info() -> dict:
    """How the compiled core was built: ``version``, ``torch`` (the version it was built
    against), ``cuda`` (bool), ``cuda_version``, ``cuda_archs``, ``cpu_threads`` (torch's
    intra-op threads now), ``cpu_avx2`` (this CPU has AVX2 and FMA), ``avx2_kernels`` (built
    with them), ``cpu_capability`` (the CPU kernels in use, ``"avx2"`` or ``"default"``: the best
    supported, or ``LATENTSWEEP_CPU_CAPABILITY``'s choice), ``compiler``."""
    return dict(_C.build_info())
