"""latentsweep inside someone else's program (a training loop, a tool): the host's global state
is left as it was found, after a call and after a call that raised, and the host's conditions
(no_grad, inference_mode, another default dtype, one thread, another thread, a tqdm loop) give
the results of a plain call."""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import threading
import warnings

import numpy as np
import pytest
import torch
from tqdm import tqdm

import latentsweep as ls
from latentsweep._modules import tensor_digest

D, F = 3, 5


def _model() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A VAE's encoder and decoder in training mode (dropout, batch norm), each with a submodule
    deliberately in eval mode inside it, a frozen parameter, and gradients already accumulated."""
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(F, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.3),
                                  torch.nn.Linear(8, 2 * D))
    decoder = torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                  torch.nn.Dropout(0.3), torch.nn.Linear(8, F))
    encoder.train()[2].eval()
    decoder.train()[3].eval()
    decoder[0].weight.requires_grad_(False)
    for p in [*encoder.parameters(), *decoder.parameters()]:
        p.grad = torch.full_like(p, 0.5)
    return encoder, decoder


def _split(encoder):
    return lambda x: tuple(encoder(x).chunk(2, dim=1))


def _state(*modules) -> dict:
    """The host state a call must not change."""
    return {
        "grad": torch.is_grad_enabled(), "threads": torch.get_num_threads(), "dtype": torch.get_default_dtype(),
        "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(), "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warnings": list(warnings.filters), "cwd": os.getcwd(), "env": dict(os.environ),
        "modules": [
            ({n: m.training for n, m in module.named_modules()},
             {n: (p.requires_grad, p.detach().clone(), p.grad.clone()) for n, p in module.named_parameters()},
             {n: b.clone() for n, b in module.named_buffers()})
            for module in modules
        ],
    }


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _calls(encoder, decoder, tmp_path):
    x = torch.randn(32, F, generator=torch.Generator().manual_seed(1))
    codes = torch.randn(4, D, generator=torch.Generator().manual_seed(2))
    return {
        "encode": lambda: ls.encode(_split(encoder), x, batch_size=8, progress=False).mu,
        "traverse": lambda: ls.traverse(decoder, codes, steps=5, batch_size=6, progress=False).outputs,
        "traverse out=": lambda: torch.as_tensor(ls.traverse(
            decoder, codes, steps=5, batch_size=6, progress=False, out=tmp_path / "sweep.zarr",
            overwrite=True).outputs[:]),
        "interpolate": lambda: ls.interpolate(decoder, codes[:2], codes[2:], steps=5, batch_size=4,
                                              progress=False).outputs,
    }


def test_a_decoder_with_batch_norm_sweeps_into_a_store(tmp_path):
    # BatchNorm's num_batches_tracked is a 0-dim buffer: hashing the decoder for the store
    # failed ("self.dim() cannot be 0 to view Long as Byte"), so no model with batch norm could
    # sweep with out=.
    _, decoder = _model()
    codes = torch.randn(2, D)
    stored = ls.traverse(decoder, codes, steps=3, progress=False, out=tmp_path / "s.zarr")
    plain = ls.traverse(decoder, codes, steps=3, progress=False)
    assert torch.equal(torch.as_tensor(stored.outputs[:]), plain.outputs)
    resumed = ls.traverse(decoder, codes, steps=3, progress=False, out=tmp_path / "s.zarr", resume=True)
    assert torch.equal(torch.as_tensor(resumed.outputs[:]), plain.outputs)


def test_a_digest_is_the_same_bytes_for_tensors_that_had_one():
    # (the stores written before keep resuming: only 0-dim tensors are hashed anew)
    import hashlib

    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    before = hashlib.sha256(f"{tuple(t.shape)}{t.dtype}".encode())
    before.update(t.view(torch.uint8).numpy().tobytes())
    assert tensor_digest(t) == before.hexdigest()
    assert tensor_digest(torch.tensor(3)) != tensor_digest(torch.tensor(4))
    assert tensor_digest(torch.tensor(3)) != tensor_digest(torch.tensor([3]))


@pytest.mark.parametrize("name", ["encode", "traverse", "traverse out=", "interpolate"])
@pytest.mark.parametrize("failure", [None, RuntimeError, KeyboardInterrupt])
def test_the_host_state_is_left_as_found(tmp_path, name, failure):
    encoder, decoder = _model()
    call = _calls(encoder, decoder, tmp_path)[name]
    calls = [0]

    def hook(module, inputs, output):  # fails on the third batch, after the probe
        calls[0] += 1
        if failure is not None and calls[0] > 2:
            raise failure("stop")

    handle = (encoder if name == "encode" else decoder)[1].register_forward_hook(hook)
    before = _state(encoder, decoder)
    with pytest.raises(failure) if failure is not None else contextlib.nullcontext():
        call()
    handle.remove()
    assert calls[0] > (2 if failure is not None else 0)
    after = _state(encoder, decoder)
    assert [k for k in before if not _same(before[k], after[k])] == []


@contextlib.contextmanager
def _default_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _in_a_thread():
    yield "thread"


@pytest.mark.parametrize("condition", [torch.no_grad, torch.inference_mode, torch.enable_grad,
                                       _default_float64, _one_thread, _in_a_thread])
def test_the_host_conditions_give_a_plain_calls_results(tmp_path, condition):
    encoder, decoder = _model()
    calls = _calls(encoder, decoder, tmp_path)
    plain = {name: call() for name, call in calls.items()}
    with condition() as how:
        before = _state(encoder, decoder)
        if how == "thread":  # (no signal handler may be set outside the main thread)
            got = {}
            worker = threading.Thread(target=lambda: got.update({name: call() for name, call in calls.items()}))
            worker.start()
            worker.join()
        else:
            got = {name: call() for name, call in calls.items()}
        assert [k for k, v in before.items() if not _same(v, _state(encoder, decoder)[k])] == []
    assert {name: _same(plain[name], got.get(name)) for name in calls} == dict.fromkeys(calls, True)


def test_two_threads_at_once_each_get_their_own_results(tmp_path):
    encoder, decoder = _model()
    calls = _calls(encoder, decoder, tmp_path)
    plain = {name: call() for name, call in calls.items() if name != "traverse out="}
    before = _state(encoder, decoder)
    got: list = []

    def work(name):
        for _ in range(3):
            got.append(_same(calls[name](), plain[name]))

    workers = [threading.Thread(target=work, args=(name,)) for name in [*plain, *plain]]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert got == [True] * 3 * len(workers)
    assert [k for k, v in before.items() if not _same(v, _state(encoder, decoder)[k])] == []


def _screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text`` (carriage returns, newlines, cursor up: what
    tqdm writes)."""
    lines, row, col = [""], 0, 0
    for token in re.split(r"(\x1b\[A|\r|\n)", text):
        if token == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif token == "\r":
            col = 0
        elif token == "\x1b[A":
            row = max(0, row - 1)
        elif token:
            lines[row] = lines[row][:col] + token + lines[row][col + len(token):]
            col += len(token)
    return [line.strip() for line in lines if line.strip()]


def test_bars_inside_the_callers_tqdm_loop_are_cleared_when_done():
    # Every epoch of a training loop left its finished encode and traverse bars on the screen.
    encoder, decoder = _model()
    x, codes = torch.randn(16, F), torch.randn(2, D)
    shown = io.StringIO()
    with contextlib.redirect_stderr(shown):
        for _ in tqdm(range(3), desc="epochs"):
            ls.encode(_split(encoder), x, batch_size=8, progress=True)
            ls.traverse(decoder, codes, steps=3, progress=True)
    screen = _screen(shown.getvalue())
    assert len(screen) == 1 and screen[0].startswith("epochs: 100%")

    alone = io.StringIO()
    with contextlib.redirect_stderr(alone):  # a bar of its own stays
        ls.traverse(decoder, codes, steps=3, progress=True)
    assert [line[:14] for line in _screen(alone.getvalue())] == ["traverse: 100%"]


def test_a_bar_says_whether_it_stays_in_words_a_notebook_reads_too():
    # (leave=None stays in a terminal when alone, but tqdm.notebook reads None as False: a single
    # call's finished bar vanished from the notebook)
    from latentsweep import _progress

    with contextlib.redirect_stderr(io.StringIO()):
        alone = _progress.bar(True, total=3, unit="pt", desc="alone")
        assert alone.leave is True
        alone.close()
        with tqdm(range(2), desc="epochs") as outer:
            inner = _progress.bar(True, total=3, unit="pt", desc="inner")
            assert inner.leave is False
            inner.close()
            outer.update(2)
