"""The analysis functions at a data set's scale (benchmarks/bench_analysis.py): their results are
the plain computations', and the work a user's N rows cost is bounded (passes over [N, D]
counted through a TorchFunctionMode, not timed)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import latentsweep

clusters_module = importlib.import_module("latentsweep.clusters")  # (the package's name is the function)

N, D = 6000, 12


class RowOps(TorchFunctionMode):
    """Counts the calls of ``names`` (torch functions and Tensor methods, by name) whose first
    tensor argument, or result, has ``rows`` rows: the [N, D] passes of a call."""

    def __init__(self, rows: int, *names: str) -> None:
        super().__init__()
        self.rows, self.names, self.counts = rows, names, dict.fromkeys(names, 0)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if name in self.names:
            tensors = [a for a in args if isinstance(a, torch.Tensor)] + (
                [result] if isinstance(result, torch.Tensor) else [])
            if any(t.dim() >= 1 and t.shape[0] == self.rows for t in tensors):
                self.counts[name] += 1
        return result


def posterior(num_rows: int = N, latent: int = D, seed: int = 0) -> latentsweep.Posterior:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(num_rows, latent, generator=g) * torch.linspace(0.01, 2.0, latent)
    return latentsweep.Posterior(mu, torch.randn(num_rows, latent, generator=g) * 0.5 - 3)


def test_diagnose_matches_the_plain_statistics():
    p = posterior()
    got = latentsweep.diagnose(p)
    mu, logvar = p.mu.double(), p.logvar.double()
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    torch.testing.assert_close(got.mean, mu.mean(0), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(got.mu_variance, mu.var(0, correction=0), rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(got.kl, kl.mean(0), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(got.posterior_sd, (0.5 * logvar).exp().mean(0), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(got.sd, (mu.var(0, correction=0) + logvar.exp().mean(0)).sqrt(), rtol=1e-10, atol=0)


def test_diagnose_of_finite_codes_masks_nothing():
    """With every entry finite, the masks that skip NaN/Inf keep everything: no [N, D] where()
    copy for them (there were 24, a third of the call's time at N = 10^5), and the numbers of
    the masked path: a row appended with NaN on latent 0 leaves that latent's statistics as they
    were."""
    p = posterior()
    with RowOps(N, "where") as ops:
        clean = latentsweep.diagnose(p)
    assert ops.counts["where"] == 0
    mu, logvar = torch.cat([p.mu, p.mu[:1]]), torch.cat([p.logvar, p.logvar[:1]])
    mu[-1, 0] = float("nan")
    masked = latentsweep.diagnose(latentsweep.Posterior(mu, logvar))
    for name in ("mean", "min", "max", "zero_fraction", "kl", "posterior_sd", "sd"):
        torch.testing.assert_close(getattr(masked, name)[0], getattr(clean, name)[0], rtol=1e-12, atol=0, msg=name)
    assert masked.flag("nonfinite") is not None and clean.flag("nonfinite") is None


def test_diagnose_sigma_beyond_float64_still_masked():
    """The unmasked path is taken only where the values are finite: a logvar of 1500 is finite
    but its sigma is inf, which the spread of the other latents must not see."""
    p = posterior(200, 3)
    logvar = p.logvar.double().clone()
    logvar[5, 1] = 1500.0
    got = latentsweep.diagnose(latentsweep.Posterior(p.mu.double(), logvar))
    assert torch.isfinite(got.mean).all() and torch.isfinite(got.sd[[0, 2]]).all()


def test_kmeans_counts_distinct_rows_in_a_prefix_only(monkeypatch):
    """clusters(k=...) refuses codes with fewer than k distinct rows; it counts them in the first
    rows when those suffice (sorting all N rows cost as much as KMeans itself)."""
    codes = posterior().mu
    seen = []
    unique = torch.unique
    monkeypatch.setattr(torch, "unique", lambda t, *a, **k: seen.append(t.shape[0]) or unique(t, *a, **k))
    latentsweep.clusters(codes, k=3)
    assert seen and max(seen) <= clusters_module.DISTINCT_PREFIX_ROWS < N


def test_kmeans_still_refuses_too_few_distinct_rows_beyond_the_prefix(monkeypatch):
    monkeypatch.setattr(clusters_module, "DISTINCT_PREFIX_ROWS", 8)
    codes = torch.tensor([[0.0, 1.0]] * 20 + [[2.0, 3.0]] * 20)
    with pytest.raises(ValueError, match=r"only 2 distinct point\(s\), fewer than k=3"):
        latentsweep.clusters(codes, k=3)
    assert latentsweep.clusters(codes, k=2).sizes.tolist() == [20, 20]  # distinct rows after the prefix count


def test_kmeans_labels_are_scikit_learns():
    from sklearn.cluster import KMeans

    codes = posterior().mu
    expected = KMeans(n_clusters=5, random_state=0, n_init="auto").fit(codes.numpy()).labels_
    got = latentsweep.clusters(codes, k=5)
    assert got.method == "kmeans"
    # the same partition (relabelled to 0 .. C-1 in sorted label order: the same here)
    assert np.array_equal(got.labels.numpy(), np.unique(expected, return_inverse=True)[1])


def test_clusters_statistics_match_the_plain_ones():
    codes = posterior().mu
    labels = torch.arange(N) % 4
    got = latentsweep.clusters(codes, labels)
    x = codes.double()
    centroids = torch.stack([x[labels == c].mean(0) for c in range(4)])
    variances = torch.stack([x[labels == c].var(0, correction=0) for c in range(4)])
    between = (got.sizes[:, None] * (centroids - x.mean(0)) ** 2).sum(0)
    within = (got.sizes[:, None] * variances).sum(0)
    torch.testing.assert_close(got.centroids, centroids.float(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got.variances, variances.float(), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(got.eta_squared, (between / (between + within)).float(), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("function", ["clusters", "principal_directions", "axis_alignment"])
def test_codes_in_one_block_are_converted_to_float64_once(function):
    """The passes over the codes (3 to 9 of them) reuse one float64 copy when the codes fit in
    one block, instead of converting them again each pass; results do not change (same values)."""
    from latentsweep.alignment import axis_alignment

    codes = posterior().mu
    call = {"clusters": lambda: latentsweep.clusters(codes, torch.arange(N) % 4),
            "principal_directions": lambda: latentsweep.principal_directions(codes),
            "axis_alignment": lambda: axis_alignment(codes)}[function]
    conversions = ("double", "to", "copy_")  # (a pass's blocks are copied into its buffer)
    with RowOps(N, *conversions) as ops:
        call()
    # (clusters: one pass for each latent's largest magnitude, one for the statistics; there were 3 and 4)
    assert sum(ops.counts.values()) == (2 if function == "clusters" else 1), ops.counts


def test_principal_directions_match_the_svd():
    codes = posterior().mu
    got = latentsweep.principal_directions(codes)
    centred = codes.double() - codes.double().mean(0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    torch.testing.assert_close(got.explained_variance, (singular**2 / (N - 1)).float(), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(got.vectors.abs(), vh.abs().float(), rtol=0, atol=1e-4)


class Encoder(torch.nn.Module):
    """(mu, logvar) of [B, 3] inputs: x itself and x - 1."""

    def forward(self, x):
        return x, x - 1


def test_encode_checks_finite_codes_without_masks():
    """encode checks every batch's codes for NaN/Inf: a finite sum settles it (isfinite's masks
    cost ~23 us a batch and output, 10% of encoding 10^5 inputs through a small MLP)."""
    data = torch.randn(1000, 3)
    with RowOps(100, "isfinite") as ops:
        posterior = latentsweep.encode(Encoder(), data, batch_size=100, progress=False)
    assert ops.counts["isfinite"] == 0
    assert torch.equal(posterior.mu, data) and torch.equal(posterior.logvar, data - 1)


def test_encode_tells_overflowing_sums_from_nonfinite_codes():
    """Codes whose sum overflows are finite: not refused; NaN and Inf are, naming their rows."""
    big = torch.full((10, 3), 6e4, dtype=torch.float16)  # (sums to inf in float16, not in float32)
    assert latentsweep.encode(lambda x: x, big, progress=False).mu.dtype == torch.float16
    huge = torch.full((10, 3), 3e38)  # (sums to inf in float32)
    assert torch.equal(latentsweep.encode(lambda x: x, huge, progress=False).mu, huge)
    for bad in (float("nan"), float("inf"), -float("inf")):
        data = torch.randn(10, 3)
        data[7, 1] = bad
        with pytest.raises(ValueError, match=r"NaN/Inf for batch 0, in 1 row\(s\) of the data: 7"):
            latentsweep.encode(lambda x: x, data, progress=False)
    opposite = torch.randn(10, 3)
    opposite[2, 0], opposite[5, 2] = float("inf"), -float("inf")  # (sums to NaN)
    with pytest.raises(ValueError, match=r"in 2 row\(s\) of the data: 2, 5"):
        latentsweep.encode(lambda x: x, opposite, progress=False)


def test_rows_nonfinite_of_any_dtype_and_shape():
    """The one rule for rows holding NaN/Inf (encode's batches, the decoder's probe, the CLI's
    --data): None when all are finite, else the rows, for any dtype and [N, ...] shape."""
    from latentsweep._checks import rows_nonfinite

    assert rows_nonfinite(torch.zeros(0, 3)) is None
    for finite in (torch.ones(5, 3, dtype=torch.uint8), torch.ones(4, dtype=torch.bool), torch.full((4, 2), 3e38),
                   torch.randn(3, 2, 2, dtype=torch.complex64)):
        assert rows_nonfinite(finite) is None, finite.dtype
    images = torch.zeros(3, 2, 2, dtype=torch.bfloat16)
    images[1, 0, 1] = float("inf")
    assert rows_nonfinite(images).tolist() == [False, True, False]
    values = torch.tensor([1 + 2j, complex(1, float("nan")), 3j])
    assert rows_nonfinite(values).tolist() == [False, True, False]
