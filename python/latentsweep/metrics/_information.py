"""Discrete mutual information and entropy, computed by latentsweep itself.

Counts come from ``torch.bincount`` and ``torch.unique`` (so they run on a GPU too) and the sums
are in float64 and natural logarithms (nats). The definitions are the plug-in estimates that
``sklearn.metrics.mutual_info_score`` computes, without depending on a scikit-learn version:

    I(a; b) = sum_{i,j: n_ij > 0} (n_ij / N) * (log n_ij + log N - log n_i - log n_j)
    H(a)    = -sum_{i: n_i > 0} (n_i / N) * log(n_i / N)          (= I(a; a))

``histogram_discretize`` is disentanglement_lib's histogram discretiser: per latent,
``np.histogram``'s ``bins`` equal-width edges over [min, max] (a constant latent gets
[v - 0.5, v + 0.5]), then ``np.digitize`` on all edges but the last, giving labels 1..bins.
"""

from __future__ import annotations

import itertools

import torch

from . import _inputs

# Bound on the cell codes of one slice of column pairs ([N, pairs] elements), so D x D pairs
# over many points go in slices instead of one allocation of D^2 N int64.
_MAX_INDEX_ELEMENTS = 1 << 24


def histogram_discretize(codes, bins: int) -> torch.Tensor:
    """``[N, D]`` float codes (torch or numpy, N >= 2, finite) -> ``[N, D]`` int64 labels in
    1..bins, per latent (1 <= bins <= 100,000).

    The edges are computed as numpy computes them (``arange(bins + 1) * step + low`` in float64,
    the last edge set to ``high``), so labels match ``np.digitize(x, np.histogram(x, bins)[1][:-1])``
    exactly for float64 input.
    """
    fn = "latentsweep.metrics.histogram_discretize"
    return discretize(_inputs.codes(fn, "codes", codes), _inputs.bins(fn, bins))


def discretize(x: torch.Tensor, bins: int) -> torch.Tensor:
    """:func:`histogram_discretize` of checked float64 codes (or float factors)."""
    low = x.amin(dim=0)
    high = x.amax(dim=0)
    constant = low == high
    low = torch.where(constant, low - 0.5, low)
    high = torch.where(constant, high + 0.5, high)
    step = (high - low) / bins
    ramp = torch.arange(bins + 1, dtype=torch.float64, device=x.device)
    edges = ramp[:, None] * step[None, :] + low[None, :]  # [bins + 1, D]
    edges[-1] = high
    inner = edges[:-1].T.contiguous()  # [D, bins]: np.digitize counts the edges <= x
    return torch.searchsorted(inner, x.T.contiguous(), right=True).T.contiguous()


def relabel(labels: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """``[N, P]`` integer labels -> ``[N, P]`` labels in 0..K_p-1 per column, and the K_p."""
    columns, sizes = [], []
    for p in range(labels.shape[1]):
        values, inverse = torch.unique(labels[:, p], return_inverse=True)
        columns.append(inverse)
        sizes.append(int(values.numel()))
    return torch.stack(columns, dim=1), sizes


def entropy(labels) -> torch.Tensor:
    """``[N, P]`` integer labels (torch or numpy, N >= 1) -> ``[P]`` discrete entropies in nats
    (float64)."""
    return entropies(_inputs.labels("latentsweep.metrics.entropy", "labels", labels))


def entropies(labels: torch.Tensor) -> torch.Tensor:
    """:func:`entropy` of checked int64 labels."""
    dense, sizes = relabel(labels)
    n, p = dense.shape
    k = max(sizes)
    offsets = torch.arange(p, device=dense.device) * k
    counts = torch.bincount((dense + offsets).reshape(-1), minlength=p * k).reshape(p, k).to(torch.float64)
    total = float(n)
    log_total = torch.log(torch.tensor(total, dtype=torch.float64, device=counts.device))
    terms = torch.where(counts > 0, counts * (torch.log(counts) - log_total), 0.0)
    return -terms.sum(dim=1) / total


def mutual_information(a, b) -> torch.Tensor:
    """Discrete MI between every column of ``a [N, P]`` and every column of ``b [N, Q]``
    (integer labels, any values; torch or numpy, N >= 1) -> ``[P, Q]`` float64, in nats. A
    column with a single value has MI exactly 0 with every column."""
    fn = "latentsweep.metrics.mutual_information"
    a = _inputs.labels(fn, "a", a)
    b = _inputs.labels(fn, "b", b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{fn}: a has {a.shape[0]} rows, b has {b.shape[0]}")
    if a.device != b.device:
        raise ValueError(f"{fn}: a is on {a.device}, b on {b.device}; put them on one device")
    return information(a, b)


def information(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`mutual_information` of checked int64 labels with as many rows.

    Memory is O(N) per column pair however many distinct values the labels take: a joint table
    is dense only when it has at most N cells, else only its non-zero cells (at most N) are
    kept. Dense K_a x K_b tables took 2.3 GB for two columns of 8,000 distinct values.
    """
    a_dense, a_sizes = relabel(a)
    b_dense, b_sizes = relabel(b)
    n, p = a_dense.shape
    q = b_dense.shape[1]
    ka, kb = max(a_sizes), max(b_sizes)
    device = a_dense.device
    log_n = torch.log(torch.tensor(float(n), dtype=torch.float64, device=device))

    def marginals(dense, k):
        cols = dense.shape[1]
        offsets = torch.arange(cols, device=device) * k
        return torch.bincount((dense + offsets).reshape(-1), minlength=cols * k).reshape(cols, k).to(torch.float64)

    log_a = torch.log(marginals(a_dense, ka).clamp_min(1))  # [P, ka]; empty cells never used
    log_b = torch.log(marginals(b_dense, kb).clamp_min(1))  # [Q, kb]
    cells = ka * kb
    # Tables of at most N cells (the common case: 20 bins x 10 values) are counted whole by one
    # bincount; larger ones by sorting the points' cell codes, each pair's non-zero cells then
    # summed in a row of N. What is summed depends on the labels alone, not on the slices.
    dense_table = cells <= n
    pairs = max(1, _MAX_INDEX_ELEMENTS // n)  # per slice: the [N, pairs] codes stay bounded
    b_step = min(q, pairs)
    a_step = max(1, pairs // b_step)
    out = torch.empty(p, q, dtype=torch.float64, device=device)
    for a_start, b_start in itertools.product(range(0, p, a_step), range(0, q, b_step)):
        a_stop, b_stop = min(p, a_start + a_step), min(q, b_start + b_step)
        ma, mb = a_stop - a_start, b_stop - b_start
        # The key of a point's cell in pair (i, j) of this slice: (i mb + j) cells + its cell.
        # Below max(N, 2^24) N: no overflow.
        a_part = a_dense[:, a_start:a_stop] * kb + torch.arange(ma, device=device) * (mb * cells)
        b_part = b_dense[:, b_start:b_stop] + torch.arange(mb, device=device) * cells
        key = (a_part[:, :, None] + b_part[:, None, :]).reshape(-1)
        if dense_table:
            joint = torch.bincount(key, minlength=ma * mb * cells).reshape(ma, mb, ka, kb).to(torch.float64)
            log_marginals = log_a[a_start:a_stop, None, :, None], log_b[None, b_start:b_stop, None, :]
            sums = _cell_terms(joint, log_n, *log_marginals).sum(dim=(2, 3))
        else:
            key, counts = torch.unique(key, sorted=True, return_counts=True)
            pair, cell = key // cells, key % cells
            a_col, b_col = a_start + pair // mb, b_start + pair % mb
            log_marginals = log_a[a_col, cell // kb], log_b[b_col, cell % kb]
            terms = _cell_terms(counts.to(torch.float64), log_n, *log_marginals)
            per_pair = torch.bincount(pair, minlength=ma * mb)
            rank = torch.arange(key.numel(), device=device) - (torch.cumsum(per_pair, 0) - per_pair)[pair]
            rows = torch.zeros(ma * mb, n, dtype=torch.float64, device=device)
            rows[pair, rank] = terms  # the keys are sorted: a pair's cells are consecutive
            sums = rows.sum(dim=1).reshape(ma, mb)
        out[a_start:a_stop, b_start:b_stop] = sums / n
    # A single-valued column carries no information, but its log terms cancel only up to
    # rounding (1e-16): exactly 0, so that "no information" rules (modularity's) apply to it.
    out[torch.tensor(a_sizes, device=device) == 1] = 0.0
    out[:, torch.tensor(b_sizes, device=device) == 1] = 0.0
    return out.clamp_min(0.0)  # rounding can leave -1e-17 for independent columns


def _cell_terms(joint: torch.Tensor, log_n: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """``n_ij (log n_ij + log N - log n_i - log n_j)`` of joint counts (float64; 0 for an empty
    cell) with the logs of their marginal counts (broadcast to them)."""
    return torch.where(joint > 0, joint * (torch.log(joint.clamp_min(1)) + log_n - log_a - log_b), 0.0)
