"""interpolate end to end with its stores: shards, crash and resume, dtypes and
structured endpoints, each opened with open_sweep and compared bit for bit with one in-memory
call (a fixed batch size: "auto" is timed); interpolation_codes against plain torch."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import latentsweep as ls


def mlp(latent: int = 5, features: int = 7) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(latent, 16), torch.nn.Tanh(), torch.nn.Linear(16, features))


def pair(paths: int = 5, latent: int = 5, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(paths, latent, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(paths, latent, generator=g, dtype=torch.float64).to(dtype))


def assert_same_interpolation(opened, memory):
    """Everything but the speed and the store: equal values and dtypes."""
    assert isinstance(opened, ls.Interpolation) and opened.path == memory.path
    for name in ("start", "end", "t", "change", "codes"):
        mine, theirs = getattr(opened, name), getattr(memory, name)
        assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), name
    for name in ("effect", "sensitivity", "anchor_outputs", "values"):
        assert torch.equal(getattr(opened.sweep, name), getattr(memory.sweep, name)), name
    if memory.outputs is None:
        assert opened.outputs is None
    else:
        assert np.array_equal(np.asarray(opened.outputs), memory.outputs.numpy())
    assert opened.latent_shape == memory.latent_shape


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
@pytest.mark.parametrize("keep_outputs", [True, False])
def test_shards_of_an_interpolation_open_as_the_in_memory_one(tmp_path, suffix, keep_outputs):
    # (interpolate took no shard=: "unexpected keyword argument 'shard'", though open_sweep's
    # advice for its incomplete stores says "or run the missing shards")
    decoder, (start, end) = mlp().double(), pair()
    store = tmp_path / f"p{suffix}"
    done = [ls.interpolate(decoder, start, end, steps=4, path="slerp", batch_size=3, out=store, shard=(i, 3),
                           keep_outputs=keep_outputs, progress=False) for i in range(3)]
    assert isinstance(done[0], ls.StoreStatus) and not done[0].complete
    assert isinstance(done[-1], ls.Interpolation)
    memory = ls.interpolate(decoder, start, end, steps=4, path="slerp", batch_size=3, keep_outputs=keep_outputs,
                            progress=False)
    assert_same_interpolation(ls.open_sweep(store), memory)
    assert_same_interpolation(done[-1], memory)


def test_a_shard_needs_a_store():
    start, end = pair()
    with pytest.raises(ValueError, match=r"interpolate: shard= needs out="):
        ls.interpolate(mlp().double(), start, end, steps=3, shard=(0, 2), progress=False)


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_bfloat16_ends_open_as_bfloat16(tmp_path, suffix):
    # (the store widens bfloat16 to float32; the opened start came back bfloat16, its end
    # float32, and its codes float32)
    decoder, (start, end) = mlp(), pair(dtype=torch.bfloat16)
    memory = ls.interpolate(decoder, start, end, steps=3, batch_size=4, progress=False)
    ls.interpolate(decoder, start, end, steps=3, batch_size=4, out=tmp_path / f"p{suffix}", progress=False)
    assert memory.end.dtype == torch.bfloat16
    assert_same_interpolation(ls.open_sweep(tmp_path / f"p{suffix}"), memory)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_endpoints_keep_their_dtype_through_a_store(tmp_path, dtype):
    decoder, (start, end) = mlp(), pair(dtype=dtype)
    memory = ls.interpolate(decoder, start, end, steps=3, path="slerp", batch_size=4, progress=False)
    ls.interpolate(decoder, start, end, steps=3, path="slerp", batch_size=4, out=tmp_path / "p.zarr", progress=False)
    assert memory.start.dtype == dtype
    assert_same_interpolation(ls.open_sweep(tmp_path / "p.zarr"), memory)


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_a_crashed_interpolation_resumes_then_opens_as_the_in_memory_one(tmp_path, suffix):
    decoder, (start, end) = mlp().double(), pair()
    calls = [0]

    def crash_on_the_sixth_call(module, inputs, output):
        calls[0] += 1
        if calls[0] == 6:
            raise RuntimeError("crash")

    hook = decoder.register_forward_hook(crash_on_the_sixth_call)
    store = tmp_path / f"p{suffix}"
    with pytest.raises(RuntimeError, match="crash"):
        ls.interpolate(decoder, start, end, steps=4, path="slerp", batch_size=2, out=store, progress=False)
    hook.remove()
    assert not ls.sweep_status(store).complete
    other = end.clone()
    other[0, 0] += 1  # same starts, another end: another sweep
    with pytest.raises(ValueError, match=r"different parameters \(it differs in: codes\)"):
        ls.interpolate(decoder, start, other, steps=4, path="slerp", batch_size=2, out=store, resume=True,
                       progress=False)
    ls.interpolate(decoder, start, end, steps=4, path="slerp", batch_size=2, out=store, resume=True, progress=False)
    memory = ls.interpolate(decoder, start, end, steps=4, path="slerp", batch_size=2, progress=False)
    assert_same_interpolation(ls.open_sweep(store), memory)


def test_structured_and_posterior_endpoints_open_as_they_were_returned(tmp_path):
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 3, 2, stride=2), torch.nn.Tanh())
    start, end = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    memory = ls.interpolate(decoder, start, end, steps=3, path="slerp", batch_size=4, progress=False)
    ls.interpolate(decoder, start, end, steps=3, path="slerp", batch_size=4, out=tmp_path / "s.zarr", progress=False)
    assert memory.start.shape == (2, 36) and memory.codes.shape == (2, 3, 36) and memory.latent_shape == (4, 3, 3)
    assert_same_interpolation(ls.open_sweep(tmp_path / "s.zarr"), memory)
    rows = ls.Posterior(torch.cat([start, end]))
    memory = ls.interpolate(decoder, rows[[0, 1]], rows[[2, 3]], steps=2, batch_size=4, progress=False)
    ls.interpolate(decoder, rows[[0, 1]], rows[[2, 3]], steps=2, batch_size=4, out=tmp_path / "p.npy", progress=False)
    assert torch.equal(memory.start, start.flatten(1))
    assert_same_interpolation(ls.open_sweep(tmp_path / "p.npy"), memory)


def test_one_path_of_two_steps_opens_with_its_texts(tmp_path):
    decoder = torch.nn.Linear(3, 2).double()
    start, end = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    memory = ls.interpolate(decoder, start, end, steps=2, batch_size=1, progress=False)
    ls.interpolate(decoder, start, end, steps=2, batch_size=1, out=tmp_path / "p.zarr", progress=False)
    opened = ls.open_sweep(tmp_path / "p.zarr")
    assert_same_interpolation(opened, memory)
    assert opened.summary().startswith("1 linear path x 2 steps") and memory.summary().startswith("1 linear path x 2")
    assert repr(opened) == (f"Interpolation(paths=1, steps=2, path='linear', out_shape=(2,), "
                            f"store={tmp_path / 'p.zarr'})")
    assert opened == ls.open_sweep(tmp_path / "p.zarr")


def test_edited_path_ends_are_refused_as_damaged(tmp_path):
    import zarr

    start, end = pair()
    store = tmp_path / "p.zarr"
    ls.interpolate(mlp().double(), start, end, steps=3, batch_size=2, out=store, progress=False)
    ends = zarr.open_array(str(store / "path_ends"), mode="r+")
    ends[0, 0] = ends[0, 0] + 1
    with pytest.raises(ls.StoreDamaged, match=r"damaged \(path_ends does not match its checksum\)"):
        ls.open_sweep(store)
    shutil.rmtree(store / "path_ends")
    with pytest.raises(ls.StoreDamaged, match=r"damaged.*path_ends"):
        ls.open_sweep(store)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_interpolation_codes_are_a_plain_torch_lerp_and_slerp(dtype, path):
    start, end = pair(paths=4, latent=6, dtype=dtype)
    got = ls.interpolation_codes(start, end, steps=7, path=path)
    assert got.dtype == dtype and torch.equal(got[:, 0], start) and torch.equal(got[:, -1], end)
    a, b = start.double()[:, None], end.double()[:, None]
    t = torch.linspace(0, 1, 7, dtype=torch.float64)[None, :, None]
    if path == "linear":
        expected = torch.lerp(a, b, t)
    else:
        theta = torch.arccos(torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1))[..., None]
        expected = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)
    scale = float(torch.maximum(a.abs().max(), b.abs().max()))
    torch.testing.assert_close(got.double(), expected.to(dtype).double(), rtol=0,
                               atol=64 * torch.finfo(torch.float64).eps * scale if dtype == torch.float64 else 0)


def test_one_paths_sweep_summary_is_singular():
    # (it said "1 linear paths x 2 steps")
    result = ls.interpolate(torch.nn.Linear(3, 2), torch.zeros(3), torch.ones(3), steps=2, progress=False)
    assert result.sweep.summary().startswith("1 linear path x 2 steps") and result.summary().startswith("1 linear path x")
