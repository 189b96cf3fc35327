"""Pictures of a latent space: traversal grids and GIFs (image outputs), response curves and a
sensitivity heatmap (tabular outputs), KL per latent, posterior SDs against the prior,
traversals along directions and a cluster panel.

Each function takes keyword options, returns a matplotlib ``Figure`` (or, for the GIF, a PIL
image), and also saves it when given ``path=``. Figures are drawn on an Agg canvas without
pyplot, so they work headless and never open a window.
"""

from .cluster_panel import cluster_panel
from .direction_grid import direction_grid
from .effect_bars import effect_bars
from .kl_bars import kl_bars
from .response_curves import response_curves
from .sensitivity_heatmap import sensitivity_heatmap
from .sigma_histograms import sigma_histograms
from .traversal_gif import traversal_gif
from .traversal_grid import traversal_grid

__all__ = [
    "cluster_panel",
    "direction_grid",
    "effect_bars",
    "kl_bars",
    "response_curves",
    "sensitivity_heatmap",
    "sigma_histograms",
    "traversal_gif",
    "traversal_grid",
]
