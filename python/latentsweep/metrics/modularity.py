"""Modularity and explicitness (Ridgeway & Mozer 2018)."""

from __future__ import annotations


import numpy as np
import torch

from .. import _checks
from . import _inputs
from ._reference_fits import reference_fits
from ._threads import one_cpu_thread
from ._information import discretize, information

_FN = "latentsweep.metrics.modularity_explicitness"


@one_cpu_thread()
def modularity_explicitness(codes, factors, test_codes, test_factors, *, bins: int = 20) -> dict:
    """Modularity (each latent depends on at most one factor) and explicitness (factors are
    linearly decodable from the codes).

    Definition (as in disentanglement_lib's ``modularity_explicitness.py``):

    - modularity: ``m[d, f]`` is the discrete MI between latent ``d`` (``bins`` histogram bins,
      train split) and factor ``f``; per latent ``1 - (sum_f m^2 - max_f m^2) / (max_f m^2 (F - 1))``
      (0 for a latent with no information), averaged over latents.
    - explicitness: codes standardised with the train split's mean and SD; per factor a
      ``sklearn.linear_model.LogisticRegression()`` (defaults) on all codes; the macro ROC-AUC of
      its class probabilities, one-vs-rest, on each split; averaged over factors. A constant
      latent is standardised to 0 (the reference divides by its SD of 0: NaN, and the fit fails).

    The classifier is the installed scikit-learn's ``LogisticRegression()`` (lbfgs, multinomial
    since scikit-learn 0.22), as the reference's code reads today; disentanglement_lib's 2019
    study ran a scikit-learn before 0.22, whose default fit liblinear one-vs-rest classifiers (their AUCs
    differ by a few hundredths), so compare explicitness within one scikit-learn version
    (``evaluate`` records it).

    Args:
        codes, factors: train split, ``[N, D]`` codes and ``[N, F]`` integer factors.
        test_codes, test_factors: test split, ``[M, D]`` and ``[M, F]``. Test rows whose value of
            a factor does not occur in the train split are left out of that factor's test score
            (with a warning): its classifier has no column for that value. A factor whose (seen)
            test rows hold a single value has no ROC-AUC on the test split and is left out of
            ``explicitness_test`` (with a warning; a ValueError if that leaves none).
        bins: histogram bins per latent (study default 20; at most 100,000).

    Returns:
        dict with ``modularity`` (with two or more factors: a warning for one),
        ``explicitness_train``, ``explicitness_test``.

    Reference: K. Ridgeway, M. C. Mozer, "Learning Deep Disentangled Embeddings With the
    F-Statistic Loss", NeurIPS 2018.
    """
    x, y, x_test, y_test = _inputs.train_test(_FN, codes, factors, test_codes, test_factors)
    bins = _inputs.bins(_FN, bins)
    scores = {}
    if y.shape[1] >= 2:
        scores["modularity"] = _modularity(information(discretize(x, bins), y))
    else:  # 0 / 0 in the definition (the reference returns NaN): left out, said
        _checks.warn(f"{_FN}: modularity needs at least two factors, got one: only explicitness is scored", UserWarning)
    train, test = explicitness(x, y, x_test, y_test)
    scores["explicitness_train"] = train
    scores["explicitness_test"] = test
    return scores


def modularity_from_mutual_information(mutual_info) -> float:
    """Modularity of ``mutual_info``, a ``[D, F]`` matrix of latent-factor mutual information
    (finite, >= 0; D >= 1 and F >= 2: a latent's spread over the other F - 1 factors is undefined
    for one)."""
    fn = "latentsweep.metrics.modularity_from_mutual_information"
    m = _inputs.nonnegative(fn, "mutual_info", mutual_info, dims=2)
    if m.shape[1] < 2 or m.shape[0] < 1:
        raise ValueError(f"{fn}: mutual_info must be [D, F] with F >= 2 factors, got shape {tuple(m.shape)}")
    return _modularity(m)


def _modularity(m: torch.Tensor) -> float:
    # Each latent's score depends on its row's ratios only: rows over their largest entry (peak
    # 1), whose squares neither overflow (1e200 gave NaN) nor underflow (1e-170 gave 0, not 1).
    scaled, largest = _checks.by_largest_entry(m)
    spread = ((scaled ** 2).sum(dim=1) - 1.0) / (m.shape[1] - 1.0)
    per_latent = torch.where(largest[:, 0] == 0, torch.zeros_like(spread), 1.0 - spread)
    return float(per_latent.mean())


def explicitness(x, y, x_test, y_test) -> tuple[float, float]:
    """Mean one-vs-rest ROC-AUC of per-factor logistic regressions on standardised codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    mean = x.mean(dim=0)
    std = x.std(dim=0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant latent stays 0, not NaN
    xn = _inputs.numpy((x - mean) / std)
    xtn = _inputs.numpy((x_test - mean) / std)
    yn, ytn = _inputs.numpy(y), _inputs.numpy(y_test)
    train, test, single = [], [], []
    with reference_fits(_FN, "LogisticRegression"):
        models = [LogisticRegression().fit(xn, yn[:, f]) for f in range(yn.shape[1])]
    for f, model in enumerate(models):
        # A classifier that never saw a value cannot score it: those test rows sit out this
        # factor's test score (a rare value lands in the test split alone for some seeds).
        seen = np.isin(ytn[:, f], model.classes_)
        if not seen.any():
            raise ValueError(f"{_FN}: none of test_factors column {f}'s values occur in factors (the train split)")
        if not seen.all():
            unseen = np.unique(ytn[~seen, f])
            _checks.warn(f"{_FN}: {int((~seen).sum())} test row(s) with values {unseen.tolist()[:5]} of factor {f}, "
                         "absent from the train split, are left out of its explicitness_test", UserWarning)
        train.append(_auc(roc_auc_score, model, xn, yn[:, f]))
        # ROC-AUC needs a positive and a negative example: with one value there is none (NaN).
        if np.unique(ytn[seen, f]).size < 2:
            single.append(f)
            continue
        test.append(_auc(roc_auc_score, model, xtn[seen], ytn[seen, f]))
    if single:
        if not test:
            raise ValueError(f"{_FN}: every factor takes a single value in test_factors (the test split) "
                             f"among the values the train split has; explicitness_test needs two")
        _checks.warn(f"{_FN}: factor(s) {single} take a single value in test_factors and are left out of "
                     "explicitness_test (ROC-AUC needs two)", UserWarning)
    return float(np.mean(train)), float(np.mean(test))


def _auc(roc_auc_score, model, x, labels) -> float:
    # One indicator column per class seen in training (MultiLabelBinarizer in the reference,
    # which keeps two columns for a binary factor); classes absent from this split are skipped
    # as they would have no positive example.
    indicator = labels[:, None] == model.classes_[None, :]
    present = indicator.any(axis=0)
    return float(roc_auc_score(indicator[:, present], model.predict_proba(x)[:, present]))
