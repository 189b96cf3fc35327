"""Paths between latent codes: straight lines, and great-circle arcs (slerp) for Gaussian
latents, where a straight line between two typical codes cuts through the unlikely region
near the origin (White, "Sampling Generative Networks", 2016)."""

from __future__ import annotations

import math

import torch

from . import _checks

PATHS = ("linear", "slerp")


def path_label(path: str) -> str:
    """The name of an interpolation's one traversal (its results' and stores' label)."""
    return f"{path} path"

# Below this sin(theta) the arc's plane is set by rounding (theta within ~1e-6 of 0 or pi): linear.
SINE_FLOOR = 1e-6
# float64 [P, S, D] arrays alive at once while path_codes runs (slerp: the linear codes, both
# weighted endpoints and their sum).
PATH_TEMPORARIES = 4


def _endpoints(fn: str, start, end) -> tuple[torch.Tensor, torch.Tensor]:
    start = _checks.tensor(fn, "start", start, ndims=(1, 2))
    end = _checks.tensor(fn, "end", end, ndims=(1, 2))
    _checks.same_device(fn, start=start, end=end)
    start = start[None] if start.dim() == 1 else start
    end = end[None] if end.dim() == 1 else end
    if start.shape != end.shape or start.shape[0] < 1 or start.shape[1] < 1:
        raise ValueError(
            f"{fn}: start and end must both be [D] or [P, D] with the same shape, P >= 1 and D >= 1, got "
            f"{tuple(start.shape)} and {tuple(end.shape)}"
        )
    _checks.finite(fn, "start", start)
    _checks.finite(fn, "end", end)
    return start, end


def _angle(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The angle theta between float64 endpoints (0 where one is zero) and its sine, reduced
    over the last dimension (kept)."""
    return _angle_of(*_angle_terms(a, b))


def _angle_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What :func:`_angle` reduces the endpoints to: ``|a^ - b^|``, ``|a^ + b^|`` of the unit
    endpoints and whether both are nonzero. Row-wise, so the same bits for any slice of rows."""
    # Scaled first: endpoints of norm 1e-170 or 1e200 had norms of 0 or inf (a straight line).
    a, b = _checks.by_largest_entry(a)[0], _checks.by_largest_entry(b)[0]
    a_norm, b_norm = (torch.linalg.vector_norm(x, dim=-1, keepdim=True) for x in (a, b))
    unit_a, unit_b = a / a_norm.clamp_min(1e-300), b / b_norm.clamp_min(1e-300)
    return (torch.linalg.vector_norm(unit_a - unit_b, dim=-1, keepdim=True),
            torch.linalg.vector_norm(unit_a + unit_b, dim=-1, keepdim=True), (a_norm > 0) & (b_norm > 0))


def _angle_of(minus: torch.Tensor, plus: torch.Tensor, nonzero: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """theta and sin(theta) from :func:`_angle_terms`. Not row-wise in bits: torch's CPU atan2
    computes a tensor's last few elements (its vectorised loop's tail) with another routine
    than the rest, which can differ in the last bit, so theta depends on the slice it is
    computed over: the path writer calls this once over all paths, as path_codes does (per chunk
    for a store begun at arcs' revision 1, interpolation.ARCS_REVISION)."""
    # theta = 2 atan2(|a^ - b^|, |a^ + b^|) of the unit endpoints: accurate at every angle, where
    # arccos of the cosine lost half the digits near 0 and pi (a slerp's midpoint between nearly
    # opposite unit endpoints had norm 1.0003).
    theta = torch.where(nonzero, 2.0 * torch.atan2(minus, plus), 0.0)
    return theta, torch.sin(theta)


def warn_undefined_arcs(fn: str, start: torch.Tensor, end: torch.Tensor) -> None:
    """A slerp between opposite endpoints has no single great circle: the path falls back to the
    straight line, which passes through the origin, the region slerp is meant to avoid. Said
    once per call, naming the paths concerned."""
    theta, sine = _angle(start.double(), end.double())
    opposite = ((sine[:, 0] <= SINE_FLOOR) & (theta[:, 0] > math.pi / 2)).nonzero().flatten().tolist()
    if opposite:
        _checks.warn(
            f"{fn}: path(s) {opposite[:10]}{' ...' if len(opposite) > 10 else ''} of {len(start)} have opposite "
            "endpoints: no single great circle joins them, so slerp drew the straight line, through the origin; "
            "pick endpoints that are not opposite, or use path='linear'",
            UserWarning,
        )


def interpolation_codes(start, end, *, steps: int = 11, path: str = "linear") -> torch.Tensor:
    """Codes along P paths from ``start`` to ``end``: ``[P, S, D]``.

    With ``t = linspace(0, 1, steps)``:

    - ``"linear"``: ``(1 - t) start + t end``.
    - ``"slerp"``: ``sin((1 - t) theta) / sin(theta) start + sin(t theta) / sin(theta) end``,
      ``theta`` the angle between start and end (White 2016): the arc keeps the norm of
      endpoints of equal norm, where Gaussian codes live. Where ``sin(theta)`` is 0 (parallel
      or opposite endpoints within ~1e-6 rad, or a zero endpoint) the arc is undefined and the path is linear,
      as in White's implementation; opposite endpoints, whose line passes through the origin, are
      named in a ``UserWarning``.

    Computed in float64 (by :func:`latentsweep.interpolate`'s path writer: the codes it decodes,
    bit for bit; with torch's ops where ``start`` or ``end`` requires grad, for a graph: the same
    bits); the first and last steps are exactly ``start`` and ``end``.

    Args:
        start, end: ``[D]`` or ``[P, D]`` codes (e.g. two inputs' means, or cluster centroids).
        steps: S >= 2 codes per path, endpoints included.
        path: ``"linear"`` or ``"slerp"``.

    Returns:
        ``[P, S, D]`` in the dtype of ``start`` (promoted with ``end``'s), on its device.
    """
    fn = "latentsweep.interpolation_codes"
    start, end = _endpoints(fn, start, end)
    steps = _checks.integer(fn, "steps", steps, low=2)
    path = _checks.choice(fn, "path", path, PATHS)
    num_paths, latent = start.shape
    check_path_grid_size(fn, num_paths, steps, latent)
    dtype = torch.promote_types(start.dtype, end.dtype)
    graph = torch.is_grad_enabled() and (start.requires_grad or end.requires_grad)
    _checks.fits_in_memory(fn, f"computing the codes [P={num_paths}, steps={steps}, D={latent}]",
                           PATH_TEMPORARIES * num_paths * steps * latent * 8 if graph else
                           num_paths * steps * latent * dtype.itemsize + path_writer_bytes(num_paths, steps, latent, path),
                           start.device,
                           "pass fewer steps or paths")
    if path == "slerp":
        warn_undefined_arcs(fn, start, end)
    check_path_range(fn, start, end, path, dtype)
    if graph:
        return path_codes(start, end, steps, path).to(dtype)
    from .interpolation import PathWriter  # (interpolation.py imports this module)

    # The compiled writer interpolate decodes from: one rule for the rows (torch's ops took 4
    # float64 [P, S, D] temporaries and 3-13 times as long).
    codes = torch.empty(num_paths * steps, latent, dtype=dtype, device=start.device)
    PathWriter(start.to(dtype), end.to(dtype), steps, path)(0, len(codes), codes)
    return codes.view(num_paths, steps, latent)


def path_writer_bytes(num_paths: int, steps: int, latent: int, path: str) -> int:
    """What the path writer (interpolation.PathWriter) holds beside the rows it writes: t [S] in
    float64, its float64 endpoints, 2 x [P, D], and an arc's weights with their temporaries
    while they are made (about 6 x [P, S] and 6 x [P, D] float64 at the peak)."""
    arcs = 6 * num_paths * (steps + latent) * 8 if path == "slerp" else 0
    return steps * 8 + 2 * num_paths * latent * 8 + arcs


def path_peak(start: torch.Tensor, end: torch.Tensor, path: str) -> float:
    """The largest |coordinate| the ``[P, D]`` paths reach for t in [0, 1], in float64. A line's
    is at an endpoint. Along an arc a coordinate is ``C cos(u) + E sin(u)`` for u = t theta in
    [0, theta] (C = a, E = (b - a cos theta) / sin theta): its largest |value| is hypot(C, E)
    where its peak u* = atan2(E, C) (mod pi) lies in [0, theta], else at an endpoint."""
    a, b = start.detach().double(), end.detach().double()  # (a check: no graph, no grad warning)
    peak = torch.maximum(a.abs(), b.abs())
    if path == "slerp":
        theta, sine = _angle(a, b)  # [P, 1]
        e = (b - a * torch.cos(theta)) / sine.clamp_min(1e-300)
        inside = (sine > SINE_FLOOR) & (torch.remainder(torch.atan2(e, a), math.pi) <= theta)
        peak = torch.where(inside, torch.maximum(peak, torch.hypot(a, e)), peak)
    return float(peak.max()) if peak.numel() else 0.0


def check_path_range(fn: str, start: torch.Tensor, end: torch.Tensor, path: str, dtype: torch.dtype) -> float:
    """The paths' codes fit ``dtype``: an arc between finite endpoints can leave its range (float16
    [6e4, 6e4] to [-6e4, 6e4] passes [0, 8.5e4]), and its codes were then infinite. Returns the
    peak (:func:`path_peak`)."""
    peak, largest = path_peak(start, end, path), torch.finfo(dtype).max
    if not peak <= largest:  # (also NaN)
        raise ValueError(f"{fn}: the {path} path from start to end reaches {peak:.3g}, beyond the largest {dtype} "
                         f"({largest:.3g}); pass float64 endpoints (start.double(), end.double())")
    return peak


def check_path_grid_size(fn: str, num_paths: int, steps: int, latent: int) -> None:
    """The P * S * D codes of the paths must have a byte size in int64 (the ops' indices): a
    clear error before any size check multiplies them."""
    if num_paths * steps * latent * 8 > _checks.INT64_MAX:
        raise ValueError(f"{fn}: P * steps * D = {num_paths * steps * latent} values, whose size in bytes overflows int64")


def path_codes(start: torch.Tensor, end: torch.Tensor, steps: int, path: str) -> torch.Tensor:
    """``[P, S, D]`` float64 codes of checked ``[P, D]`` endpoints (the body of
    :func:`interpolation_codes`, without its checks: a sweep writes its paths chunk by chunk)."""
    a, b = start.double()[:, None, :], end.double()[:, None, :]  # [P, 1, D]
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device=start.device)[None, :, None]
    codes = (1 - t) * a + t * b
    if path == "slerp":
        theta, sine = _angle(a, b)
        arc = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / sine.clamp_min(1e-300)
        codes = torch.where(sine > SINE_FLOOR, arc, codes)
    codes[:, 0], codes[:, -1] = start.double(), end.double()
    return codes


def path_weights(num_paths: int, steps: int, *angle_terms: torch.Tensor,
                 device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 terms of :func:`path_codes`' rows for the compiled path writer
    (``_path_codes_into_trusted``, cpp/latentsweep/path_grid.h): ``weights [P, 2, S]`` and
    ``divisors [P]``, with step s of path p = ``(weights[p, 0, s] start[p] + weights[p, 1, s]
    end[p]) / divisors[p]`` (steps 0 and S - 1: the endpoints). A line's (no ``angle_terms``)
    are ``1 - t``, ``t`` and 1 (x / 1 is x); an arc's, from its :func:`_angle_terms`
    (``[P, 1, 1]`` each), ``sin((1 - t) theta)``, ``sin(t theta)`` and ``sin(theta)`` where
    sin(theta) > SINE_FLOOR, else the line's: the torch expressions of path_codes, so the rows
    are its rows bit for bit (tests/test_path_rows_op.py)."""
    device = angle_terms[0].device if angle_terms else device
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device=device)
    line = torch.stack((1 - t, t))  # [2, S]
    if not angle_terms:
        return line.expand(num_paths, 2, steps), torch.ones(1, dtype=torch.float64, device=device).expand(num_paths)
    theta, sine = _angle_of(*angle_terms)  # [P, 1, 1]
    t = t[None, :, None]
    arc = torch.cat((torch.sin((1 - t) * theta), torch.sin(t * theta)), dim=2).transpose(1, 2)  # [P, 2, S]
    on_arc = sine[:, 0, 0] > SINE_FLOOR
    return torch.where(on_arc[:, None, None], arc, line), torch.where(on_arc, sine[:, 0, 0].clamp_min(1e-300), 1.0)
