"""latentsweep called again and again from a training loop, in the loop's own torch state:
defects an adversarial pass found (each test failed before its fix), and guards that a long
run of calls leaves nothing behind."""

from __future__ import annotations

import gc
import warnings
import os
import threading

import pytest
import torch
from torch import nn

import latentsweep as ls
from latentsweep import _modules
from latentsweep._extension import _C
from latentsweep.stores import SweepStore
from training_models import PIXELS, TinyVAE, digits

D = 4


def _lazy_vae() -> tuple[nn.Module, nn.Module]:
    """An encoder and decoder whose first layers are lazy: their weights exist only after a call."""
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 2 * D))
    decoder = nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, PIXELS), nn.Sigmoid())
    return encoder, decoder


def _train_one_step(encoder: nn.Module, decoder: nn.Module, x: torch.Tensor) -> None:
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    mu, _ = encoder(x).chunk(2, dim=1)
    loss = nn.functional.mse_loss(decoder(mu), x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _no_inference_tensors(*modules: nn.Module) -> list[str]:
    return [name for module in modules for name, t in [*module.named_parameters(), *module.named_buffers()]
            if t.is_inference()]


def test_a_lazy_model_looked_at_before_its_first_step_still_trains():
    """A model with lazy layers (nn.LazyLinear) encoded and traversed before its first training
    step (a snapshot at step 0) had its weights created under inference mode: inference tensors,
    and the first step failed in backward ("Inference tensors cannot be saved for backward")."""
    encoder, decoder = _lazy_vae()
    x = digits(32)
    posterior = ls.encode(lambda batch: tuple(encoder(batch).chunk(2, dim=1)), x, batch_size=16, progress=False)
    ls.traverse(decoder, posterior[:2], steps=3, batch_size=8, progress=False)
    assert _no_inference_tensors(encoder, decoder) == []
    _train_one_step(encoder, decoder, x)


class Writer:
    """A SummaryWriter look-alike that keeps nothing."""

    def add_scalar(self, *args, **kwargs):
        pass

    add_image = add_text = add_scalar


def test_a_lazy_model_logged_at_step_zero_still_trains():
    """The same through log_traversals before the first step, with a lambda as the encoder."""
    pytest.importorskip("tensorboard")
    from latentsweep.integrations.tensorboard import log_traversals

    encoder, decoder = _lazy_vae()
    x = digits(32)
    # (a lambda: the encoder's modules are found behind the wrapper that keeps the inputs)
    log_traversals(Writer(), lambda batch: tuple(encoder(batch).chunk(2, dim=1)), decoder, x, step=0, steps=3,
                   anchors=2, grid_anchors=0)
    assert _no_inference_tensors(encoder, decoder) == []
    _train_one_step(encoder, decoder, x)


def test_a_snapshot_casts_the_data_to_the_dtype_of_a_function_encoders_modules():
    """log_traversals(writer, lambda x: vae.encoder(x), ...) of a float64 model given float32 data
    failed in the model's first layer ("mat1 and mat2 must have the same dtype"): the wrapper that
    keeps the snapshot's inputs hid the lambda's modules from encode, which casts the data to their
    dtype (as it did for vae.encoder itself, and for ls.encode(lambda x: ...))."""
    pytest.importorskip("tensorboard")
    from latentsweep.integrations.tensorboard import log_traversals

    vae = TinyVAE().double()
    snapshot = log_traversals(Writer(), lambda x: vae.encoder(x), vae.decoder, digits(32), step=0, steps=3,
                              anchors=2, grid_anchors=0)
    assert snapshot.result.values.dtype == torch.float64


def test_a_lazy_encoder_scored_by_the_metrics_still_trains():
    encoder, decoder = _lazy_vae()
    x = digits(64)
    data = ls.datasets.LabelledArrays(x, (torch.arange(64) % 4)[:, None])
    with pytest.warns(UserWarning, match="num_train=48 is below 1000"):
        ls.metrics.evaluate(lambda batch: encoder(batch)[:, :D], data, metrics=["mig"], num_train=48, num_test=16,
                            progress=False)
    assert _no_inference_tensors(encoder) == []
    _train_one_step(encoder, nn.Sequential(nn.Linear(D, PIXELS)), x)


def _tensors_of(diagnosis: ls.Diagnosis) -> dict[str, torch.Tensor]:
    return {name: value for name, value in vars(diagnosis).items() if isinstance(value, torch.Tensor)}


@pytest.mark.parametrize("variational", [True, False], ids=["vae", "autoencoder"])
def test_a_training_steps_codes_that_carry_gradients_are_diagnosed(variational):
    """diagnose(Posterior(mu, logvar)) on a training step's encoder outputs (which require grad)
    failed inside torch ("div(): functions with out=... arguments don't support automatic
    differentiation"), and so did report(posterior=...); an autoencoder's diagnosis held the
    step's autograd graph in its statistics."""
    torch.manual_seed(0)
    encoder = nn.Linear(PIXELS, 2 * D)
    mu, logvar = encoder(digits(64)).chunk(2, dim=1)
    assert mu.requires_grad
    posterior = ls.Posterior(mu, logvar) if variational else ls.Posterior(mu)
    diagnosis = ls.diagnose(posterior)
    plain = ls.diagnose(ls.Posterior(mu.detach(), logvar.detach() if variational else None))
    got, expected = _tensors_of(diagnosis), _tensors_of(plain)
    assert [name for name, t in got.items() if t.requires_grad] == []
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    assert [f.code for f in diagnosis.flags] == [f.code for f in plain.flags]


@pytest.mark.parametrize("variational", [True, False], ids=["vae", "autoencoder"])
def test_a_diagnosis_keeps_its_own_codes_when_the_callers_change_in_place(variational):
    """Diagnosis.reference (the codes mode "empirical" traverses over) was the caller's tensor:
    codes updated in place afterwards (an auto-decoder's latent table stepped by its optimizer, a
    memory bank of codes) changed a diagnosis already made, so its traversal_options() no longer
    matched its statistics."""
    torch.manual_seed(0)
    table = nn.Embedding(64, D)  # one learnt code per training input (DeepSDF, GLO)
    logvar = torch.full((64, D), -2.0)
    diagnosis = ls.diagnose(ls.Posterior(table.weight, logvar) if variational else table.weight)
    before = table.weight.detach().clone()
    optimizer = torch.optim.SGD(table.parameters(), lr=0.1)
    table(torch.arange(64)).square().sum().backward()
    optimizer.step()  # (in place, as every optimizer)
    assert not torch.equal(table.weight.detach(), before)
    assert torch.equal(diagnosis.reference, before)
    if not variational:  # (mode "empirical": traverse(decoder, anchors, **options) reads the reference)
        assert torch.equal(diagnosis.traversal_options()["reference"], before)


# ---- many calls in one process leave nothing behind ------------------------------------------
CALLS = 100


def _held() -> dict:
    """What a call could leave behind in this process, counted."""
    gc.collect()
    return {
        "file descriptors": len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0,
        # (not zarr's event loop's executor, asyncio_0, ...: it grows as needed up to its bounded size)
        "threads": sum(not thread.name.startswith("asyncio_") for thread in threading.enumerate()),
        "objects tracked by gc": len(gc.get_objects()),
        "modules held in eval mode": len(_modules._IN_EVAL),
        "bytes the reusing allocator keeps": _C._reuse_counters()["kept_bytes"],
    }


def _grown(call, calls: int) -> dict:
    for _ in range(3):  # one-time imports and caches first
        call()
    before = _held()
    for _ in range(calls):
        call()
    after = _held()
    return {what: after[what] - before[what] for what in before}


def _assert_bounded(grown: dict, calls: int) -> None:
    """Nothing more held, but for a slack for the interpreter's own caches that a leak of one
    object per call exceeds."""
    slack = dict.fromkeys(grown, 0) | {"objects tracked by gc": calls // 4}
    assert {what: n for what, n in grown.items() if n > slack[what]} == {}, grown


def test_repeated_calls_in_memory_leave_nothing_behind():
    torch.manual_seed(0)
    encoder, decoder = nn.Linear(PIXELS, 2 * D), nn.Sequential(nn.Linear(D, 3000), nn.Sigmoid())
    x, anchors = digits(64), torch.randn(2, D)

    def look():  # what a training loop calls every few steps (a decoder big enough to reuse buffers)
        posterior = ls.encode(lambda batch: tuple(encoder(batch).chunk(2, dim=1)), x, batch_size=32, progress=False)
        ls.diagnose(posterior)
        ls.traverse(decoder, anchors, steps=5, batch_size=8, progress=False)

    _assert_bounded(_grown(look, CALLS), CALLS)


def test_repeated_sweeps_into_one_store_leave_nothing_behind(tmp_path):
    torch.manual_seed(0)
    decoder, anchors = nn.Linear(D, 8), torch.randn(2, D)
    store = tmp_path / "sweep.zarr"

    def sweep():
        with torch.no_grad():
            decoder.weight.add_(0.01)  # a training step between two looks
        result = ls.traverse(decoder, anchors, steps=3, batch_size=4, progress=False, out=store, overwrite=True)
        assert result.outputs[0].shape == (D, 3, 8)

    calls = CALLS // 4  # (each writes a store)
    grown = _grown(sweep, calls)
    # A new thread of zarr's executor brings its own objects: the stores themselves are counted.
    _assert_bounded(grown | {"objects tracked by gc": 0}, calls)
    # (this test's stores: other tests' results may hold theirs)
    assert [o for o in gc.get_objects() if issubclass(type(o), SweepStore) and str(store) in str(o.path)] == []
    assert list((store / "leases").iterdir()) == []  # (a lease left behind refuses the next overwrite)


def test_the_bounds_catch_a_leak_of_one_object_per_call():
    kept = []
    grown = _grown(lambda: kept.append([1]), CALLS)
    with pytest.raises(AssertionError):
        _assert_bounded(grown, CALLS)


def test_repeated_snapshots_keep_no_figure_alive():
    """Each snapshot draws matplotlib figures; none may outlive it (pyplot would keep them all)."""
    pytest.importorskip("tensorboard")
    from matplotlib.figure import Figure

    from latentsweep.integrations.tensorboard import log_traversals

    def figures() -> set[int]:  # (other tests' results may hold their own)
        gc.collect()
        return {id(o) for o in gc.get_objects() if issubclass(type(o), Figure)}

    vae, x = TinyVAE(), digits(32)
    before = figures()
    for step in range(3):
        log_traversals(Writer(), vae.encoder, vae.decoder, x, step=step, steps=3, anchors=2)
    assert figures() - before == set()


class CachingDecoder(nn.Module):
    """A decoder that builds a table in its forward the first time it sees a batch size (as rotary
    embeddings and coordinate grids cache theirs), kept as a buffer its training then uses."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(D, PIXELS)
        self.register_buffer("table", None, persistent=False)

    def forward(self, z):
        if self.table is None or self.table.shape[0] != z.shape[0]:
            self.table = torch.linspace(0, 1, z.shape[0], device=z.device)[:, None].expand(-1, PIXELS).clone()
        return torch.sigmoid(self.linear(z)) * self.table


@pytest.mark.parametrize("call", ["traverse", "encode", "interpolate"])
def test_a_cache_a_model_builds_in_forward_during_a_call_is_usable_by_its_training(call):
    """The C++ executor decoded under inference mode (and encode and the probe too): a cache the
    model built in its forward during the call was an inference tensor, and the training step
    that used it next failed in backward ("Inference tensors cannot be saved for backward")."""
    torch.manual_seed(0)
    decoder, anchors = CachingDecoder(), torch.randn(2, D)
    if call == "traverse":  # (steps x latents = the training batch below: the sweep's batch size)
        ls.traverse(decoder, anchors[:1], steps=4, batch_size=16, progress=False)
    elif call == "interpolate":
        ls.interpolate(decoder, anchors[:1].expand(4, -1), anchors[1:].expand(4, -1), steps=4, batch_size=16,
                       progress=False)
    else:
        ls.encode(lambda x: decoder(x)[:, :D], torch.randn(16, D), batch_size=16, progress=False)
    assert decoder.table is not None and decoder.table.shape[0] == 16
    assert _no_inference_tensors(decoder) == []
    loss = decoder(torch.randn(16, D, requires_grad=True)).square().mean()
    loss.backward()


class FunctionalDropoutDecoder(nn.Module):
    """The classic slip: F.dropout's training flag defaults to True, so eval mode does not stop it."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(D, 12)

    def forward(self, z):
        return nn.functional.dropout(self.linear(z), 0.5)


@pytest.mark.parametrize("call", ["traverse", "interpolate"])
def test_a_decoder_that_draws_random_numbers_in_eval_mode_is_named(call):
    """A decoder random in eval mode made every traversal noise, silently (and advanced the
    caller's random stream): the probe sees torch's random state move and says so."""
    torch.manual_seed(0)
    anchors = torch.randn(2, D)
    run = {"traverse": lambda decoder: ls.traverse(decoder, anchors, steps=3, progress=False),
           "interpolate": lambda decoder: ls.interpolate(decoder, anchors, anchors.flip(0), steps=3, progress=False)}[call]
    with pytest.warns(UserWarning, match=r"draws random numbers in eval mode .*F\.dropout") as caught:
        run(FunctionalDropoutDecoder())
    assert caught[0].filename == __file__  # (the user's line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(nn.Sequential(nn.Linear(D, 12), nn.Dropout(0.5)))  # (nn.Dropout: off in eval mode)


def test_lazy_layers_drawing_their_first_weights_are_not_a_random_decoder():
    """A lazy layer's first call initialises its weights from torch's random state: once, not
    on every call, so not named as a random decoder."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ls.traverse(nn.Sequential(nn.LazyLinear(12), nn.Sigmoid()), torch.randn(2, D), steps=3, progress=False)
