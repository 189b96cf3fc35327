"""Defects found by an adversarial pass over the results users hold (TraversalResult) and the
ground-truth data sets (Shapes, LabelledArrays). Each test failed before its fix."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import _checks
from latentsweep.datasets import LabelledArrays, Shapes

MIB = 2**20
SHAPES = "latentsweep.datasets.Shapes"
LABELLED = "latentsweep.datasets.LabelledArrays"


def _sweep(**kwargs):
    torch.manual_seed(0)
    decoder = torch.nn.Linear(4, 6)
    return ls.traverse(decoder, torch.randn(2, 4), steps=3, progress=False, **kwargs)


def _labelled():
    return LabelledArrays(torch.rand(6, 3), torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]))


# ---- TraversalResult -------------------------------------------------------------------------
def test_results_compare_by_value_instead_of_raising(tmp_path):
    """The dataclass's ``==`` compared tensors with ``==``: ``result == copy.deepcopy(result)``
    and ``result in [other]`` raised "Boolean value of Tensor with more than one value is
    ambiguous"."""
    result = _sweep()
    twin = copy.deepcopy(result)
    assert result == twin and result in [twin] and result != "result"
    twin.effect[0, 0, 0] += 1
    assert result != twin
    assert _sweep(keep_outputs=False) != result  # outputs None against a tensor
    with pytest.raises(TypeError, match="unhashable"):
        hash(result)
    path = tmp_path / "sweep.zarr"
    _sweep(out=str(path))
    assert ls.open_sweep(path) == ls.open_sweep(path)  # outputs read from one store


# ---- the data sets' generator ----------------------------------------------------------------
@pytest.mark.parametrize("generator, kind", [(0, "int"), ("seed", "str"),
                                             (np.random.default_rng(0), "numpy.random._generator.Generator")])
def test_data_sets_name_a_generator_that_is_not_one(generator, kind):
    """An int seed, a str or a numpy Generator failed inside torch.randint ("randint() received an
    invalid combination of arguments")."""
    data = _labelled()
    for fn, call in [
        (f"{SHAPES}.sample_factors", lambda: Shapes().sample_factors(3, generator)),
        (f"{LABELLED}.sample_factors", lambda: data.sample_factors(3, generator)),
        (f"{LABELLED}.sample_factors_matching", lambda: data.sample_factors_matching(0, torch.tensor([1]), generator)),
    ]:
        with pytest.raises(TypeError, match=f"{fn}: generator must be a torch.Generator or None, got {kind}"):
            call()
    draws = [Shapes().sample_factors(4, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*draws) and Shapes().sample_factors(2, None).shape == (2, 5)


# ---- factor tensors given to observations / sample_factors_matching -------------------------
def test_shapes_observations_refuse_complex_meta_sparse_and_wrapped_factors():
    """Complex factors were cast to their real parts with only torch's warning (images of other
    factors); meta and sparse ones failed in torch (NotImplementedError); uint64 beyond int64 was
    reported with its wrapped, negative value."""
    data, fn = Shapes(), f"{SHAPES}.observations"
    good = torch.tensor([[1, 2, 3, 4, 5]])
    with pytest.raises(TypeError, match=f"{fn}: factors must be integers, got torch.complex64"):
        data.observations(good.to(torch.complex64))
    with pytest.raises(ValueError, match=f"{fn}: factors is on the meta device"):
        data.observations(good.to("meta"))
    with pytest.raises(TypeError, match=f"{fn}: factors must be a dense"):
        data.observations(good.to_sparse())
    with pytest.raises(ValueError, match=f"{fn}: factors must lie within int64's range, got a value of {2**63 + 5}"):
        data.observations(torch.full((1, 5), 2**63 + 5, dtype=torch.uint64))
    assert torch.equal(data.observations(good.to(torch.uint8)), data.observations(good))


def test_labelled_arrays_refuse_meta_sparse_and_wrapped_factor_values():
    """Meta and sparse factors failed in torch ("Cannot copy out of meta tensor", "Cannot access
    data pointer"); a uint64 value beyond int64 raised torch's overflow RuntimeError in
    sample_factors_matching and was reported wrapped (-9223372036854775807) by observations."""
    data = _labelled()
    fn = f"{LABELLED}.observations"
    with pytest.raises(ValueError, match=f"{fn}: factors is on the meta device"):
        data.observations(torch.tensor([[1, 1]], device="meta"))
    with pytest.raises(TypeError, match=f"{fn}: factors must be a dense"):
        data.observations(torch.tensor([[1, 1]]).to_sparse())
    with pytest.raises(ValueError, match=f"{fn}: factors must lie within int64's range, got a value of {2**63 + 1}"):
        data.observations(torch.tensor([[2**63 + 1, 0]], dtype=torch.uint64))
    fn = f"{LABELLED}.sample_factors_matching"
    with pytest.raises(ValueError, match=f"{fn}: values is on the meta device"):
        data.sample_factors_matching(0, torch.tensor([1], device="meta"))
    with pytest.raises(ValueError, match=f"{fn}: values must lie within int64's range, got a value of {2**63 + 1}"):
        data.sample_factors_matching(0, torch.tensor([2**63 + 1], dtype=torch.uint64))
    rows = data.sample_factors_matching(0, torch.tensor([2, 0], dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert rows[:, 0].tolist() == [2, 0]


# ---- LabelledArrays' constructor --------------------------------------------------------------
def test_labelled_arrays_keep_their_own_labels():
    """int64 CPU factors were kept as the caller's tensor: changing it afterwards changed what
    sample_factors drew, while observations() still looked rows up by the old values."""
    factors = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    data = LabelledArrays(torch.rand(4, 3), factors)
    factors.add_(10)
    drawn = data.sample_factors(8, torch.Generator().manual_seed(0))
    assert int(drawn.max()) <= 1 and data.factor_sizes == [2, 2]
    assert data.observations(drawn).shape == (8, 3)


def test_labelled_arrays_take_factor_names_from_any_iterable_and_refuse_others():
    """A generator of names was used up by the count and the names silently replaced by
    "factor 0", ...; an int failed in list() ("'int' object is not iterable"); a str was taken as
    one name per letter."""
    x, f = torch.rand(4, 3), torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    assert LabelledArrays(x, f, factor_names=(n for n in ["colour", "size"])).factor_names == ["colour", "size"]
    for bad in (3, "ab"):
        with pytest.raises(TypeError, match=f"{LABELLED}: factor_names must be a list of F names, got"):
            LabelledArrays(x, f, factor_names=bad)
    with pytest.raises(ValueError, match=f"{LABELLED}: factor_names has 1 names for 2 factors"):
        LabelledArrays(x, f, factor_names=["colour"])


def test_labelled_arrays_refuse_non_finite_observations():
    """NaN observations were taken; evaluate then blamed the encoder ("representation returned
    NaN/Inf codes")."""
    x = torch.rand(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=rf"{LABELLED}: observations has 1 non-finite value\(s\).*index \(2, 1\)"):
        LabelledArrays(x, torch.tensor([[0], [1], [0], [1]]))


# ---- Shapes' memory ---------------------------------------------------------------------------
def test_shapes_refuse_tables_and_images_beyond_memory_before_allocating(monkeypatch):
    """resolution=1024's table of 36,864 images is 36 GiB, and observations of 10**7 rows 48 GiB
    at R = 32: both were allocated (the OS killed the process) instead of refused."""
    Shapes().observations(torch.zeros(1, 5, dtype=torch.int64))  # the shared R = 32 table, built first
    monkeypatch.setattr(_checks, "_memory_capacity", lambda device: 256 * MIB)
    fn = f"{SHAPES}.observations"
    with pytest.raises(ValueError, match=f"{fn}: the table of all 36,864 images at resolution 128 needs"):
        Shapes(resolution=128).observations(torch.zeros(1, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match=rf"{fn}: the images \[n=100000, 1, 32, 32\] needs .*ask for fewer rows"):
        Shapes().observations(torch.zeros(100_000, 5, dtype=torch.int64))
    assert Shapes().observations(torch.zeros(10, 5, dtype=torch.int64)).shape == (10, 1, 32, 32)


def test_labelled_arrays_observations_are_drawn_among_all_rows_with_the_factors():
    """observations() returned the first row with the factor values: 3000 observations with 12
    factor combinations were scored on 12 of them, and two latents of pure noise told the
    combinations apart as well as the factors' own (MIG 0.14 for codes whose MIG is 0.98)."""
    torch.manual_seed(0)
    n = 3000
    factors = torch.stack([torch.randint(0, 3, (n,)) * 5 - 7, torch.randint(0, 4, (n,)) * 1000], 1)
    observations = torch.cat([factors / 10 + 0.1 * torch.randn(n, 2), torch.randn(n, 2)], 1)
    data = LabelledArrays(observations, factors)
    drawn = data.sample_factors(1000, torch.Generator().manual_seed(0))
    seen = data.observations(drawn)
    assert torch.unique(seen, dim=0).shape[0] > 500
    assert torch.equal(data.observations(drawn), seen)  # the same factors, the same observations
    where = (seen[:, None] == observations[None]).all(-1).int().argmax(1)  # each one's row in the data
    assert torch.equal(factors[where], drawn)  # with exactly the factor values asked for
    assert ls.metrics.mig(seen, drawn) > 0.9


def test_interpolations_compare_by_value_and_own_their_change(tmp_path):
    """Interpolation's dataclass == compared tensors with == (a RuntimeError); its change was a
    view of the sweep's effect (zeroing one zeroed the other)."""
    import copy

    decoder = lambda z: torch.tanh(z @ torch.ones(3, 4))  # noqa: E731
    ends = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    path = ls.interpolate(decoder, ends[:1], ends[1:], steps=3, progress=False)
    assert path == copy.deepcopy(path) and path in [path]
    other = ls.interpolate(decoder, ends[:1], -ends[1:], steps=3, progress=False)
    assert path != other
    effect = path.sweep.effect.clone()
    path.change.zero_()
    assert torch.equal(path.sweep.effect, effect)


def test_stored_outputs_name_an_anchor_index_out_of_range(tmp_path):
    result = ls.traverse(lambda z: z * 2, torch.randn(2, 3), steps=3, out=tmp_path / "s.zarr", progress=False)
    with pytest.raises(IndexError, match=r"index 5 is out of bounds for the stored outputs' axis 0 \(the anchors\) "
                                         r"with size 2"):
        result.outputs[5]
    assert result.outputs[-2].shape == (3, 3, 3)
