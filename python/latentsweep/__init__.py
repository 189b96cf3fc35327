"""latentsweep: understand the latent space of (variational) autoencoders.

Traverse each latent over a range set by the prior (not the tiny posterior SD), decode fast
with a C++/libtorch core (CPU and CUDA), and see which dimensions matter.
"""

from __future__ import annotations

from ._interrupts import quiet_while_importing as _quiet_while_importing

with _quiet_while_importing():  # Ctrl-C during the command line's start: one line, no traceback
    import torch  # noqa: F401  (loads libtorch before the compiled extension)

    from ._extension import build_info
    from .direction_codes import direction_codes, unit_directions
    from .clusters import Clusters, clusters
    from .directions import Directions
    from .latent_shape import channel_directions
    from .diagnosis import Diagnosis, Flag, diagnose
    from .encoding import encode
    # From the plots' own modules: each shares its function's name, and mypy (in latentsweep's
    # import cycle) read ``from .plots import traversal_grid`` as the module, not the function.
    from .plots.effect_bars import effect_bars
    from .plots.kl_bars import kl_bars
    from .plots.response_curves import response_curves
    from .plots.sensitivity_heatmap import sensitivity_heatmap
    from .plots.sigma_histograms import sigma_histograms
    from .plots.traversal_gif import traversal_gif
    from .plots.traversal_grid import traversal_grid
    from .paths import interpolation_codes
    from .interpolation import Interpolation, interpolate
    from .posterior import Posterior
    from .principal import principal_directions
    from .html_report import report
    from .explanation import explain
    from .result import TraversalResult
    from .sampling import sample, sample_prior
    from .stores import StoreDamaged, StoreStatus
    from .sweep import open_sweep, sweep_status, traverse
    from .traversal import MODES, traversal_codes, traversal_values
    from . import datasets, metrics  # noqa: E402  (ground-truth data sets and disentanglement metrics)
    from . import modes  # noqa: E402  (the traversal modes: modes.MODE_TABLE)

__version__ = "0.1.0"

__all__ = [
    "Clusters",
    "Directions",
    "channel_directions",
    "clusters",
    "Interpolation",
    "interpolate",
    "interpolation_codes",
    "principal_directions",
    "MODES",
    "Diagnosis",
    "Flag",
    "Posterior",
    "StoreDamaged",
    "StoreStatus",
    "TraversalResult",
    "build_info",
    "datasets",
    "diagnose",
    "direction_codes",
    "effect_bars",
    "encode",
    "explain",
    "kl_bars",
    "metrics",
    "modes",
    "open_sweep",
    "report",
    "response_curves",
    "sample",
    "sample_prior",
    "sensitivity_heatmap",
    "sigma_histograms",
    "sweep_status",
    "traversal_codes",
    "traverse",
    "traversal_values",
    "traversal_gif",
    "traversal_grid",
    "unit_directions",
]
