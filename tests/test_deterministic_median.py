"""diagnose's median posterior SD under torch.use_deterministic_algorithms(True): torch's
nanmedian with indices has no deterministic CUDA kernel (it raises there), so on CUDA the lower
median is read from a sort, which must give nanmedian's value exactly."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentsweep
from latentsweep.diagnosis import lower_nanmedian, sorted_lower_nanmedian


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 5), nan_share=st.sampled_from([0.0, 0.3, 0.8, 1.0]),
       ties=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31 - 1))
def test_sorted_route_equals_nanmedian(rows, cols, nan_share, ties, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=generator, dtype=dtype)
    if ties:
        x = x.round()
    x[torch.rand(rows, cols, generator=generator) < nan_share] = math.nan
    expected = x.nanmedian(0).values
    got = sorted_lower_nanmedian(x)
    assert torch.equal(got.isnan(), expected.isnan())
    assert torch.equal(got.nan_to_num(7.0), expected.nan_to_num(7.0))


def test_sorted_route_takes_the_lower_of_two_middles():
    x = torch.tensor([[4.0, math.nan], [1.0, 2.0], [3.0, math.nan], [2.0, 5.0]])
    assert sorted_lower_nanmedian(x).tolist() == [2.0, 2.0]


def _small_sd_medians(device: str) -> list[float]:
    """The per-dim median posterior SDs diagnose reports (small-posterior-sd fires on every
    dim: confident encoder), under deterministic algorithms."""
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 6, generator=generator, dtype=torch.float64)
    logvar = torch.randn(64, 6, generator=generator, dtype=torch.float64) - 12.0
    logvar[::5, 2] = math.nan  # a column with rows left out: the median over the rest
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        diagnosis = latentsweep.diagnose(latentsweep.Posterior(mu.to(device), logvar.to(device)))
    finally:
        torch.use_deterministic_algorithms(previous)
    flag = next(f for f in diagnosis.flags if f.code == "small-posterior-sd")
    assert flag.dims == list(range(6))
    return flag.stats["median_posterior_sd"]


def test_median_posterior_sd_under_deterministic_algorithms_on_the_cpu():
    generator = torch.Generator().manual_seed(0)
    torch.randn(64, 6, generator=generator, dtype=torch.float64)
    logvar = torch.randn(64, 6, generator=generator, dtype=torch.float64) - 12.0
    logvar[::5, 2] = math.nan
    expected = torch.exp(0.5 * logvar.nanmedian(0).values)
    got = _small_sd_medians("cpu")
    assert got == expected.tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_median_posterior_sd_under_deterministic_algorithms_on_cuda():
    assert _small_sd_medians("cuda") == _small_sd_medians("cpu")  # raised in nanmedian before


def test_lower_nanmedian_keeps_nanmedian_on_the_cpu(monkeypatch):
    monkeypatch.setattr("latentsweep.diagnosis.sorted_lower_nanmedian", lambda x: pytest.fail("sorted on the CPU"))
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert lower_nanmedian(torch.tensor([[1.0], [2.0]])).tolist() == [1.0]
    finally:
        torch.use_deterministic_algorithms(previous)
