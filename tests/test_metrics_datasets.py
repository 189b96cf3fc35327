"""The Shapes data set: deterministic rendering, factors that change the image, fixing
factors, the sampling protocol and argument checks."""

from __future__ import annotations

import numpy as np
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
        # found adversarially: True was factor 1, the last of two keys for one factor won, a str
        # failed in dict() ("dictionary update sequence element #0 has length 1")
        (dict(fixed={True: 0}), ValueError, "fixed keys must be factor names"),
        (dict(fixed={"shape": 0, 0: 1}), ValueError, "fixed names factor 'shape' twice"),
        (dict(fixed="shape"), TypeError, "fixed must be a dict"),
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


def test_labelled_arrays_refuse_observations_and_calls_that_failed_inside_numpy_or_torch():
    """Raw errors before: numpy's "inhomogeneous shape" for ragged rows, torch's "can't convert
    np.ndarray of type numpy.object_" for None or a str, "Cannot copy out of meta tensor";
    complex and sparse observations were taken (the encoder failed later)."""
    import numpy as np

    from latentsweep.datasets import LabelledArrays

    x, f = torch.rand(6, 4), torch.tensor([[0, 1], [1, 0], [0, 0], [1, 1], [2, 0], [2, 1]])
    fn = "latentsweep.datasets.LabelledArrays"
    with pytest.raises(ValueError, match=f"{fn}: factors must be a tensor or a rectangular array of numbers"):
        LabelledArrays(x, [[1, 2], [1]] * 3)
    for bad in (None, "images"):
        with pytest.raises(TypeError, match=f"{fn}: observations must be a tensor or an array of numbers"):
            LabelledArrays(bad, f)
    with pytest.raises(TypeError, match=f"{fn}: observations must hold numbers, got a numpy array of dtype object"):
        LabelledArrays(np.array([[None] * 4] * 6, dtype=object), f)
    with pytest.raises(TypeError, match=f"{fn}: observations must hold real numbers, got torch.complex64"):
        LabelledArrays(x.to(torch.complex64), f)
    with pytest.raises(TypeError, match=f"{fn}: observations must be a dense"):
        LabelledArrays(x.to_sparse(), f)
    with pytest.raises(ValueError, match=f"{fn}: factors is on the meta device"):
        LabelledArrays(x, f.to("meta"))
    assert LabelledArrays(x.tolist(), f.tolist()).factor_sizes == [3, 2]  # (lists still work)


def test_labelled_arrays_methods_check_their_arguments():
    """sample_factors(1.5) drew 1 row and (-1) failed in torch; sample_factors_matching(5, ...)
    raised an IndexError and float values were reported as "no observation has factor 0 = 0";
    observations() truncated float factors (0.7 -> 0) and returned another row, without a word."""
    from latentsweep.datasets import LabelledArrays

    data = LabelledArrays(torch.rand(6, 4), torch.tensor([[0, 1], [1, 0], [0, 0], [1, 1], [2, 0], [2, 1]]))
    fn = "latentsweep.datasets.LabelledArrays"
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match=f"{fn}.sample_factors: n must be an int, got float"):
        data.sample_factors(1.5, generator)
    with pytest.raises(ValueError, match=f"{fn}.sample_factors: n must be >= 0"):
        data.sample_factors(-1, generator)
    with pytest.raises(ValueError, match=rf"{fn}.sample_factors: the factors \[n=1000000000000000, F=2\] needs"):
        data.sample_factors(10**15, generator)
    with pytest.raises(ValueError, match=f"{fn}.sample_factors_matching: index=5 is out of range for 2 factor"):
        data.sample_factors_matching(5, torch.tensor([0]), generator)
    with pytest.raises(TypeError, match=f"{fn}.sample_factors_matching: values must hold integers"):
        data.sample_factors_matching(0, torch.tensor([0.5]), generator)
    with pytest.raises(TypeError, match=f"{fn}.observations: factors must be integers, got torch.float32"):
        data.observations(torch.tensor([[0.7, 1.2]]))
    assert data.sample_factors(np.int64(3), generator).shape == (3, 2)
    assert torch.equal(data.observations(torch.tensor([[0, 1]], dtype=torch.int32)), data._observations[:1])


def test_numpy_integer_keys_fix_factors_and_huge_draws_are_refused_before_allocating():
    """np.int64(4) was refused as a key; sample_factors(10**13) failed in the allocator."""
    assert Shapes(fixed={np.int64(4): 3}).factor_names == ["shape", "scale", "orientation", "x"]
    with pytest.raises(ValueError, match=r"Shapes.sample_factors: the factors \[n=10000000000000, F=5\] needs"):
        Shapes().sample_factors(10**13)


def test_uint64_factors_beyond_int64_are_refused_not_wrapped():
    """Factors of 2**63 and more wrapped to negative int64 labels (-1, -2**63): shown wrong."""
    from latentsweep.datasets import LabelledArrays

    observations = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="factors must lie within int64's range, got a value of 18446744073709551615"):
        LabelledArrays(observations, np.array([[2**64 - 1, 0], [2**63, 1]], dtype=np.uint64))
    assert LabelledArrays(observations, np.array([[5, 0], [7, 1]], dtype=np.uint64)).factor_sizes == [2, 2]


@pytest.mark.parametrize("resolution, same", [(32, [((0, 3, 0), (0, 4, 0))]), (64, [])])
def test_shapes_images_are_distinct_but_for_the_documented_pairs(resolution, same):
    """Every image is a template (shape, scale, orientation at x = y = 0) shifted by whole
    pixels, so distinct templates mean distinct images. The circle's orientations coincide by
    design; the docstring names the only other coincidence (the upright square's scales 3 and
    4 at R = 32)."""
    import itertools

    shapes = Shapes(resolution=resolution)
    corners = [(k, s, o) for k, s, o in itertools.product(range(3), range(6), range(8)) if k != 1]
    factors = torch.tensor([(*c, 0, 0) for c in corners])
    images = shapes.observations(factors).flatten(1)
    equal = [(corners[i], corners[j]) for i, j in itertools.combinations(range(len(corners)), 2)
             if torch.equal(images[i], images[j])]
    assert equal == same
