"""The FactorVAE disentanglement metric (Kim & Mnih 2018)."""

from __future__ import annotations

import torch

from .. import _checks, _progress
from ..datasets import _protocol
from . import _representation, _sampling

# Latents whose SD over the whole data is below this are left out (the reference's threshold).
PRUNE_THRESHOLD = 0.05

_FN = "latentsweep.metrics.factor_vae_score"


def factor_vae_score(
    representation,
    data,
    *,
    batch_size: int = _sampling.VOTE_BATCH,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = PRUNE_THRESHOLD,
    seed: int = 0,
    encode_batch_size: int = _sampling.DEFAULT_ENCODE_BATCH,
    progress: bool | None = None,
) -> dict:
    """Accuracy of a majority-vote classifier that finds the fixed factor from the latent of
    least normalised variance.

    What it draws (as disentanglement_lib's ``factor_vae.py``, study defaults): ``num_variance_estimate``
    observations give each latent's global variance (``ddof=1``); latents whose global SD is
    below ``prune_threshold`` are left out (the reference compares the *SD* with 0.05), and so are
    latents of zero variance whatever the threshold (their variance ratio is 0 / 0). Each vote
    draws a factor ``k`` uniformly among those with two or more values (a single-valued factor
    is left out, with a warning: fixing it fixes nothing), one factor row, and ``batch_size`` rows sharing its value of
    ``k`` (``data.sample_factors_matching`` when the data set has it, else fresh rows with
    column ``k`` overwritten); the vote goes to (``k``, the active latent with the least
    local variance / global variance). The classifier maps each latent to the factor with most
    training votes (``num_train``); accuracies are the share of votes it gets right on the
    training and on ``num_eval`` fresh evaluation votes. (The reference indexes its vote columns by
    position among the active latents and reports ``num_active_dims`` as the length of its
    boolean mask, D; here columns are latents and ``num_active_dims`` counts the active ones: the
    accuracies are the same.) Votes are drawn 64 at a time and
    encoded ``encode_batch_size`` observations per call, which changes no draw.

    Args:
        representation: callable ``observations -> [n, D]`` codes (or a ``(mu, logvar)`` pair,
            a dict, a Normal or a Posterior: the mean is used), e.g. ``model.encoder``.
        data: a ground-truth data set (``factor_sizes``, ``sample_factors``, ``observations``).
        batch_size: observations per vote (64).
        num_train, num_eval: votes for training and for evaluation (10,000 and 5,000).
        num_variance_estimate: observations for the global variances (10,000).
        prune_threshold: SD below which a latent counts as collapsed (0.05; a finite number >= 0).
        seed: seeds every draw (a CPU ``torch.Generator``), so the score is reproducible.
        encode_batch_size: observations per representation call (fewer, with a warning, where
            the representation, measured on the CPU, would take more than half of the memory).
        progress: a tqdm bar (True / False / None: on a terminal or in a Jupyter notebook).

    Returns:
        dict with ``train_accuracy``, ``eval_accuracy``, ``num_active_dims`` and ``votes``
        (``[F, D]`` training votes, columns indexed by latent).

    Reference: H. Kim, A. Mnih, "Disentangling by Factorising", ICML 2018.
    """
    seed, batch_size, num_train, num_eval, encode_batch_size = _sampling.common(
        _FN, seed=seed, batch_size=batch_size, num_train=num_train, num_eval=num_eval, encode_batch_size=encode_batch_size
    )
    num_variance_estimate = _checks.integer(_FN, "num_variance_estimate", num_variance_estimate, low=2)
    threshold = _checks.real(_FN, "prune_threshold", prune_threshold, low=0.0)
    _representation.check(_FN, representation)
    sizes = _protocol.check(_FN, data)
    varying = _sampling.varying_factors(_FN, data, sizes)
    _sampling.draw_fits(_FN, batch_size, len(sizes), rows_per_vote=1)
    _sampling.points_fit(_FN, {"num_variance_estimate": num_variance_estimate}, len(sizes))
    generator = _sampling.generator(seed, 0)
    total = num_variance_estimate + (num_train + num_eval) * batch_size
    with _progress.bar(_progress.wanted(progress, _FN), total=total, unit="obs", desc="FactorVAE score") as bar:
        factors = _protocol.sample_factors(_FN, data, num_variance_estimate, generator)
        codes = _representation.encode_factors(_FN, representation, data, factors, batch_size=encode_batch_size,
                                               bar=bar, held={"num_variance_estimate": num_variance_estimate})
        global_variances = codes.var(dim=0, correction=1)
        active = (global_variances > 0) & (torch.sqrt(global_variances) >= threshold)
        if not bool(active.any()):
            return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0,
                    "votes": torch.zeros(len(sizes), codes.shape[1], dtype=torch.int64, device="cpu")}
        vote = dict(representation=representation, data=data, sizes=sizes, varying=varying, batch_size=batch_size,
                    global_variances=global_variances, active=active, generator=generator,
                    encode_batch_size=encode_batch_size, bar=bar)
        train_votes = _votes(num_train, **vote)
        eval_votes = _votes(num_eval, **vote)
    classifier = train_votes.argmax(dim=0)  # latent -> the factor with most votes (first on ties)
    latents = torch.arange(train_votes.shape[1], device=train_votes.device)
    return {
        "train_accuracy": int(train_votes[classifier, latents].sum()) / int(train_votes.sum()),
        "eval_accuracy": int(eval_votes[classifier, latents].sum()) / int(eval_votes.sum()),
        "num_active_dims": int(active.sum()),
        "votes": train_votes,
    }


def _votes(count, *, representation, data, sizes, varying, batch_size, global_variances, active, generator,
           encode_batch_size, bar) -> torch.Tensor:
    votes = torch.zeros(len(sizes), global_variances.shape[0], dtype=torch.int64, device=global_variances.device)
    active_index = torch.nonzero(active).flatten()
    per_call = _sampling.VOTES_PER_DRAW
    for start in range(0, count, per_call):
        n = min(per_call, count - start)
        chosen = varying[torch.randint(varying.numel(), (n,), generator=generator, device="cpu")]
        first = _protocol.sample_factors(_FN, data, n, generator)
        factors = torch.empty(n, batch_size, len(sizes), dtype=torch.int64, device="cpu")
        for k in torch.unique(chosen).tolist():
            rows = torch.nonzero(chosen == k).flatten()
            values = first[rows, k].repeat_interleave(batch_size)
            factors[rows] = _protocol.sample_factors_matching(_FN, data, k, values, generator).reshape(-1, batch_size, len(sizes))
        observations = _protocol.observations(_FN, data, factors.reshape(n * batch_size, len(sizes)))
        codes = _representation.encode(_FN, representation, observations, batch_size=encode_batch_size, bar=bar,
                                       latents=global_variances.shape[0])
        local = codes.reshape(n, batch_size, -1).var(dim=1, correction=1)
        ratio = local[:, active_index] / global_variances[active_index]
        latent = active_index[ratio.argmin(dim=1)]
        votes.index_put_((chosen, latent), torch.ones(n, dtype=torch.int64, device=votes.device), accumulate=True)
    return votes
