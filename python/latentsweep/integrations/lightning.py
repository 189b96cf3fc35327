"""Latent traversals during Lightning training: a callback that diagnoses the latent space,
traverses the ranked latents and logs pictures, scalars and flags through every logger.

Needs Lightning: ``pip install 'latentsweep[lightning]'``.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import _checks
from . import _common

pl = _common.require("lightning.pytorch", "lightning", alternatives=("pytorch_lightning",))

_FN = "latentsweep.integrations.lightning.TraversalCallback"
ON_ERROR = ("raise", "warn")


class TraversalCallback(pl.Callback):
    """Looks at the latent space at the end of every n-th validation epoch (every n-th training
    epoch when the trainer does not validate) and logs what it sees.

    Each time it encodes ``data``, runs :func:`latentsweep.diagnose`, traverses the latents
    ranked by KL (by the variance of the codes for an autoencoder) from the first ``anchors``
    inputs in the diagnosis' recommended mode, and logs at ``trainer.global_step`` (names under
    ``prefix``, as :func:`latentsweep.integrations.tensorboard.log_traversals` lists them):

    - scalars (``active_units``, ``mean_kl``, ``collapsed_latents``, ``kl/z<d>``,
      ``flags/<code>``, ``effect/z<d>``) through every logger's ``log_metrics``;
    - images (the traversal grid, the KL bars) and the flags as Markdown text: to TensorBoard
      (any logger whose ``experiment`` is a SummaryWriter); through ``log_image``/``log_text``
      for loggers that have them (e.g. Weights & Biases); as PNG files and ``diagnosis.md`` under
      ``<log_dir>/<prefix>/step=<step>/`` (the step zero-padded to 7 digits) for loggers with a ``log_dir`` and neither (e.g.
      ``CSVLogger``); other loggers get the scalars only (with a warning).

    It runs on global rank 0 only (with sharded models such as FSDP or DeepSpeed stage 3, where
    one rank cannot run the model alone, it cannot be used), during ``fit`` (not in the sanity
    check, nor under ``Trainer(fast_dev_run=...)``, which suppresses logging; a wrong ``encoder``
    or ``decoder`` name still fails when fit starts), under ``torch.no_grad`` with the
    LightningModule in eval mode (each submodule's mode is restored), and restores the global random states of torch, numpy and Python: training runs
    bit-identically with and without it. The latest snapshot is kept in ``self.last``.

    Args:
        data: a fixed sample of inputs (a few hundred to a few thousand): an ``[N, ...]`` tensor,
            a Dataset or a DataLoader (not shuffled, or the anchors change between snapshots).
            Batches go to the encoder's device and codes to the decoder's (each part's own
            parameters'; the LightningModule's for a part without any).
        every_n_epochs: log at every n-th validation epoch (or training epoch without validation).
        steps: S, values per traversed latent.
        mode: ``"auto"`` (the diagnosis' recommended mode) or a mode of
            :func:`latentsweep.traversal_values`.
        max_dims: traverse only the K highest-ranked latents (``None``: all D).
        anchors: A, inputs the traversal starts from.
        encoder, decoder: callables, or the names of the LightningModule's attributes to use
            (default: its ``encoder``/``decoder``, else its ``encode``/``decode`` methods).
        span, prior_std: the traversal's range, as in :func:`latentsweep.traverse`.
        grid_anchors: how many anchors get a traversal picture (0: none).
        image_shape: ``(H, W)`` or ``(C, H, W)`` to draw flat decoder outputs as images.
        batch_size: inputs per encoder call (tensors and Datasets).
        prefix: the logged names' prefix (``""`` for none).
        output, output_transform: which part of the decoder's output to use and a function of
            it (``"sigmoid"`` for a decoder that returns logits), as for
            :func:`latentsweep.traverse`: the pictures and ``effect/z<d>`` are of what it gives.
        on_error: ``"raise"`` (default: a failing snapshot, e.g. NaN codes, stops the training
            like any exception) or ``"warn"`` (warn and train on).
    """

    def __init__(
        self,
        data,
        *,
        every_n_epochs: int = 1,
        steps: int = 11,
        mode: str = "auto",
        max_dims: int | None = None,
        anchors: int = 8,
        encoder=None,
        decoder=None,
        span: float = 2.0,
        prior_std: float = 1.0,
        grid_anchors: int = 1,
        image_shape=None,
        batch_size: int = 256,
        prefix: str = "latentsweep",
        output=None,
        output_transform=None,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        _common.check_data(_FN, data)
        self.options = _common.SnapshotOptions.checked(
            _FN, steps=steps, mode=mode, max_dims=max_dims, anchors=anchors, span=span, prior_std=prior_std,
            grid_anchors=grid_anchors, image_shape=image_shape, batch_size=batch_size, prefix=prefix,
            output=output, output_transform=output_transform,
        )
        self.every_n_epochs = _checks.integer(_FN, "every_n_epochs", every_n_epochs, low=1)
        for role, choice in (("encoder", encoder), ("decoder", decoder)):
            if not (choice is None or isinstance(choice, str) or callable(choice)):
                raise TypeError(
                    f"{_FN}: {role} must be None, the name of a LightningModule attribute, or a "
                    f"callable, got {type(choice).__name__}"
                )
        if on_error not in ON_ERROR:
            raise ValueError(f"{_FN}: on_error must be one of {', '.join(map(repr, ON_ERROR))}, got {on_error!r}")
        self.data, self.encoder, self.decoder, self.on_error = data, encoder, decoder, on_error
        self.last: _common.TraversalSnapshot | None = None
        self._epochs = 0  # validation epochs (training epochs without validation) seen in fit
        self._warned: set[str] = set()

    def on_fit_start(self, trainer, pl_module) -> None:
        self._modules(pl_module)  # a wrong name fails now, not epochs into the run

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._epoch_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # (a validation loader of no batches: validation enabled, and skipped every epoch; the
        # callback logged nothing, silently)
        batches = getattr(trainer, "num_val_batches", None) or []  # (per loader; [] before validation's set-up)
        no_batches = bool(batches) and sum(batches) == 0
        if not trainer.enable_validation or no_batches:
            self._epoch_end(trainer, pl_module)

    @property
    def state_key(self) -> str:
        # Several callbacks (say, one per prefix) keep their own counters in a checkpoint.
        return self._generate_state_key(prefix=self.options.prefix, every_n_epochs=self.every_n_epochs)

    def state_dict(self) -> dict:
        return {"epochs": self._epochs}

    def load_state_dict(self, state_dict: dict) -> None:
        fn = f"{_FN}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{fn}: state_dict must be a mapping (this callback's state_dict()), got "
                            f"{type(state_dict).__name__}")
        self._epochs = _checks.integer(fn, "state_dict['epochs']", state_dict.get("epochs", 0), low=0)

    def _epoch_end(self, trainer, pl_module) -> None:
        # fast_dev_run checks that training runs, with logging and checkpoints suppressed (its
        # loggers are a DummyLogger): a snapshot would be computed and logged to nothing.
        if getattr(trainer, "fast_dev_run", False):
            return
        self._epochs += 1
        if self._epochs % self.every_n_epochs:
            return
        try:
            if trainer.is_global_zero:
                self._snapshot(trainer, pl_module)
        finally:
            # The other ranks wait for rank 0's snapshot here: a rank that ran on into the end of
            # fit tore its process group down under rank 0 (gloo aborted it: SIGABRT).
            if getattr(trainer, "world_size", 1) > 1:
                trainer.strategy.barrier("latentsweep.TraversalCallback")

    def _snapshot(self, trainer, pl_module) -> None:
        try:
            encoder, decoder = self._modules(pl_module)
            snapshot = _common.take_snapshot(
                encoder, decoder, self.data, self.options,
                step=trainer.global_step, fn=_FN, modules=[pl_module],  # (each part on its own device)
            )
            for logger in trainer.loggers:
                self._log(logger, snapshot)
        except Exception as error:
            if self.on_error == "raise":
                raise
            _checks.warn(
                f"{_FN}: no snapshot at step {trainer.global_step}: {type(error).__name__}: {error}",
                RuntimeWarning,
            )
            return
        self.last = snapshot

    def _modules(self, pl_module):
        return (
            _pick(pl_module, self.encoder, ("encoder", "encode"), "encoder"),
            _pick(pl_module, self.decoder, ("decoder", "decode"), "decoder"),
        )

    def _log(self, logger, snapshot: _common.TraversalSnapshot) -> None:
        options = self.options
        logger.log_metrics({options.tag(k): v for k, v in snapshot.scalars.items()}, step=snapshot.step)
        experiment = getattr(logger, "experiment", None)
        if _common.is_summary_writer(experiment):
            _common.write_media(experiment, snapshot, options)  # (flushes it)
        elif callable(getattr(logger, "log_image", None)):
            for key, image in snapshot.images.items():
                logger.log_image(key=options.tag(key), images=[image], step=snapshot.step)
            if callable(getattr(logger, "log_text", None)):
                logger.log_text(key=options.tag(_common.TEXT_KEY), columns=["diagnosis"],
                                data=[[snapshot.text]], step=snapshot.step)
        elif getattr(logger, "log_dir", None):
            _common.save_media(_FN, logger.log_dir, snapshot, options)
        elif type(logger).__name__ not in self._warned:
            self._warned.add(type(logger).__name__)
            _checks.warn(
                f"{_FN}: {type(logger).__name__} takes no images or text through a generic "
                "interface (a SummaryWriter, log_image, or a log_dir); it gets the scalars only",
                RuntimeWarning,
            )
        if callable(getattr(logger, "save", None)):
            logger.save()  # e.g. CSVLogger writes its file: nothing is lost if training dies later


def _pick(pl_module, choice, names: tuple[str, ...], role: str):
    """The callable to use as ``role``: ``choice`` itself, or the module's attribute it names
    (the first existing of ``names`` when ``choice`` is None)."""
    if choice is not None and not isinstance(choice, str):
        return choice
    names = names if choice is None else (choice,)
    for name in names:
        found = getattr(pl_module, name, None)
        if callable(found):
            return found
    # A ValueError, as for any argument naming what is not there (encoder="enc"; the defaults).
    raise ValueError(
        f"{_FN}: the LightningModule {type(pl_module).__name__} has no callable "
        f"{' or '.join(repr(n) for n in names)}; pass {role}= a callable or the name of the "
        f"attribute to use"
    )
