"""Clusters of the codes (the user's labels or KMeans): centroids, how well each latent
separates them, and the directions from one centroid to another."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import _checks
from .directions import Directions, as_codes, in_one_block, result_dtype, row_blocks, structured_shape
from .principal import scaled_rows


@dataclass(frozen=True, eq=False)  # __eq__ below compares the tensors
class Clusters:
    """C clusters of N codes in a D-dimensional latent space.

    Attributes:
        labels: ``[N]`` int64 cluster index (0 .. C-1) of each code.
        label_values: the C original labels (the user's, in sorted order; ``0 .. C-1`` for
            KMeans): cluster ``c`` is ``label_values[c]``.
        centroids: ``[C, D]`` mean code of each cluster.
        sizes: ``[C]`` int64 codes per cluster.
        variances: ``[C, D]`` per-cluster variance of each latent (denominator ``n_c``).
        eta_squared: ``[D]`` share of each latent's variance explained by the clusters,
            ``SS_between / SS_total`` (0 for a latent that does not vary).
        f_statistic: ``[D]`` one-way ANOVA F per latent,
            ``(SS_between / (C - 1)) / (SS_within / (N - C))`` (``inf`` when the clusters are
            constant but differ, 0 when the latent does not vary).
        method: ``"labels"`` or ``"kmeans"``.
        latent_shape: the codes' latent shape (``(C, H, W)`` for a spatial VAE's; ``None`` for
            flat codes), for the latents' names (``z[c,h,w]``).
    """

    labels: torch.Tensor
    label_values: tuple
    centroids: torch.Tensor
    sizes: torch.Tensor
    variances: torch.Tensor
    eta_squared: torch.Tensor
    f_statistic: torch.Tensor
    method: str
    latent_shape: tuple[int, ...] | None = None
    # (centroids, variances, scale, pivot) in float64, over each latent's power of two ``scale``
    # and the centroids less its ``pivot`` (see clusters()): the effect sizes of latents whose
    # variances underflow the result's dtype (a float32 latent of 1e-23 noise: variance 0, effect
    # inf, ranked first among the separating latents), and the directions between centroids of
    # codes far from 0. Used only while they give the fields back (see _precise).
    _scaled: tuple[torch.Tensor, ...] | None = field(default=None, repr=False, compare=False)

    def __eq__(self, other) -> bool:
        """Same fields, tensors as ``torch.equal`` (the dataclass's own ``==`` compared them with
        ``==``: "Boolean value of Tensor ... is ambiguous")."""
        if not isinstance(other, Clusters):
            return NotImplemented
        return self is other or _checks.same_fields(self, other, skip=("_scaled",))

    __hash__ = None  # the tensors are mutable

    @property
    def num_clusters(self) -> int:
        return self.centroids.shape[0]

    def __len__(self) -> int:
        return self.num_clusters

    def _precise(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(centroids, variances, scale) in float64, the centroids up to a shift per latent
        (only their differences are used): the scaled ones clusters() kept when they still give
        the fields back exactly, else the fields and a scale of 1 (``dataclasses.replace``
        copies ``_scaled`` beside new centroids, and tensors can be changed in place: checked at
        each use, stale values cannot be read). The centroids' differences in the codes' units
        are those of ``centroids * scale``."""
        if self._scaled is not None:
            centroids, variances, scale, pivot = self._scaled
            if _checks.same_tensor(((centroids + pivot) * scale).to(self.centroids.dtype), self.centroids) and \
                    _checks.same_tensor((variances * scale * scale).to(self.variances.dtype), self.variances):
                return centroids, variances, scale
        ones = torch.ones(self.centroids.shape[1], dtype=torch.float64, device=self.centroids.device)
        return self.centroids.double(), self.variances.double(), ones

    def _centroids_in_proportion(self) -> torch.Tensor:
        """``[C, D]`` the centroids (up to a shift per latent) in float64, over a power of two:
        their differences, distances and directions are those of the centroids', but to float64's
        precision (float32 centroids of codes near 1000 that differ by 0.01 were 0.1% off) and
        within its range."""
        centroids, _, scale = self._precise()
        return centroids * (scale / scale.amax())

    def _index(self, fn: str, name: str, value) -> int:
        return _checks.integer(fn, name, value, low=0, high=self.num_clusters - 1)

    def pair_effect(self, i: int, j: int) -> torch.Tensor:
        """``[D]`` standardised difference of cluster j's mean from cluster i's per latent
        (Cohen's d with the pooled within-cluster SD; ``±inf`` where both are constant but
        differ, 0 where they are equal)."""
        fn = "latentsweep.Clusters.pair_effect"
        i, j = self._index(fn, "i", i), self._index(fn, "j", j)
        n_i, n_j = float(self.sizes[i]), float(self.sizes[j])
        centroids, variances, _ = self._precise()
        difference = centroids[j] - centroids[i]
        pooled = (n_i * variances[i] + n_j * variances[j]) / max(n_i + n_j - 2, 1)
        sd = pooled.sqrt()
        effect = torch.where(sd > 0, difference / sd.clamp_min(1e-300), difference.sign() * math.inf)
        return torch.where(difference == 0, 0.0, effect).to(self.centroids.dtype)

    def separating_latents(self, i: int, j: int, top: int = 5) -> list[int]:
        """The ``top`` latents that best separate clusters i and j: largest
        ``|pair_effect(i, j)|`` first (ties: lower index first)."""
        top = _checks.integer("latentsweep.Clusters.separating_latents", "top", top, low=1)
        effect = self.pair_effect(i, j).abs()
        order = torch.argsort(-effect, stable=True)
        return order[:top].tolist()

    def directions(self, i: int, j: int) -> Directions:
        """The unit direction from centroid i to centroid j, named ``"i->j"`` (with the
        original labels), as a one-row :class:`Directions` (with the codes' latent shape when
        they are structured)."""
        fn = "latentsweep.Clusters.directions"
        i, j = self._index(fn, "i", i), self._index(fn, "j", j)
        # Over its largest entry first: the squares of a 1e-170 difference underflow to 0.
        centroids = self._centroids_in_proportion()
        difference, largest = _checks.by_largest_entry(centroids[j] - centroids[i])
        if largest == 0:
            raise ValueError(f"{fn}: clusters {i} and {j} have the same centroid; there is no direction between them")
        name = f"{self.label_values[i]}->{self.label_values[j]}"
        unit = difference / torch.linalg.vector_norm(difference)
        shape = self.latent_shape if self.latent_shape is not None and len(self.latent_shape) > 1 else None
        return Directions(unit[None].to(self.centroids.dtype), (name,), source="clusters", latent_shape=shape)

    def closest_and_farthest(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The pairs of clusters whose centroids are closest and farthest apart (Euclidean)."""
        if self.num_clusters < 2:
            raise ValueError("latentsweep.Clusters.closest_and_farthest: needs at least 2 clusters")
        centroids = self._centroids_in_proportion()
        centroids = centroids / centroids.abs().max().clamp_min(torch.finfo(torch.float64).tiny)  # (see directions)
        distance = torch.cdist(centroids, centroids)
        pairs = torch.triu_indices(self.num_clusters, self.num_clusters, offset=1, device=centroids.device)
        values = distance[pairs[0], pairs[1]]
        low, high = int(torch.argmin(values)), int(torch.argmax(values))
        return (int(pairs[0, low]), int(pairs[1, low])), (int(pairs[0, high]), int(pairs[1, high]))


def _labels(fn: str, labels, num_rows: int) -> tuple[torch.Tensor, tuple]:
    """The user's labels ``[N]`` (tensor, array or list of ints or strings) as 0 .. C-1."""
    if isinstance(labels, torch.Tensor):
        _checks.dense_tensor(fn, "labels", labels)
        if labels.device.type == "meta":
            raise ValueError(f"{fn}: labels is on the meta device, which holds no values")
        if labels.is_floating_point() or labels.is_complex():
            raise TypeError(f"{fn}: labels must hold integers (or strings), got {labels.dtype}")
        labels = labels.detach().cpu().numpy()
    if not isinstance(labels, np.ndarray) and hasattr(labels, "__len__") and not isinstance(labels, (str, bytes)):
        _check_one_kind_of_label(fn, list(labels))  # before numpy turns [1, "a"] into ["1", "a"]
    array = np.asarray(labels)
    if array.ndim == 0 and isinstance(labels, int | np.integer) and not isinstance(labels, bool):
        # clusters(codes, 4): the second positional argument is labels, not the count
        raise TypeError(f"{fn}: labels must be [N] cluster labels, got the int {labels}; for {labels} KMeans "
                        f"clusters pass k={labels}")
    if array.ndim != 1 or array.shape[0] != num_rows:
        raise ValueError(f"{fn}: labels must be 1-D with one label per code (N={num_rows}), got shape {array.shape}")
    if array.dtype.kind not in "iuUSOb":
        raise TypeError(f"{fn}: labels must hold integers or strings, got dtype {array.dtype}")
    if array.dtype.kind == "O":
        _check_one_kind_of_label(fn, array.tolist())
    values, inverse = np.unique(array, return_inverse=True)
    return torch.from_numpy(inverse.astype(np.int64)), tuple(v.item() if hasattr(v, "item") else v for v in values)


def _check_one_kind_of_label(fn: str, labels: list) -> None:
    """Labels are all integers or all strings: a mix cannot be ordered (or numpy would turn the
    integers into strings, merging 1 and "1"), and None is no label. Booleans count as integers,
    numpy's (``list(mask)``) as Python's."""
    kinds = {"integers" if isinstance(v, (int, np.integer, np.bool_)) else "strings" if isinstance(v, str)
             else type(v).__name__ for v in labels}
    if len(kinds) > 1 or not kinds <= {"integers", "strings"}:
        raise TypeError(f"{fn}: labels must be all integers or all strings, got {', '.join(sorted(kinds))}")


# KMeans works in float32 for float32 codes: beyond this magnitude its squared distances
# overflow (or below its inverse, underflow), so it sees the codes scaled to a largest entry of 1
# (the clustering does not change with the scale).
KMEANS_SAFE_MAGNITUDE = 1e12
# [N, D] copies of the codes in their result dtype (float32; float64 for float64 codes) that
# clusters(k=...) holds beside them: scikit-learn's KMeans holds 2 (measured 2.0 at N = 4e5 and
# 1.6e6, D = 32; tests/test_analysis_memory.py), and codes beyond KMEANS_SAFE_MAGNITUDE a scaled
# one. Larger codes are refused before KMeans allocates.
KMEANS_COPIES = 3
# Bytes per code (row) that clusters holds beside the codes whatever D: the labels as 0 .. C-1
# (numpy's unique: its sort and inverse) and KMeans' arrays of one value per row (measured at
# D = 1, N = 1e7: 41 with labels, 57 beside KMeans' copies; tests/test_analysis_memory.py).
ROW_BYTES = 64


def _kmeans(codes: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    from sklearn.cluster import KMeans

    # scikit-learn computes in float32 or float64: no float64 copy of float32 codes.
    largest = float(codes.detach().abs().amax().double())
    if largest > KMEANS_SAFE_MAGNITUDE or 0 < largest < 1 / KMEANS_SAFE_MAGNITUDE:
        # One float64 copy divided in place (the same bits; copy=True: float64 codes' double() is
        # the codes themselves).
        scaled = codes.detach().to(torch.float64, copy=True).div_(largest)
        codes = scaled.to(codes.dtype)
        del scaled
    data = codes.detach().to("cpu", result_dtype(codes)).numpy()
    del codes  # (a scaled bfloat16 copy beside its float32 data: not held through KMeans)
    model = KMeans(n_clusters=k, random_state=seed, n_init="auto").fit(data)
    return torch.from_numpy(model.labels_.astype(np.int64))


# Rows whose distinct values are counted first when checking that k clusters can be formed.
DISTINCT_PREFIX_ROWS = 4096


def _distinct_rows_up_to(codes: torch.Tensor, k: int) -> int:
    """The number of distinct rows of ``codes`` when it is below ``k``, else a number >= k:
    the rows of a prefix first (sorting all N rows to count them cost KMeans' own time again at
    N = 10^5), all of them only when that prefix holds fewer than k."""
    if codes.shape[0] > max(DISTINCT_PREFIX_ROWS, k):
        distinct = torch.unique(codes[: max(DISTINCT_PREFIX_ROWS, k)], dim=0).shape[0]
        if distinct >= k:
            return distinct
    return torch.unique(codes, dim=0).shape[0]


def clusters(codes_or_posterior, labels=None, *, k: int | None = None, seed: int = 0) -> Clusters:
    """Clusters of the codes (a VAE's posterior means): the user's ``labels``, or KMeans
    (scikit-learn, ``k`` clusters, ``random_state=seed``).

    Per latent d, with cluster means ``m_c``, sizes ``n_c`` and grand mean ``m``:
    ``SS_between = sum_c n_c (m_c - m)^2``, ``SS_within = sum_i (x_i - m_{c(i)})^2``,
    ``eta_squared = SS_between / (SS_between + SS_within)`` and the one-way ANOVA
    ``F = (SS_between / (C - 1)) / (SS_within / (N - C))``.

    Args:
        codes_or_posterior: ``[N, D]`` codes (``[N, *latent_shape]`` is flattened) or a
            :class:`Posterior`.
        labels: ``[N]`` cluster labels (ints or strings), or ``None`` to run KMeans.
        k: the number of KMeans clusters (2 <= k < N); only without labels.
        seed: KMeans' random state.

    Returns:
        :class:`Clusters` (tensors on the CPU, float32; float64 for float64 codes).
    """
    return clusters_named("latentsweep.clusters", codes_or_posterior, labels, k=k, seed=seed)


def clusters_named(fn: str, codes_or_posterior, labels=None, *, k: int | None = None, seed: int = 0,
                   k_name: str = "k") -> Clusters:
    """:func:`clusters` with its errors in the words of the public function ``fn`` that calls it,
    whose number of clusters is ``k_name`` (explain's ``clusters=``: "latentsweep.clusters: k must
    be <= 2" named neither the function nor the argument its caller passed)."""
    codes = as_codes(fn, codes_or_posterior, min_rows=3)
    num_rows = codes.shape[0]
    # The codes (KMeans' copies of them) and what each row holds; the passes' float64 blocks
    # are bounded whatever N (principal.PASS_BLOCKS).
    per_value = codes.element_size() if labels is not None else KMEANS_COPIES * result_dtype(codes).itemsize
    work = "reading the codes" if labels is not None else "clustering with KMeans (its copies of) the codes"
    _checks.codes_fit_in_memory(fn, f"{work} [N={num_rows}, D={codes.shape[1]}]", codes,
                                "pass a sample of the rows (codes[:n] or posterior[:n])",
                                bytes_per_value=per_value + math.ceil(ROW_BYTES / codes.shape[1]))
    seed = _checks.integer(fn, "seed", seed, low=0, high=2**32 - 1)
    if labels is not None:
        if k is not None:
            raise ValueError(f"{fn}: give labels or {k_name} (the number of KMeans clusters), not both")
        index, label_values = _labels(fn, labels, num_rows)
        method = "labels"
    else:
        if k is None:
            raise ValueError(f"{fn}: give labels ([N] per code) or {k_name} (the number of KMeans clusters)")
        k = _checks.integer(fn, k_name, k, low=2, high=num_rows - 1)
        distinct = _distinct_rows_up_to(codes.detach(), k)
        if distinct < k:
            raise ValueError(f"{fn}: the codes hold only {distinct} distinct point(s), fewer than {k_name}={k} "
                             f"clusters; use {k_name} <= {distinct}")
        # Through the same relabelling as user labels: a cluster KMeans left empty disappears.
        index, label_values = _labels(fn, _kmeans(codes, k, seed), num_rows)
        method = "kmeans"
    num_clusters = len(label_values)
    if not 2 <= num_clusters < num_rows:
        given = " in labels" if method == "labels" else f" (KMeans of {k_name}={k})"
        raise ValueError(f"{fn}: needs 2 <= clusters < N={num_rows}, got {num_clusters} cluster(s){given}")

    # Two passes over blocks of rows, in float64 on the CPU: no N x D temporaries. Each latent
    # over the power of two at its largest magnitude: eta^2, F and the effect sizes are the same
    # at any scale, and the squares of codes of 1e-170 underflowed float64 (eta^2 = F = 0,
    # effects inf); centroids and variances are scaled back last (a power of two changes no digit).
    codes = codes.detach().cpu()
    latent = codes.shape[1]
    magnitude = torch.zeros(latent, dtype=torch.float64, device=codes.device)
    for block in row_blocks(codes):
        magnitude = torch.maximum(magnitude, block.abs().amax(0))
    scale = _checks.power_of_two_at(magnitude)
    # Each latent also less its first code (pivot): the centroids then differ in all their digits,
    # not in the last few of codes far from 0 (eta^2 was 1e-3 off for codes 1e12 times farther from
    # 0 than their spread), and the rounded sum / n_c of a constant is not an ulp off it (a latent
    # constant everywhere had eta^2 = 1; one constant in each cluster variances of 1e-30 and F of
    # 1e32, not 0 and inf): the mean of a cluster's equal values is that value exactly.
    pivot = codes[0].double() / scale
    sizes = torch.bincount(index, minlength=num_clusters)
    sums = torch.zeros(num_clusters, latent, dtype=torch.float64, device=codes.device)
    lows = torch.full((num_clusters, latent), math.inf, dtype=torch.float64, device=codes.device)
    highs = torch.full((num_clusters, latent), -math.inf, dtype=torch.float64, device=codes.device)
    # Codes that fit in one block are converted once for both passes (the second, the last to
    # read them, changes them in place).
    whole = scaled_rows(codes.to(torch.float64, copy=True), scale, pivot) if in_one_block(codes) else None

    def scaled_blocks():
        """Blocks of rows over the scale, less the pivot, with their labels: the caller's to
        change in place, each overwritten by the next (see ``row_blocks``), or ``whole``."""
        if whole is not None:
            yield whole, index
            return
        for block, block_index in row_blocks(codes, index):
            yield scaled_rows(block, scale, pivot), block_index

    for block, block_index in scaled_blocks():
        sums.index_add_(0, block_index, block)
        rows = block_index[:, None].expand_as(block)
        lows.scatter_reduce_(0, rows, block, "amin")
        highs.scatter_reduce_(0, rows, block, "amax")
    constant = lows == highs
    centroids = torch.where(constant, lows, sums / sizes[:, None])
    within = torch.zeros_like(centroids)  # [C, D] sums of squared deviations
    for block, block_index in scaled_blocks():  # (the last pass: the blocks are squared in place)
        within.index_add_(0, block_index, block.sub_(centroids[block_index]).square_())
    within = torch.where(constant, 0.0, within)
    grand = torch.where(lows.amin(0) == highs.amax(0), lows.amin(0), sums.sum(0) / num_rows)
    between = (sizes[:, None] * (centroids - grand) ** 2).sum(0)  # [D]
    ss_within = within.sum(0)
    total = between + ss_within
    eta = torch.where(total > 0, between / total.clamp_min(1e-300), 0.0)
    mean_between = between / (num_clusters - 1)
    mean_within = ss_within / (num_rows - num_clusters)
    f_stat = torch.where(
        mean_within > 0,
        mean_between / mean_within.clamp_min(1e-300),
        torch.where(between > 0, math.inf, 0.0),
    )
    dtype = result_dtype(codes)
    scaled_variances = within / sizes[:, None]
    variances = scaled_variances * scale * scale
    centroids_shifted, centroids = centroids, (centroids + pivot) * scale
    largest = float(torch.cat([variances.flatten(), between * scale * scale]).max())
    if not (largest <= torch.finfo(dtype).max and bool(torch.isfinite(centroids).all())):  # also NaN
        # (said from the scaled sums: past float64's range largest is inf)
        size = _checks.unscaled_square_size(torch.cat([scaled_variances, between[None]]), scale)
        raise ValueError(f"{fn}: the clusters' variances ({size}) overflow {dtype}; "
                         + ("pass float64 codes (codes.double())" if dtype != torch.float64 else "rescale the codes"))
    return Clusters(
        labels=index,
        label_values=label_values,
        centroids=centroids.to(dtype),
        sizes=sizes,
        variances=variances.to(dtype),
        eta_squared=eta.to(dtype),
        f_statistic=f_stat.to(dtype),
        method=method,
        latent_shape=structured_shape(codes_or_posterior),  # (None for flat codes, as principal_directions')
        _scaled=(centroids_shifted, scaled_variances, scale, pivot),
    )
