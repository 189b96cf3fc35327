"""Latent traversals in a plain PyTorch training loop, logged to a TensorBoard SummaryWriter.

Needs TensorBoard: ``pip install 'latentsweep[tensorboard]'``.
"""

from __future__ import annotations

import torch

from .. import _checks
from . import _common

_common.require("tensorboard", "tensorboard")

_FN = "latentsweep.integrations.tensorboard.log_traversals"


def log_traversals(
    writer,
    encoder,
    decoder,
    data,
    *,
    step: int,
    steps: int = 11,
    mode: str = "auto",
    max_dims: int | None = None,
    anchors: int = 8,
    span: float = 2.0,
    prior_std: float = 1.0,
    grid_anchors: int = 1,
    image_shape=None,
    batch_size: int = 256,
    prefix: str = "latentsweep",
    output=None,
    output_transform=None,
    device: torch.device | str | None = None,
    modules=None,
) -> _common.TraversalSnapshot:
    """Encodes ``data``, diagnoses the latent space, traverses the ranked latents and logs it all
    to ``writer`` at ``step``: call it every few epochs of a training loop.

    What is logged (names under ``prefix``):

    - images: ``traversal/anchor<a>`` the traversal grid of anchor ``a`` (rows: latents by KL,
      columns: steps, first the input and its reconstruction when they are images of the output's
      size: floating-point inputs as they are, uint8 ones as ``x / 255``, other integers not
      drawn), or ``response_curves`` for tabular outputs; ``kl`` the KL per latent (VAEs);
    - scalars: ``active_units``, ``mean_kl`` (nats per input, summed over latents),
      ``collapsed_latents``, ``kl/z<d>`` (VAEs); ``flags/<code>`` (latents flagged, for every
      flag code, 0 when it did not fire); ``effect/z<d>`` (how much each latent moves the output);
    - text: ``diagnosis``, the summary, flags and advice of :func:`latentsweep.diagnose`.

    Runs under ``torch.no_grad`` and in the model's dtype (autocast off, also when called inside an
    ``torch.autocast`` block) with the modules in eval mode (each submodule's mode is restored)
    and restores the global random states of torch, numpy and Python, so the training run goes on
    exactly as without the call. The modules are those behind ``encoder`` and ``decoder`` (the
    modules themselves, a module's bound method, or the modules a lambda or function uses) and
    ``modules``.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (or tensorboardX's); flushed after.
        encoder: ``[B, ...] -> (mu, logvar)`` or anything :func:`latentsweep.encode` takes
            (e.g. ``vae.encoder`` or the bound method ``vae.encode``).
        decoder: ``[B, D] -> [B, ...]`` (e.g. ``vae.decoder``).
        data: a fixed sample of inputs: an ``[N, ...]`` tensor, a Dataset or a DataLoader (not
            shuffled, or the anchors change from call to call). The first ``anchors`` inputs are
            the traversal's anchors.
        step: the global step the logs belong to.
        steps: S, values per traversed latent.
        mode: ``"auto"`` (the diagnosis' recommended mode: ``"prior"``, or ``"empirical"`` for an
            autoencoder or codes that do not follow the prior) or a mode of
            :func:`latentsweep.traversal_values`.
        max_dims: traverse only the K most informative latents (by KL; by the variance of the
            codes for an autoencoder); ``None`` for all D.
        anchors: A, inputs the traversal starts from (their statistics are averaged).
        span, prior_std: the traversal's range, as in :func:`latentsweep.traverse`.
        grid_anchors: how many anchors get a traversal picture (0: none).
        image_shape: ``(H, W)`` or ``(C, H, W)`` to draw flat decoder outputs as images.
        batch_size: inputs per encoder call (tensors and Datasets).
        prefix: the names' prefix (``""`` for none).
        output, output_transform: which part of the decoder's output to use and a function of
            it (``"sigmoid"`` for a decoder that returns logits), as for
            :func:`latentsweep.traverse`: the pictures and ``effect/z<d>`` are of what it gives.
        device: where to encode and decode (default: the encoder's parameters' device to encode,
            the decoder's to decode; a part without parameters runs where the other modules are).
        modules: an nn.Module or a list of them also put in eval mode (e.g. the whole model,
            when the encoder and decoder are wrappers that hide it); with none found at all, a
            warning unless ``modules=()``.

    Returns:
        the :class:`~latentsweep.integrations.TraversalSnapshot` that was logged.

    Raises:
        TypeError, ValueError: bad arguments (complex data included), or what
            :func:`latentsweep.encode` and :func:`latentsweep.traverse` raise for the model's
            outputs (e.g. NaN codes); a ValueError also for outputs whose KL to the prior
            overflows float64 (a logvar above ~709).
    """
    if not _common.is_summary_writer(writer):
        raise TypeError(
            f"{_FN}: writer must be a TensorBoard SummaryWriter (add_scalar, add_image, add_text), "
            f"got {type(writer).__name__}"
        )
    step = _checks.integer(_FN, "step", step, low=0)
    options = _common.SnapshotOptions.checked(
        _FN, steps=steps, mode=mode, max_dims=max_dims, anchors=anchors, span=span, prior_std=prior_std,
        grid_anchors=grid_anchors, image_shape=image_shape, batch_size=batch_size, prefix=prefix,
        output=output, output_transform=output_transform,
    )
    _common.check_data(_FN, data)
    device = _checks.device(_FN, device)
    modules = _common.checked_modules(_FN, modules)
    snapshot = _common.take_snapshot(encoder, decoder, data, options, step=step, fn=_FN, device=device,
                                     modules=modules)
    for key, value in snapshot.scalars.items():
        writer.add_scalar(options.tag(key), value, step)
    _common.write_media(writer, snapshot, options)  # (flushes the writer)
    return snapshot
