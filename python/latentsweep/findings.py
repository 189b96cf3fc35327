"""What a diagnosis means for the user, most important first: every sentence is built from the
diagnosis' own numbers (and tested against them), so a report never says what the data do not.

Order of importance: NaN/Inf in the codes (nothing else can be trusted), ReLU'd encoder heads
(retraining is the fix; no traversal mode repairs them), a whole-posterior collapse, codes that
do not follow the prior, tiny posterior SDs, single collapsed latents, then how the latents lie
against the codes' principal axes (a plain autoencoder's are arbitrary; a VAE's may be rotated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._shares import format_share
from .diagnosis import Diagnosis, dims_label, format_dims, scale_as_logvar_note, unit_variance_note

# A posterior SD below this fraction of the prior SD counts as "small" in the texts: +/- 2
# posterior SDs then cover under half of the prior's +/- 2 SD range.
SMALL_SD_TEXT_RATIO = 0.5


@dataclass(frozen=True)
class Finding:
    """One thing the user should know.

    Attributes:
        code: a flag code, or ``"whole-collapse"`` / ``"no-active"`` (no latent active, some
            not collapsed) / ``"healthy"`` / ``"autoencoder"``.
        headline: a few words for a heading, e.g. "Retrain with linear encoder heads".
        text: the sentences, with this model's numbers.
        action: True when the model itself needs fixing (retraining, data), not just the
            way it is traversed.
    """

    code: str
    headline: str
    text: str
    action: bool = False


def findings(diagnosis: Diagnosis) -> list[Finding]:
    """The findings of a diagnosis, most important first (never empty)."""
    found: list[Finding] = []
    nonfinite = diagnosis.flag("nonfinite")
    if nonfinite:
        worst = max(nonfinite.stats["count"])
        found.append(Finding(
            "nonfinite", "Find the NaN/Inf values first",
            f"The encoder gave NaN or Inf for up to {worst} of {diagnosis.num_inputs} inputs on "
            f"{dims_label(nonfinite.dims, diagnosis.latent_shape)}; the statistics skip them, but find their source (overflow, "
            "bad data) before trusting anything else here.",
            action=True,
        ))
    heads = _heads(diagnosis)
    if heads:
        found.append(heads)
    alive = diagnosis.uncollapsed_inactive_dims
    if diagnosis.is_variational and diagnosis.num_active == 0 and alive:
        # Not a collapse: the posteriors differ from the prior (narrow ones, say, with means
        # 0.05 apart), so the encoder does not ignore its input and less KL pressure is no fix.
        # Means that are one number for every input (a dead ReLU's 0) are another matter: they
        # ignore the input, and the prior is not what to check.
        kl = [float(diagnosis.kl[d]) for d in alive]
        varying = [d for d in alive if float(diagnosis.min[d]) != float(diagnosis.max[d])]
        fixed = [d for d in alive if d not in varying]
        text = (f"None of the {diagnosis.latent_dim} latents is active (Var(mu) <= 0.01{_prior_variance(diagnosis)} "
                f"on every one), but on {dims_label(alive, diagnosis.latent_shape)} the KL is {_range(kl)} nats, so the posteriors there are not "
                "the prior")
        if varying:
            spread = [float(diagnosis.mu_variance[d]) ** 0.5 for d in varying]
            text += (f": the means{'' if not fixed else f' on {dims_label(varying, diagnosis.latent_shape)}'} vary by an SD of {_range(spread)} "
                     f"across the inputs, under 0.1 x the prior SD {diagnosis.prior_std:g}. The codes fill a small part "
                     "of the prior's range; check that the prior N(0, prior_std²) is the one the model was trained with.")
        else:
            text += "."
        if fixed:
            means = [float(diagnosis.mean[d]) for d in fixed]
            text += (f" On {dims_label(fixed, diagnosis.latent_shape)} the mean is {_range(means)} for every input: the means ignore the input"
                     + (", as when a ReLU on the mean head died (see above)." if _covered(diagnosis, "nonnegative-mean", fixed)
                        else "."))
        found.append(Finding("no-active", "No latent is active, but the posterior did not collapse", text))
    elif diagnosis.is_variational and diagnosis.num_active == 0:
        misread = diagnosis.scale_read_as_collapse()
        dead = diagnosis.flag("nonnegative-mean") or (not misread and diagnosis.flag("nonnegative-logvar"))
        text = (f"None of the {diagnosis.latent_dim} latents is active (Var(mu) <= 0.01{_prior_variance(diagnosis)} on "
                f"every one, total KL {diagnosis.total_kl:.3g} nats)")
        if misread:
            text += (f". {_misread_collapse(diagnosis, misread)} If it is a log-variance, the encoder ignores its input "
                     "and every traversal will show the same output: retrain with less KL pressure (KL annealing, free "
                     "bits, a weaker decoder).")
        else:
            text += (": the encoder ignores its input and every traversal will show the same output. "
                     + (f"On {dims_label(dead.dims, diagnosis.latent_shape)} the encoder's heads bear a ReLU's mark (see above): a ReLU that outputs 0 "
                        "passes no gradient and can collapse its latent, so make the heads linear first; if the posterior "
                        "still collapses, retrain with less KL pressure (KL annealing, free bits, a weaker decoder)."
                        if dead else "Retrain with less KL pressure (KL annealing, free bits, a weaker decoder)."))
        found.append(Finding(
            "whole-collapse",
            "No latent is active: an SD read as a log-variance, or a collapse" if misread
            else "Posterior collapse: no latent carries information",
            text, action=True,
        ))
    mismatch = diagnosis.flag("marginal-mismatch")
    if mismatch:
        means, sds = mismatch.stats["mean"], mismatch.stats["sd"]
        found.append(Finding(
            "marginal-mismatch", "The codes do not follow the prior",
            f"On {dims_label(mismatch.dims, diagnosis.latent_shape)} the codes' aggregate mean ranges {min(means):.2g} to "
            f"{max(means):.2g} and their SD {min(sds):.2g} to {max(sds):.2g}, where the prior "
            f"N(0, {diagnosis.prior_std:g}²) has 0 and {diagnosis.prior_std:g}: prior-based ranges "
            'miss where the data lies, so traverse with mode "empirical".',
        ))
    small = diagnosis.flag("small-posterior-sd")
    if small:
        sds = small.stats["median_posterior_sd"]
        typical = sorted(sds)[len(sds) // 2]
        found.append(Finding(
            "small-posterior-sd", "The encoder is very certain: traverse by the prior",
            f"On {dims_label(small.dims, diagnosis.latent_shape)} the median posterior SD is {_range(sds)} (prior SD "
            f"{diagnosis.prior_std:g}), so ± 2 posterior SDs move z by about {4 * typical:.2g}, "
            f"{format_share(typical / diagnosis.prior_std)} of the prior's ± 2 SD range: a traversal by the "
            "posterior shows almost nothing. Traverse by the prior.",
        ))
    collapsed = diagnosis.flag("collapsed")
    if collapsed and diagnosis.num_active:
        one = len(collapsed.dims) == 1
        text = (f"{dims_label(collapsed.dims, diagnosis.latent_shape).capitalize()} {'has' if one else 'have'} KL under "
                f"{collapsed.stats['kl_threshold']:g} nats and {'carries' if one else 'carry'} nothing ({'its' if one else 'their'} "
                f"posterior is the prior); leave {'it' if one else 'them'} out of traversals "
                f"(dims=diagnosis.active_dims: {format_dims(diagnosis.active_dims)}).")
        misread = diagnosis.scale_read_as_collapse()
        if misread:
            text += f" {_misread_collapse(diagnosis, misread)}"
        killed = _killed_by_relu(diagnosis, collapsed.dims)
        if killed:
            text += (f" The means are exactly 0 for every input on {dims_label(killed, diagnosis.latent_shape)}: beside a "
                     "ReLU on the mean head (see above), likelier units the ReLU killed than a collapse; a linear head may "
                     "revive them.")
        found.append(Finding("collapsed", f"{len(collapsed.dims)} of {diagnosis.latent_dim} latents collapsed", text))
    rotated = _rotated_axes(diagnosis)
    if rotated:
        found.append(rotated)
    if not diagnosis.is_variational:
        found.append(_autoencoder(diagnosis))
    elif not found:
        found.append(Finding(
            "healthy", "No problems found",
            f"{diagnosis.num_active} of {diagnosis.latent_dim} latents are active, the codes "
            f"follow the prior N(0, {diagnosis.prior_std:g}²) and no flag fired: traverse by "
            'the prior (mode "prior", the default).',
        ))
    return found


def axes_sentence(diagnosis: Diagnosis) -> str | None:
    """How the latents lie against the codes' principal axes, as a sentence with the numbers
    (``None`` without axis statistics)."""
    if diagnosis.axes is None:
        return None
    text = diagnosis.axes.describe()
    return f"{text[0].upper()}{text[1:]}."


def _autoencoder(diagnosis: Diagnosis) -> Finding:
    numbers = axes_sentence(diagnosis)
    return Finding(
        "autoencoder", "A plain autoencoder: read it along principal directions",
        f"Its {diagnosis.latent_dim} coordinate axes are arbitrary: any invertible linear map of the "
        "latent space, absorbed by the encoder's last layer and the decoder's first, gives the same "
        "loss, so one latent shows an arbitrary mix of what the codes encode. Traverse the principal "
        "directions of the codes instead (the axes the data defines), with mode \"empirical\": the "
        "codes have no prior, and their own spread is the range the decoder has seen."
        + (f" {numbers}" if numbers else ""),
    )


def _rotated_axes(diagnosis: Diagnosis) -> Finding | None:
    """A VAE whose codes' main axis is not one of its latents."""
    if not diagnosis.is_variational or diagnosis.axis_aligned is not False or (diagnosis.num_active or 0) < 2:
        return None
    return Finding(
        "rotated-axes", "The codes' main axes are not the latents",
        f"{axes_sentence(diagnosis)} So the latents mix the directions along which the codes vary "
        "most: traverse the principal directions too, and compare.",
    )


def posterior_sd_sentence(diagnosis: Diagnosis) -> str | None:
    """What ± 2 posterior SDs of the active latents cover compared with the prior's range,
    worded by the numbers (``None`` for an autoencoder or without active latents)."""
    if not diagnosis.is_variational:
        return None
    sds = [float(diagnosis.posterior_sd[d]) for d in diagnosis.active_dims or []]
    sds = [s for s in sds if math.isfinite(s)]
    if not sds:
        return None
    p = diagnosis.prior_std
    typical = sorted(sds)[len(sds) // 2]
    ratio = typical / p
    text = (
        f"The active latents have a typical posterior SD of {typical:.2g} ({ratio:.2g}× the prior "
        f"SD), so ± 2 posterior SDs span {4 * typical:.2g} in z"
    )
    if ratio < SMALL_SD_TEXT_RATIO:
        return text + f", only {format_share(ratio)} of the prior's ± 2 SD range ({4 * p:.2g})."
    if ratio <= 1.0 / SMALL_SD_TEXT_RATIO:
        text += f", about as much as the prior's ± 2 SD range ({4 * p:.2g}): the posterior SDs are not small here"
    else:
        text += f", more than the prior's ± 2 SD range ({4 * p:.2g})"
    if diagnosis.flag("nonnegative-logvar"):
        text += (" (log-variances never below 0, perhaps SDs read as log-variances, keep every SD at 1 or more)"
                 if diagnosis.logvar_may_be_a_scale else " (a ReLU on the log-variance head keeps every SD at 1 or more)")
    return text + "."


def _misread_collapse(diagnosis: Diagnosis, dims: list[int]) -> str:
    """For collapsed ``dims`` whose log-variances may be SDs or variances: both causes, the
    likelier first (a linear head's collapsed log-variances scatter around 0, below it too)."""
    return (f"On {dims_label(dims, diagnosis.latent_shape)} the log-variances are above 0 for every input and none is "
            "exactly 0, where a collapsed latent's scatter around 0, below it too: the likelier cause is an SD or a "
            "variance read as a log-variance (see above). Read as what they are, those posteriors are not the "
            "prior, and neither this KL nor this collapse is theirs: return the SD by name and diagnose again.")


def _heads(diagnosis: Diagnosis) -> Finding | None:
    mean, logvar = diagnosis.flag("nonnegative-mean"), diagnosis.flag("nonnegative-logvar")
    if not mean and not logvar:
        return None
    parts = []
    if mean:
        zeros = mean.stats["zero_fraction"]
        parts.append(
            f"the means are never negative on {dims_label(mean.dims, diagnosis.latent_shape)}, and {_percent_range(zeros)} of "
            "them are exactly 0"
        )
    if logvar:
        parts.append(
            f"the log-variances are never negative on {dims_label(logvar.dims, diagnosis.latent_shape)}, so no posterior SD "
            "there is below 1"
        )
    if not diagnosis.is_variational:
        head, headline = "code layer", "Retrain with a linear code layer"
    elif mean and logvar:
        head, headline = "mean and log-variance heads", "Retrain with linear mean and log-variance heads"
    else:
        head = "mean head" if mean else "log-variance head"
        headline = f"Retrain with a linear {head}"
    text = "; ".join(parts)
    pinned = logvar is not None and all(z == 1 for z in logvar.stats["zero_fraction"])
    scale = diagnosis.logvar_may_be_a_scale
    text = f"{text[0].upper()}{text[1:]}"
    if scale and not mean:
        return Finding(
            "relu-heads", "Check what the encoder returns as the log-variance",
            f"{text}. {scale_as_logvar_note(logvar.dims, diagnosis.latent_shape)} If it is a log-variance, this is "
            "the signature of a ReLU, softplus or similar on the encoder's log-variance head: make it linear and retrain.",
            action=True,
        )
    return Finding(
        "relu-heads", headline,
        f"{text}: the signature of a ReLU (or similar) on the encoder's "
        f"{head}. Make {'them' if head.endswith('s') else 'it'} linear and retrain; no traversal "
        "mode can undo it." + (f" {unit_variance_note(logvar.dims, diagnosis.latent_shape)}" if pinned else "")
        + (f" {scale_as_logvar_note(logvar.dims, diagnosis.latent_shape)}" if scale else ""),
        action=True,
    )


def _killed_by_relu(diagnosis: Diagnosis, dims: list[int]) -> list[int]:
    """Those of ``dims`` whose means are exactly 0 for every input when the mean head is flagged
    a ReLU's on other latents: a dead unit's output (alone, a collapse looks the same)."""
    if not diagnosis.flag("nonnegative-mean"):
        return []
    return [d for d in dims if float(diagnosis.min[d]) == float(diagnosis.max[d]) == 0.0]


def _covered(diagnosis: Diagnosis, code: str, dims: list[int]) -> bool:
    """Whether the flag ``code`` fired on every one of ``dims``."""
    flag = diagnosis.flag(code)
    return flag is not None and set(dims) <= set(flag.dims)


def _prior_variance(diagnosis: Diagnosis) -> str:
    """`` x p²`` after a threshold in the prior's variances (nothing for the standard prior)."""
    return "" if diagnosis.prior_std == 1 else f" x {diagnosis.prior_std:g}²"



def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2g}" if f"{low:.2g}" == f"{high:.2g}" else f"{low:.2g} to {high:.2g}"


def _percent_range(values: list[float]) -> str:
    low, high = min(values), max(values)
    low, high = format_share(low), format_share(high)
    return low if low == high else f"{low} to {high}"
