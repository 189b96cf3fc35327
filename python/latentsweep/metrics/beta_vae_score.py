"""The BetaVAE disentanglement metric (Higgins et al. 2017)."""

from __future__ import annotations

import numpy as np
import torch

from .. import _progress
from ..datasets import _protocol
from . import _representation, _sampling
from ._reference_fits import reference_fits
from ._threads import one_cpu_thread

_FN = "latentsweep.metrics.beta_vae_score"
# What the error says when every training point drew one factor (evaluate names its own argument).
TOO_FEW_FACTORS_DRAWN = "training points all drew factor"


def beta_vae_score(
    representation,
    data,
    *,
    batch_size: int = _sampling.VOTE_BATCH,
    num_train: int = 10000,
    num_eval: int = 5000,
    seed: int = 0,
    encode_batch_size: int = _sampling.DEFAULT_ENCODE_BATCH,
    progress: bool | None = None,
) -> dict:
    """Accuracy of a linear classifier that finds the factor two batches share from the mean
    absolute difference of their codes.

    What it draws (as disentanglement_lib's ``beta_vae.py``, ``beta_vae_sklearn``, study
    defaults): each point draws a factor ``k`` uniformly among those with two or more values (a
    single-valued factor is left out, with a warning: fixing it fixes nothing; at least two
    must vary, as the classifier needs two classes), ``batch_size`` factor rows, and a
    second ``batch_size`` rows sharing the first rows' values of ``k`` (pairwise); its feature is
    ``mean_i |z1_i - z2_i|`` over the pairs, its label ``k``. A
    ``sklearn.linear_model.LogisticRegression(random_state=seed)`` (defaults otherwise) is fit
    on ``num_train`` points; the scores are its accuracies on them and on ``num_eval`` fresh
    points. That is the installed scikit-learn's classifier (lbfgs, multinomial since
    scikit-learn 0.22); disentanglement_lib's 2019 study ran a scikit-learn before 0.22, whose
    default was liblinear one-vs-rest, so accuracies are comparable within one scikit-learn version
    (``evaluate`` records it). Points are drawn 64 at a time and encoded
    ``encode_batch_size`` observations per call, which changes no draw.

    Args:
        representation: callable ``observations -> [n, D]`` codes (or a pair/dict/Normal/Posterior: the
            mean), e.g. ``model.encoder``.
        data: a ground-truth data set.
        batch_size: pairs per point (64).
        num_train, num_eval: points for training and evaluation (10,000 and 5,000); the training
            points must draw at least two factors.
        seed: seeds every draw and the classifier.
        encode_batch_size: observations per representation call (fewer, with a warning, where
            the representation, measured on the CPU, would take more than half of the memory).
        progress: a tqdm bar (True / False / None: on a terminal or in a Jupyter notebook).

    Returns:
        dict with ``train_accuracy`` and ``eval_accuracy``.

    Reference: I. Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework", ICLR 2017.
    """
    seed, batch_size, num_train, num_eval, encode_batch_size = _sampling.common(
        _FN, seed=seed, batch_size=batch_size, num_train=num_train, num_eval=num_eval, encode_batch_size=encode_batch_size
    )
    _representation.check(_FN, representation)
    sizes = _protocol.check(_FN, data)
    varying = _sampling.varying_factors(_FN, data, sizes)
    _sampling.draw_fits(_FN, batch_size, len(sizes), rows_per_vote=2)  # (a pair of rows a point)
    if varying.numel() < 2:
        raise ValueError(f"{_FN}: needs at least two factors with two or more values (the classifier tells "
                         f"the fixed factor apart), got factor_sizes {sizes}")
    generator = _sampling.generator(seed, 1)
    from sklearn.linear_model import LogisticRegression

    with _progress.bar(_progress.wanted(progress, _FN), total=(num_train + num_eval) * 2 * batch_size,
                       unit="obs", desc="BetaVAE score") as bar:
        args = dict(representation=representation, data=data, sizes=sizes, varying=varying, batch_size=batch_size,
                    generator=generator, encode_batch_size=encode_batch_size, bar=bar)
        train_x, train_y = _points(num_train, held={"num_train": num_train, "num_eval": num_eval}, **args)
        eval_x, eval_y = _points(num_eval, latents=train_x.shape[1], **args)
    if np.unique(train_y).size < 2:
        raise ValueError(f"{_FN}: the num_train={num_train} {TOO_FEW_FACTORS_DRAWN} {int(train_y[0])}; "
                         "the classifier needs two factors to tell apart: raise num_train")
    with one_cpu_thread():
        with reference_fits(_FN, "LogisticRegression"):
            model = LogisticRegression(random_state=seed % 2**32).fit(train_x, train_y)
        return {
            "train_accuracy": float(np.mean(model.predict(train_x) == train_y)),
            "eval_accuracy": float(model.score(eval_x, eval_y)),
        }


def _points(count, *, representation, data, sizes, varying, batch_size, generator, encode_batch_size, bar,
            latents=None, held=None):
    """``count`` points: features ``[count, D]`` and labels ``[count]``. ``held``: the sizes of
    every point the score will hold, checked once the first batch gives D."""
    features, labels = [], []
    per_call = _sampling.VOTES_PER_DRAW
    f = len(sizes)
    for start in range(0, count, per_call):
        n = min(per_call, count - start)
        chosen = varying[torch.randint(varying.numel(), (n,), generator=generator, device="cpu")]
        first = _protocol.sample_factors(_FN, data, n * batch_size, generator).reshape(n, batch_size, f)
        second = torch.empty_like(first)
        for k in torch.unique(chosen).tolist():
            rows = torch.nonzero(chosen == k).flatten()
            values = first[rows, :, k].reshape(-1)
            second[rows] = _protocol.sample_factors_matching(_FN, data, k, values, generator).reshape(-1, batch_size, f)
        both = torch.cat([first.reshape(-1, f), second.reshape(-1, f)])
        codes = _representation.encode(
            _FN, representation, _protocol.observations(_FN, data, both), batch_size=encode_batch_size, bar=bar,
            latents=latents,
        )
        latents = codes.shape[1]
        if held is not None and start == 0:  # D features and a label a point
            _sampling.votes_fit(_FN, held, values_per_vote=latents + 1)
        z1, z2 = codes[: n * batch_size], codes[n * batch_size :]
        features.append((z1 - z2).abs().reshape(n, batch_size, -1).mean(dim=1))
        labels.append(chosen)
    return torch.cat(features).numpy(), torch.cat(labels).numpy()
