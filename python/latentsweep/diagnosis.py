"""Diagnose a latent space from encoder outputs: KL and activity per dim, the aggregate
posterior against the prior, and flags for common mistakes, each with what to do about it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import _checks
from ._json import json_ready
from ._shares import format_share
from .alignment import AxisAlignment, axis_alignment
from .modes import MODE_TABLE
from .posterior import Posterior

# Thresholds of the flags (see ``diagnose``).
# Burda et al. (2016): active when Var_x(mu_d) > 0.01 for their N(0, 1) prior; in the prior's
# units, Var_x(mu_d) / prior_std^2 > 0.01 (the same codes and prior, scaled, are as active).
ACTIVE_VARIANCE = 0.01
COLLAPSED_KL = 0.01  # nats
SMALL_SD_RATIO = 0.1  # median posterior SD below this x prior_std
ZERO_FRACTION = 0.05  # share of exact zeros in mu_d that suggests a ReLU
# A collapsed latent's log-variances read as an SD or a variance only from this value up: a
# linear head's whole collapse sits a hair from 0, at times all on one side (weights near 0, a
# bias of 2e-4: KL 1e-8 nats), where SDs read as log-variances are 0.05 to 0.2 (KL < 0.01
# nats, read as collapsed).
SCALE_AS_LOGVAR_FLOOR = 0.01
# Inputs a diagnosis needs: a latent's activity is the variance of its mean over them.
MIN_INPUTS = 2
MEAN_TOLERANCE = 0.5  # |aggregate mean| above this x prior_std
SD_RANGE = (0.5, 2.0)  # aggregate SD outside this range x prior_std
# [N, D] float64 arrays diagnose holds at once, rounded up: mu, logvar, the KL and its temporary,
# and NaN/Inf masks (measured: 4.3 copies with a logvar, 2.4 without; tests/test_diagnose_memory.py).
# A diagnosis whose copies exceed the device's memory is refused before allocating.
STATISTICS_COPIES = 5
# A VAE's latents count as the codes' main axes when the top coordinate carries at least this
# share of what the top principal component carries (alignment.AxisAlignment.ratio).
ALIGNED_RATIO = 0.9
# ... or when the latents' correlations are negligible, their Gaussian Wasserstein correlation
# under this share of the total variance: latents of near-equal variance let tiny correlations
# turn the top component far from every latent (healthy VAEs trained on the digits: ratio 0.88,
# correlation 0.007; a 45-degree rotation of unequal latents: above 0.05).
MIXED_WASSERSTEIN = 0.02
# ... and only down to this ratio: the Wasserstein share is second order in the correlations
# and shrinks with the number of latents, so it alone let real mixes pass (two latents of 16
# correlated at 0.35, a 45-degree mix of SDs 1.3 and 0.9: 0.006, ratio 0.74). Two latents of
# equal variance correlated at rho give a ratio of 1 / (1 + rho): 0.85 keeps rho under ~0.18.
MIXED_RATIO = 0.85

FLAG_CODES = (
    "nonfinite",
    "small-posterior-sd",
    "collapsed",
    "nonnegative-mean",
    "nonnegative-logvar",
    "marginal-mismatch",
)


@dataclass(frozen=True)
class Flag:
    """One problem found by :func:`diagnose`.

    Attributes:
        code: one of ``FLAG_CODES``.
        dims: the latent dimensions it concerns, ascending.
        stats: the numbers behind it: lists aligned with ``dims``, and scalars (thresholds).
        recommendation: one sentence saying what it means and what to do.
    """

    code: str
    dims: list[int]
    stats: dict[str, float | list[float]]
    recommendation: str

    def __str__(self) -> str:
        return self.describe()

    def describe(self, latent_shape: tuple[int, ...] | None = None) -> str:
        """``"[code] dims 0-3: recommendation"``, the dims named as :func:`dims_label` names
        them for a latent of ``latent_shape`` (the diagnosis' own in its text)."""
        return f"[{self.code}] {dims_label(self.dims, latent_shape)}: {self.recommendation}"

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "dims": list(self.dims),
            "stats": {k: json_ready(v) for k, v in self.stats.items()},
            "recommendation": self.recommendation,
        }


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """What :func:`diagnose` found. Per-dim statistics are ``[D]`` float64 CPU tensors computed
    over the inputs whose values are finite on that dim; ``kl``, ``active`` and
    ``posterior_sd`` are ``None`` for a plain autoencoder.

    Attributes:
        num_inputs: N. latent_dim: D. prior_std: the prior's SD the statistics refer to.
        mean: aggregate mean of mu_d. sd: aggregate SD ``sqrt(Var(mu_d) + mean(sigma_d^2))``
            (just ``sqrt(Var(mu_d))`` for an autoencoder).
        min, max: extremes of mu_d. zero_fraction: share of exact zeros of mu_d.
        mu_variance: Var over the data of mu_d (population variance).
        nonfinite_count: ``[D]`` int64, inputs with NaN/Inf in mu_d or logvar_d.
        kl: mean over the data of KL(N(mu, sigma^2) || N(0, prior_std^2)), in nats.
        active: bool, ``mu_variance / prior_std^2 > 0.01``. posterior_sd: mean of sigma_d.
        flags: the problems found, as :class:`Flag` items.
        reference: ``[M, D]`` a copy of the codes (posterior means) the statistics were computed
            from, those of the M inputs whose means are finite on every dim: the reference of mode
            ``"empirical"`` (see :meth:`traversal_options`).
        axes: how axis-aligned the means are (:class:`latentsweep.alignment.AxisAlignment`:
            the top coordinate's and the top principal component's share of the variance, and
            the Wasserstein correlation), over the inputs whose codes are all finite; ``None``
            when fewer than 2 such inputs or the codes do not vary.
        latent_shape: the posterior's (``(D,)`` for flat codes; ``(C, H, W)`` for a spatial
            VAE's, whose latent d is named ``z[c,h,w]`` in pictures and reports).
    """

    num_inputs: int
    latent_dim: int
    prior_std: float
    mean: torch.Tensor
    sd: torch.Tensor
    min: torch.Tensor
    max: torch.Tensor
    zero_fraction: torch.Tensor
    mu_variance: torch.Tensor
    nonfinite_count: torch.Tensor
    kl: torch.Tensor | None = None
    active: torch.Tensor | None = None
    posterior_sd: torch.Tensor | None = None
    flags: list[Flag] = field(default_factory=list)
    reference: torch.Tensor | None = field(default=None, repr=False)
    axes: AxisAlignment | None = None
    latent_shape: tuple[int, ...] | None = None

    @property
    def is_variational(self) -> bool:
        return self.kl is not None

    @property
    def total_kl(self) -> float | None:
        """Sum of the per-dim KL over the dims (nats), ``None`` for an autoencoder; dims whose
        codes hold NaN/Inf are left out (flagged ``nonfinite``)."""
        return None if self.kl is None else float(self.kl.nansum())

    @property
    def active_dims(self) -> list[int] | None:
        return None if self.active is None else self.active.nonzero()[:, 0].tolist()

    @property
    def num_active(self) -> int | None:
        return None if self.active is None else int(self.active.sum())

    @property
    def uncollapsed_inactive_dims(self) -> list[int] | None:
        """The dims with finite codes that are neither active nor collapsed (mean KL at least
        0.01 nats: their posteriors are not the prior, though their means hardly vary);
        ``None`` for an autoencoder."""
        if self.kl is None:
            return None
        return ((~self.active) & (self.kl >= COLLAPSED_KL)).nonzero()[:, 0].tolist()

    def flag(self, code: str) -> Flag | None:
        """The flag with this code, or ``None`` when it did not fire."""
        return next((f for f in self.flags if f.code == code), None)

    @property
    def logvar_may_be_a_scale(self) -> bool:
        """Log-variances flagged never negative without a single exact 0 (see no_exact_zeros):
        an SD or a variance read as a log-variance is the likelier cause than a ReLU."""
        logvar = self.flag("nonnegative-logvar")
        return logvar is not None and no_exact_zeros(logvar.stats["zero_fraction"])

    def scale_read_as_collapse(self) -> list[int]:
        """The collapsed dims whose log-variances may be SDs or variances (flagged never negative,
        none exactly 0): read as SDs they are not the prior, so the collapse may be the misreading's."""
        collapsed = self.flag("collapsed")
        if collapsed is None or not self.logvar_may_be_a_scale:
            return []
        return sorted(set(collapsed.dims) & set(self.flag("nonnegative-logvar").dims))

    @property
    def recommended_mode(self) -> str:
        """``"empirical"`` for an autoencoder or when the codes do not follow the prior, else
        ``"prior"`` (including when posterior SDs are tiny: traverse by the prior)."""
        if not self.is_variational or self.flag("marginal-mismatch"):
            return "empirical"
        return "prior"

    @property
    def recommended_directions(self) -> str:
        """What to traverse: ``"principal"`` directions of the codes for a plain autoencoder
        (its coordinate axes are arbitrary), ``"coordinates"`` (the latents) for a VAE."""
        return "coordinates" if self.is_variational else "principal"

    @property
    def axis_aligned(self) -> bool | None:
        """True when the top coordinate carries at least ``ALIGNED_RATIO`` of what the top
        principal component carries, or the latents are all but uncorrelated (Wasserstein
        correlation under ``MIXED_WASSERSTEIN`` of the total variance, with a ratio of at least
        ``MIXED_RATIO``); ``None`` without axis statistics."""
        if self.axes is None:
            return None
        correlation = self.axes.wasserstein_correlation
        return self.axes.ratio >= ALIGNED_RATIO or (
            correlation is not None and correlation < MIXED_WASSERSTEIN and self.axes.ratio >= MIXED_RATIO)

    def traversal_options(self) -> dict:
        """The recommended traversal as keyword arguments of :func:`latentsweep.traverse`:
        ``mode``, ``dims`` (the active latents of a VAE when some collapsed, else all),
        ``prior_std``, and for mode ``"empirical"`` the ``reference`` codes, so that
        ``traverse(decoder, anchors, **diagnosis.traversal_options())`` works for a VAE and a
        plain autoencoder alike."""
        mode = self.recommended_mode
        options: dict = {"mode": mode, "prior_std": self.prior_std}
        dims = self.active_dims
        options["dims"] = dims if dims and len(dims) < self.latent_dim else None
        if MODE_TABLE[mode].needs_reference:
            if self.reference is None:
                raise ValueError(
                    "Diagnosis.traversal_options: this diagnosis holds no reference codes; pass "
                    "reference=posterior.mu to traverse yourself"
                )
            if self.reference.shape[0] == 0:
                raise ValueError(
                    "Diagnosis.traversal_options: no input has finite codes on every dim, so there are no "
                    'reference codes for mode "empirical"; find the source of the NaN/Inf values first'
                )
            options["reference"] = self.reference
        return options

    @property
    def recommendation(self) -> str:
        """The overall advice: which traversal mode and which dims, in a few sentences."""
        if not self.is_variational:
            text = (
                "A plain autoencoder (no logvar): its coordinate axes are arbitrary (any invertible "
                "linear map of the latent space, absorbed by the encoder's last layer and the "
                "decoder's first, gives the same loss), so traverse its principal directions "
                "(latentsweep.principal_directions(posterior)) rather than single latents, with mode "
                '"empirical" (reference=posterior.mu): its codes have no prior, and the empirical '
                "range spans where they actually lie."
            )
            return " ".join([text] + self._axes_advice() + self._fix_advice())
        small, mismatch, collapsed = (self.flag(c) for c in ("small-posterior-sd", "marginal-mismatch", "collapsed"))
        sentences = []
        if mismatch:
            sentences.append(
                f'Traverse with mode "empirical" (reference=posterior.mu): on '
                f"{dims_label(mismatch.dims, self.latent_shape)} the codes do not follow the prior N(0, {self.prior_std:g}^2)."
            )
        if small:
            sentences.append(
                f'Traverse by the prior (mode "prior" or "absolute"), not the posterior: on '
                f"{dims_label(small.dims, self.latent_shape)} the posterior SD is under {SMALL_SD_RATIO:g} x the prior SD, "
                "so +/- k posterior SDs hardly move z."
            )
        if not mismatch and not small:
            sentences.append('Traverse with mode "prior" (the default): the codes follow the prior.')
        if collapsed and self.num_active:  # (none active: said below; dims=active_dims would be empty)
            one = len(collapsed.dims) == 1
            sentences.append(
                f"{dims_label(collapsed.dims, self.latent_shape).capitalize()} collapsed to the prior and "
                f"{'carries' if one else 'carry'} nothing; leave {'it' if one else 'them'} out "
                "(dims=diagnosis.active_dims)."
            )
        if self.num_active == 0:
            nonfinite, alive = self.flag("nonfinite"), self.uncollapsed_inactive_dims
            if alive:  # the means hardly vary, but these posteriors are not the prior: no collapse
                sentences.append(
                    f"No dim is active (Var(mu) <= {ACTIVE_VARIANCE:g} x prior_std^2 on each), but the posterior did not "
                    f"collapse on {dims_label(alive, self.latent_shape)} (KL >= {COLLAPSED_KL:g} nats): the codes fill a small part of "
                    "the prior's range."
                )
            else:
                sentences.append(
                    f"No dim with finite codes is active: the rest of the posterior collapsed ({dims_label(nonfinite.dims, self.latent_shape)} "
                    "hold NaN/Inf, see that finding)." if nonfinite else "No dim is active: the whole posterior collapsed."
                )
            misread = self.scale_read_as_collapse()
            if misread:  # (both can be true; the misreading is checked first, it is cheaper to fix)
                sentences.append(
                    f"But on {dims_label(misread, self.latent_shape)} the log-variances are above 0 for every input, where a "
                    "collapsed latent's scatter around 0: likelier an SD or a variance read as a log-variance, whose "
                    "posteriors are not the prior (see the nonnegative-logvar flag)."
                )
        return " ".join(sentences + self._axes_advice() + self._fix_advice())

    def _axes_advice(self) -> list[str]:
        """How a VAE's latents lie against the codes' principal axes (an autoencoder's
        recommendation already says that its axes are arbitrary)."""
        if self.axes is None or not self.is_variational or not self.num_active:
            return []  # (no active latent: the codes' axes are those of noise)
        if self.axis_aligned and self.axes.ratio < ALIGNED_RATIO:  # (aligned by their tiny correlations)
            return [f"The latents are all but uncorrelated (Gaussian Wasserstein correlation "
                    f"{self.axes.wasserstein_correlation:.2g} of the codes' variance): the codes' principal axes are "
                    f"the latents up to mixes of latents of near-equal variance ({self.axes.brief()})."]
        if self.axis_aligned:
            return [f"The latents are close to the codes' principal axes ({self.axes.brief()})."]
        if self.num_active < 2:  # (as the findings: one active latent leaves nothing to rotate)
            return []
        return [
            f"The codes' main axes are not the latents ({self.axes.brief()}): compare the latents with "
            "the principal directions (latentsweep.principal_directions(posterior))."
        ]

    def _fix_advice(self) -> list[str]:
        advice = []
        if self.logvar_may_be_a_scale and not self.flag("nonnegative-mean"):
            advice.append("Check that the encoder's second output is a log-variance, not an SD or a variance (see the "
                          "nonnegative-logvar flag); if it is one, make that head linear and retrain.")
        elif self.flag("nonnegative-mean") or self.flag("nonnegative-logvar"):
            advice.append("Make the flagged encoder heads linear and retrain.")
        if self.flag("nonfinite"):
            advice.append("Find the source of the NaN/Inf values before trusting these statistics.")
        return advice

    def table(self) -> str:
        """The per-dim statistics as a text table, one row per dim (flat index, and for a
        structured latent its name ``z[c,h,w]``, as the report's table and traversals name it)."""
        columns = [("dim", [str(d) for d in range(self.latent_dim)])]
        if self.latent_shape is not None and len(self.latent_shape) > 1:
            from .latent_shape import latent_label  # (see dims_label)

            columns += [("latent", [latent_label(d, self.latent_shape) for d in range(self.latent_dim)])]
        if self.is_variational:
            columns += [
                ("KL", _fmt(self.kl)),
                ("active", ["yes" if a else "no" for a in self.active.tolist()]),
            ]
        columns += [("Var(mu)", _fmt(self.mu_variance))]
        if self.is_variational:
            columns += [("post sd", _fmt(self.posterior_sd))]
        columns += [
            ("agg mean", _fmt(self.mean)),
            ("agg sd", _fmt(self.sd)),
            ("min", _fmt(self.min)),
            ("max", _fmt(self.max)),
            ("zeros", [format_share(z) if math.isfinite(z) else "nan" for z in self.zero_fraction.tolist()]),
        ]
        per_dim = [[] for _ in range(self.latent_dim)]
        for flag in self.flags:
            for d in flag.dims:
                per_dim[d].append(flag.code)
        columns += [("flags", [",".join(codes) for codes in per_dim])]
        widths = [max(len(name), *(len(v) for v in values)) for name, values in columns]
        # Numbers right-aligned, the trailing flags column left-aligned.
        def cells(texts):
            return "  ".join([t.rjust(w) for t, w in zip(texts[:-1], widths)] + [texts[-1]]).rstrip()

        lines = [cells([name for name, _ in columns])]
        lines += [cells([values[row] for _, values in columns]) for row in range(self.latent_dim)]
        return "\n".join(lines)

    def _headline(self) -> str:
        kind = f"VAE, prior N(0, {self.prior_std:g}^2)" if self.is_variational else "plain autoencoder"
        text = f"{self.num_inputs} inputs, {self.latent_dim} latent dims ({kind})"
        if self.is_variational:
            text += f": total KL {self.total_kl:.4g} nats, {self.num_active}/{self.latent_dim} active units"
        return text

    def findings(self) -> list:
        """What this diagnosis means, most important first, as
        :class:`latentsweep.findings.Finding` items (headline and sentences with the numbers)."""
        from .findings import findings  # the texts build on this module

        return findings(self)

    def summary(self) -> str:
        """One paragraph: sizes, total KL and active units, the most important finding, the
        flags, the recommendation."""
        flags = "; ".join(f"{f.code} ({dims_label(f.dims, self.latent_shape)})" for f in self.flags) or "none"
        lead = self.findings()[0].headline
        return f"{self._headline()}. Most important: {lead}. Flags: {flags}. {self.recommendation}"

    def __str__(self) -> str:
        parts = [f"latentsweep diagnosis: {self._headline()}", "", self.table(), ""]
        parts.append("Findings, most important first:")
        parts += [f"  {i}. {f.headline}: {f.text}" for i, f in enumerate(self.findings(), 1)]
        parts.append("")
        parts.append("Flags:" if self.flags else "Flags: none")
        parts += [f"  {flag.describe(self.latent_shape)}" for flag in self.flags]
        parts += ["", f"Recommendation (mode {self.recommended_mode!r}): {self.recommendation}"]
        return "\n".join(parts)

    def to_dict(self) -> dict:
        """JSON-serialisable: lists, numbers, strings, booleans and ``None`` (for NaN too)."""

        def tensor(t):
            return None if t is None else json_ready(t.tolist())

        return {
            "num_inputs": self.num_inputs,
            "latent_dim": self.latent_dim,
            "latent_shape": list(self.latent_shape or (self.latent_dim,)),
            "prior_std": self.prior_std,
            "variational": self.is_variational,
            "total_kl": json_ready(self.total_kl),
            "num_active": self.num_active,
            "active_dims": self.active_dims,
            "kl": tensor(self.kl),
            "active": None if self.active is None else self.active.tolist(),
            "posterior_sd": tensor(self.posterior_sd),
            "mu_variance": tensor(self.mu_variance),
            "mean": tensor(self.mean),
            "sd": tensor(self.sd),
            "min": tensor(self.min),
            "max": tensor(self.max),
            "zero_fraction": tensor(self.zero_fraction),
            "nonfinite_count": self.nonfinite_count.tolist(),
            "flags": [flag.to_dict() for flag in self.flags],
            "axes": None if self.axes is None else {
                "top_coordinate_share": self.axes.top_coordinate_share,
                "top_component_share": self.axes.top_component_share,
                "ratio": self.axes.ratio,
                "wasserstein_correlation": json_ready(self.axes.wasserstein_correlation),
            },
            "recommended_mode": self.recommended_mode,
            "recommended_directions": self.recommended_directions,
            "recommendation": self.recommendation,
            "summary": self.summary(),
        }


def diagnose(posterior: Posterior | torch.Tensor, *, prior_std: float = 1.0) -> Diagnosis:
    """Per-dim statistics of a posterior over a data set, and flags for common problems.

    Args:
        posterior: a :class:`Posterior` with ``mu``/``logvar`` ``[N, D]`` (e.g. from
            :func:`latentsweep.encode`); a bare ``[N, D]`` tensor is taken as autoencoder codes.
        prior_std: SD of the prior N(0, prior_std^2), in [1e-100, 1e100].

    Returns:
        a :class:`Diagnosis`. With sigma = exp(logvar / 2), flags fire on the dims where:

        - ``nonfinite``: mu or logvar has NaN/Inf (other statistics skip those entries; with
          nothing finite left, NaN/Inf for every input on every dim, a ``ValueError``);
        - ``small-posterior-sd``: active and median sigma_d < 0.1 x prior_std;
        - ``collapsed``: not active and mean KL < 0.01 nats, where active means
          Var(mu_d) / prior_std^2 > 0.01 (Burda et al. 2016, in the prior's units);
        - ``nonnegative-mean``: min mu_d >= 0 and at least 5% of mu_d exactly 0, on a latent
          that did not collapse, or on a collapsed one whose mu_d is sometimes positive (a ReLU
          that died and took its latent with it; a linear head's collapsed means scatter around
          0, and means of exactly 0 for every input are a collapse, not a ReLU);
        - ``nonnegative-logvar``: not collapsed, min logvar_d >= 0 (sigma >= 1: a ReLU's floor)
          and, for a prior wider than 1, at least 5% of logvar_d exactly 0 (the ReLU's own
          mark: under N(0, 10^2) a sigma of 2 is an ordinary posterior). A collapsed latent
          has mu = 0 and logvar = 0 by definition (it is flagged only when its logvar_d is also
          sometimes positive and at least 5% exactly 0, a dead ReLU, or above 0 for every input
          and not one number, an SD or a variance read as a log-variance, whose KL is not the
          one computed here), and a logvar that is one positive number
          for every input is a fixed variance: neither is a sign of a ReLU. A logvar of exactly
          0 for every input is flagged, its recommendation saying that it is a dead ReLU or a
          fixed unit variance (``logvar=zeros``), which the codes cannot tell apart;
        - ``marginal-mismatch``: |aggregate mean| > 0.5 x prior_std or aggregate SD outside
          [0.5, 2] x prior_std.

        For a plain autoencoder only ``nonnegative-mean`` and ``nonfinite`` apply (its codes
        have no prior to compare with).
    """
    fn = "latentsweep.diagnose"
    if isinstance(posterior, torch.Tensor):
        posterior = Posterior(posterior)
    if not isinstance(posterior, Posterior):
        raise TypeError(f"{fn}: posterior must be a latentsweep.Posterior or an [N, D] tensor, got {type(posterior).__name__}")
    prior_std = _checks.prior_std(fn, prior_std)
    for name, tensor in (("posterior.mu", posterior.mu), ("posterior.logvar", posterior.logvar)):
        if tensor is not None:
            _checks.dense_values(fn, name, tensor)
    if posterior.num_inputs < MIN_INPUTS:
        raise ValueError(
            f"{fn}: posterior has {posterior.num_inputs} input(s); a diagnosis needs at least {MIN_INPUTS} (a latent's "
            "activity is the variance of its mean over the inputs: over one input it is 0, which read as "
            "posterior collapse)"
        )
    if posterior.latent_dim == 0:
        raise ValueError(f"{fn}: posterior has no latent dims (D = 0), so there is nothing to diagnose")

    # float64: sums over many inputs, and float16/bfloat16 encoders, stay accurate. Said before
    # allocating: the float64 copies and temporaries (an expanded [10^12, 3] tensor raised the
    # allocator's RuntimeError).
    _checks.codes_fit_in_memory(
        fn, f"computing in float64 over the codes [N={posterior.num_inputs}, D={posterior.latent_dim}]", posterior.mu,
        "diagnose a sample of the inputs (posterior[:n])", bytes_per_value=8 * STATISTICS_COPIES,
    )
    # The statistics describe the codes, not a function of them: a training step's encoder outputs,
    # which carry gradients, are read without their graph (torch refused the KL's in-place steps
    # under autograd, and an autoencoder's statistics held the step's graph).
    codes = posterior.mu.detach()
    mu = codes.double()
    logvar = None if posterior.logvar is None else posterior.logvar.detach().double()
    finite = torch.isfinite(mu) if logvar is None else torch.isfinite(mu) & torch.isfinite(logvar)
    count = finite.sum(0)
    _refuse_nothing_finite(fn, posterior, count)
    # With every entry finite (the usual case) the masks below keep everything: skipped, they
    # cost no pass over [N, D] each, and the same values give the same sums bit for bit.
    all_finite = bool((count == posterior.num_inputs).all())

    def kept(x: torch.Tensor, fill: float) -> torch.Tensor:
        return x if all_finite else torch.where(finite, x, fill)

    def mean(x: torch.Tensor) -> torch.Tensor:
        # Mean over the finite entries of each dim; 0/0 gives NaN for a dim with none.
        return kept(x, 0.0).sum(0) / count

    def share(mask: torch.Tensor) -> torch.Tensor:
        # mean() of the mask, counted in float64 as it is read (its float64 copy was an [N, D]
        # temporary; the sums of ones are the same whole numbers).
        return (mask if all_finite else mask & finite).sum(0, dtype=torch.float64) / count

    def extreme(x: torch.Tensor, reduce, fill: float) -> torch.Tensor:
        value = reduce(kept(x, fill), 0)
        return torch.where(count > 0, value, math.nan)

    # Means and spreads of each dim over a power of two at its largest finite mu (and sigma):
    # the squares of codes of 1e200 overflow float64 (their SD read inf) and those of 1e-200
    # underflow (SD 0, "constant"); a power of two changes no digit of the ordinary cases.
    # mu's own power of two for its statistics (sigma's, far larger, left the squares of mu over
    # it 0: Var(mu) read 0 and no latent active); the larger of the two for the aggregate SD.
    mu_scale = _dim_scale(mu, finite, all_finite)
    deviations = mu / mu_scale  # (one [N, D] temporary, centred and squared in place)
    mean_scaled = mean(deviations)
    variance_scaled = mean(deviations.sub_(mean_scaled).square_())
    del deviations
    mu_mean = mean_scaled * mu_scale
    mu_variance = variance_scaled * mu_scale * mu_scale  # (inf where the variance itself is beyond float64)
    stats = dict(
        num_inputs=posterior.num_inputs,
        latent_dim=posterior.latent_dim,
        prior_std=prior_std,
        mean=mu_mean,
        min=extreme(mu, torch.amin, math.inf),
        max=extreme(mu, torch.amax, -math.inf),
        zero_fraction=share(mu == 0),
        mu_variance=mu_variance,
        nonfinite_count=posterior.num_inputs - count,
    )
    if logvar is None:
        stats["sd"] = variance_scaled.sqrt() * mu_scale
        candidates = [_nonfinite(stats, "the codes"), _nonnegative_mean(stats, "code layer")]
    else:
        # KL(N(mu, sigma^2) || N(0, p^2)) = log(p / sigma) + (sigma^2 + mu^2) / (2 p^2) - 1/2, written
        # with log p and mu / p so that no p^2 is formed (it under/overflows for extreme p).
        log_p = math.log(prior_std)
        # In place, in the order of the sum above, left to right, in one [N, D] temporary beside kl
        # (the expression held three: the peak of diagnose at N = 10^5 was 8 float64 copies of mu).
        kl = torch.rsub(logvar, 2.0 * log_p)
        temporary = torch.sub(logvar, 2.0 * log_p)
        kl += temporary.exp_()
        kl += torch.div(mu, prior_std, out=temporary).square_()
        del temporary
        kl -= 1.0
        kl *= 0.5
        stats["kl"] = mean(kl)
        del kl
        stats["active"] = mu_variance / prior_std / prior_std > ACTIVE_VARIANCE  # (no prior_std^2: it overflows)
        sigma = torch.exp(0.5 * logvar)
        scale = torch.maximum(mu_scale, _dim_scale(sigma, finite, all_finite))
        sigma_scaled = sigma.div_(scale)  # (in place: nothing else reads sigma)
        stats["posterior_sd"] = mean(sigma_scaled) * scale
        stats["sd"] = (variance_scaled * (mu_scale / scale) ** 2 + mean(sigma_scaled.square_())).sqrt() * scale
        del sigma, sigma_scaled
        # exp is monotone, so the median of sigma is exp of the lower median of logvar (nanmedian's):
        # no [N, D] sigma beside its sort.
        median_sigma = torch.exp(0.5 * lower_nanmedian(kept(logvar, math.nan)))
        min_logvar = extreme(logvar, torch.amin, math.inf)
        # A logvar that is one positive number for every input is a fixed variance (a design, or
        # a head that ignores its input), not a ReLU's floor, which is exactly 0.
        fixed_above_floor = (min_logvar == extreme(logvar, torch.amax, -math.inf)) & (min_logvar > 0)
        collapsed = _collapsed(stats)
        # mu = 0 and logvar = 0 is what a collapsed latent looks like (q(z|x) = the prior), not
        # evidence of a ReLU: the head checks look at the latents that did not collapse, and at
        # collapsed ones only where the ReLU's own mark shows (never negative, often exactly 0,
        # sometimes positive: a ReLU that died, which collapses its latent), or where a log-variance
        # is above 0 for every input (an SD or a variance read as one: its KL reads ~0 for SDs of
        # 0.05 to 0.2); a linear head's collapsed outputs scatter around 0, below it too.
        alive = torch.ones(posterior.latent_dim, dtype=torch.bool, device=mu.device)
        if collapsed is not None:
            alive[collapsed.dims] = False
        logvar_zeros = share(logvar == 0)
        max_logvar = extreme(logvar, torch.amax, -math.inf)
        # Collapsed latents' log-variances above 0 for every input count only when every live
        # latent's are too (one head): a linear head's collapsed ones can sit a hair above 0 (a
        # KL of 1e-4 nats pushes them no further), and beside healthy live latents that is no misreading.
        positive = _always_positive(min_logvar, max_logvar)
        misread_collapsed = positive & ~alive if bool((positive | ~alive).all()) else torch.zeros_like(alive)
        candidates = [
            _nonfinite(stats, "mu or logvar"),
            _small_posterior_sd(stats, median_sigma),
            collapsed,
            _nonnegative_mean(stats, "mean head", alive | _dead_relu(stats["min"], stats["max"], stats["zero_fraction"])),
            _nonnegative_logvar(min_logvar, logvar_zeros, prior_std,
                                (alive | _dead_relu(min_logvar, max_logvar, logvar_zeros) | misread_collapsed)
                                & ~fixed_above_floor),
            _marginal_mismatch(stats),
        ]
    flags = [flag for flag in candidates if flag is not None]
    cpu = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in stats.items()}
    # The reference of mode "empirical" without the rows holding NaN/Inf, which traverse refuses
    # (traverse(decoder, anchors, **diagnosis.traversal_options()) failed on them).
    rows = None if all_finite else torch.isfinite(mu).all(dim=1)
    # The diagnosis' own copy: codes the caller updates in place afterwards (an auto-decoder's latent
    # table stepped by its optimizer) changed the reference of a diagnosis already made.
    reference = codes.clone() if rows is None or bool(rows.all()) else codes[rows.to(codes.device)]
    return Diagnosis(**cpu, flags=flags, reference=reference, axes=_axes(codes, None if all_finite else finite),
                     latent_shape=posterior.latent_shape)


def lower_nanmedian(x: torch.Tensor) -> torch.Tensor:
    """``[D]`` the lower median of each column of ``[N, D]`` x over its non-NaN entries (NaN where
    a column has none): ``x.nanmedian(0).values``, which on CUDA under
    ``torch.use_deterministic_algorithms(True)`` raises (torch's median with indices has no
    deterministic CUDA kernel). There it is read from a sort instead: the same value, since a
    median is one of the entries."""
    if x.device.type == "cpu" or not torch.are_deterministic_algorithms_enabled():
        return x.nanmedian(0).values
    return sorted_lower_nanmedian(x)


def sorted_lower_nanmedian(x: torch.Tensor) -> torch.Tensor:
    """lower_nanmedian from a sort of each column (deterministic on every device)."""
    ordered = x.sort(0).values  # NaN sorts last
    count = (~x.isnan()).sum(0, keepdim=True)
    lower = ordered.gather(0, ((count - 1) // 2).clamp_(min=0)).squeeze(0)
    return torch.where(count.squeeze(0) > 0, lower, math.nan)


def _refuse_nothing_finite(fn: str, posterior: Posterior, count: torch.Tensor) -> None:
    """The statistics skip non-finite entries; with none finite on any dim there is nothing left
    to compute them from (the total KL read 0, and mode "prior" was recommended)."""
    if bool((count > 0).any()):
        return
    what = "the codes" if posterior.logvar is None else "mu or logvar"
    for name, tensor in (("posterior.mu", posterior.mu), ("posterior.logvar", posterior.logvar)):
        if tensor is not None:
            try:
                _checks.finite(fn, name, tensor)
            except ValueError as error:
                raise ValueError(
                    f"{error}; {what} hold NaN/Inf for every input on every dim, so there is nothing "
                    "to diagnose: find their source (the encoder, or its inputs)"
                ) from None


def _dead_relu(low: torch.Tensor, high: torch.Tensor, zero_fraction: torch.Tensor) -> torch.Tensor:
    """``[D]`` where a head's outputs bear a ReLU's mark even on a collapsed latent: never
    negative, at least ``ZERO_FRACTION`` exactly 0, and some positive."""
    return (low >= 0) & (high > 0) & (zero_fraction >= ZERO_FRACTION)


def _always_positive(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``[D]`` where a head's outputs are above 0 for every input (at least
    ``SCALE_AS_LOGVAR_FLOOR``) and not one number: the mark of an SD or a variance (softplus,
    exp) read as a log-variance even on a latent that reads as collapsed (SDs of 0.05 to 0.2
    read as log-variances give KL < 0.01 nats), where a linear head's collapsed log-variances
    scatter around 0, below it too, or sit a hair above it."""
    return (low >= SCALE_AS_LOGVAR_FLOOR) & (high > low)


def _dim_scale(x: torch.Tensor, finite: torch.Tensor, all_finite: bool = False) -> torch.Tensor:
    """``[D]`` the power of two at each column's largest finite magnitude (1 for a column of
    zeros): ``x`` over it lies within [-2, 2], and its squares stay in float64's range.
    ``all_finite``: ``finite`` is all True, and no mask is needed where ``x`` is finite too."""
    if all_finite:
        largest = torch.maximum(x.amax(0), x.amin(0).neg_())  # (x.abs() was an [N, D] temporary)
        if bool(torch.isfinite(largest).all()):  # (else NaN/Inf in x: sigma = exp(logvar / 2) overflows)
            return _checks.power_of_two_at(largest)
    return _checks.power_of_two_at(torch.where(finite & torch.isfinite(x), x.abs(), 0.0).amax(0))


def _axes(mu: torch.Tensor, finite: torch.Tensor | None) -> AxisAlignment | None:
    """Axis statistics of the inputs whose codes are finite on every dim (``finite`` None:
    all of them)."""
    rows = None if finite is None else finite.all(dim=1)
    codes = mu if rows is None or bool(rows.all()) else mu[rows]
    return axis_alignment(codes) if codes.shape[0] >= 2 else None


def _make_flag(code: str, mask: torch.Tensor, per_dim: dict, scalars: dict, recommendation: str) -> Flag | None:
    """A flag on the dims where ``mask`` holds, with ``per_dim`` values picked at those dims."""
    dims = mask.nonzero()[:, 0].tolist()
    if not dims:
        return None
    stats = {name: values[dims].tolist() for name, values in per_dim.items()}
    return Flag(code, dims, {**stats, **scalars}, recommendation)


def _nonfinite(s: dict, what: str) -> Flag | None:
    count = s["nonfinite_count"]
    return _make_flag(
        "nonfinite",
        count > 0,
        {"count": count, "fraction": count / s["num_inputs"]},
        {},
        f"{what} hold NaN/Inf for some inputs on these dims (the statistics use the finite "
        "values only); check the encoder and its inputs for overflow or bad data.",
    )


def _small_posterior_sd(s: dict, median_sigma: torch.Tensor) -> Flag | None:
    threshold = SMALL_SD_RATIO * s["prior_std"]
    return _make_flag(
        "small-posterior-sd",
        s["active"] & (median_sigma < threshold),
        {"median_posterior_sd": median_sigma},
        {"threshold": threshold, "prior_std": s["prior_std"]},
        "The encoder is so certain on these dims that moving by +/- k posterior SDs hardly moves z; "
        'traverse with mode "prior" or "absolute", not "posterior".',
    )


def _collapsed(s: dict) -> Flag | None:
    return _make_flag(
        "collapsed",
        ~s["active"] & (s["kl"] < COLLAPSED_KL),
        {"kl": s["kl"], "mu_variance": s["mu_variance"]},
        {"kl_threshold": COLLAPSED_KL, "active_variance": ACTIVE_VARIANCE},
        "The posterior equals the prior on these dims: they carry no information and their "
        "traversal will show nothing, so leave them out.",
    )


def _nonnegative_mean(s: dict, head: str, alive: torch.Tensor | None = None) -> Flag | None:
    mask = (s["min"] >= 0) & (s["zero_fraction"] >= ZERO_FRACTION)
    return _make_flag(
        "nonnegative-mean",
        mask if alive is None else mask & alive,
        {"min": s["min"], "zero_fraction": s["zero_fraction"]},
        {"zero_fraction_threshold": ZERO_FRACTION},
        f"mu is never negative and often exactly 0 on these dims, which looks like a ReLU on the "
        f"{head}; it should be linear.",
    )


def _nonnegative_logvar(min_logvar: torch.Tensor, zero_fraction: torch.Tensor, prior_std: float,
                        alive: torch.Tensor) -> Flag | None:
    # sigma >= 1 on every input is itself odd under a prior no wider than 1; under a wider one
    # it is an ordinary posterior, and only the ReLU's exact zeros give it away.
    floor = (min_logvar >= 0) & (zero_fraction >= ZERO_FRACTION if prior_std > 1 else True)
    mask = floor & alive
    return _make_flag(
        "nonnegative-logvar",
        mask,
        {"min_logvar": min_logvar, "zero_fraction": zero_fraction},
        {"zero_fraction_threshold": ZERO_FRACTION} if prior_std > 1 else {},
        "logvar is never negative on these dims, which looks like a ReLU on the log-variance head: "
        "variances can never go below 1; the head should be linear."
        + (f" {unit_variance_note(mask.nonzero()[:, 0].tolist())}" if bool((zero_fraction[mask] == 1).all()) else "")
        + (f" {scale_as_logvar_note(mask.nonzero()[:, 0].tolist())}" if no_exact_zeros(zero_fraction[mask].tolist())
           else ""),
    )


def no_exact_zeros(zero_fractions: list[float]) -> bool:
    """Whether flagged log-variances that are never negative have not a single exact 0 (a ReLU's
    floor gives many): then an SD or variance read as a log-variance is the likelier cause (the
    one rule for the flag's note and the findings)."""
    return all(z == 0 for z in zero_fractions)


def scale_as_logvar_note(dims: list[int], latent_shape: tuple[int, ...] | None = None) -> str:
    """For flagged dims without a single exact 0 (a ReLU's floor gives many): the likelier cause
    that the encoder returns an SD or a variance (softplus, exp: always > 0) where a log-variance
    is read, as in a ``(mu, sigma)`` tuple; the findings say it too."""
    return (f"No logvar on {dims_label(dims, latent_shape)} is exactly 0, which a ReLU's often are: if the encoder returns "
            "an SD or a variance (softplus, exp) rather than a log-variance, as the second element of a tuple, it is read "
            'as a log-variance; return {"mu": mu, "sigma": sd} (or {"mu": mu, "var": var}) instead.')


def unit_variance_note(dims: list[int], latent_shape: tuple[int, ...] | None = None) -> str:
    """For flagged dims whose logvar is exactly 0 for every input: what a dead ReLU head gives,
    and what a fixed unit variance passed as ``logvar=zeros`` is (the findings say it too)."""
    return (f"On {dims_label(dims, latent_shape)} logvar is exactly 0 for every input: a dead ReLU, or a fixed unit variance "
            "(logvar=zeros), which the codes cannot tell apart; if that is your design, ignore this (a plain "
            "autoencoder's codes take logvar=None).")


def _marginal_mismatch(s: dict) -> Flag | None:
    p = s["prior_std"]
    low, high = SD_RANGE
    mean, sd = s["mean"], s["sd"]
    return _make_flag(
        "marginal-mismatch",
        (mean.abs() > MEAN_TOLERANCE * p) | (sd < low * p) | (sd > high * p),
        {"mean": mean, "sd": sd},
        {"prior_std": p, "mean_tolerance": MEAN_TOLERANCE * p, "sd_low": low * p, "sd_high": high * p},
        f"The codes on these dims do not follow the prior N(0, {p:g}^2), so prior-based ranges "
        'miss where the data lies; traverse with mode "empirical" (reference=posterior.mu).',
    )


def dims_label(dims: list[int], latent_shape: tuple[int, ...] | None = None) -> str:
    """``"dim 3"`` or ``"dims 0-3, 7"``; for a structured latent by the names its latents have
    in pictures, reports and traversal labels: ``"latents z[1,:,:], z[2,0,1]"``."""
    if latent_shape is not None and len(latent_shape) > 1:
        from .latent_shape import latents_text  # (it imports directions, which imports this module's posterior)

        return ("latent " if len(dims) == 1 else "latents ") + latents_text(dims, latent_shape)
    return ("dim " if len(dims) == 1 else "dims ") + format_dims(dims)


def format_dims(dims: list[int]) -> str:
    """``[0, 1, 2, 3, 7]`` -> ``"0-3, 7"``."""
    from .latent_shape import consecutive_runs  # (see dims_label)

    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in consecutive_runs(dims))


def _fmt(t: torch.Tensor) -> list[str]:
    return [f"{v:.3g}" for v in t.tolist()]
