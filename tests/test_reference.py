"""Checks of the pure-PyTorch references themselves, independent of the extension: Philox
against Random123's published known-answer vectors, the 32x32-bit product without int64
overflow, the counter layout and the grid/values references against naive loops."""

from __future__ import annotations

import math
import random

import pytest
import scipy.special
import scipy.stats
import torch

import reference as R


@pytest.mark.parametrize("counter, key, expected", R.PHILOX_KAT)
def test_philox_known_answers_python_ints(counter, key, expected):
    assert R.philox4x32_10_int(counter, key) == expected


@pytest.mark.parametrize("counter, key, expected", R.PHILOX_KAT)
def test_philox_known_answers_tensors(counter, key, expected):
    out = R.philox4x32_10([torch.tensor(c) for c in counter], key)
    assert tuple(int(v) for v in out) == expected


def test_philox_tensor_matches_python_ints_on_random_counters():
    rng = random.Random(1234)
    counters = [tuple(rng.getrandbits(32) for _ in range(4)) for _ in range(500)]
    keys = [(rng.getrandbits(32), rng.getrandbits(32)) for _ in range(500)]
    for key in keys[:5]:
        words = R.philox4x32_10([torch.tensor([c[q] for c in counters]) for q in range(4)], key)
        got = list(zip(*(w.tolist() for w in words)))
        assert got == [R.philox4x32_10_int(c, key) for c in counters]


def test_mulhilo_exact_at_extremes():
    a = torch.tensor([0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xDEADBEEF])
    for b in (R.PHILOX_M0, R.PHILOX_M1, 0xFFFFFFFF, 1, 0):
        hi, lo = R.mulhilo32(a, b)
        for x, h, l in zip(a.tolist(), hi.tolist(), lo.tolist()):
            assert (h, l) == ((x * b) >> 32, (x * b) & R.MASK32)
            assert 0 <= h <= R.MASK32 and 0 <= l <= R.MASK32


def test_dim_layout_is_a_bijection_onto_block_words():
    dims = torch.arange(4096)
    block, word = R.block_and_word(dims)
    pairs = set(zip(block.tolist(), word.tolist()))
    assert len(pairs) == dims.numel()
    # Block 8h + l, word q -> dim 32h + 8q + l
    h, l = block // 8, block % 8
    assert torch.equal(32 * h + 8 * word + l, dims)
    assert R.block_and_word(torch.tensor([0, 7, 8, 31, 32, 39, 40]))[0].tolist() == [0, 7, 0, 7, 8, 15, 8]


def test_counter_words_layout():
    row = torch.tensor([(0xABCD << 32) | 0x12345678])
    sample = torch.tensor([(0x1234 << 32) | 0x9ABCDEF0])
    words = R.counter_words(row, sample, torch.tensor([5]), R.PRIOR_STREAM)
    assert [int(w) for w in words] == [5, 0x9ABCDEF0, 0x12345678, 0xABCD | (0x1234 << 16) | (1 << 31)]
    assert R.seed_key(2**64 - 1) == (R.MASK32, R.MASK32)
    assert R.seed_key(-1) == (R.MASK32, R.MASK32)
    assert R.seed_key((7 << 32) | 9) == (9, 7)


def test_uniforms_are_in_open_zero_closed_one():
    bits = torch.tensor([0, 1, 2, 3, 0xFFFFFFFE, 0xFFFFFFFF])
    u64 = R.uniform_f64(bits)
    assert u64[0] == 2.0**-32 and u64[-1] == 1.0 - 2.0**-32
    assert torch.all(u64 > 0) and torch.all(u64 < 1)
    u32 = R.uniform_f32(bits)
    assert u32[-1] == 1.0  # rounds up to 1 in float32: the radius is 0, still finite
    assert torch.equal(u32, u32.float().double())
    assert torch.all(u32 > 0)


def test_uniform_f32_is_a_single_rounding():
    # Compare against an exact rational computation of the FMA for random words.
    rng = random.Random(7)
    words = [rng.getrandbits(32) for _ in range(2000)] + [0xFFFFFFFF, 0x80000001, 0x1FFFFFF]
    got = R.uniform_f32(torch.tensor(words)).tolist()
    for w, u in zip(words, got):
        a = float(torch.tensor(w >> 1, dtype=torch.int64).float())
        exact = a * 2.0**-31 + 2.0**-32  # exact in float64
        assert u == float(torch.tensor(exact, dtype=torch.float64).float())


def test_box_muller_of_reference_is_standard_normal():
    eps = R.reference_eps(3, torch.arange(200), torch.arange(50), torch.arange(100), 0).flatten()
    assert abs(float(eps.mean())) < 6 / math.sqrt(eps.numel())
    assert abs(float(eps.var()) - 1) < 6 * math.sqrt(2 / eps.numel())
    assert scipy.stats.kstest(eps.numpy(), "norm").pvalue > 1e-6


def test_reference_traversal_codes_matches_loop():
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(3, 5, generator=g, dtype=torch.float64)
    dims = [4, 0]
    values = torch.randn(3, 2, 4, generator=g, dtype=torch.float64)
    grid = R.reference_traversal_codes(anchors, dims, values)
    row = 0
    for a in range(3):
        for k in range(2):
            for s in range(4):
                expected = anchors[a].clone()
                expected[dims[k]] = values[a, k, s]
                assert torch.equal(grid[row], expected)
                row += 1
    assert torch.equal(R.reference_traversal_codes(anchors, dims, values, start=5, count=7), grid[5:12])


def test_reference_traversal_values_quantile_uses_ndtri():
    anchors = torch.zeros(1, 2)
    got = R.reference_traversal_values(anchors, mode="quantile", span=2.5, steps=7, prior_std=1.5)
    levels = torch.linspace(scipy.special.ndtr(-2.5), scipy.special.ndtr(2.5), 7, dtype=torch.float64)
    expected = 1.5 * torch.from_numpy(scipy.special.ndtri(levels.numpy()))
    torch.testing.assert_close(got[0, 1], expected, rtol=1e-12, atol=1e-12)
    assert got[0, 0, 0] == pytest.approx(-2.5 * 1.5, rel=1e-12)


def test_normal_icdf_is_accurate_in_the_tails():
    p = torch.tensor([1e-12, 2.866515718791939e-07, 0.02275, 0.3, 0.5, 0.9, 0.999999], dtype=torch.float64)
    expected = torch.from_numpy(scipy.special.ndtri(p.numpy()))
    torch.testing.assert_close(R.normal_icdf(p), expected, rtol=1e-14, atol=1e-14)
