"""Disentanglement metrics with ground-truth factors, exact to disentanglement_lib's definitions.

Array-level (codes ``[N, D]``, integer factors ``[N, F]``, torch or numpy):
:func:`mig`, :func:`sap`, :func:`dci`, :func:`modularity_explicitness`, :func:`unsupervised`,
:func:`irs`. Sampling-level (a representation function and a ground-truth data set):
:func:`factor_vae_score`, :func:`beta_vae_score`. All of them at once: :func:`evaluate`.

Mutual information and entropies are computed here, with ``torch.bincount`` (CPU or GPU), not by
a scikit-learn function: :func:`mutual_information`, :func:`entropy`, :func:`histogram_discretize`.
"""

from ._information import entropy, histogram_discretize, mutual_information
from .beta_vae_score import beta_vae_score
from .dci_scores import dci, dci_from_importance
from .evaluation import METRICS, MetricResults, evaluate
from .factor_vae_score import factor_vae_score
from .interventional_robustness import irs
from .modularity import modularity_explicitness, modularity_from_mutual_information
from .mutual_information_gap import mig, mig_from_mutual_information
from .sap_score import sap
from .unsupervised_scores import gaussian_total_correlation, gaussian_wasserstein_correlation, unsupervised

__all__ = [
    "METRICS",
    "MetricResults",
    "beta_vae_score",
    "dci",
    "dci_from_importance",
    "entropy",
    "evaluate",
    "factor_vae_score",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "histogram_discretize",
    "irs",
    "mig",
    "mig_from_mutual_information",
    "modularity_explicitness",
    "modularity_from_mutual_information",
    "mutual_information",
    "sap",
    "unsupervised",
]
