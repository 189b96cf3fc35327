"""The sweep engine as other programs use it: threads, re-entrant decoders, decoders that keep
or modify what they are given, interruptions, grad modes. Each test is a defect found by an
adversarial pass, failing before its fix."""

from __future__ import annotations

import threading

import pytest
import torch

import latentsweep as ls

ANCHORS = torch.randn(3, 4, generator=torch.Generator().manual_seed(7))
WAIT = 30.0  # seconds a thread waits for the other before the test gives up


class DropoutDecoder(torch.nn.Module):
    """Different outputs in training mode (dropout) than in eval mode."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 16)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, z):
        return self.dropout(self.linear(z))


def test_sweeps_of_one_module_in_two_threads_keep_it_in_eval_mode_until_both_end():
    """Thread A's sweep ended while thread B's still decoded with the same module: A put the
    module back in training mode under B (dropout on: B's outputs were wrong), and B then left
    it in eval mode for good."""
    model = DropoutDecoder().train()
    expected = ls.traverse(model, ANCHORS, steps=3, batch_size=4, progress=False)
    a_decoding, b_decoding, a_done = threading.Event(), threading.Event(), threading.Event()
    results, errors = {}, []

    def decoder_a(z):
        a_decoding.set()
        assert b_decoding.wait(WAIT)
        return model(z)

    def decoder_b(z):
        b_decoding.set()
        assert a_done.wait(WAIT)  # A's sweep has ended while B's goes on
        return model(z)

    def sweep(name, decoder, done=None):
        try:
            if name == "b":
                assert a_decoding.wait(WAIT)
            results[name] = ls.traverse(decoder, ANCHORS, steps=3, batch_size=4, progress=False)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            b_decoding.set()
        finally:
            if done is not None:
                done.set()

    threads = [threading.Thread(target=sweep, args=("a", decoder_a, a_done)),
               threading.Thread(target=sweep, args=("b", decoder_b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * WAIT)
    assert not errors, errors
    for name in "ab":
        assert torch.equal(results[name].outputs, expected.outputs), name
    assert model.training and model.dropout.training


def test_a_sweep_inside_a_decoder_of_the_same_module_restores_its_mode():
    calls = []

    class Recursive(DropoutDecoder):
        def forward(self, z):
            if not calls:
                calls.append("inner")
                ls.traverse(self, z[:1], steps=2, batch_size=2, progress=False)
            return super().forward(z)

    model = Recursive().train()
    result = ls.traverse(model, ANCHORS, steps=3, batch_size=4, progress=False)
    assert model.training and model.dropout.training
    assert torch.equal(result.outputs, ls.traverse(model.eval(), ANCHORS, steps=3, batch_size=4,
                                                   progress=False).outputs)


@pytest.mark.parametrize("batch_size", [4, "auto"])
def test_the_anchor_outputs_are_ordinary_tensors_like_the_other_results(batch_size):
    """result.anchor_outputs was an inference tensor (the probe's, decoded under inference
    mode) while result.outputs is not: clamping it in place, or using it as a training target,
    raised "Inplace update to inference tensor outside InferenceMode" / "Inference tensors
    cannot be saved for backward"."""
    model = torch.nn.Linear(4, 5)
    result = ls.traverse(model, ANCHORS, steps=3, batch_size=batch_size, progress=False)
    assert not result.anchor_outputs.is_inference() and not result.outputs.is_inference()
    result.anchor_outputs.clamp_(-1, 1)
    loss = torch.nn.functional.mse_loss(model(ANCHORS), result.anchor_outputs)
    loss.backward()
    assert model.weight.grad is not None


@pytest.mark.parametrize("progress", [None, True])
@pytest.mark.parametrize("stream", ["none", "closed"])
def test_a_sweep_without_a_stderr_to_write_to_shows_no_bar(monkeypatch, tmp_path, stream, progress):
    """A program without a stderr (pythonw, a service: sys.stderr is None) or whose stderr is
    closed got tqdm's AttributeError "'NoneType' object has no attribute 'write'", or
    "ValueError: I/O operation on closed file" (progress=None too: from isatty()), instead of
    its sweep."""
    if stream == "none":
        monkeypatch.setattr("sys.stderr", None)
    else:
        closed = open(tmp_path / "log.txt", "w")  # noqa: SIM115 - closed on purpose
        closed.close()
        monkeypatch.setattr("sys.stderr", closed)
    result = ls.traverse(torch.nn.Linear(4, 5), ANCHORS, steps=3, progress=progress)
    assert result.outputs.shape == (3, 4, 3, 5)


@pytest.mark.parametrize("progress", [None, True])
def test_a_stderr_without_isatty_is_no_terminal(monkeypatch, progress):
    """An application that sends stderr to its own writer (write and flush only) got an
    AttributeError: 'Writer' object has no attribute 'isatty' from progress=None."""

    class Writer:
        def __init__(self):
            self.text = []

        def write(self, text):
            self.text.append(text)

        def flush(self):
            pass

    writer = Writer()
    monkeypatch.setattr("sys.stderr", writer)
    result = ls.traverse(torch.nn.Linear(4, 5), ANCHORS, steps=3, progress=progress)
    assert result.outputs.shape == (3, 4, 3, 5)
    assert bool(writer.text) == bool(progress)


@pytest.mark.parametrize("call", [lambda d: ls.traverse(d, ANCHORS, steps=3, progress=False),
                                  lambda d: ls.interpolate(d, ANCHORS[:1], ANCHORS[1:2], steps=3, progress=False)])
def test_a_decoder_class_instead_of_an_instance_is_named(call):
    """traverse(torch.nn.Linear, ...) called the class with the codes: torch's own
    "Linear.__init__() missing 1 required positional argument" from inside the probe."""
    with pytest.raises(TypeError, match=r"decoder must be callable .* got the class Linear itself; pass an instance"):
        call(torch.nn.Linear)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_process_forked_while_another_thread_sweeps_gets_torchs_allocator_back():
    """A DataLoader worker forked while a monitoring thread sweeps: the child inherited the
    reusing CPU allocator with no guard left to remove it (its idle blocks grew, for good, up to
    2 GiB) and, had the fork come while its lock was held, a lock no thread would release."""
    import os

    from latentsweep._extension import _C

    inside, forked = threading.Event(), threading.Event()

    def decoder(z):  # holds the sweep (its allocator installed) until the fork is done
        if _C._reuse_counters()["active"] and not inside.is_set():
            inside.set()
            forked.wait(WAIT)
        return torch.cat([z] * 8192, dim=1)  # 128 KiB and more per batch: kept by the allocator

    thread = threading.Thread(target=ls.traverse, args=(decoder, ANCHORS), kwargs=dict(steps=3, progress=False))
    thread.start()
    try:
        assert inside.wait(WAIT), "the sweep never decoded with its allocator installed"
        child = os.fork()
        if child == 0:  # (the child reports through its exit code only)
            try:
                for _ in range(4):
                    torch.empty(1 << 20)
                counters = _C._reuse_counters()
                os._exit(0 if not counters["active"] and counters["kept_bytes"] == 0 else 3)
            except BaseException:  # noqa: BLE001
                os._exit(4)
        _, status = os.waitpid(child, 0)
    finally:
        forked.set()
        thread.join(WAIT)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_decoder_that_cannot_be_captured_in_a_cuda_graph_is_named_with_the_option():
    """Normal(loc, 1.0) copies its scale from the host at every call: under cuda_graph=True torch
    said only "Cannot copy between CPU and CUDA tensors during CUDA graph capture"."""
    linear = torch.nn.Linear(4, 6).cuda()

    def decoder(z):
        return torch.distributions.Normal(linear(z), 1.0)

    anchors = torch.randn(3, 4, device="cuda")
    with pytest.raises(RuntimeError, match=r"^latentsweep\.traverse: cuda_graph=True: the decoder cannot be captured "
                                           r"in a CUDA graph \(.*\); .*Normal\(loc, 1\.0\).* pass cuda_graph=False$"):
        ls.traverse(decoder, anchors, steps=3, cuda_graph=True, progress=False)
    # the device goes on working, and the same decoder sweeps without a graph
    assert ls.traverse(decoder, anchors, steps=3, progress=False).outputs.shape == (3, 4, 3, 6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_graph_is_captured_after_the_host_copies(monkeypatch):
    """The result's host copies run in a thread that synchronises with the device; beside the
    capture (global capture mode) that invalidated it: a structured direction sweep with
    cuda_graph=True failed once under load with "operation failed due to a previous error
    during capture" (H200, 8 test processes)."""
    import latentsweep.sweep as sweep_module

    events = []

    class RecordingCopies(sweep_module.HostCopies):
        def result(self):
            events.append("copies done")
            return super().result()

    real_graphed = sweep_module.graphed

    def recording_graphed(*args, **kwargs):
        events.append("capture")
        return real_graphed(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "HostCopies", RecordingCopies)
    monkeypatch.setattr(sweep_module, "graphed", recording_graphed)
    decoder = torch.nn.Linear(4, 6).cuda()
    ls.traverse(decoder, torch.randn(3, 4, device="cuda"), steps=3, batch_size=8, cuda_graph=True, progress=False)
    assert "capture" in events and events.index("copies done") < events.index("capture"), events


@pytest.mark.parametrize("call, error, match", [
    (lambda: ls.traverse(torch.nn.Linear(4, 5), ANCHORS, logvar="x", progress=False), TypeError,
     "logvar must be a torch.Tensor, got str"),
    (lambda: ls.traverse(torch.nn.Linear(4, 5), ANCHORS, reference=torch.randn(7), progress=False), ValueError,
     r"reference must be 2-D, got shape \(7,\)"),
    (lambda: ls.traverse(torch.nn.Linear(4, 5), ANCHORS, values=torch.linspace(0, 1, 3), span=-5, progress=False),
     ValueError, "span must be a finite number > 0, got -5"),
    (lambda: ls.traverse(torch.nn.Linear(4, 5), ANCHORS, values=torch.linspace(0, 1, 3), steps=0, progress=False),
     ValueError, "steps must be"),
    (lambda: ls.traverse(torch.nn.Linear(4, 5), ANCHORS, values=torch.linspace(0, 1, 3), mode="nope",
                         progress=False), ValueError, "mode must be one of"),
    (lambda: ls.traversal_values(ANCHORS, logvar=[1.0]), TypeError, "logvar must be a torch.Tensor"),
], ids=["unused logvar", "unused reference", "span with values", "steps with values", "mode with values",
        "traversal_values' unused logvar"])
def test_options_the_traversal_does_not_use_are_checked_all_the_same(call, error, match):
    """An option the chosen mode (or explicit values) does not use ran unchecked, while an
    unused prior_std=-1 was refused: every argument is checked for what it is."""
    with pytest.raises(error, match=match):
        call()


def test_interpolate_takes_a_latent_shape_for_posterior_endpoints_as_traverse_does():
    """A Posterior's own shape and a latent_shape= were "give one or the other" in interpolate;
    traverse replaces the Posterior's with the one given (its docstring: "as for traverse")."""
    posterior = ls.Posterior(torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(0)))
    seen = []

    def decoder(z):
        seen.append(tuple(z.shape[1:]))
        return z.reshape(len(z), -1)[:, :2]

    paths = ls.interpolate(decoder, posterior[:2], posterior[2:], latent_shape=(3, 6), steps=3, progress=False)
    assert set(seen) == {(3, 6)}
    flat = ls.interpolate(decoder, posterior.mu[:2], posterior.mu[2:], latent_shape=(3, 6), steps=3, progress=False)
    assert torch.equal(paths.sweep.outputs, flat.sweep.outputs)


def test_one_flat_direction_is_taken_for_structured_anchors_as_for_flat_ones():
    decoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(18, 2))
    anchors = torch.randn(3, 18, generator=torch.Generator().manual_seed(1))
    direction = torch.randn(18, generator=torch.Generator().manual_seed(2))
    flat = ls.traverse(decoder, anchors, directions=direction, steps=3, progress=False)
    structured = ls.traverse(decoder, anchors, latent_shape=(2, 3, 3), directions=direction, steps=3, progress=False)
    assert structured.labels == flat.labels == ("u0",)
    assert torch.equal(structured.effect, flat.effect) and torch.equal(structured.values, flat.values)
