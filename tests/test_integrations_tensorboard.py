"""log_traversals in a plain PyTorch loop: what lands in the event files, and that the loop
trains exactly as without it."""

from __future__ import annotations

import contextlib
import importlib
import random
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("tensorboard")
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

import latentsweep  # noqa: E402
from latentsweep import encoding  # noqa: E402
from latentsweep.integrations import _common  # noqa: E402
from latentsweep.integrations.tensorboard import log_traversals  # noqa: E402
from tensorboard_events import assert_scalars_match, read_events  # noqa: E402
from training_models import LATENT_DIM, TinyVAE, digits  # noqa: E402

EPOCHS = 2
BATCH = 16


def train(data: torch.Tensor, *, writer=None, log_data=None, relu_logvar: bool = False, **options) -> tuple[TinyVAE, list]:
    """A plain loop (shuffled loader, dropout, reparameterised samples: all from the global RNG)
    with log_traversals after each epoch when a writer is given; returns the model and the
    snapshots."""
    torch.manual_seed(0)
    model = TinyVAE(relu_logvar=relu_logvar)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(TensorDataset(data), batch_size=BATCH, shuffle=True)
    step, snapshots = 0, []
    for _ in range(EPOCHS):
        model.train()
        for (x,) in loader:
            loss = model.loss(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        if writer is not None:
            snapshots.append(log_traversals(writer, model.encoder, model.decoder, log_data, step=step, **options))
    return model, snapshots


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    data = digits(64)
    logdir = tmp_path_factory.mktemp("tb")
    with SummaryWriter(logdir) as writer:
        model, snapshots = train(data, writer=writer, log_data=data)
    return data, model, snapshots, read_events(logdir)


def test_event_files_hold_what_diagnose_finds(logged_run):
    data, model, snapshots, events = logged_run
    steps = [s.step for s in snapshots]
    assert steps == [4, 8]  # 64 inputs / 16 per batch, after each epoch
    expected = latentsweep.diagnose(latentsweep.encode(model.encoder, data))
    assert_scalars_match(events.last_scalars("latentsweep"), expected)
    # Every scalar is there at both steps.
    for tag, values in events.scalars.items():
        assert [step for step, _ in values] == steps, tag


def test_event_files_hold_the_pictures_and_the_flags(logged_run):
    _, _, snapshots, events = logged_run
    assert set(events.images) == {"latentsweep/traversal/anchor0", "latentsweep/kl"}
    for tag, written in events.images.items():
        assert [step for step, _ in written] == [4, 8]
        for (_, image), snapshot in zip(written, snapshots):
            np.testing.assert_array_equal(image, snapshot.images[tag.split("/", 1)[1]])  # PNG is lossless
    grid = snapshots[-1].images["traversal/anchor0"]
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3 and grid.std() > 10
    [(step, text)] = events.text["latentsweep/diagnosis"][-1:]
    assert step == 8
    assert text == snapshots[-1].text
    assert snapshots[-1].diagnosis.summary() in text


def test_traverses_the_latents_ranked_by_kl(logged_run, tmp_path):
    data, model, _, _ = logged_run
    with SummaryWriter(tmp_path) as writer:
        snapshot = log_traversals(writer, model.encoder, model.decoder, data, step=0, max_dims=2, anchors=3, steps=5)
    kl = snapshot.diagnosis.kl
    assert snapshot.result.dims.tolist() == torch.argsort(kl, descending=True)[:2].tolist()
    assert tuple(snapshot.result.values.shape) == (3, 2, 5)
    assert snapshot.result.outputs is None  # statistics over all anchors; outputs only for the picture
    assert snapshot.result.mode == snapshot.diagnosis.recommended_mode
    assert sorted(k for k in snapshot.scalars if k.startswith("effect/")) == sorted(
        f"effect/z{d}" for d in snapshot.result.dims.tolist()
    )
    # The anchors are the first inputs, encoded in eval mode (no dropout).
    model.eval()
    torch.testing.assert_close(snapshot.result.anchors, model.encoder(data)[0][:3], rtol=0, atol=0)


def test_the_training_loop_is_bit_identical_with_and_without_it(tmp_path):
    data = digits(64)
    # A DataLoader as the logged data: iterating it draws a seed from the global RNG.
    log_data = DataLoader(TensorDataset(data[:32]), batch_size=8)
    plain, _ = train(data)
    with SummaryWriter(tmp_path) as writer:
        logged, snapshots = train(data, writer=writer, log_data=log_data)
    assert len(snapshots) == EPOCHS
    for (name, a), b in zip(plain.state_dict().items(), logged.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_rng_test_can_fail(monkeypatch, tmp_path):
    """Without the RNG guard the same comparison finds different weights, so the test above
    tests something."""
    data = digits(64)
    log_data = DataLoader(TensorDataset(data[:32]), batch_size=8)
    plain, _ = train(data)
    monkeypatch.setattr(_common, "preserve_rng_state", contextlib.nullcontext)
    monkeypatch.setattr(encoding, "preserve_rng_state", contextlib.nullcontext)  # (encode's own guard)
    with SummaryWriter(tmp_path) as writer:
        logged, _ = train(data, writer=writer, log_data=log_data)
    assert not all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), logged.state_dict().values()))


def test_global_random_states_and_module_modes_are_restored(tmp_path):
    model = TinyVAE()
    model.train()
    model.decoder[0].eval()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    with SummaryWriter(tmp_path) as writer:
        log_traversals(writer, model.encoder, model.decoder, DataLoader(TensorDataset(digits(16)), batch_size=4), step=0)  # (iterating draws a seed)
    assert random.getstate() == states[0]
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), states[1]))
    assert torch.equal(torch.get_rng_state(), states[2])
    assert [m.training for m in model.modules()] == modes


def _batchnorm_model() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    encoder = torch.nn.Linear(16, 8)
    decoder = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                                  torch.nn.Linear(32, 16))
    return encoder, decoder


def test_modules_behind_lambdas_are_put_in_eval_mode(tmp_path):
    """A lambda around the model ran it in training mode: BatchNorm's running statistics moved
    (and one grid anchor crashed BatchNorm: "Expected more than 1 value per channel")."""
    encoder, decoder = _batchnorm_model()
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    with SummaryWriter(tmp_path) as writer:
        log_traversals(writer, lambda x: encoder(x).chunk(2, 1), lambda z: torch.sigmoid(decoder(z)),
                       torch.randn(64, 16), step=0, image_shape=(4, 4), anchors=4, grid_anchors=1)

        class Wrapper:  # a callable object holding the module
            def __init__(self):
                self.decoder = decoder

            def __call__(self, z):
                return self.decoder(z)

        log_traversals(writer, lambda x: encoder(x).chunk(2, 1), Wrapper(), torch.randn(64, 16), step=1,
                       anchors=4, grid_anchors=1)
    for name, value in decoder.state_dict().items():
        assert torch.equal(before[name], value), name
    assert decoder.training


def test_a_model_hidden_from_the_snapshot_is_warned_about_or_named(tmp_path):
    encoder, decoder = _batchnorm_model()
    model = torch.nn.ModuleDict({"encoder": encoder, "decoder": decoder})
    def part(name):  # reached through a function call: nothing to find
        return {"e": encoder, "d": decoder}[name]

    def encode(x):
        return part("e")(x).chunk(2, 1)

    def decode(z):
        return part("d")(z)

    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    data = torch.randn(64, 16)
    with SummaryWriter(tmp_path) as writer:
        with pytest.warns(UserWarning, match=r"log_traversals: found no nn.Module .* pass modules=\[model\]"):
            log_traversals(writer, encode, decode, data, step=0, anchors=4, grid_anchors=0)
        moved = not all(torch.equal(before[k], v) for k, v in decoder.state_dict().items())
        assert moved  # (the warning was right: the statistics moved)
        decoder.load_state_dict(before)
        log_traversals(writer, encode, decode, data, step=1, anchors=4, grid_anchors=0, modules=model)
        for name, value in decoder.state_dict().items():
            assert torch.equal(before[name], value), name
        with pytest.raises(TypeError, match=r"log_traversals: modules must hold nn.Modules, got str"):
            log_traversals(writer, encode, decode, data, step=2, modules=["model"])
        with pytest.raises(TypeError, match=r"log_traversals: modules must be an nn.Module or a list of them, got int"):
            log_traversals(writer, encode, decode, data, step=2, modules=3)


def test_a_relu_logvar_head_is_flagged(tmp_path):
    data = digits(64)
    with SummaryWriter(tmp_path) as writer:
        train(data, writer=writer, log_data=data, relu_logvar=True)
    events = read_events(tmp_path)
    assert events.last_scalars("latentsweep")["flags/nonnegative-logvar"] == LATENT_DIM
    assert "nonnegative-logvar" in events.text["latentsweep/diagnosis"][-1][1]


def test_autoencoders_bound_methods_and_tabular_outputs(tmp_path):
    torch.manual_seed(0)
    data = digits(32)

    class AE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Linear(64, 3)
            self.dec = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Sigmoid())

        def encode(self, x):
            return self.enc(x)

        def decode(self, z):
            return self.dec(z)

    ae = AE().train()
    with SummaryWriter(tmp_path) as writer:
        flat = log_traversals(writer, ae.encode, ae.decode, data.numpy(), step=3, image_shape=(8, 8), prefix="ae")
        tabular = log_traversals(writer, ae.encode, lambda z: ae.decode(z)[:, :5], data, step=3, prefix="tab/")
    assert ae.training and ae.enc.training  # bound methods: their module ran in eval mode and came back
    assert flat.result.mode == "empirical" and "kl" not in flat.images and "active_units" not in flat.scalars
    assert set(flat.images) == {"traversal/anchor0"}
    assert set(tabular.images) == {"response_curves"}
    events = read_events(tmp_path)
    assert "ae/traversal/anchor0" in events.images and "tab/response_curves" in events.images
    assert "ae/flags/collapsed" in events.scalars and "tab/effect/z0" in events.scalars


def test_bad_arguments_are_named(tmp_path):
    model, data = TinyVAE(), digits(8)
    with SummaryWriter(tmp_path) as writer:
        def call(**kwargs):
            arguments = dict(writer=writer, encoder=model.encoder, decoder=model.decoder, data=data, step=0)
            arguments.update(kwargs)
            return log_traversals(arguments.pop("writer"), arguments.pop("encoder"), arguments.pop("decoder"),
                                  arguments.pop("data"), **arguments)

        cases = [
            (dict(writer=object()), TypeError, "writer must be a TensorBoard SummaryWriter"),
            (dict(step=-1), ValueError, "step must be >= 0"),
            (dict(step=1.5), TypeError, "step must be an int"),
            (dict(mode="sideways"), ValueError, "mode must be one of 'auto'"),
            (dict(max_dims=0), ValueError, "max_dims must be >= 1"),
            (dict(anchors=0), ValueError, "anchors must be >= 1"),
            (dict(grid_anchors=9), ValueError, "grid_anchors must be <= 8"),
            (dict(steps=0), ValueError, "steps must be >= 1"),
            (dict(span=-1.0), ValueError, "span must be a finite number > 0"),
            (dict(prefix=3), TypeError, "prefix must be a str"),
            (dict(data="x.npy"), TypeError, "data must be a tensor"),
            (dict(data=iter([data])), TypeError, "one-shot iterator"),
            (dict(data=data[:0]), ValueError, "non-empty"),
            (dict(device="nowhere"), ValueError, "device must be"),
            (dict(image_shape=(3, 3)), ValueError, "image_shape"),
            (dict(image_shape=(2, 8, 8)), ValueError, "not images"),
            (dict(image_shape=("8", "8")), TypeError, "image_shape must hold ints"),
            (dict(image_shape=8), TypeError, "image_shape must be a tuple"),
            (dict(encoder=lambda x: x[:, :2] * float("nan")), ValueError, "NaN/Inf"),
            (dict(mode="posterior", encoder=lambda x: x[:, :4]), ValueError,
             r"log_traversals: mode='posterior' needs the posterior's logvar, and this encoder returns codes only"),
        ]
        for kwargs, error, message in cases:
            with pytest.raises(error, match=message):
                call(**kwargs)


def test_importing_without_tensorboard_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # makes `import tensorboard` fail
    monkeypatch.delitem(sys.modules, "latentsweep.integrations.tensorboard")
    with pytest.raises(ImportError, match=r"pip install 'latentsweep\[tensorboard\]'"):
        importlib.import_module("latentsweep.integrations.tensorboard")
    monkeypatch.undo()
    importlib.import_module("latentsweep.integrations.tensorboard")


def test_data_of_another_dtype_takes_the_encoders_or_is_explained(tmp_path):
    """float64 tensors are cast to the encoder's float32, as encode() does (the recorder that
    keeps the drawn inputs once hid the encoder's module); integer data that the encoder
    cannot take fails with a note saying why."""
    torch.manual_seed(0)
    model, data = TinyVAE(), digits(8)
    with SummaryWriter(tmp_path) as writer:
        wide = log_traversals(writer, model.encoder, model.decoder, data.double(), step=0, grid_anchors=0)
        narrow = log_traversals(writer, model.encoder, model.decoder, data, step=0, grid_anchors=0)
        assert torch.equal(wide.result.anchors, narrow.result.anchors)
        with pytest.raises(RuntimeError) as info:
            log_traversals(writer, model.encoder, model.decoder, (data * 16).long(), step=0)
    assert any("data is torch.int64 while the encoder's parameters are torch.float32" in note
               for note in info.value.__notes__)


def test_complex_data_is_refused_by_name(tmp_path):
    """A complex tensor reached the encoder's first layer: torch's "mat1 and mat2 must have the
    same dtype", naming nothing (a complex numpy array was already refused)."""
    model, data = TinyVAE(), digits(8)
    fn = "log_traversals: data must hold real numbers"
    with SummaryWriter(tmp_path) as writer:
        for complex_data, got in [
            (data.to(torch.complex64), "torch.complex64"),
            (data.numpy().astype(np.complex64), "a numpy array of dtype complex64"),
            (DataLoader(TensorDataset(data.to(torch.complex64)), batch_size=4), "a batch of torch.complex64"),
        ]:
            with pytest.raises(TypeError, match=rf"{fn} \(complex inputs are not supported\), got {got}"):
                log_traversals(writer, model.encoder, model.decoder, complex_data, step=0)


def test_an_encoder_whose_kl_overflows_is_refused(tmp_path):
    """Inputs scaled by 1e30 make logvar ~1e29: exp(logvar) is beyond any float, and mean_kl and
    kl/z<d> were logged as inf, with advice about a ReLU logvar head."""
    torch.manual_seed(0)
    model = TinyVAE()
    with SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=r"log_traversals: the encoder's outputs overflow: their KL to the prior is "
                                             r"beyond float64's range on dims? .*exp\(logvar\), the posterior "
                                             r"variance, overflows float64 above 709\.8"):
            log_traversals(writer, model.encoder, model.decoder, digits(16) * 1e30, step=0)
        # large but representable: logged as it is
        snapshot = log_traversals(writer, model.encoder, model.decoder, digits(16) * 100, step=0, grid_anchors=0)
    assert np.isfinite(snapshot.scalars["mean_kl"]) and snapshot.scalars["mean_kl"] > 1e3


def logits_decoder(model: TinyVAE) -> torch.nn.Module:
    """TinyVAE's decoder without its final Sigmoid: the logits of the same pictures."""
    *layers, sigmoid, unflatten = model.decoder
    assert isinstance(sigmoid, torch.nn.Sigmoid)
    return torch.nn.Sequential(*layers, unflatten)


def sigmoid(outputs: torch.Tensor) -> torch.Tensor:
    """No change, named so that a decoder that applies its own sigmoid gets the same colour bar
    label ("sigmoid(decoder output)") as a logits decoder with output_transform="sigmoid"."""
    return outputs


def test_output_transform_logs_the_pictures_of_a_logits_decoder_in_its_space(tmp_path):
    """log_traversals had no output_transform: a decoder that returns logits was drawn as logits."""
    torch.manual_seed(0)
    model, data = TinyVAE(), digits(16)
    logits = logits_decoder(model)
    options = dict(step=0, anchors=4, steps=5)
    with SummaryWriter(tmp_path / "transformed") as writer:
        transformed = log_traversals(writer, model.encoder, logits, data, output_transform="sigmoid", **options)
    with SummaryWriter(tmp_path / "reference") as writer:
        reference = log_traversals(writer, model.encoder, model.decoder, data, output_transform=sigmoid, **options)
    with SummaryWriter(tmp_path / "raw") as writer:
        raw = log_traversals(writer, model.encoder, logits, data, **options)
    assert transformed.result.output_space == "sigmoid(decoder output)"
    torch.testing.assert_close(transformed.result.dim_effect, reference.result.dim_effect)
    logged, expected, untransformed = (read_events(tmp_path / name).images["latentsweep/traversal/anchor0"][-1][1]
                                       for name in ("transformed", "reference", "raw"))
    np.testing.assert_array_equal(logged, expected)
    assert raw.result.output_space == "decoder output" and not np.array_equal(logged, untransformed)


def test_bad_output_options_are_named_before_anything_is_computed(tmp_path, monkeypatch):
    model, data = TinyVAE(), digits(8)
    monkeypatch.setattr(_common, "take_snapshot", lambda *a, **k: pytest.fail("a snapshot was taken"))
    with SummaryWriter(tmp_path) as writer:
        for kwargs, error, message in [
            (dict(output_transform="softmax"), ValueError, "output_transform must be one of 'sigmoid', 'tanh', 'exp'"),
            (dict(output_transform=3), TypeError, "output_transform must be None, a name"),
            (dict(output=1.5), TypeError, "output must be None, a key or attribute name"),
        ]:
            with pytest.raises(error, match=f"log_traversals: {message}"):
                log_traversals(writer, model.encoder, model.decoder, data, step=0, **kwargs)
