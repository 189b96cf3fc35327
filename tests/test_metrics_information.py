"""Mutual information, entropy and the histogram discretiser against plain-numpy references
and disentanglement_lib's utils tests."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import metrics_reference as ref
from latentsweep.metrics import entropy, histogram_discretize, mutual_information


def test_histogram_discretizer_matches_disentanglement_lib_example():
    target = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T
    result = histogram_discretize(torch.from_numpy(target), 3)
    assert result.T.tolist() == [[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]


def test_discrete_entropy_and_mutual_information_examples():
    target = torch.tensor([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_allclose(entropy(target).numpy(), [np.log(3), np.log(3)], rtol=1e-15)
    xs = torch.tensor([[1, 2, 1, 2], [1, 1, 2, 2]]).T
    ys = torch.tensor([[1, 2, 1, 2], [2, 2, 1, 1]]).T
    np.testing.assert_allclose(mutual_information(xs, ys).numpy(), [[np.log(2), 0.0], [0.0, np.log(2)]], atol=1e-15)


@pytest.mark.parametrize("bins", [1, 2, 7, 20])
def test_discretizer_is_numpy_histogram_digitize_exactly(bins):
    rng = np.random.default_rng(bins)
    codes = np.concatenate([rng.standard_normal((500, 3)), np.full((500, 1), 0.7),
                            np.repeat(np.linspace(-1, 1, 5), 100)[:, None]], axis=1)
    got = histogram_discretize(torch.from_numpy(codes), bins).numpy()
    np.testing.assert_array_equal(got, ref.histogram_discretize(codes, bins))


@given(
    n=st.integers(2, 300),
    p=st.integers(1, 4),
    q=st.integers(1, 4),
    ka=st.integers(1, 12),
    kb=st.integers(1, 12),
    offset=st.integers(-5, 5),
    seed=st.integers(0, 2**31),
)
def test_mutual_information_matches_reference(n, p, q, ka, kb, offset, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, ka, (n, p)) * 3 + offset  # arbitrary label values, not 0..K-1
    b = rng.integers(0, kb, (n, q)) - offset
    b[:, 0] = a[:, 0] // 2  # some dependence
    got = mutual_information(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, ref.mutual_information_matrix(a, b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(entropy(torch.from_numpy(a)).numpy(), [ref.entropy(a[:, i]) for i in range(p)],
                               rtol=1e-12, atol=1e-15)


def test_mutual_information_of_a_column_with_itself_is_its_entropy():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.integers(0, 9, (1000, 3)))
    np.testing.assert_allclose(torch.diagonal(mutual_information(a, a)).numpy(), entropy(a).numpy(), rtol=1e-12)


@pytest.mark.parametrize("values", [20, 60])  # 20 x 20 cells: one bincount; 60 x 60 > 400 points: sorted
def test_mutual_information_in_slices_equals_one_pass(monkeypatch, values):
    from latentsweep.metrics import _information

    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.integers(0, values, (400, 7)))
    whole = mutual_information(a, a)
    for pairs in (7, 3, 1):  # a row of pairs per slice, parts of a row, one pair
        monkeypatch.setattr(_information, "_MAX_INDEX_ELEMENTS", 400 * pairs + 1)
        torch.testing.assert_close(mutual_information(a, a), whole, rtol=0, atol=0)
    np.testing.assert_allclose(whole.numpy(), ref.mutual_information_matrix(a.numpy(), a.numpy()), rtol=1e-13)


MANY_VALUES = """
import resource, sys
import numpy as np
import latentsweep as ls

rng = np.random.default_rng(0)
ls.metrics.mutual_information(rng.integers(0, 5, (100, 2)), rng.integers(0, 5, (100, 2)))  # everything loaded
used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (used + (512 << 20), hard))
n = 40_000
a, b = rng.permutation(n)[:, None], rng.permutation(n)[:, None]
print(repr(float(ls.metrics.mutual_information(a, np.c_[b, b // 1000])[0, 0])))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_mutual_information_memory_grows_with_the_points_not_with_the_values_squared():
    """Dense K_a x K_b joint tables needed 2.3 GB for two columns of 8,000 distinct values and
    13 GB for 40,000; the non-zero cells (at most N) fit in 512 MiB of address space. Every
    cell of two columns of distinct values holds one point: I = log N."""
    done = subprocess.run([sys.executable, "-c", MANY_VALUES], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout) == pytest.approx(np.log(40_000), rel=1e-14)


def test_matches_sklearn_mutual_info_score():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    a = rng.integers(0, 20, 5000)
    b = (a + rng.integers(0, 4, 5000)) % 13
    got = float(mutual_information(torch.from_numpy(a[:, None]), torch.from_numpy(b[:, None])))
    assert got == pytest.approx(sklearn_metrics.mutual_info_score(b, a), rel=1e-12)


def test_runs_on_the_device(device):
    rng = np.random.default_rng(3)
    codes = torch.from_numpy(rng.standard_normal((1000, 4))).to(device)
    labels = histogram_discretize(codes, 20)
    assert labels.device.type == torch.device(device).type
    factors = torch.from_numpy(rng.integers(0, 5, (1000, 2))).to(device)
    got = mutual_information(labels, factors).cpu().numpy()
    np.testing.assert_allclose(got, ref.mutual_information_matrix(labels.cpu().numpy(), factors.cpu().numpy()), rtol=1e-10, atol=1e-12)


def test_a_single_valued_column_has_exactly_zero_information():
    """Its log terms cancel only up to rounding (about 1e-16 for these counts); the modularity
    rule "no information -> 0" needs an exact 0."""
    rng = np.random.default_rng(4)
    factors = torch.from_numpy(rng.integers(0, 4, (1000, 2)))
    labels = torch.cat([factors, torch.full((1000, 1), 7)], dim=1)
    mi = mutual_information(labels, factors)
    assert torch.equal(mi[2], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(mutual_information(factors, labels)[:, 2], torch.zeros(2, dtype=torch.float64))
    assert float(entropy(labels)[2]) == 0.0


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: mutual_information(np.arange(5), np.arange(5)), ValueError, r"mutual_information: a must be 2-D"),
        (lambda: mutual_information(np.zeros((4, 1), int), np.zeros((3, 1), int)), ValueError, "a has 4 rows, b has 3"),
        (lambda: mutual_information(np.zeros((4, 1)) + 0.5, np.zeros((4, 1), int)), TypeError, "mutual_information: a must hold integers"),
        (lambda: mutual_information(np.zeros((2, 1), object), np.zeros((2, 1), int)), TypeError, "mutual_information: a must hold numbers"),
        (lambda: entropy(np.zeros(5, int)), ValueError, "entropy: labels must be 2-D"),
        (lambda: entropy(np.zeros((0, 2), int)), ValueError, r"entropy: labels must be 2-D \[N, P\] with N, P >= 1"),
        (lambda: entropy(np.array([[np.inf], [0.0]])), ValueError, "entropy: labels has 1 non-finite"),
        (lambda: histogram_discretize(np.ones((5, 2)), 0), ValueError, "histogram_discretize: bins must be >= 1"),
        (lambda: histogram_discretize(np.ones((5, 2)), 10**9), ValueError, "histogram_discretize: bins must be <= 100000"),
        (lambda: histogram_discretize(np.array([[np.nan], [1.0]]), 3), ValueError, "histogram_discretize: codes has 1 non-finite"),
        (lambda: histogram_discretize([[1.0], [2.0]], 3), TypeError, "histogram_discretize: codes must be a torch.Tensor or a numpy array"),
    ],
)
def test_information_helpers_check_their_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_information_helpers_take_numpy_arrays():
    rng = np.random.default_rng(5)
    codes = rng.standard_normal((300, 2))
    np.testing.assert_array_equal(histogram_discretize(codes, 7).numpy(), ref.histogram_discretize(codes, 7))
    a = rng.integers(0, 4, (300, 2))
    np.testing.assert_allclose(mutual_information(a, a).numpy(), ref.mutual_information_matrix(a, a), rtol=1e-10)
    np.testing.assert_allclose(entropy(a).numpy(), [ref.entropy(a[:, 0]), ref.entropy(a[:, 1])], rtol=1e-12)
