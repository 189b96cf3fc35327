"""``evaluate``: every disentanglement metric of a representation on a ground-truth data set."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .. import _checks, _progress
from .._json import json_ready
from ..datasets import _protocol
from . import _inputs, _representation, _sampling
from .beta_vae_score import TOO_FEW_FACTORS_DRAWN, beta_vae_score
from .dci_scores import ESTIMATORS, dci
from .factor_vae_score import PRUNE_THRESHOLD, factor_vae_score
from .interventional_robustness import irs
from .modularity import modularity_explicitness
from .mutual_information_gap import mig
from .sap_score import sap
from .unsupervised_scores import unsupervised

_FN = "latentsweep.metrics.evaluate"
METRICS = ("mig", "sap", "dci", "modularity_explicitness", "unsupervised", "irs", "factor_vae", "beta_vae")
# Below this many points the histogram and classifier estimates are too noisy to compare models.
MIN_RELIABLE_POINTS = 1000
POINT_BATCH = 256  # observations per representation call for the array-level metrics' points (default)
MIN_POINTS = 2  # num_train and num_test: a metric's split needs two points (one is refused by scikit-learn)
SAMPLED = ("factor_vae", "beta_vae")  # the metrics that draw their own interventions
HISTOGRAM_METRICS = ("mig", "modularity_explicitness", "unsupervised", "irs")  # the metrics that take bins


@dataclasses.dataclass
class MetricResults:
    """Scores of one representation, with everything needed to reproduce them.

    Attributes:
        scores: ``{"mig": 0.31, "dci.disentanglement": 0.42, ...}`` (floats; one key per number).
        settings: the arguments the metrics that ran used: always ``metrics``, ``num_train``,
            ``num_test``, ``seed`` and ``data``; ``batch_size`` with an array-level metric,
            ``bins`` with a histogram one (MIG, Modularity, unsupervised, IRS),
            ``dci_estimator`` with DCI, ``sampling_*`` with FactorVAE/BetaVAE and
            ``factor_vae_prune_threshold`` with FactorVAE.
        versions: latentsweep, torch, numpy and scikit-learn versions (the classifier-based
            scores depend on scikit-learn's estimators).
        factor_names: the F factors scored.
        seconds: wall time of each metric (and of drawing and encoding the points).
    """

    scores: dict[str, float]
    settings: dict
    versions: dict[str, str]
    factor_names: list[str]
    seconds: dict[str, float]

    def to_dict(self) -> dict:
        """JSON-serialisable, with a non-finite score as ``None`` (JSON has no infinity: the
        unsupervised total correlation of linearly dependent codes is ``inf``)."""
        return json_ready(dataclasses.asdict(self))

    def __str__(self) -> str:
        width = max(len(k) for k in self.scores) if self.scores else 10
        lines = [f"{'metric':<{width}}  score"]
        lines += [f"{name:<{width}}  {value:.4f}" for name, value in self.scores.items()]
        lines.append(f"({settings_text(self.settings)}; factors: {', '.join(self.factor_names)})")
        return "\n".join(lines)


def evaluate(
    representation,
    data,
    *,
    metrics: str | Sequence[str] = "all",
    num_train: int = 10000,
    num_test: int = 5000,
    seed: int = 0,
    batch_size: int | None = None,
    bins: int = 20,
    sampling_votes: Sequence[int] | None = None,
    dci_estimator: str = "gradient_boosting",
    progress: bool | None = None,
) -> MetricResults:
    """Scores ``representation`` on the ground-truth data set ``data`` with the chosen metrics.

    Draws ``num_train`` and then ``num_test`` factor rows with ``data.sample_factors`` (seeded),
    renders them with ``data.observations`` and encodes them ``batch_size`` at a time (for
    :class:`~latentsweep.datasets.LabelledArrays` the rows are drawn with replacement); the
    array-level metrics (MIG, SAP, DCI, Modularity/Explicitness, the unsupervised scores, IRS) all
    score these same points, with disentanglement_lib's study defaults. FactorVAE and BetaVAE draw
    their own interventions (batch 64; ``sampling_votes`` = (train, eval) votes, default
    ``(num_train, num_test)``; FactorVAE's global variances use ``num_train`` points).

    Args:
        representation: callable ``observations -> [n, D]`` codes (or a ``(mu, logvar)`` pair,
            dict, Normal or Posterior: the mean is used), e.g. ``model.encoder``.
        data: a ground-truth data set, e.g. :class:`latentsweep.datasets.Shapes`.
        metrics: ``"all"`` or names from ``METRICS``.
        num_train, num_test: points for fitting and for testing (10,000 / 5,000).
        seed: seeds every draw and classifier: the same seed gives the same scores.
        batch_size: observations per representation call (default: 256 for the points the
            array-level metrics score, 4,096 for FactorVAE/BetaVAE's interventions; fewer, with a
            warning, where the representation, measured on the CPU, would take more than half of
            the memory).
        bins: histogram bins per latent (20; at most 100,000).
        sampling_votes: votes for FactorVAE/BetaVAE: a (train, eval) pair, tuple or list.
        dci_estimator: DCI's importance estimator: ``"gradient_boosting"`` (the reference; minutes
            at 10,000 points) or ``"random_forest"`` (faster; see :func:`dci`).
        progress: tqdm bars (True / False / None: on a terminal or in a Jupyter notebook).

    Returns:
        a :class:`MetricResults`.

    Warns:
        UserWarning when ``num_train`` is below 1,000 points (estimates unreliable) or when
        factors with a single value are left out.
    """
    names = metric_names(metrics)
    num_train = _checks.integer(_FN, "num_train", num_train, low=MIN_POINTS)
    num_test = _checks.integer(_FN, "num_test", num_test, low=MIN_POINTS)
    seed = _checks.integer(_FN, "seed", seed, low=0, high=2**32 - 1)
    batch_size = None if batch_size is None else _checks.integer(_FN, "batch_size", batch_size, low=1)
    # (one batch_size bounds every representation call: FactorVAE and BetaVAE called it 4,096
    # observations at a time whatever it was; the batching changes no draw)
    point_batch = POINT_BATCH if batch_size is None else batch_size
    vote_batch = _sampling.DEFAULT_ENCODE_BATCH if batch_size is None else batch_size
    bins = _inputs.bins(_FN, bins)
    votes = (num_train, num_test) if sampling_votes is None else _pair(sampling_votes)
    if len(votes) != 2:
        raise ValueError(f"{_FN}: sampling_votes must be (train, eval), got {sampling_votes!r}")
    votes = tuple(_checks.integer(_FN, "sampling_votes[...]", v, low=1) for v in votes)
    if dci_estimator not in ESTIMATORS:
        raise ValueError(f"{_FN}: dci_estimator must be one of {ESTIMATORS}, got {dci_estimator!r}")
    _representation.check(_FN, representation)
    sizes = _protocol.check(_FN, data)
    show = _progress.wanted(progress, _FN)
    if num_train < MIN_RELIABLE_POINTS:
        _checks.warn(
            f"{_FN}: num_train={num_train} is below {MIN_RELIABLE_POINTS}: histogram mutual information and the "
            "classifiers are unreliable on so few points (the study default is 10,000)",
            UserWarning,
        )
    factor_names = _protocol.factor_names(data)
    varying = [j for j, size in enumerate(sizes) if size > 1]
    if len(varying) < len(sizes):
        _checks.warn(f"{_FN}: factors {[factor_names[j] for j in range(len(sizes)) if j not in varying]} take a "
                     "single value and are left out", UserWarning)
    if not varying:
        raise ValueError(f"{_FN}: every factor of the data set takes a single value; nothing to score")
    array_metrics = [n for n in names if n not in SAMPLED]
    sampled_metrics = [n for n in names if n in SAMPLED]
    # Sizes whose arrays cannot be held, refused before any metric runs (by evaluate's names):
    # the points, or num_train alone as FactorVAE's variance estimate; the sampling votes.
    held = {"num_train": num_train, "num_test": num_test}
    if array_metrics or "factor_vae" in names:
        _sampling.points_fit(_FN, held if array_metrics else {"num_train": num_train}, len(sizes))
    if sampled_metrics:
        _sampling.votes_fit(_FN, {"sampling_votes[0]": votes[0], "sampling_votes[1]": votes[1]})

    seconds: dict[str, float] = {}
    scores: dict[str, float] = {}
    if array_metrics:
        started = time.perf_counter()
        generator = _sampling.generator(seed, 2)
        calls = _representation.CallSize(_FN, point_batch)  # (measured once for both draws)
        with _progress.bar(show, total=num_train + num_test, unit="obs", desc="encode") as bar:
            points = []
            for count in (num_train, num_test):
                factors = _protocol.sample_factors(_FN, data, count, generator)
                codes = _representation.encode_factors(_FN, representation, data, factors, batch_size=calls,
                                                       bar=bar, latents=points[0][0].shape[1] if points else None,
                                                       held=None if points else held)
                points.append((codes, factors[:, varying]))
        (x, y), (x_test, y_test) = points
        seconds["draw and encode"] = time.perf_counter() - started
        y = _drop_constant(y, factor_names, varying)
        run = {
            "mig": lambda: {"mig": mig(x, y, bins=bins)},
            "sap": lambda: {"sap": sap(x, y, x_test, y_test)},
            "dci": lambda: _prefixed("dci", dci(x, y, x_test, y_test, seed=seed, estimator=dci_estimator)),
            "modularity_explicitness": lambda: modularity_explicitness(x, y, x_test, y_test, bins=bins),
            "unsupervised": lambda: _prefixed("unsupervised", unsupervised(x, bins=bins)),
            "irs": lambda: {"irs": irs(x, y, bins=bins)["irs"]},
        }
        for name in array_metrics:
            started = time.perf_counter()
            try:
                scores.update(run[name]())
            except ValueError as error:
                # Its arrays are the drawn points (the messages name the metric's own arguments:
                # "test_factors", "the train split"): what evaluate's caller can change is the draw.
                raise ValueError(f"{_FN}: {name} on the drawn points (num_train={num_train}, num_test={num_test}): "
                                 f"{error}; draw more points (num_train, num_test)") from error
            seconds[name] = time.perf_counter() - started
    sampled = {"factor_vae": factor_vae_score, "beta_vae": beta_vae_score}
    vote_calls = _representation.CallSize(_FN, vote_batch)  # (measured once for both, said as evaluate's batch_size)
    for name in sampled_metrics:
        started = time.perf_counter()
        extra = {"num_variance_estimate": num_train} if name == "factor_vae" else {}
        with _sampling.single_valued_named():  # they were named above, once
            try:
                result = sampled[name](representation, data, num_train=votes[0], num_eval=votes[1], seed=seed,
                                       encode_batch_size=vote_calls, progress=show, **extra)
            except ValueError as error:
                # Its num_train is sampling_votes[0] here ("raise num_train" pointed at evaluate's
                # num_train, the points of the other metrics, which changes nothing in this draw).
                if name != "beta_vae" or TOO_FEW_FACTORS_DRAWN not in str(error):
                    raise
                raise ValueError(f"{_FN}: BetaVAE's sampling_votes[0]={votes[0]} training points all drew one "
                                 "factor; its classifier needs two factors to tell apart: raise sampling_votes[0] "
                                 "(the training votes)") from None
        scores[f"{name}.train_accuracy"] = result["train_accuracy"]
        scores[f"{name}.eval_accuracy"] = result["eval_accuracy"]
        seconds[name] = time.perf_counter() - started
    # Only what the metrics that ran used (bins with no histogram metric, or votes with neither
    # FactorVAE nor BetaVAE, were recorded and printed as if they had been).
    settings = {"metrics": list(names), "num_train": num_train, "num_test": num_test, "seed": seed}
    if any(n in HISTOGRAM_METRICS for n in names):
        settings["bins"] = bins
    if array_metrics:
        settings["batch_size"] = point_batch
    if "dci" in names:
        settings["dci_estimator"] = dci_estimator
    if sampled_metrics:
        settings.update(sampling_encode_batch_size=vote_batch, sampling_votes=list(votes),
                        sampling_batch_size=_sampling.VOTE_BATCH)
    if "factor_vae" in names:
        settings["factor_vae_prune_threshold"] = PRUNE_THRESHOLD
    settings["data"] = repr(data)
    return MetricResults(
        scores={k: float(v) for k, v in scores.items()},
        settings=settings,
        versions=_versions(),
        factor_names=[factor_names[j] for j in varying],
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )


def settings_text(s: dict) -> str:
    """The settings in words, only those recorded (what the metrics that ran used): for the
    results' summary and the report."""
    parts = [f"{s['num_train']} train / {s['num_test']} test points, seed {s['seed']}"]
    if "bins" in s:
        parts.append(f"{s['bins']} histogram bins")
    if "dci_estimator" in s:
        parts.append(f"DCI by {s['dci_estimator']}")
    if "sampling_votes" in s:
        parts.append(f"FactorVAE/BetaVAE: batches of {s['sampling_batch_size']}, {s['sampling_votes'][0]} train / "
                     f"{s['sampling_votes'][1]} eval votes")
    return "; ".join(parts)


def _pair(sampling_votes) -> tuple:
    """``sampling_votes`` as a tuple (its length and items are checked by the caller)."""
    if isinstance(sampling_votes, (str, bytes)) or not isinstance(sampling_votes, Iterable):
        # (tuple(5) would fail with "'int' object is not iterable", naming nothing)
        raise TypeError(f"{_FN}: sampling_votes must be None or a (train, eval) pair of ints, the FactorVAE/BetaVAE "
                        f"votes, got {type(sampling_votes).__name__} {sampling_votes!r}")
    return tuple(sampling_votes)


def metric_names(metrics) -> list[str]:
    if isinstance(metrics, str):
        metrics = list(METRICS) if metrics == "all" else [metrics]
    if not isinstance(metrics, Sequence) or not metrics:
        raise TypeError(f"{_FN}: metrics must be 'all' or a non-empty list of names from {METRICS}, got {metrics!r}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"{_FN}: unknown metric(s) {unknown}; choose from {METRICS} or 'all'")
    return list(dict.fromkeys(metrics))


def _drop_constant(y: torch.Tensor, names, varying) -> torch.Tensor:
    # A factor with several values in the data set may still be constant in a small sample.
    constant = [j for j in range(y.shape[1]) if bool(torch.all(y[:, j] == y[0, j]))]
    if constant:
        raise ValueError(
            f"{_FN}: factor(s) {[names[varying[j]] for j in constant]} took a single value in the "
            "sample; draw more points (num_train)"
        )
    return y


def _prefixed(prefix: str, scores: dict) -> dict:
    return {f"{prefix}.{k}": v for k, v in scores.items()}


def _versions() -> dict[str, str]:
    import sklearn

    from .. import __version__

    return {"latentsweep": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__}
