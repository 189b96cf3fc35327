"""The traversal modes, defined in one place: what each needs, what it is for, and how its
values are computed. Adding a mode is one entry of ``MODE_TABLE``; :func:`traversal_values`,
``traverse``, the command line's ``--mode``, ``diagnose`` and the report ask this table.

Every mode gives ``[A, K, S]`` values from the inputs in :class:`ModeInputs`, with
``t = linspace(-span, span, steps)`` and the prior levels ``linspace(Phi(-span), Phi(span), steps)``.
Along a unit direction u the same rules apply to the coordinates along u (the projection of
N(0, I) on a unit vector is N(0, 1)): ``traversal_values`` hands each mode the anchors'
coordinates ``<anchors[a], u>``, the log-variance along u and the projected reference.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

# Beyond this the prior's tail probability Phi(-span) is not a normal float64 (it underflows
# at ~38.5), and its quantile loses accuracy or becomes infinite.
MAX_QUANTILE_SPAN = 37.5
# Below this span the quantiles are taken from the median out (see _centred_quantiles): a level
# near 1/2 carries a rounding of ~1e-17, a relative error of ~1e-16 / span in its quantile
# (ndtr(-span) is 0.5 itself below span ~1e-16, and the ends were lost).
CENTRED_QUANTILE_SPAN = 0.5
# Below this span the normal quantile is linear to float64 precision (relative error
# <= span^2 / 6 < eps / 2), and erf/erfinv of subnormal spans would lose digits.
LINEAR_QUANTILE_SPAN = 1e-8


@dataclass(frozen=True)
class ModeInputs:
    """What a mode's values are computed from, checked, in the compute dtype (float64 for
    float64 anchors, else float32), on the anchors' device.

    Attributes:
        anchors: ``[A, K]`` the anchors' traversed columns (or their coordinates along K
            directions): ``traversal_values`` hands over those columns only.
        dims: ``[K]`` the columns of ``anchors``, ``logvar`` and ``reference`` to traverse:
            ``arange(K)``, all of them.
        span: how far ``t`` reaches (a Python float, as given: ``t`` holds it rounded).
        t: ``[S]`` ``linspace(-span, span, steps)``.
        tail, side: ``[S]`` float64 prior levels (see :func:`prior_levels`), computed when a mode
            first asks for them (their float64 temporaries took 32 bytes a step, 8x the float32
            values of a one-latent grid, in modes that never use them).
        prior_std: the prior's SD.
        logvar: ``[A, K]`` posterior log-variances of those columns (modes that need them), else None.
        reference: ``[M, K]`` codes of the data in those columns (modes that need them), else None.
    """

    anchors: torch.Tensor
    dims: torch.Tensor
    span: float
    t: torch.Tensor
    prior_std: float
    logvar: torch.Tensor | None
    reference: torch.Tensor | None

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return (self.anchors.shape[0], self.dims.numel(), self.t.numel())

    @functools.cached_property
    def _tail_side(self) -> tuple[torch.Tensor, torch.Tensor]:
        return prior_levels(self.span, self.t.numel())

    @property
    def tail(self) -> torch.Tensor:
        return self._tail_side[0]

    @property
    def side(self) -> torch.Tensor:
        return self._tail_side[1]

    @property
    def levels(self) -> torch.Tensor:
        """``[S]`` float64 ``linspace(Phi(-span), Phi(span), steps)``, symmetric to the last bit."""
        return torch.where(self.side > 0, 1.0 - self.tail, self.tail)


@dataclass(frozen=True)
class Mode:
    """One traversal mode.

    Attributes:
        name: what ``mode=`` says.
        values: the formula of the values of latent d for anchor a, in the docs' words.
        along_direction: the same along a unit direction u.
        use: what it is for (one line).
        needs_logvar: needs the posterior's ``logvar`` (``[A, D]``; a :class:`Posterior` as
            anchors gives it).
        needs_reference: needs ``reference`` codes of the data (``[M, D]``).
        uses_prior_std: its range scales with ``prior_std``.
        centred: each anchor's traversal is centred on its own value (else the values are the
            same for every anchor).
        directions: works along directions (``traversal_values(directions=)``).
        max_span: the largest ``span`` it accepts, or None.
        uses_levels: computes the prior levels (:attr:`ModeInputs.levels`): float64 temporaries
            of about 64 bytes a step (counted by ``traversal_values``' memory check).
        compute: ``ModeInputs -> [A, K, S]`` values in the inputs' compute dtype.
    """

    name: str
    values: str
    along_direction: str
    use: str
    needs_logvar: bool
    needs_reference: bool
    uses_prior_std: bool
    centred: bool
    compute: Callable[[ModeInputs], torch.Tensor]
    directions: bool = True
    max_span: float | None = None
    uses_levels: bool = False

    @property
    def needs(self) -> tuple[str, ...]:
        """The arguments it needs beyond the anchors (``("logvar",)``, ``("reference",)``)."""
        return (("logvar",) if self.needs_logvar else ()) + (("reference",) if self.needs_reference else ())

    def traverse_call(self, *, prior_std: float = 1.0, extra: str = "") -> str:
        """A ``latentsweep.traverse`` call in this mode from a Posterior's first 8 inputs (which
        give ``logvar``), with what else it needs, for reports: ``extra`` is appended as is."""
        arguments = f'mode="{self.name}"'
        if self.needs_reference:
            arguments += ", reference=posterior.mu"
        if self.uses_prior_std and prior_std != 1.0:
            arguments += f", prior_std={prior_std:g}"
        return f"latentsweep.traverse(decoder, posterior[:8], {arguments}{extra})"


def prior_levels(span: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``linspace(Phi(-span), Phi(span), steps)`` as (tail probability, side) in float64: level
    ``i`` is ``tail[i]`` when ``side[i] < 0`` and ``1 - tail[i]`` otherwise. Both halves come
    from the lower tail, so the levels (and their normal quantiles) are exactly symmetric and
    keep the promised ends where ``Phi(span)`` would round to 1."""
    lower = 0.5 * math.erfc(span / math.sqrt(2.0))  # Phi(-span), accurate far into the tail
    if steps == 1:  # torch.linspace semantics: just the start
        return (torch.tensor([lower], dtype=torch.float64, device="cpu"),
                torch.tensor([-1.0], dtype=torch.float64, device="cpu"))
    width = math.erf(span / math.sqrt(2.0))  # Phi(span) - Phi(-span)
    nearest, side = _from_the_nearer_end(steps)
    tail = lower + nearest * (width / (steps - 1))
    tail[side == 0] = 0.5  # the middle of an odd number of steps: the median, exactly
    return tail, side


def _from_the_nearer_end(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For steps >= 2, float64 ``[S]``: each step's distance from the nearer end (in steps) and
    its side (-1 lower half, 0 the middle, +1 upper half): what makes the grids symmetric."""
    i = torch.arange(steps, dtype=torch.float64, device="cpu")
    return torch.minimum(i, steps - 1 - i), torch.sign(i - (steps - 1) / 2)


def _centred_quantiles(span: float, steps: int) -> torch.Tensor:
    """``Phi^-1(linspace(Phi(-span), Phi(span), steps))`` in float64 for small spans, from the
    median out: the level at position c in [-1, 1] is ``1/2 + c * erf(span / sqrt(2)) / 2``, so
    its quantile is ``sqrt(2) * erfinv(c * erf(span / sqrt(2)))``, no level near 1/2 formed; below
    ``LINEAR_QUANTILE_SPAN``, ``c * span``. The ends are ``+-span`` (to a rounding), the
    middle exactly 0, the halves exactly symmetric."""
    if steps == 1:  # torch.linspace semantics: just the start
        position = torch.tensor([-1.0], dtype=torch.float64, device="cpu")
    else:
        nearest, side = _from_the_nearer_end(steps)
        position = side * (1.0 - nearest * (2.0 / (steps - 1)))
    if span < LINEAR_QUANTILE_SPAN:
        return span * position
    return math.sqrt(2.0) * torch.special.erfinv(position * math.erf(span / math.sqrt(2.0)))


# empirical_quantiles sorts the columns of its samples in blocks of about this many values
# (float64, beside torch's int64 indices), whatever M and K: the whole [M, K] at once, in float64
# with its sorted copy and their indices, took 24 bytes a value beside a copy of the columns, 4
# times the 8 that traversal_values' memory check counted.
QUANTILE_BLOCK_VALUES = 1 << 22
QUANTILE_BYTES_PER_VALUE = 24  # a block's float64 copy, its sorted values and their int64 indices


def quantile_columns(rows: int) -> int:
    """How many columns of ``[rows, K]`` samples :func:`empirical_quantiles` sorts at once."""
    return max(1, QUANTILE_BLOCK_VALUES // max(rows, 1))


def empirical_quantiles_bytes(rows: int, columns: int) -> int:
    """The most :func:`empirical_quantiles` allocates at once for ``[rows, columns]`` samples."""
    return QUANTILE_BYTES_PER_VALUE * rows * min(columns, quantile_columns(rows))


def empirical_quantiles(samples: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Per column of ``samples`` [M, K], the quantiles at ``levels`` [S] with linear
    interpolation (``torch.quantile``'s default, without its input-size limit): ``[K, S]``."""
    rows, count = samples.shape
    ranks = levels.to(samples.device, torch.float64) * (rows - 1)
    below = ranks.floor().long()
    above = ranks.ceil().long()
    weight = (ranks - below)[:, None]
    low = torch.empty(ranks.numel(), count, dtype=torch.float64, device=samples.device)  # [S, K]
    high = torch.empty_like(low)
    step = quantile_columns(rows)
    for first in range(0, count, step):
        block = samples[:, first : first + step]
        # Each column sorted in contiguous memory: [M, K] sorted along its strided dim 0 took 3 to 5
        # times as long at K = 1024 (the same order: these are the same sorts).
        ordered = block.T.to(torch.float64, memory_format=torch.contiguous_format).sort(dim=1).values  # [k, M]
        low[:, first : first + step] = ordered[:, below].T
        high[:, first : first + step] = ordered[:, above].T
    quantiles = torch.lerp(low, high, weight)
    # lerp forms high - low, which overflows for samples of both signs near float64's largest
    # value (a valid reference was refused as having infinite quantiles): those entries as the
    # weighted sum instead (the other bits unchanged: a store's values keep their identity)
    spread = ~torch.isfinite(quantiles)
    if bool(spread.any()):
        weights = weight.expand_as(low)
        quantiles[spread] = low[spread] * (1 - weights[spread]) + high[spread] * weights[spread]
    return quantiles.T.contiguous()


# ---- the values of each mode ----------------------------------------------------------------
def _prior(x: ModeInputs) -> torch.Tensor:
    return x.anchors[:, x.dims, None] + x.t * x.prior_std


def _absolute(x: ModeInputs) -> torch.Tensor:
    return (x.t * x.prior_std).expand(*x.grid_shape)


def _quantile(x: ModeInputs) -> torch.Tensor:
    span = x.span
    if span < CENTRED_QUANTILE_SPAN:
        quantiles = _centred_quantiles(span, x.t.numel())
    else:
        quantiles = torch.special.ndtri(x.tail) * torch.where(x.side > 0, -1.0, 1.0)
        # The ends are +-span by definition; ndtri(ndtr(-span)) comes back within a few ulps of it.
        quantiles[0] = -span
        if quantiles.numel() > 1:
            quantiles[-1] = span
    row = (x.prior_std * quantiles).to(device=x.anchors.device, dtype=x.anchors.dtype)
    return row.expand(*x.grid_shape)


def _posterior(x: ModeInputs) -> torch.Tensor:
    sd = torch.exp(0.5 * x.logvar.to(x.anchors.dtype)[:, x.dims, None])
    return x.anchors[:, x.dims, None] + x.t * sd


def _empirical(x: ModeInputs) -> torch.Tensor:
    # (the reference holds the K traversed columns: x.dims is all of them, in order)
    row = empirical_quantiles(x.reference, x.levels).to(x.anchors.dtype)  # [K, S]
    return row.expand(*x.grid_shape)


MODE_TABLE: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("prior", "`anchor[a, d] + t · prior_std`", "`<anchor[a], u> + t · prior_std`",
             "VAEs: centred on the input, the prior's range",
             needs_logvar=False, needs_reference=False, uses_prior_std=True, centred=True, compute=_prior),
        Mode("absolute", "`t · prior_std`", "the same",
             "VAEs: the prior's plausible range, the same for every input",
             needs_logvar=False, needs_reference=False, uses_prior_std=True, centred=False, compute=_absolute),
        Mode("quantile", "`prior_std · Φ⁻¹(linspace(Φ(-span), Φ(span), steps))`", "the same",
             "same ends, equally spaced in prior probability",
             needs_logvar=False, needs_reference=False, uses_prior_std=True, centred=False, compute=_quantile,
             max_span=MAX_QUANTILE_SPAN, uses_levels=True),
        Mode("posterior", "`anchor[a, d] + t · σ[a, d]`", "`<anchor[a], u> + t · sqrt(Σ_d u_d² σ[a, d]²)`",
             "seeing how certain the encoder is (usually: very)",
             needs_logvar=True, needs_reference=False, uses_prior_std=False, centred=True, compute=_posterior),
        Mode("empirical", "quantiles of `reference[:, d]` at `linspace(Φ(-span), Φ(span), steps)`",
             "quantiles of `reference @ u`",
             "plain autoencoders, or codes that do not follow the prior",
             needs_logvar=False, needs_reference=True, uses_prior_std=False, centred=False, compute=_empirical,
             uses_levels=True),
    )
}
MODES: tuple[str, ...] = tuple(MODE_TABLE)  # the names, default first
DEFAULT_MODE = "prior"


def lookup(fn: str, mode) -> Mode:
    """The table's entry for ``mode``, or a TypeError/ValueError naming the modes."""
    names = ", ".join(map(repr, MODE_TABLE))
    if not isinstance(mode, str):
        raise TypeError(f"{fn}: mode must be a str, one of {names}; got {type(mode).__name__}")
    if mode not in MODE_TABLE:
        raise ValueError(f"{fn}: mode must be one of {names}, got {mode!r}")
    return MODE_TABLE[mode]


def markdown_table() -> str:
    """The modes as the README's table (tests/test_readme.py checks the README holds it)."""
    lines = [
        "| mode | values of latent d for anchor a | along a unit direction u | needs | use it for |",
        "| --- | --- | --- | --- | --- |",
    ]
    for mode in MODE_TABLE.values():
        name = f'`"{mode.name}"`' + (" (default)" if mode.name == DEFAULT_MODE else "")
        needs = ", ".join(f"`{n}`" for n in mode.needs) or "—"
        lines.append(f"| {name} | {mode.values} | {mode.along_direction} | {needs} | {mode.use} |")
    return "\n".join(lines)
