"""SAP, the separated attribute predictability score (Kumar et al. 2018)."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from . import _inputs
from ._reference_fits import reference_fits
from ._threads import one_cpu_thread

_FN = "latentsweep.metrics.sap"


@one_cpu_thread()
def sap(codes, factors, test_codes, test_factors, *, continuous: bool = False) -> float:
    """The SAP score: how much better the best single latent predicts each factor than the
    second best.

    Definition (as in disentanglement_lib's ``sap_score.py``): a score matrix ``S [D, F]``, then
    ``SAP = mean_f (S_(1)[f] - S_(2)[f])`` over the two largest entries of each column.

    - ``continuous=False`` (the study default): ``S[d, f]`` is the test accuracy of
      ``sklearn.svm.LinearSVC(C=0.01, class_weight="balanced")`` trained on latent ``d`` alone
      (train split) to predict factor ``f``; ``random_state=0`` is added so a fit by the dual
      solver is reproducible (scikit-learn >= 1.5's ``dual="auto"`` solves this one-feature
      problem in the primal, deterministic; earlier versions, the reference's, used the dual:
      the same optimum, to the solvers' tolerance).
    - ``continuous=True``: ``S[d, f] = Cov(z_d, y_f)^2 / (Var z_d Var y_f)``, the R^2 of a
      linear fit of the factor on the latent, on the train split (``ddof=1``; 0 for a latent
      with variance <= 1e-12); the test split is checked but not used.

    Args:
        codes, factors: train split, ``[N, D]`` codes (D >= 2) and ``[N, F]`` factors: integers,
            or with ``continuous=True`` any finite real values.
        test_codes, test_factors: test split, ``[M, D]`` and ``[M, F]``.
        continuous: treat factors as continuous (regression-style score).

    Returns:
        the score in [0, 1].

    Reference: A. Kumar, P. Sattigeri, A. Balakrishnan, "Variational Inference of Disentangled
    Latent Concepts from Unlabeled Observations", ICLR 2018, Section 3.
    """
    _checks.boolean(_FN, "continuous", continuous)
    x, y, x_test, y_test = _inputs.train_test(_FN, codes, factors, test_codes, test_factors, min_latents=2,
                                              continuous=continuous)
    matrix = sap_matrix(x, y, x_test, y_test, continuous=continuous)
    return sap_from_matrix(matrix)


def sap_matrix(x, y, x_test, y_test, *, continuous: bool) -> torch.Tensor:
    """The ``[D, F]`` score matrix of :func:`sap` (checked float64 codes; int64 factors, or
    float64 ones when ``continuous``)."""
    if continuous:
        # R^2 does not change when a factor is scaled: each is multiplied (exactly) by the power
        # of two that brings its largest magnitude into [0.5, 1), so Var y_f and Cov^2 cannot
        # overflow (factors of 1e200) or underflow (1e-200) into a NaN. (At most 2^1022: 2^1074
        # is beyond float64.)
        _, exponent = torch.frexp(y.abs().amax(dim=0))
        two = torch.tensor(2.0, dtype=torch.float64, device=y.device)
        yf = y * torch.pow(two, -exponent.clamp_min(-1022).to(torch.float64))
        xc = x - x.mean(dim=0)
        yc = yf - yf.mean(dim=0)
        dof = x.shape[0] - 1
        cov = xc.T @ yc / dof  # [D, F]
        var_x = (xc * xc).sum(dim=0) / dof
        var_y = (yc * yc).sum(dim=0) / dof
        score = cov**2 / (var_x[:, None] * var_y[None, :])
        return torch.where(var_x[:, None] > 1e-12, score, torch.zeros_like(score))
    from sklearn.svm import LinearSVC

    xn, yn = _inputs.numpy(x), _inputs.numpy(y)
    xtn, ytn = _inputs.numpy(x_test), _inputs.numpy(y_test)
    out = np.zeros((xn.shape[1], yn.shape[1]))
    with reference_fits(_FN, "LinearSVC"):
        for d, f in np.ndindex(out.shape):
            classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
            classifier.fit(xn[:, d : d + 1], yn[:, f])
            out[d, f] = np.mean(classifier.predict(xtn[:, d : d + 1]) == ytn[:, f])
    return torch.from_numpy(out)


def sap_from_matrix(matrix: torch.Tensor) -> float:
    top = torch.topk(matrix, 2, dim=0).values
    return float((top[0] - top[1]).mean())
