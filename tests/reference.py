"""Plain-PyTorch references for latentsweep's ops, written from the math, not from the extension.

The generator: Philox4x32-10 (Random123 constants) keyed by the 64-bit seed, with the 128-bit
counter (block, sample low, row low, row high | sample high << 16 | stream << 31). Block
``8h + l`` word ``q`` gives dim ``32h + 8q + l``. Words (x0, x1) and (x2, x3) are Box–Muller
pairs: ``u = (x >> 1) * 2^-31 + 2^-32``, ``r = sqrt(-2 ln u)``, angle ``2 pi x_angle / 2^32``.

Philox runs on int64 tensors holding 32-bit words. A 32x32-bit product does not fit a signed
int64, so products are formed from 16-bit halves of the multiplier.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85

POSTERIOR_STREAM, PRIOR_STREAM = 0, 1


# --------------------------------------------------------------------------- Philox4x32-10


def mulhilo32(a: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit words of ``a * b`` for int64 tensors ``a`` in [0, 2^32), ``b`` < 2^32.

    ``a * b`` can reach 2^64, so: p1 = a * (b & 0xffff), p2 = a * (b >> 16) (each < 2^48),
    a * b = p2 * 2^16 + p1 = (p2 >> 16) * 2^32 + [p1 + (p2 & 0xffff) * 2^16].
    """
    p1 = a * (b & 0xFFFF)
    p2 = a * (b >> 16)
    mid = p1 + ((p2 & 0xFFFF) << 16)  # < 2^48 + 2^32
    return (p2 >> 16) + (mid >> 32), mid & MASK32


def philox4x32_10(counter: list[torch.Tensor], key: tuple[int, int]) -> list[torch.Tensor]:
    """Ten Philox rounds on four int64 word tensors (values in [0, 2^32)); returns new tensors."""
    x0, x1, x2, x3 = (torch.as_tensor(c, dtype=torch.int64) for c in counter)
    k0, k1 = key[0] & MASK32, key[1] & MASK32
    for _ in range(10):
        hi0, lo0 = mulhilo32(x0, PHILOX_M0)
        hi1, lo1 = mulhilo32(x2, PHILOX_M1)
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
        k0 = (k0 + PHILOX_W0) & MASK32
        k1 = (k1 + PHILOX_W1) & MASK32
    return [x0, x1, x2, x3]


def philox4x32_10_int(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, ...]:
    """The same with Python integers (unbounded), to cross-check the tensor version."""
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = x0 * PHILOX_M0, x2 * PHILOX_M1
        x0, x1, x2, x3 = (p1 >> 32) ^ x1 ^ k0, p1 & MASK32, (p0 >> 32) ^ x3 ^ k1, p0 & MASK32
        k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
    return x0, x1, x2, x3


# Random123's kat_vectors for philox4x32_10: (counter, key, expected output).
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32, MASK32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


# --------------------------------------------------------------------------- counter layout


def seed_key(seed: int) -> tuple[int, int]:
    """Key words of a seed in [0, 2^64) (a negative int64 is read as its two's complement)."""
    seed %= 2**64
    return seed & MASK32, seed >> 32


def block_and_word(dims: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Philox block and output word that produce each dim: dim 32h + 8q + l <- block 8h + l, word q."""
    return (dims >> 5) * 8 + (dims & 7), (dims >> 3) & 3


def counter_words(row: torch.Tensor, sample: torch.Tensor, block: torch.Tensor, stream: int):
    """The four counter words for broadcastable int64 tensors of rows, samples and blocks."""
    high = ((row >> 32) & 0xFFFF) | (((sample >> 32) & 0x7FFF) << 16) | (stream << 31)
    shape = torch.broadcast_shapes(row.shape, sample.shape, block.shape)
    return [
        block.expand(shape),
        (sample & MASK32).expand(shape),
        (row & MASK32).expand(shape),
        high.expand(shape),
    ]


# --------------------------------------------------------------------------- Box–Muller


def uniform_f64(bits: torch.Tensor) -> torch.Tensor:
    """u = (x >> 1) * 2^-31 + 2^-32 in (0, 1], exactly, in float64."""
    return (bits >> 1).double() * 2.0**-31 + 2.0**-32


def uniform_f32(bits: torch.Tensor) -> torch.Tensor:
    """The float32 kernel's uniform: float32(x >> 1), then one fused multiply-add in float32.

    float32(x >> 1) * 2^-31 + 2^-32 is exact in float64 (24 significant bits scaled, plus one
    bit 2^-32), so rounding that float64 to float32 is the FMA's single rounding. Returned as
    float64 holding float32 values.
    """
    a = (bits >> 1).float().double()
    return (a * 2.0**-31 + 2.0**-32).float().double()


def box_muller(bits: list[torch.Tensor], uniform=uniform_f64) -> list[torch.Tensor]:
    """Four standard normals (float64) per block of Philox words."""
    out = []
    for radius_word, angle_word in ((bits[0], bits[1]), (bits[2], bits[3])):
        r = torch.sqrt(-2.0 * torch.log(uniform(radius_word)))
        angle = (2.0 * math.pi / 2.0**32) * angle_word.double()
        out += [r * torch.cos(angle), r * torch.sin(angle)]
    return out


def reference_eps(
    seed: int,
    rows: torch.Tensor,
    samples: torch.Tensor,
    dims: torch.Tensor,
    stream: int,
    *,
    uniform=uniform_f64,
) -> torch.Tensor:
    """eps(seed, row, sample, dim) in float64 for all combinations: ``[R, N, D]``.

    ``uniform=uniform_f32`` reproduces the float32 kernel's uniforms, so that the only remaining
    difference to the float32 kernel is its polynomial log/sin/cos.
    """
    rows = torch.as_tensor(rows, dtype=torch.int64)
    samples = torch.as_tensor(samples, dtype=torch.int64)
    dims = torch.as_tensor(dims, dtype=torch.int64)
    block, word = block_and_word(dims)
    counter = counter_words(rows[:, None, None], samples[None, :, None], block[None, None, :], stream)
    normals = torch.stack(box_muller(philox4x32_10(counter, seed_key(seed)), uniform))  # [4, R, N, D]
    index = word[None, None, None, :].expand(1, *normals.shape[1:])
    return normals.gather(0, index)[0]


# --------------------------------------------------------------------------- the ops


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def reference_sample(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    n: int,
    *,
    seed: int = 0,
    row_offset: int = 0,
    sample_offset: int = 0,
    precision: str = "float64",
) -> torch.Tensor:
    """``z[i, j, d] = mu[i, d] + exp(0.5 * logvar[i, d]) * eps(seed, row_offset + i, sample_offset + j, d)``.

    Computed in float64 (``precision="float64"``), or with the float32 kernel's uniforms
    (``precision="float32"``). Returns float64 ``[N, n, D]`` (``[n, D]`` for 1-D inputs).
    """
    one_row = mu.dim() == 1
    mu2, logvar2 = (mu[None], logvar[None]) if one_row else (mu, logvar)
    rows, dim = mu2.shape
    uniform = uniform_f32 if precision == "float32" else uniform_f64
    eps = reference_eps(
        seed,
        torch.arange(rows) + row_offset,
        torch.arange(n) + sample_offset,
        torch.arange(dim),
        POSTERIOR_STREAM,
        uniform=uniform,
    )
    compute = torch.float32 if precision == "float32" else torch.float64
    sd = torch.exp(0.5 * logvar2.cpu().to(compute)).double()
    z = mu2.cpu().to(compute).double()[:, None, :] + sd[:, None, :] * eps
    return z[0] if one_row else z


def reference_sample_prior(
    n: int, dim: int, *, seed: int = 0, offset: int = 0, precision: str = "float64"
) -> torch.Tensor:
    """Row i: eps(seed, offset + i, sample 0, d) on the prior stream. float64 ``[n, dim]``."""
    uniform = uniform_f32 if precision == "float32" else uniform_f64
    eps = reference_eps(
        seed, torch.arange(n) + offset, torch.zeros(1), torch.arange(dim), PRIOR_STREAM, uniform=uniform
    )
    return eps[:, 0, :]


def reference_traversal_codes(anchors, dims, values, *, start: int = 0, count: int | None = None):
    """The vectorised torch construction: expand + clone + index assignment, then slice."""
    anchors = anchors[None] if anchors.dim() == 1 else anchors
    dims = torch.as_tensor(dims, dtype=torch.int64, device=anchors.device)
    num_anchors, latent = anchors.shape
    num_dims = dims.numel()
    values = values.to(anchors.dtype)
    steps = values.shape[-1]
    values = values.expand(num_anchors, num_dims, steps)
    grid = anchors[:, None, None, :].expand(num_anchors, num_dims, steps, latent).clone()
    a = torch.arange(num_anchors)[:, None, None]
    k = torch.arange(num_dims)[None, :, None]
    s = torch.arange(steps)[None, None, :]
    grid[a, k, s, dims[k]] = values
    grid = grid.reshape(-1, latent)
    count = grid.shape[0] - start if count is None else count
    return grid[start : start + count]


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_icdf(p: torch.Tensor) -> torch.Tensor:
    """Phi^-1 in float64: sqrt(2) erfinv(2p - 1), which loses digits in the tails (2p - 1 is
    close to -1), refined by Newton steps on Phi(x) = erfc(-x / sqrt(2)) / 2, accurate there."""
    x = math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)
    for _ in range(3):
        cdf = 0.5 * torch.erfc(-x / math.sqrt(2.0))
        density = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        x = x - (cdf - p) / density
    return x


def reference_traversal_values(
    anchors,
    *,
    mode: str = "prior",
    span: float = 2.0,
    steps: int = 11,
    dims=None,
    logvar=None,
    prior_std: float = 1.0,
    reference=None,
) -> torch.Tensor:
    """``[A, K, S]`` values per mode, in float64 (issue 2 item 5)."""
    anchors = (anchors[None] if anchors.dim() == 1 else anchors).double()
    num_anchors, latent = anchors.shape
    dims = torch.arange(latent) if dims is None else torch.as_tensor(dims, dtype=torch.int64)
    t = torch.linspace(-span, span, steps, dtype=torch.float64)
    levels = torch.linspace(_normal_cdf(-span), _normal_cdf(span), steps, dtype=torch.float64)
    shape = (num_anchors, dims.numel(), steps)
    if mode == "prior":
        return anchors[:, dims, None] + t * prior_std
    if mode == "absolute":
        return (t * prior_std).expand(shape)
    if mode == "quantile":
        return (prior_std * normal_icdf(levels)).expand(shape)
    if mode == "posterior":
        logvar = (logvar[None] if logvar.dim() == 1 else logvar).double()
        return anchors[:, dims, None] + t * torch.exp(0.5 * logvar[:, dims, None])
    if mode == "empirical":
        ref = reference.double()[:, dims]  # [M, K]
        return torch.quantile(ref, levels, dim=0).T.expand(shape)  # [S, K] -> [K, S]
    raise ValueError(mode)


def reference_direction_codes(anchors, directions, values, *, start: int = 0, count: int | None = None):
    """The grid from its definition in float64: anchors[a] + (values[a,k,s] - <anchors[a], u_k>) u_k,
    as one broadcast expression, then sliced. ``[count, D]`` float64."""
    anchors = anchors[None] if anchors.dim() == 1 else anchors
    directions = directions[None] if directions.dim() == 1 else directions
    x, u = anchors.double(), directions.double()
    num_anchors, latent = x.shape
    values = values.double().expand(num_anchors, u.shape[0], values.shape[-1])
    projection = x @ u.T  # [A, K]
    grid = x[:, None, None, :] + (values - projection[:, :, None])[..., None] * u[None, :, None, :]
    grid = grid.reshape(-1, latent)
    count = grid.shape[0] - start if count is None else count
    return grid[start : start + count]
