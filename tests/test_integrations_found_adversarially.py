"""Defects an adversarial pass found in the training integrations, the CLI's weights and sample
pictures, the data sets and the demo models; each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentsweep.integrations import _common
from training_models import TinyVAE, digits

pytest.importorskip("tensorboard")
from latentsweep.integrations.tensorboard import log_traversals  # noqa: E402


class Writer:
    """A SummaryWriter look-alike that keeps nothing."""

    def add_scalar(self, *args, **kwargs):
        pass

    add_image = add_text = flush = add_scalar


class Stop(Exception):
    pass


@pytest.fixture
def devices_used(monkeypatch):
    """The devices take_snapshot hands to encode() and traverse() (it stops at the traversal)."""
    used = {}
    encode = _common.encode

    def recording_encode(*args, device=None, **kwargs):
        used["encode"] = device
        return encode(*args, device=device, **kwargs)

    def recording_traverse(decoder, anchors, *, device=None, **kwargs):
        used["traverse"] = device
        raise Stop

    monkeypatch.setattr(_common, "encode", recording_encode)
    monkeypatch.setattr(_common, "traverse", recording_traverse)
    return used


def test_the_decoder_runs_on_its_own_device_not_the_encoders(devices_used):
    """A decoder on another device than the encoder (model parallel, or an encoder kept on the
    CPU) was handed codes on the encoder's device: the decode failed with torch's device error."""
    vae = TinyVAE()
    vae.decoder.to("meta")  # (a device of its own, without a second GPU)
    with pytest.raises(Stop):
        log_traversals(Writer(), vae.encoder, vae.decoder, digits(8), step=0)
    assert devices_used == {"encode": torch.device("cpu"), "traverse": torch.device("meta")}
    devices_used.clear()
    with pytest.raises(Stop):  # device= still moves both
        log_traversals(Writer(), vae.encoder, vae.decoder, digits(8), step=0, device="cpu")
    assert devices_used == {"encode": torch.device("cpu"), "traverse": torch.device("cpu")}


def test_the_lightning_callback_decodes_on_the_decoders_device(devices_used):
    pl = pytest.importorskip("lightning.pytorch")
    from types import SimpleNamespace

    from latentsweep.integrations.lightning import TraversalCallback

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            vae = TinyVAE()
            self.encoder, self.decoder = vae.encoder, vae.decoder.to("meta")

    trainer = SimpleNamespace(loggers=[], is_global_zero=True, enable_validation=False, sanity_checking=False,
                              global_step=3, state=SimpleNamespace(fn="fit"))
    with pytest.raises(Stop):
        TraversalCallback(digits(8)).on_train_epoch_end(trainer, Lit())
    assert devices_used == {"encode": torch.device("cpu"), "traverse": torch.device("meta")}


def test_a_prior_std_diagnose_refuses_is_refused_when_set_up(monkeypatch):
    """prior_std=1e-300 passed the setup checks and failed at the first snapshot, named as
    latentsweep.diagnose (for Lightning: epochs into the training run)."""
    monkeypatch.setattr(_common, "encode", lambda *a, **k: pytest.fail("encoded before refusing prior_std"))
    vae = TinyVAE()
    for bad in (1e-300, 1e300):
        with pytest.raises(ValueError, match=r"log_traversals: prior_std must lie in \[1e-100, 1e\+100\]"):
            log_traversals(Writer(), vae.encoder, vae.decoder, digits(8), step=0, prior_std=bad)
    pytest.importorskip("lightning.pytorch")
    from latentsweep.integrations.lightning import TraversalCallback

    with pytest.raises(ValueError, match="TraversalCallback: prior_std must lie in"):
        TraversalCallback(digits(8), prior_std=1e-300)


def test_meta_and_sparse_data_are_refused_by_name():
    """Both failed inside torch ("Cannot copy out of meta tensor", "Could not run
    'aten::as_strided' with arguments from the 'SparseCPU' backend"), naming nothing."""
    vae = TinyVAE()
    with pytest.raises(ValueError, match="log_traversals: data is on the meta device"):
        log_traversals(Writer(), vae.encoder, vae.decoder, torch.empty(8, 64, device="meta"), step=0)
    with pytest.raises(TypeError, match=r"log_traversals: data must be a dense \(torch.strided\) tensor"):
        log_traversals(Writer(), vae.encoder, vae.decoder, digits(8).to_sparse(), step=0)


def test_an_image_shape_that_does_not_fit_the_outputs_names_the_function():
    """It said "latentsweep: image_shape (7, 7) holds 49 values ...": not which call."""
    vae = TinyVAE()
    flat = torch.nn.Sequential(vae.decoder, torch.nn.Flatten())
    with pytest.raises(ValueError, match=r"log_traversals: image_shape \(7, 7\) holds 49 values"):
        log_traversals(Writer(), vae.encoder, flat, digits(8), step=0, image_shape=(7, 7))


# ---- latentsweep sample's picture ------------------------------------------------------------
def test_the_samples_picture_stays_small_whatever_the_count_and_shape_of_the_images(tmp_path):
    """-n 100000 drew all 12,500 rows (a figure 560,000 pixels tall: 6 GiB for one array, then a
    MemoryError or the kernel's kill); a [1, 2000, 1] output was drawn to scale (160,000 pixels
    tall; [1, 20000, 1] exhausted 24 GB)."""
    from latentsweep.cli.samples import save_samples_picture

    rng = np.random.default_rng(0)
    many = save_samples_picture(rng.random((100_000, 1, 8, 8), dtype=np.float32), tmp_path / "many.png", per_row=8,
                                row_label=str, title="prior samples")
    width, height = many.get_size_inches()
    assert height < 12 and many.axes[0].get_ylabel() == "first 16 of 12500 rows"
    assert len(many.axes[0].get_yticklabels()) == 16
    for shape in ((1, 20_000, 1), (1, 1, 20_000), (3, 1024, 1024)):
        figure = save_samples_picture(rng.random((4, *shape), dtype=np.float32), tmp_path / "odd.png", per_row=2,
                                      row_label=str, title="posterior samples")
        width, height = figure.get_size_inches()
        assert 1 <= height < 10 and width < 10, (shape, width, height)
        assert figure.axes[0].get_ylabel() == ""
    few = save_samples_picture(rng.random((3, 8, 8)), tmp_path / "few.png", per_row=8, row_label=str, title="3")
    assert [t.get_text() for t in few.axes[0].get_xticklabels()] == ["0", "1", "2"]  # (not 8 columns, 5 empty)


def test_an_encoder_or_decoder_that_is_not_callable_is_named_for_the_caller(monkeypatch):
    """It was "latentsweep.integrations: encoder must be callable", and a decoder that is not was
    named as latentsweep.traverse's after the data had been encoded."""
    monkeypatch.setattr(_common, "encode", lambda *a, **k: pytest.fail("encoded before checking the decoder"))
    vae = TinyVAE()
    with pytest.raises(TypeError, match="log_traversals: encoder must be callable, got int"):
        log_traversals(Writer(), 5, vae.decoder, digits(8), step=0)
    with pytest.raises(TypeError, match="log_traversals: decoder must be callable, got NoneType"):
        log_traversals(Writer(), vae.encoder, None, digits(8), step=0)


class WriterWithoutFlush:
    """A SummaryWriter look-alike with the methods is_summary_writer asks for, and no flush."""

    def __init__(self):
        self.calls = []

    def add_scalar(self, *args, **kwargs):
        self.calls.append("add_scalar")

    def add_image(self, *args, **kwargs):
        self.calls.append("add_image")

    def add_text(self, *args, **kwargs):
        self.calls.append("add_text")


def test_log_traversals_takes_a_writer_look_alike_without_flush():
    """log_traversals accepts any writer with add_scalar, add_image and add_text (its TypeError
    lists those three), then called writer.flush(): AttributeError after the whole snapshot."""
    vae = TinyVAE()
    writer = WriterWithoutFlush()
    log_traversals(writer, vae.encoder, vae.decoder, digits(16), step=0, max_dims=2, anchors=2, steps=3)
    assert {"add_scalar", "add_image", "add_text"} <= set(writer.calls)


# --- thirty-fourth session's adversarial pass -----------------------------------------------------


class MergingLinear(torch.nn.Linear):
    """loralib's Linear(merge_weights=True): eval() folds B @ A into the weight, train() takes it
    back out; forward uses the low-rank pair only while unmerged."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__(inputs, outputs)
        generator = torch.Generator().manual_seed(5)
        self.A = torch.nn.Parameter(torch.randn(2, inputs, generator=generator) * 0.1)
        self.B = torch.nn.Parameter(torch.randn(outputs, 2, generator=generator) * 0.1)
        self.merged = False

    def train(self, mode: bool = True):
        super().train(mode)
        with torch.no_grad():
            if mode and self.merged:
                self.weight -= self.B @ self.A
                self.merged = False
            elif not mode and not self.merged:
                self.weight += self.B @ self.A
                self.merged = True
        return self

    def forward(self, z):
        out = super().forward(z)
        return out if self.merged else out + z @ self.A.T @ self.B.T


def test_a_modules_own_train_override_runs_when_its_mode_is_given_back():
    """Only the training flags were set back after a snapshot: a LoRA layer that merges its
    weights in eval() stayed merged while flagged as training, and training went on with it."""
    vae = TinyVAE()
    vae.decoder[0] = MergingLinear(4, 32)
    vae.train()
    log_traversals(Writer(), vae.encoder, vae.decoder, digits(), step=0, max_dims=2, steps=3)
    layer = vae.decoder[0]
    assert layer.training and not layer.merged


def test_a_mixed_mode_model_keeps_each_submodules_mode_and_its_override_state():
    vae = TinyVAE()
    vae.decoder[0] = MergingLinear(4, 32)
    vae.train()
    vae.decoder[0].eval()  # frozen by the user: merged, and must stay so
    log_traversals(Writer(), vae.encoder, vae.decoder, digits(), step=0, max_dims=2, steps=3)
    assert vae.training and vae.decoder.training
    assert not vae.decoder[0].training and vae.decoder[0].merged


def test_uint8_inputs_are_drawn_on_the_outputs_scale():
    """uint8 images (0..255) were drawn beside outputs of 0..1 on one colour scale: every decoded
    tile came out white, with a warning whose advice (vmin=, vmax=) the snapshot does not take."""
    inputs = (digits() * 255).round().to(torch.uint8)
    assert torch.equal(_common._drawn_inputs(inputs), inputs.float() / 255)
    assert _common._drawn_inputs(inputs.to(torch.int64)) is None  # (the encoder's own scaling is unknown)
    floats = digits()
    assert _common._drawn_inputs(floats) is floats
    vae = TinyVAE()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the colour range's "far outside the others" warning)
        log_traversals(Writer(), lambda x: vae.encoder(x.float() / 255), vae.decoder, inputs, step=0, max_dims=2,
                       steps=3)


def test_a_decoder_method_of_a_model_of_mixed_dtypes_gets_a_note_saying_so():
    vae = TinyVAE()
    vae.decoder.to(torch.float64)

    class Whole(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = vae.encoder, vae.decoder

        def decode(self, z):
            return self.decoder(z)

    with pytest.raises(RuntimeError) as caught:
        log_traversals(Writer(), vae.encoder, Whole().decode, digits(), step=0, max_dims=2, steps=3)
    assert any("cast to float32, its modules' first floating parameter's, but they hold several dtypes (float32, "
               "float64); pass the decoder module itself" in note for note in getattr(caught.value, "__notes__", []))


def test_data_with_nan_is_refused_when_the_callback_is_made():
    pytest.importorskip("lightning")
    from latentsweep.integrations.lightning import TraversalCallback

    data = digits()
    data[5, 2] = float("nan")
    with pytest.raises(ValueError, match=r"TraversalCallback: data has 1 non-finite value\(s\).*index \(5, 2\)"):
        TraversalCallback(data)
    with pytest.raises(ValueError, match="data has 1 non-finite"):
        log_traversals(Writer(), TinyVAE().encoder, TinyVAE().decoder, data.numpy(), step=0)
    big_endian = data.numpy().astype(">f4")  # (read as encode reads it: torch.from_numpy refuses its byte order)
    with pytest.raises(ValueError, match=r"data has 1 non-finite value\(s\).*index \(5, 2\)"):
        _common.check_data("f", big_endian)
    _common.check_data("f", np.nan_to_num(big_endian))


def test_the_callback_logs_at_training_epochs_when_the_validation_loader_is_empty(tmp_path):
    """validation_step defined, an empty validation loader: the trainer validates nothing, the
    callback waited for validation epochs and logged nothing, silently."""
    pl = pytest.importorskip("lightning.pytorch")
    from latentsweep.integrations.lightning import TraversalCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.vae = TinyVAE()

        def training_step(self, batch, index):
            return self.vae.loss(batch[0])

        def validation_step(self, batch, index):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = digits()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=32)
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data[:0]), batch_size=32)
    module = Module()
    callback = TraversalCallback(data, encoder=module.vae.encoder, decoder=module.vae.decoder, max_dims=2, steps=3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (Lightning's own, about the tiny loaders)
        pl.Trainer(max_epochs=2, callbacks=[callback], logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path).fit(module, loader, empty)
    assert callback.last is not None


def test_a_data_sets_factor_sizes_may_be_numpy_integers():
    import itertools

    from latentsweep import metrics
    from latentsweep.datasets import LabelledArrays

    grid = np.array(list(itertools.product(range(3), range(4))))
    data = LabelledArrays(torch.tensor(grid, dtype=torch.float64), grid)

    class NumpySizes:
        factor_sizes = np.array(data.factor_sizes)  # (its items are np.int64)
        sample_factors, observations = data.sample_factors, data.observations

    scores = metrics.factor_vae_score(lambda o: o.clone(), NumpySizes(), num_train=20, num_eval=10,
                                      num_variance_estimate=50, progress=False)
    assert scores["train_accuracy"] == 1.0


def test_shapes_observations_refuses_a_broadcast_view_beyond_the_memory_before_copying_it():
    from latentsweep.datasets import Shapes

    huge = torch.zeros(1, 5, dtype=torch.int64).expand(10**9, 5)
    with pytest.raises(ValueError, match=r"observations: the images \[n=1000000000, 1, 32, 32\] needs"):
        Shapes().observations(huge)


def test_posterior_sample_of_two_dtypes_names_the_posterior():
    import latentsweep as ls

    posterior = ls.Posterior(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"Posterior.sample: mu \(torch.float32\) and logvar \(torch.float64\) differ"):
        posterior.sample(2)
