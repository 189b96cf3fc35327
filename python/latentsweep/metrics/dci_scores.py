"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018)."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from . import _inputs
from ._threads import one_cpu_thread

_FN = "latentsweep.metrics.dci"
ESTIMATORS = ("gradient_boosting", "random_forest")
_EPS = 1e-11  # disentanglement_lib's smoothing before the entropies


@one_cpu_thread()
def dci(codes, factors, test_codes, test_factors, *, seed: int = 0, estimator: str = "gradient_boosting") -> dict:
    """Disentanglement, completeness and informativeness from an importance matrix.

    Definition (as in disentanglement_lib's ``dci.py``): per factor ``f``, one classifier
    predicts ``f`` from all codes (train split); ``R[d, f]`` is ``|feature_importances_[d]|``.
    Then, with ``p_d = R[d, :] / sum R[d, :]`` and ``q_f = R[:, f] / sum R[:, f]`` (after adding
    1e-11 to every entry):

    - disentanglement = sum_d w_d (1 - H_F(p_d)), ``w_d = sum_f R[d, f] / sum R``,
      entropies in base F (the number of factors);
    - completeness = sum_f v_f (1 - H_D(q_f)), ``v_f = sum_d R[d, f] / sum R``, base D;
    - informativeness_train / informativeness_test: the classifiers' mean accuracy on each split
      (disentanglement_lib reports accuracies under these names).

    An all-zero importance matrix (no code informative) scores 0 for both, also with one factor
    or one code, where the entropy rule alone would give 1. Otherwise, with one factor every
    code's entropy (over one outcome) is 0 and its disentanglement 1, and with one code every
    factor's completeness is 1; the reference divides that 0 by log 1 and returns NaN.

    Args:
        codes, factors: train split, ``[N, D]`` codes and ``[N, F]`` integer factors.
        test_codes, test_factors: test split, ``[M, D]`` and ``[M, F]``.
        seed: ``random_state`` of the classifiers, so the scores are reproducible.
        estimator: ``"gradient_boosting"`` (default, as the reference:
            ``sklearn.ensemble.GradientBoostingClassifier()`` with scikit-learn's defaults) or
            ``"random_forest"`` (about 20x faster at N = 10,000: ``RandomForestClassifier(
            n_estimators=30, max_depth=6, max_features=None)``, impurity importances as in the
            DCI paper's random-forest variant; shallow trees on all features so noise latents do
            not collect importance). Scores from the two are close, not interchangeable.

    Returns:
        dict with ``disentanglement``, ``completeness``, ``informativeness_train``,
        ``informativeness_test`` (floats in [0, 1]).

    Reference: C. Eastwood, C. K. I. Williams, "A Framework for the Quantitative Evaluation of
    Disentangled Representations", ICLR 2018.
    """
    seed = _checks.integer(_FN, "seed", seed, low=0, high=2**32 - 1)
    if estimator not in ESTIMATORS:
        raise ValueError(f"{_FN}: estimator must be one of {ESTIMATORS}, got {estimator!r}")
    x, y, x_test, y_test = _inputs.train_test(_FN, codes, factors, test_codes, test_factors)
    importance, train_acc, test_acc = importance_matrix(x, y, x_test, y_test, seed=seed, estimator=estimator)
    scores = dci_from_importance(importance)
    scores["informativeness_train"] = train_acc
    scores["informativeness_test"] = test_acc
    return scores


def importance_matrix(x, y, x_test, y_test, *, seed: int, estimator: str):
    """``[D, F]`` importances and the mean train/test accuracies (checked tensors)."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    xn, yn, xtn, ytn = (_inputs.numpy(t) for t in (x, y, x_test, y_test))
    importance = np.zeros((xn.shape[1], yn.shape[1]))
    train_acc, test_acc = [], []
    for f in range(yn.shape[1]):
        if estimator == "gradient_boosting":
            model = GradientBoostingClassifier(random_state=seed)
        else:
            model = RandomForestClassifier(n_estimators=30, max_depth=6, max_features=None, random_state=seed)
        model.fit(xn, yn[:, f])
        importance[:, f] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(xn) == yn[:, f]))
        test_acc.append(np.mean(model.predict(xtn) == ytn[:, f]))
    return torch.from_numpy(importance), float(np.mean(train_acc)), float(np.mean(test_acc))


def dci_from_importance(importance) -> dict:
    """Disentanglement and completeness of a ``[D, F]`` importance matrix (real numbers, finite,
    >= 0; torch or numpy), as defined in :func:`dci`.

    The 1e-11 smoothing is the reference's, in the matrix's own units, at every scale: a matrix
    whose largest entry is 1 or more is first divided (smoothing included) by the largest power
    of two not above that entry. The division is exact, so the scores are bit for bit those of
    the undivided computation wherever its sums stay finite (every importance matrix of
    :func:`dci`: scikit-learn's importances sum to at most 1 per factor), and entries up to
    float64's largest no longer overflow the sums (a matrix of 1e308 scored NaN).
    """
    fn = "latentsweep.metrics.dci_from_importance"
    r = _inputs.nonnegative(fn, "importance", importance, dims=2)
    if r.shape[0] < 1 or r.shape[1] < 1:
        raise ValueError(f"{fn}: importance must be [D, F] with D, F >= 1, got shape {tuple(r.shape)}")
    largest = r.max()
    if float(largest) == 0.0:  # nothing informative (with one factor or code the entropy rule said 1)
        return {"disentanglement": 0.0, "completeness": 0.0}
    _, exponent = torch.frexp(largest)  # largest = m 2^exponent, 0.5 <= m < 1
    two = torch.tensor(2.0, dtype=torch.float64, device=r.device)
    scale = torch.pow(two, 1 - exponent.clamp_min(1).to(torch.float64))  # 1 below 1
    r = r * scale
    smoothed = r + _EPS * scale
    per_code = 1.0 - _normalised_entropy(smoothed, dim=1, base=r.shape[1])
    per_factor = 1.0 - _normalised_entropy(smoothed, dim=0, base=r.shape[0])
    code_weight = r.sum(dim=1) / r.sum()
    factor_weight = r.sum(dim=0) / r.sum()
    return {
        "disentanglement": float((per_code * code_weight).sum()),
        "completeness": float((per_factor * factor_weight).sum()),
    }


def _normalised_entropy(values: torch.Tensor, *, dim: int, base: int) -> torch.Tensor:
    # scipy.stats.entropy(pk, base=base): normalise pk, -sum p log p / log base. Base 1 (a single
    # factor or code) divides by log 1 = 0 in the reference; one outcome has entropy 0 here.
    p = values / values.sum(dim=dim, keepdim=True)
    h = -(p * torch.log(p)).sum(dim=dim)
    return h / np.log(base) if base > 1 else torch.zeros_like(h)
