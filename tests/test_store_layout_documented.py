"""The README's "Reading a store with other tools" is true: a store read with zarr or numpy
alone, laid out as it says, holds what the sweep returned."""

import numpy as np
import pytest
import torch
import zarr

import latentsweep as ls


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("layout")
    decoder, anchors = torch.nn.Linear(4, 6), torch.randn(3, 4)
    options = dict(steps=5, dims=[0, 2], batch_size=7, progress=False)
    return (ls.traverse(decoder, anchors, out=folder / "sweep.zarr", **options),
            ls.traverse(decoder, anchors, out=folder / "sweep.npy", **options), folder)


def test_a_zarr_store_read_with_zarr_alone(sweep):
    result, _, folder = sweep
    A, K, S = result.values.shape
    assert (A, K, S) == (3, 2, 5)
    arrays = {name: zarr.open_array(folder / "sweep.zarr" / name, mode="r")[:]
              for name in ("anchors", "dims", "values", "anchor_outputs", "outputs", "effect")}
    assert np.array_equal(arrays["anchors"], result.anchors.numpy())
    assert arrays["dims"].tolist() == result.dims.tolist() == [0, 2]
    assert np.array_equal(arrays["values"], result.values.numpy())
    assert np.array_equal(arrays["anchor_outputs"], result.anchor_outputs.numpy())
    assert arrays["outputs"].shape == (A * K * S, 6) and arrays["effect"].shape == (A * K * S,)
    outputs = np.asarray(result.outputs)
    a, k, s = 2, 1, 3  # grid point (a, k, s) is row (a K + k) S + s
    assert np.array_equal(arrays["outputs"][(a * K + k) * S + s], outputs[a, k, s])
    assert np.array_equal(arrays["outputs"].reshape(A, K, S, 6), outputs)
    assert np.array_equal(arrays["effect"].reshape(A, K, S), result.effect.numpy())


def test_an_npy_store_holds_the_grid_itself(sweep):
    result, from_npy, folder = sweep
    outputs = np.load(folder / "sweep.npy", mmap_mode="r")
    assert outputs.shape == (3, 2, 5, 6)
    assert np.array_equal(outputs, np.asarray(result.outputs))
    assert np.array_equal(np.asarray(from_npy.outputs), outputs)


def test_an_interpolations_store_has_one_traversal(tmp_path):
    torch.manual_seed(1)
    paths = ls.interpolate(torch.nn.Linear(4, 6), torch.randn(2, 4), torch.randn(2, 4), steps=5,
                           out=tmp_path / "paths.zarr", progress=False)
    stored = zarr.open_array(tmp_path / "paths.zarr" / "outputs", mode="r")[:]
    assert np.array_equal(stored.reshape(2, 1, 5, 6)[:, 0], np.asarray(paths.outputs))
