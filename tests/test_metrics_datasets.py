"""The Shapes data set: deterministic rendering, factors that change the image, fixing
factors, the sampling protocol and argument checks."""

from __future__ import annotations

import pytest
import torch

from latentsweep.datasets import FACTOR_NAMES, Shapes


def test_protocol_and_shapes():
    data = Shapes()
    assert data.factor_sizes == [3, 6, 8, 16, 16] and data.factor_names == list(FACTOR_NAMES)
    factors = data.sample_factors(50, torch.Generator().manual_seed(0))
    assert factors.shape == (50, 5) and factors.dtype == torch.int64
    assert bool((factors >= 0).all()) and bool((factors < torch.tensor(data.factor_sizes)).all())
    images = data.observations(factors)
    assert images.shape == (50, 1, 32, 32) and images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) == 1.0
    assert torch.equal(factors, data.sample_factors(50, torch.Generator().manual_seed(0)))


def test_rendering_is_deterministic_and_the_cache_changes_nothing():
    factors = Shapes().sample_factors(64, torch.Generator().manual_seed(1))
    fresh = Shapes()
    first = fresh.observations(factors)
    assert torch.equal(first, fresh.observations(factors))  # served from the cache
    direct = fresh._render(factors)  # no cache, all five factors given
    assert torch.equal(first[:, 0], direct)


def test_each_factor_changes_the_image_as_expected():
    data = Shapes()
    base = torch.tensor([[0, 5, 1, 8, 8]])
    image = data.observations(base)[0, 0]
    area = float(image.sum())
    for j in range(5):
        other = base.clone()
        other[0, j] = (other[0, j] + 3) % data.factor_sizes[j] if j else 1
        assert not torch.equal(data.observations(other)[0, 0], image), FACTOR_NAMES[j]
    smaller = data.observations(torch.tensor([[0, 0, 1, 8, 8]]))[0, 0]
    assert float(smaller.sum()) < 0.5 * area  # scale 0.5 has a quarter of the area
    right = data.observations(torch.tensor([[0, 5, 1, 15, 8]]))[0, 0]
    columns = torch.arange(32, dtype=torch.float32)
    assert float((right.sum(0) * columns).sum() / right.sum()) > float((image.sum(0) * columns).sum() / image.sum()) + 5
    circle = torch.tensor([[1, 5, 0, 8, 8], [1, 5, 4, 8, 8]])
    turned = data.observations(circle)[:, 0]
    assert (turned[0] - turned[1]).abs().max() <= 0.5  # a circle barely changes when turned


def test_fixed_factors():
    data = Shapes(fixed={"shape": 2, 4: 3})
    assert data.factor_names == ["scale", "orientation", "x"] and data.factor_sizes == [6, 8, 16]
    factors = data.sample_factors(5, torch.Generator().manual_seed(0))
    assert factors.shape == (5, 3)
    full = torch.cat([torch.full((5, 1), 2), factors, torch.full((5, 1), 3)], dim=1)
    assert torch.equal(data.observations(factors), Shapes().observations(full))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(resolution=4), ValueError, "resolution"),
        (dict(resolution=48), ValueError, "multiple of 32"),
        (dict(fixed={"colour": 1}), ValueError, "fixed"),
        (dict(fixed={"shape": 3}), ValueError, "fixed"),
        (dict(fixed=dict.fromkeys(FACTOR_NAMES, 0)), ValueError, "at least one"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Shapes(**kwargs)


def test_observation_errors():
    data = Shapes()
    with pytest.raises(ValueError, match="shape"):
        data.observations(torch.tensor([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"\[n, 5\]"):
        data.observations(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="integers"):
        data.observations(torch.zeros(2, 5))


def test_labelled_arrays_refuse_factors_a_cast_would_merge():
    """inf, 1e30 and 2e30 all wrapped to one int64 (factor_sizes [2] for three values)."""
    import numpy as np

    from latentsweep.datasets import LabelledArrays

    with pytest.raises(ValueError, match="LabelledArrays: factors has 1 non-finite"):
        LabelledArrays(np.zeros((4, 1)), np.array([[np.inf], [0.0], [1e30], [2e30]]))
    with pytest.raises(ValueError, match="LabelledArrays: factors must lie within int64's range"):
        LabelledArrays(np.zeros((4, 1)), np.array([[0.0], [0.0], [1e30], [2e30]]))
    with pytest.raises(TypeError, match="LabelledArrays: factors must hold numbers, got a numpy array of dtype object"):
        LabelledArrays(np.zeros((2, 1)), np.array([[1], [None]], dtype=object))
    with pytest.raises(TypeError, match="LabelledArrays: factors must hold integers"):
        LabelledArrays(np.zeros((2, 1)), np.array([[0.5], [1.0]]))
    assert LabelledArrays(np.zeros((3, 1)), np.array([[0.0], [2.0**60], [-(2.0**63)]])).factor_sizes == [3]
