"""Directions in latent space, as traversals use them: unit vectors with names and, where known,
how much of the codes' variance each one carries."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _checks
from .direction_codes import normalised
from .posterior import Posterior


def as_codes(fn: str, codes_or_posterior, *, min_rows: int = 1) -> torch.Tensor:
    """``[N, D]`` finite codes from a tensor or a :class:`Posterior` (its means). Structured
    codes ``[N, *latent_shape]`` are flattened (row-major, as ``torch.flatten``), so directions
    and centroids computed from them are flat ``[K, D]``."""
    codes = codes_or_posterior.mu if isinstance(codes_or_posterior, Posterior) else codes_or_posterior
    codes = _checks.dense_tensor(fn, "codes", codes)
    if codes.dim() > 2:
        from .latent_shape import flat_rows  # (it imports this module)

        codes = flat_rows(fn, "codes", codes, "N")
    codes = _checks.tensor(fn, "codes", codes, ndims=(2,))
    if codes.shape[0] < min_rows or codes.shape[1] < 1:
        raise ValueError(f"{fn}: codes must be [N, D] with N >= {min_rows} and D >= 1, got shape {tuple(codes.shape)}")
    _checks.finite(fn, "codes", codes)
    return codes


def structured_shape(codes_or_posterior) -> tuple[int, ...] | None:
    """The latent shape of structured codes ``[N, *latent_shape]`` or of a structured
    :class:`Posterior` (more than one axis); ``None`` for flat ones."""
    shape = codes_or_posterior.latent_shape if isinstance(codes_or_posterior, Posterior) else (
        tuple(codes_or_posterior.shape[1:]) if isinstance(codes_or_posterior, torch.Tensor) else ())
    return shape if len(shape) > 1 else None


# Values per block of rows when a function passes over the codes (32 MiB of float64):
# bounded temporaries whatever N and D are.
CHUNK_VALUES = 1 << 22


def rows_per_block(codes: torch.Tensor) -> int:
    """Rows of ``codes`` in each block of :func:`row_blocks`."""
    return max(1, CHUNK_VALUES // max(codes.shape[1], 1))


def in_one_block(codes: torch.Tensor) -> bool:
    """Whether :func:`row_blocks` gives ``codes`` as one block (a pass over them can then reuse
    one float64 conversion)."""
    return codes.shape[0] <= rows_per_block(codes)


def row_blocks(codes: torch.Tensor, *extra: torch.Tensor):
    """Blocks of rows of ``codes`` in float64 (with the same rows of each ``extra`` tensor), copied
    into one buffer that the whole pass reuses: each block is the caller's to change in place, and
    is overwritten by the next (use it, or copy it, first). A new float64 tensor per block was
    mapped and its pages faulted in each time: a third of diagnose's time at N = 50,000, D = 4,096
    (copying into a buffer already in memory is ~10x faster)."""
    rows = rows_per_block(codes)
    buffer = torch.empty(min(rows, codes.shape[0]), codes.shape[1], dtype=torch.float64, device=codes.device)
    for begin in range(0, codes.shape[0], rows):
        block = buffer[: min(rows, codes.shape[0] - begin)].copy_(codes[begin : begin + rows])
        yield (block, *(t[begin : begin + rows] for t in extra)) if extra else block


def _check_unit_rows(fn: str, vectors: torch.Tensor) -> None:
    """Traversals move by ``value * vector``: a row that is not of unit length would scale every
    value silently. The tolerance is a few roundings of the vectors' dtype, and at least 1e-5:
    vectors normalised in float32 and stored as float64 are accepted (traverse normalises the
    directions again in float64; the raw ``direction_codes`` op checks sqrt(eps) of the anchors'
    dtype, strictly, and says so)."""
    _checks.codes_fit_in_memory(fn, f"checking the vectors [K={vectors.shape[0]}, D={vectors.shape[1]}]", vectors,
                                "pass fewer directions", bytes_per_value=8)  # (the float64 copy below)
    norms = torch.linalg.vector_norm(vectors.double(), dim=1)
    tolerance = max(1e-5, 4 * torch.finfo(vectors.dtype).eps)
    bad = ((norms - 1).abs() > tolerance).nonzero().flatten()
    if bad.numel():
        raise ValueError(
            f"{fn}: vectors must be unit rows; row(s) {bad.tolist()[:10]} have norm(s) "
            f"{[float(n) for n in norms[bad[:3]]]}, further from 1 than {tolerance:.3g}; use "
            "Directions.from_vectors(...) to scale them"
        )


def result_dtype(codes: torch.Tensor) -> torch.dtype:
    """float64 codes give float64 results; everything else float32."""
    return torch.float64 if codes.dtype == torch.float64 else torch.float32


@dataclass(frozen=True, eq=False)  # __eq__ below compares the tensors
class Directions:
    """K unit directions in a D-dimensional latent space.

    Attributes:
        vectors: ``[K, D]`` unit rows.
        names: K labels for pictures and reports (``"PC1"``, ``"3->7"``, ``"u0"``).
        explained_variance: ``[K]`` variance of the codes along each direction, or ``None``
            when the directions do not come from the codes.
        explained_variance_ratio: ``[K]`` that variance as a share of the codes' total variance
            (the trace of their covariance), or ``None``.
        mean: ``[D]`` the centre of the codes the directions were computed from, or ``None``.
        source: ``"pca"``, ``"clusters"``, ``"channels"`` (:func:`channel_directions`) or
            ``"user"``.
        latent_shape: the structured latent the flat vectors belong to (``prod = D``), where
            known: :func:`channel_directions`', and those computed from ``[N, *latent_shape]``
            codes or a structured :class:`Posterior`. ``traverse`` refuses them for structured
            anchors with another number of channels (a flat ``[K, D]`` vector fits any shape of
            D elements, so a channel of ``(2, 4, 2)`` silently moved half of two channels of
            ``(4, 2, 2)`` anchors). ``None``: unknown.
    """

    vectors: torch.Tensor
    names: tuple[str, ...]
    explained_variance: torch.Tensor | None = None
    explained_variance_ratio: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    source: str = "user"
    latent_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        fn = "latentsweep.Directions"
        vectors = _checks.tensor(fn, "vectors", self.vectors, ndims=(2,))
        if vectors.shape[0] < 1 or vectors.shape[1] < 1:
            raise ValueError(f"{fn}: vectors must be [K >= 1, D >= 1], got shape {tuple(vectors.shape)}")
        _checks.finite(fn, "vectors", vectors)
        _check_unit_rows(fn, vectors)
        names = self.names
        if isinstance(names, (str, bytes)) or not hasattr(names, "__len__") or not all(isinstance(n, str) for n in names):
            raise TypeError(f"{fn}: names must be a sequence of K={len(vectors)} strings, got {names!r:.80}")
        if len(names) != len(vectors):
            raise ValueError(f"{fn}: {len(vectors)} vectors but {len(names)} names")
        object.__setattr__(self, "names", tuple(names))
        for name, size in (("explained_variance", len(vectors)), ("explained_variance_ratio", len(vectors)),
                           ("mean", vectors.shape[1])):
            value = getattr(self, name)
            if value is None:
                continue
            value = _checks.tensor(fn, name, value, ndims=(1,))
            if value.shape[0] != size:
                what = "K" if name != "mean" else "D"
                raise ValueError(f"{fn}: {name} must be [{what}={size}], got shape {tuple(value.shape)}")
            _checks.finite(fn, name, value)
            if name != "mean" and bool((value < 0).any()):
                raise ValueError(f"{fn}: {name} must be >= 0 (a variance), got min {float(value.min()):.3g}")
        _checks.same_device(fn, vectors=vectors, explained_variance=self.explained_variance,
                            explained_variance_ratio=self.explained_variance_ratio, mean=self.mean)
        if not isinstance(self.source, str):
            raise TypeError(f"{fn}: source must be a str, got {type(self.source).__name__}")
        if self.latent_shape is not None:
            from .latent_shape import checked_latent_shape  # (it imports this module)

            object.__setattr__(self, "latent_shape", checked_latent_shape(
                fn, self.latent_shape, vectors, (vectors.shape[1],), name="vectors", what="K"))

    def __eq__(self, other) -> bool:
        """Same names, source, latent shape and tensors (values, dtype and device), as ``torch.equal``."""
        if not isinstance(other, Directions):
            return NotImplemented
        return (self.names == other.names and self.source == other.source and self.latent_shape == other.latent_shape
                and all(_checks.same_tensor(getattr(self, f), getattr(other, f))
                        for f in ("vectors", "explained_variance", "explained_variance_ratio", "mean")))

    __hash__ = None  # the tensors are mutable

    @classmethod
    def from_vectors(cls, vectors: torch.Tensor, names=None) -> "Directions":
        """Any user tensor ``[K, D]`` (or ``[D]``), scaled to unit length (a zero or non-finite
        vector is a ``ValueError``), with K ``names`` (default ``u0, u1, ...``)."""
        fn = "latentsweep.Directions.from_vectors"
        vectors = normalised(fn, vectors)  # (errors in its own name)
        if isinstance(names, (str, bytes)):  # (a string is a sequence: "smile" named 5 directions)
            raise TypeError(f"{fn}: names must be a sequence of K={len(vectors)} names, got the string {names!r:.80}"
                            + (f"; for one direction, pass [{names!r:.80}]" if len(vectors) == 1 else ""))
        if names is None:
            names = tuple(f"u{k}" for k in range(vectors.shape[0]))
        elif isinstance(names, torch.Tensor) or not hasattr(names, "__iter__"):  # (a tensor iterates as tensors)
            raise TypeError(f"{fn}: names must be a sequence of K={len(vectors)} names, got {type(names).__name__}")
        else:
            names = tuple(map(str, names))
        return cls(vectors, names, source="user")

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.vectors.shape[1]

    def __getitem__(self, index) -> "Directions":
        """A subset, e.g. ``directions[:3]`` for the top three components, ``directions[1]``,
        ``directions[[0, 2]]`` or a boolean mask of K."""
        fn = "latentsweep.Directions[...]"
        expected = "an int in -K..K-1, a slice, a list of ints or a boolean mask of K"
        if isinstance(index, bool):  # (an int to Python: True picked all of them, as a mask of one)
            raise TypeError(f"{fn}: index must be {expected}, got {index!r}")
        given = index  # (for the messages)
        if isinstance(index, slice):  # Python's slices, negative steps included (torch's refuse them)
            index = torch.tensor(range(len(self))[index], dtype=torch.int64, device="cpu")
        elif isinstance(index, list) and not index:
            index = torch.zeros(0, dtype=torch.int64, device="cpu")
        if not isinstance(index, (int, slice, torch.Tensor)):
            try:  # lists, numpy arrays
                index = torch.as_tensor(index, device="cpu") if isinstance(index, list) or hasattr(index, "__array__") \
                    else None
            except (TypeError, ValueError, RuntimeError):
                index = None
            if index is None:
                raise TypeError(f"{fn}: index must be {expected}")
        if isinstance(index, torch.Tensor) and index.numel() and index.dtype not in (torch.bool, torch.int64, torch.int32,
                                                                                       torch.int16, torch.int8, torch.uint8):
            raise TypeError(f"{fn}: index must be {expected}, got a {index.dtype} tensor")
        if isinstance(index, torch.Tensor) and index.dtype != torch.bool:
            index = index.long()  # (torch reads uint8 as a mask, and indexes with no int8 or int16)
        try:
            every = torch.arange(len(self), device="cpu")
            picked = every[index.to("cpu") if isinstance(index, torch.Tensor) else index].reshape(-1)
        except (IndexError, RuntimeError, OverflowError, ValueError):
            raise IndexError(f"{fn}: cannot select directions {given!r:.60} from {len(self)} direction(s) ({expected})") from None
        if picked.numel() == 0:
            raise IndexError(f"{fn}: {given!r:.60} selects none of the {len(self)} direction(s)")
        pick = lambda t: None if t is None else t[picked]  # noqa: E731
        return Directions(
            self.vectors[picked],
            tuple(self.names[i] for i in picked.tolist()),
            pick(self.explained_variance),
            pick(self.explained_variance_ratio),
            self.mean,
            self.source,
            self.latent_shape,
        )

    def to(self, *args, **kwargs) -> "Directions":
        """Moves/casts the tensors, as ``torch.Tensor.to``."""
        move = lambda t: None if t is None else t.to(*args, **kwargs)  # noqa: E731
        return Directions(
            move(self.vectors), self.names, move(self.explained_variance),
            move(self.explained_variance_ratio), move(self.mean), self.source, self.latent_shape,
        )

    def project(self, codes) -> torch.Tensor:
        """``[N, K]`` coordinates of codes ``[N, D]`` along each direction (not centred):
        ``codes @ vectors.T``, computed in float64."""
        codes = as_codes("latentsweep.Directions.project", codes)
        if codes.shape[1] != self.latent_dim:
            raise ValueError(
                f"latentsweep.Directions.project: codes must be [N, {self.latent_dim}], got {tuple(codes.shape)}"
            )
        _checks.codes_fit_in_memory("latentsweep.Directions.project", f"reading the codes [N={codes.shape[0]}, "
                                    f"D={codes.shape[1]}]", codes, "project the rows in parts (codes[:n])",
                                    bytes_per_value=8)  # (their float64 copy)
        dtype = result_dtype(codes)
        projected = (codes.double() @ self.vectors.to(codes.device, torch.float64).T).to(dtype)
        if not bool(torch.isfinite(projected).all()):  # (the codes are finite: only an overflow)
            raise ValueError(
                f"latentsweep.Directions.project: the coordinates of these codes overflow {dtype} (|<code, vector>| "
                f"reaches beyond {torch.finfo(dtype).max:.3g}); "
                + ("pass float64 codes (codes.double())" if dtype != torch.float64 else "rescale the codes")
            )
        return projected
