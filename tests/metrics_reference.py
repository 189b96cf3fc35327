"""Plain-numpy references for the metrics' building blocks, written from the definitions
(loops over values, np.histogram/np.digitize) and independent of latentsweep's torch code."""

from __future__ import annotations

import numpy as np


def histogram_discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """[N, D] -> [N, D] labels: np.digitize on np.histogram's edges but the last."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        out[:, d] = np.digitize(codes[:, d], np.histogram(codes[:, d], bins)[1][:-1])
    return out


def entropy(labels: np.ndarray) -> float:
    """H = -sum p log p over the distinct values of a 1-D label array (nats)."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) = sum p(x, y) log(p(x, y) / (p(x) p(y))) over observed pairs (nats)."""
    n = len(a)
    total = 0.0
    for x in np.unique(a):
        in_x = a == x
        p_x = in_x.mean()
        for y in np.unique(b[in_x]):
            p_xy = np.count_nonzero(in_x & (b == y)) / n
            total += p_xy * np.log(p_xy / (p_x * np.mean(b == y)))
    return max(total, 0.0)


def mutual_information_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([[mutual_information(a[:, i], b[:, j]) for j in range(b.shape[1])] for i in range(a.shape[1])])


def dci_from_importance(importance: np.ndarray) -> dict:
    """disentanglement_lib's dci.disentanglement / completeness: 1 - the entropy (base F, resp.
    D) of each row (column) of importance + 1e-11, weighted by the row (column) sums."""

    def one_minus_entropy(values, axis, base):
        p = values / values.sum(axis=axis, keepdims=True)
        return 1.0 - (-(p * np.log(p)).sum(axis=axis) / np.log(base) if base > 1 else 0.0)

    total = importance.sum()
    per_code = one_minus_entropy(importance + 1e-11, 1, importance.shape[1])
    per_factor = one_minus_entropy(importance + 1e-11, 0, importance.shape[0])
    return {"disentanglement": float((per_code * importance.sum(axis=1) / total).sum()),
            "completeness": float((per_factor * importance.sum(axis=0) / total).sum())}


class IdentityData:
    """disentanglement_lib's IdentityObservationsData: the observations are the factors
    (here F factors of 10 values each, 0..9)."""

    def __init__(self, num_factors: int = 5, values: int = 10) -> None:
        self.factor_sizes = [values] * num_factors

    def sample_factors(self, n, generator):
        import torch

        return torch.randint(self.factor_sizes[0], (n, len(self.factor_sizes)), generator=generator)

    def observations(self, factors):
        import torch

        return factors.to(torch.float64)
