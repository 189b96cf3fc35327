"""latentsweep.interpolate (issue 8 item 4): decoded paths between codes, swept by the engine.
Every output against the decoder applied to the plain-torch path (linear: (1 - t) a + t b;
slerp: White 2016), endpoints, the midpoint, slerp's norms and its degenerate case, chunkings
that cut paths anywhere, stores and resume, and bad input."""

from __future__ import annotations

import warnings

import math
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentsweep as ls
from latentsweep import _checks


def mlp(latent: int = 5, features: int = 7) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(latent, 16), torch.nn.Tanh(), torch.nn.Linear(16, features))


def codes_decoder(z: torch.Tensor) -> torch.Tensor:
    """Returns the codes it was given: the outputs are the rows the engine wrote."""
    return z * 1.0


def reference_path(start: torch.Tensor, end: torch.Tensor, steps: int, path: str) -> torch.Tensor:
    """[P, S, D] in float64, written from the definitions (not through latentsweep)."""
    a, b = start.double(), end.double()
    rows = []
    for t in torch.linspace(0, 1, steps, dtype=torch.float64).tolist():
        if path == "linear":
            rows.append((1 - t) * a + t * b)
        else:
            cosine = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
            theta = torch.arccos(cosine.clamp(-1, 1))[:, None]
            rows.append((torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta))
    return torch.stack(rows, dim=1)


def pair(paths: int = 3, latent: int = 5, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(paths, latent, generator=g, dtype=dtype), torch.randn(paths, latent, generator=g, dtype=dtype))


@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_outputs_are_the_decoder_along_the_reference_path(path):
    decoder = mlp().double()
    start, end = pair()
    result = ls.interpolate(decoder, start, end, steps=9, path=path, batch_size=4, progress=False)
    expected_codes = reference_path(start, end, 9, path)
    torch.testing.assert_close(result.codes, expected_codes, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        expected = decoder(expected_codes.reshape(-1, 5)).reshape(3, 9, 7)
    assert result.outputs.shape == (3, 9, 7)
    torch.testing.assert_close(result.outputs, expected, rtol=1e-10, atol=1e-12)
    # Endpoints: exactly the decoder at start and end.
    with torch.no_grad():
        torch.testing.assert_close(result.outputs[:, 0], decoder(start), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(result.outputs[:, -1], decoder(end), rtol=1e-12, atol=1e-12)
    # change: mean |x(t) - x(start)| over features.
    torch.testing.assert_close(result.change, (expected - expected[:, :1]).abs().mean(dim=2), rtol=1e-9, atol=1e-12)
    assert torch.equal(result.t, torch.linspace(0, 1, 9, dtype=torch.float64))
    assert result.path == path and result.num_paths == 3 and result.out_shape == (7,)


def test_the_linear_midpoint_is_the_mean_of_the_endpoints():
    start, end = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 2.0, -0.5])
    result = ls.interpolate(codes_decoder, start, end, steps=5, progress=False)
    assert torch.equal(result.outputs[0, 0], start) and torch.equal(result.outputs[0, -1], end)
    torch.testing.assert_close(result.outputs[0, 2], (start + end) / 2)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints_and_falls_back_to_linear_when_parallel():
    start, end = pair(paths=2, latent=6, seed=3)
    end = end / end.norm(dim=1, keepdim=True) * start.norm(dim=1, keepdim=True)
    decoded = ls.interpolate(codes_decoder, start, end, steps=7, path="slerp", progress=False).outputs
    torch.testing.assert_close(decoded.norm(dim=2), start.norm(dim=1, keepdim=True).expand(2, 7), rtol=1e-12, atol=0)
    linear = ls.interpolate(codes_decoder, start, end, steps=7, progress=False).outputs
    assert (linear.norm(dim=2)[:, 3] < decoded.norm(dim=2)[:, 3]).all()  # the line cuts towards the origin
    parallel = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64)
    along = torch.tensor([[2.0, 4.0], [-1.0, -2.0]], dtype=torch.float64)
    # Path 1's endpoints are opposite: its line through the origin is said, path 0's is not.
    with pytest.warns(UserWarning, match=r"interpolate: path\(s\) \[1\] of 2 have opposite endpoints"):
        slerped = ls.interpolate(codes_decoder, parallel, along, steps=5, path="slerp", progress=False).outputs
    assert torch.isfinite(slerped).all()
    torch.testing.assert_close(slerped, reference_path(parallel, along, 5, "linear"), rtol=1e-12, atol=1e-12)
    with pytest.warns(UserWarning, match=r"interpolation_codes: path\(s\) \[1\] of 2 have opposite endpoints"):
        ls.interpolation_codes(parallel, along, steps=5, path="slerp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ls.interpolation_codes(parallel[:1], along[:1], steps=5, path="slerp")  # parallel: the arc's own limit
        ls.interpolation_codes(parallel, along, steps=5, path="linear")


@pytest.mark.filterwarnings("ignore:.*opposite endpoints")  # 1-D codes of opposite signs: said, and tested above
@settings(max_examples=25, deadline=None)
@given(paths=st.integers(1, 4), steps=st.integers(2, 7), latent=st.integers(1, 6), batch=st.integers(1, 11),
       path=st.sampled_from(["linear", "slerp"]), seed=st.integers(0, 1000))
def test_any_chunking_writes_every_path_point(paths, steps, latent, batch, path, seed):
    """Batches cut paths anywhere; the rows decoded are the reference path's, in order."""
    start, end = pair(paths, latent, seed)
    result = ls.interpolate(codes_decoder, start, end, steps=steps, path=path, batch_size=batch, progress=False)
    torch.testing.assert_close(result.outputs, ls.interpolation_codes(start, end, steps=steps, path=path),
                               rtol=0, atol=0)


def test_a_one_dimensional_pair_and_float32_codes():
    start, end = torch.zeros(4), torch.ones(4)
    result = ls.interpolate(codes_decoder, start, end, steps=3, progress=False)
    assert result.outputs.shape == (1, 3, 4) and result.outputs.dtype == torch.float32
    assert result.start.shape == (1, 4) and "1 linear path x 3 steps" in result.summary()


def test_a_store_resumes_and_refuses_another_path(tmp_path):
    decoder = mlp().double()
    start, end = pair()
    store = tmp_path / "paths.zarr"
    first = ls.interpolate(decoder, start, end, steps=6, out=store, batch_size=4, progress=False)
    again = ls.interpolate(decoder, start, end, steps=6, out=store, resume=True, batch_size=4, progress=False)
    assert again.sweep.points_computed == 0
    assert np.array_equal(np.asarray(again.outputs), np.asarray(first.outputs))
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(np.asarray(first.outputs)), decoder(first.codes.reshape(-1, 5)).reshape(3, 6, 7))
    # Same starts and t, another end (or path): another sweep, refused.
    with pytest.raises(ValueError, match="different parameters"):
        ls.interpolate(decoder, start, end + 1, steps=6, out=store, resume=True, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="different parameters"):
        ls.interpolate(decoder, start, end, steps=6, path="slerp", out=store, resume=True, batch_size=4,
                       progress=False)


def test_an_interrupted_store_says_interpolate_finishes_it(tmp_path):
    decoder, calls = mlp().double(), [0]

    def fail_on_the_fourth_call(module, inputs):  # the anchors, then some chunks: units done and missing
        calls[0] += 1
        if calls[0] == 4:
            raise RuntimeError("interrupted")

    hook = decoder.register_forward_pre_hook(fail_on_the_fourth_call)
    start, end = pair()
    store = tmp_path / "paths.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        ls.interpolate(decoder, start, end, steps=6, out=store, batch_size=2, progress=False)
    hook.remove()
    with pytest.raises(ValueError, match=r"incomplete.*Finish it with interpolate\(\.\.\., out=path, resume=True\)"):
        ls.open_sweep(store)
    ls.interpolate(decoder, start, end, steps=6, out=store, batch_size=2, resume=True, progress=False)
    assert ls.open_sweep(store).sweep.num_points == 3 * 6


@pytest.mark.parametrize("path", ["linear", "slerp"])
def test_an_opened_store_names_its_path_as_the_interpolation_did(tmp_path, path):
    # (open_sweep labelled an interpolation store's one traversal "z0", a coordinate's name)
    start, end = pair()
    done = ls.interpolate(mlp().double(), start, end, steps=4, path=path, out=tmp_path / "p.zarr", progress=False)
    opened = ls.open_sweep(tmp_path / "p.zarr").sweep
    assert opened.labels == done.sweep.labels == (f"{path} path",)
    assert opened.mode == path


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_an_interpolation_store_opens_as_the_interpolation_it_was(tmp_path, suffix):
    # (open_sweep returned the engine's TraversalResult [P, 1, S]: the paths' ends, t and change
    # were gone, as the store did not keep the ends)
    start, end = pair()
    done = ls.interpolate(mlp().double(), start, end, steps=5, path="slerp", out=tmp_path / f"p{suffix}",
                          progress=False)
    opened = ls.open_sweep(tmp_path / f"p{suffix}")
    assert isinstance(opened, ls.Interpolation) and opened.path == "slerp"
    for name in ("start", "end", "t", "change"):
        assert torch.equal(getattr(opened, name), getattr(done, name)), name
    assert np.array_equal(np.asarray(opened.outputs), np.asarray(done.outputs))
    assert torch.equal(opened.codes, done.codes)
    assert opened.sweep.opened and opened.summary().startswith("3 slerp paths x 5 steps")
    assert "read from the store at" in opened.summary()


def test_the_command_line_opens_an_interpolation_store_as_one(tmp_path, capsys):
    from latentsweep.cli import main

    start, end = pair()
    ls.interpolate(mlp().double(), start, end, steps=4, path="slerp", out=tmp_path / "p.zarr", progress=False)
    assert main(["open", str(tmp_path / "p.zarr")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("3 slerp paths x 4 steps") and "the output moved by" in printed, printed


def test_an_interpolation_store_without_its_ends_is_refused_as_damaged(tmp_path):
    start, end = pair()
    ls.interpolate(mlp().double(), start, end, steps=3, out=tmp_path / "p.zarr", progress=False)
    shutil.rmtree(tmp_path / "p.zarr" / "path_ends")
    with pytest.raises(ValueError, match=r"damaged.*path_ends"):
        ls.open_sweep(tmp_path / "p.zarr")


def test_summaries_of_an_interpolation_and_of_an_opened_store_say_what_they_are(tmp_path):
    # (open printed "3 anchors x 1 latents x 4 steps" and "no points decoded by this call (the
    # stored sweep was already complete); 0 s in all")
    start, end = pair()
    done = ls.interpolate(mlp().double(), start, end, steps=4, path="slerp", out=tmp_path / "p.zarr", progress=False)
    assert done.sweep.summary().startswith("3 slerp paths x 4 steps = 12 points") and not done.sweep.opened
    opened = ls.open_sweep(tmp_path / "p.zarr").sweep.summary()
    assert opened.startswith("3 slerp paths x 4 steps") and "read from the store at" in opened, opened
    assert "s in all" not in opened and "latents" not in opened
    swept = ls.traverse(mlp().double(), start, steps=3, out=tmp_path / "t.zarr", progress=False)
    assert "read from the store" not in swept.summary()
    assert "read from the store at" in ls.open_sweep(tmp_path / "t.zarr").summary()


def test_the_engine_options_pass_through():
    decoder = mlp()
    start, end = pair(dtype=torch.float32)
    stats_only = ls.interpolate(decoder, start, end, steps=4, keep_outputs=False, output_transform="sigmoid",
                                progress=False)
    assert stats_only.outputs is None and stats_only.output_space == "sigmoid(decoder output)"
    with torch.no_grad():
        expected = torch.sigmoid(decoder(ls.interpolation_codes(start, end, steps=4).reshape(-1, 5))).reshape(3, 4, 7)
    torch.testing.assert_close(stats_only.change, (expected - expected[:, :1]).abs().mean(2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((torch.zeros(3), torch.zeros(4)), {}, ValueError, "same shape"),
        ((torch.zeros(3), torch.zeros(3)), {"steps": 1}, ValueError, "steps must be >= 2"),
        ((torch.zeros(3), torch.zeros(3)), {"path": "spline"}, ValueError, "path must be one of"),
        ((torch.zeros(3), torch.tensor([0.0, math.nan, 0.0])), {}, ValueError, "end has 1 non-finite"),
        (([0.0], torch.zeros(1)), {}, TypeError, "start must be a torch.Tensor"),
        ((torch.zeros(3), torch.zeros(3)), {"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ((torch.zeros(3), torch.zeros(3)), {"resume": True}, ValueError, "needs out="),
    ],
)
def test_bad_input_is_named(args, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        ls.interpolate(codes_decoder, *args, **kwargs)
    assert str(info.value).startswith("latentsweep.interpolate:")


def test_a_grid_that_does_not_fit_in_memory_is_refused_before_allocating(monkeypatch):
    """steps=10**10 allocated t and the path grid's positions first, and failed deep in torch."""
    with pytest.raises(ValueError, match=r"latentsweep.interpolate: the path grid \[P=2, steps=1000000000000\] "
                                         r"needs .* GiB.*pass fewer steps or paths"):
        ls.interpolate(codes_decoder, torch.zeros(2, 4), torch.ones(2, 4), steps=10**12, progress=False)

    # The path writer's float64 endpoints count: 16 MB for 10 paths of 10^5 values, on a 1 MiB "machine".
    monkeypatch.setattr(_checks, "_memory_capacity", lambda device: 2**20)
    with pytest.raises(ValueError, match=r"latentsweep.interpolate: the path grid \[P=10, steps=2\] needs"):
        ls.interpolate(codes_decoder, torch.zeros(10, 10**5), torch.ones(10, 10**5), steps=2, progress=False)


def test_a_decoder_that_is_not_callable_or_returns_nan_is_refused():
    with pytest.raises(TypeError, match="latentsweep.interpolate: decoder must be callable"):
        ls.interpolate("decoder", torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        ls.interpolate(lambda z: z / 0.0, torch.zeros(2), torch.ones(2), progress=False)


def test_structured_latents_reach_the_decoder_in_their_shape():
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Tanh()).double()
    start, end = pair(paths=2, latent=18)
    result = ls.interpolate(decoder, start.view(2, 2, 3, 3), end.view(2, 2, 3, 3), steps=4, batch_size=3,
                            progress=False)
    assert result.latent_shape == (2, 3, 3) and result.start.shape == (2, 18)
    with torch.no_grad():
        expected = decoder(reference_path(start, end, 4, "linear").view(-1, 2, 3, 3)).view(2, 4, 3, 3, 3)
    torch.testing.assert_close(result.outputs, expected, rtol=1e-12, atol=1e-12)
    flat = ls.interpolate(decoder, start, end, steps=4, latent_shape=(2, 3, 3), progress=False)
    torch.testing.assert_close(flat.outputs, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        ls.interpolate(decoder, start.view(2, 2, 3, 3), end.view(2, 3, 2, 3))
    with pytest.raises(ValueError, match="latent_shape"):
        ls.interpolate(decoder, start, end, latent_shape=(4, 4))


# ---- messages from the engine name interpolate, not traverse ----------------------------------
class BreaksOnCall:
    """codes_decoder until call number `call` (the probe at the starts: calls 1 and 2 for 3 starts), then
    `broken(codes)` from there on (never for call=None). One class: resumable as one decoder."""

    def __init__(self, call: int | None, broken=None):
        self.calls, self.call, self.broken = 0, call, broken

    def __call__(self, codes):
        self.calls += 1
        return self.broken(codes) if self.call is not None and self.calls >= self.call else codes_decoder(codes)


def raises(error: BaseException):
    def broken(codes):
        raise error
    return broken


def all_text(error: BaseException) -> str:
    return "\n".join([str(error), *getattr(error, "__notes__", ())])


def assert_names_interpolate(text: str) -> None:
    """Every message (a note too) starts with the function the user called; none says traverse."""
    for part in text.split("\n"):
        assert part.startswith("latentsweep.interpolate:") or part.startswith(" "), text
    assert "traverse" not in text, text


@pytest.mark.parametrize("call", [1, 3], ids=["probe", "executor"])
@pytest.mark.parametrize(
    "broken, error, match",
    [
        (lambda z: z / 0.0, ValueError, "NaN or Inf"),
        (lambda z: z.tolist(), TypeError, "must return a torch.Tensor, got list"),
        (lambda z: z[:1], ValueError, "one output per code"),
        (lambda z: z.long(), TypeError, "floating-point"),
    ],
    ids=["nan", "not-a-tensor", "wrong-rows", "integers"],
)
def test_a_bad_decoder_is_reported_as_interpolate(call, broken, error, match):
    """call 1 breaks at the probe (Python checks), call 3 in the C++ executor mid-sweep (the
    probe decodes the 3 starts in two calls, 2 and 1)."""
    start, end = pair(paths=3, latent=4)
    with pytest.raises(error, match=match) as info:
        ls.interpolate(BreaksOnCall(call, broken), start, end, steps=5, batch_size=4, progress=False)
    assert_names_interpolate(all_text(info.value))
    if call == 3 and match == "NaN or Inf":  # the executor names grid points: say what they are here
        assert "'anchor p' is path p" in all_text(info.value) and "t = s / 4" in all_text(info.value)


def test_a_changed_output_shape_is_reported_as_interpolate():
    start, end = pair(paths=3, latent=4)
    # Executor (C++): the probe's two calls, then a flat output of another shape.
    with pytest.raises(ValueError, match=r"output shape changed from \[4\] torch.float64 to \[2\]") as info:
        ls.interpolate(BreaksOnCall(3, lambda z: z[:, :2]), start, end, steps=5, batch_size=4, progress=False)
    assert_names_interpolate(all_text(info.value))
    # Probe (Python): 3 starts in calls of 2 and 1, the second of another shape.
    with pytest.raises(ValueError, match=r"output shape changed from \[4\]") as info:
        ls.interpolate(BreaksOnCall(2, lambda z: z[:, :2]), start, end, steps=5, batch_size=2, progress=False)
    assert_names_interpolate(all_text(info.value))


def test_out_of_memory_advice_names_interpolate():
    start, end = pair(paths=3, latent=4)

    def small_batches_only(codes):
        if len(codes) > 4:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")
        return codes_decoder(codes)

    with pytest.warns(RuntimeWarning) as warned:
        result = ls.interpolate(small_batches_only, start, end, steps=5, batch_size=8, progress=False)
    assert result.sweep.batch_size == 4
    texts = [str(w.message) for w in warned if "out of memory" in str(w.message)]
    assert texts and all(t.startswith("latentsweep.interpolate: out of memory at batch_size=8") for t in texts)
    assert not any("traverse" in t for t in texts)


def test_an_interrupted_store_says_how_to_resume_interpolate(tmp_path, capsys):
    """Ctrl-C (KeyboardInterrupt from the decoder) mid-sweep with out= a path: the advice on
    stderr names interpolate(...); calling it with resume=True finishes the same sweep."""
    start, end = pair(paths=16)  # 16 paths x 4 steps at batch 4: 4 units of 4 decoder calls
    store = tmp_path / "paths.zarr"
    run = dict(steps=4, out=store, batch_size=4, progress=False)
    # The probe's 2 calls (2 starts, then 14), two units, then Ctrl-C.
    with pytest.raises(KeyboardInterrupt):
        ls.interpolate(BreaksOnCall(2 + 2 * 4 + 1, raises(KeyboardInterrupt())), start, end, **run)
    advice = capsys.readouterr().err.strip()
    assert advice.startswith("latentsweep.interpolate: the sweep stopped after 2 of this process's 4 "), advice
    assert "Call interpolate(...) again with the same arguments and resume=True" in advice, advice
    assert str(store) in advice and "traverse" not in advice, advice
    # Another error carries the same advice as a note (here after the probe and one more unit).
    with pytest.raises(RuntimeError, match="boom") as info:
        ls.interpolate(BreaksOnCall(2 + 4 + 1, raises(RuntimeError("boom"))), start, end, resume=True, **run)
    note = " ".join(info.value.__notes__)
    assert note.startswith("latentsweep.interpolate: the sweep stopped after 1 of this process's 2 "), note
    assert "Call interpolate(...) again" in note and "traverse" not in note, note
    resumed = ls.interpolate(BreaksOnCall(None), start, end, resume=True, **run)
    assert resumed.sweep.points_computed == 16 * 4 // 4
    full = ls.interpolate(BreaksOnCall(None), start, end, steps=4, batch_size=4, progress=False)
    assert np.array_equal(np.asarray(resumed.outputs), full.outputs.numpy())
    # Another sweep at that path: the advice names interpolate too.
    with pytest.raises(ValueError, match="call interpolate with that sweep's arguments") as info:
        ls.interpolate(BreaksOnCall(None), start, end + 1, resume=True, **run)
    assert_names_interpolate(all_text(info.value))


def test_the_progress_bar_says_interpolate(capsys):
    start, end = pair(paths=1, latent=2)
    ls.interpolate(codes_decoder, start, end, steps=3, progress=True)
    err = capsys.readouterr().err
    assert "interpolate" in err and "traverse" not in err, err
