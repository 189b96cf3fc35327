"""The encoder's output for a batch of inputs: a diagonal Gaussian per input, or plain codes."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks


@dataclass(frozen=True, eq=False)  # __eq__ below compares the tensors
class Posterior:
    """Encoder outputs for N inputs, as flat rows of D latents.

    Structured latents (a spatial VAE's ``[N, C, H, W]`` codes) are kept flat, ``D = C*H*W``
    in ``torch.flatten`` order, with their shape in ``latent_shape``: everything that reads
    latents (``diagnose``, ``clusters``, ``principal_directions``) sees D of them, and
    :func:`latentsweep.traverse` gives the decoder ``[B, *latent_shape]`` codes back.

    Args:
        mu: ``[N, D]`` posterior means (or a plain autoencoder's codes), ``[N, *latent_shape]``,
            or ``[D]`` for one input.
        logvar: log-variances of mu's shape, or ``None`` for a plain autoencoder.
        latent_shape: the shape of one code as the decoder takes it, for flat ``mu``; ``None``:
            mu's own (``(D,)`` for flat codes).

    Attributes:
        mu: ``[N, D]``. logvar: ``[N, D]`` or ``None``. latent_shape: a tuple, ``prod = D``.
    """

    mu: torch.Tensor
    logvar: torch.Tensor | None = None
    latent_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        from .latent_shape import checked_latent_shape, flat_codes  # (it imports directions, which imports this)

        fn = "latentsweep.Posterior"
        mu, shape = flat_codes(fn, "mu", self.mu, allow_empty=True)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "latent_shape", checked_latent_shape(fn, self.latent_shape, mu, shape,
                                                                           name="means (mu)", what="N"))
        if self.logvar is not None:  # flat [N, D] or [N, *latent_shape], whichever mu is
            logvar, logvar_shape = flat_codes(fn, "logvar", self.logvar, allow_empty=True)
            if logvar.shape != mu.shape or logvar_shape not in (self.latent_shape, (mu.shape[1],)):
                raise ValueError(f"{fn}: logvar must have mu's shape {(mu.shape[0], *self.latent_shape)} (or "
                                 f"[N, D] = {tuple(mu.shape)}), got {tuple(self.logvar.shape)}")
            _checks.same_device(fn, mu=mu, logvar=logvar)
            object.__setattr__(self, "logvar", logvar)

    @property
    def is_variational(self) -> bool:
        """True when the encoder gave log-variances (a VAE), False for plain codes (an AE)."""
        return self.logvar is not None

    @property
    def num_inputs(self) -> int:
        return self.mu.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.mu.shape[1]

    @property
    def sd(self) -> torch.Tensor | None:
        """``[N, D]`` posterior standard deviations ``exp(logvar / 2)`` (``None`` for an AE)."""
        return None if self.logvar is None else torch.exp(0.5 * self.logvar)

    def __len__(self) -> int:
        return self.num_inputs

    def __getitem__(self, index) -> "Posterior":
        """Inputs (rows) of the posterior, e.g. ``posterior[:16]`` as traversal anchors,
        ``posterior[3]``, ``posterior[[0, 5]]`` or a boolean mask of N. Latents are picked from
        the tensors (``posterior.mu[:, k]``): a Posterior is N inputs of D latents."""
        index = _row_index(index)
        mu = self.mu[index]
        logvar = None if self.logvar is None else self.logvar[index]
        return Posterior(mu, logvar, self.latent_shape)

    def __eq__(self, other) -> bool:
        """Same tensors (values, dtype and device, as ``torch.equal``), both or neither with a
        logvar, and the same latent shape."""
        if not isinstance(other, Posterior):
            return NotImplemented
        return (self.latent_shape == other.latent_shape and _checks.same_tensor(self.mu, other.mu)
                and _checks.same_tensor(self.logvar, other.logvar))

    __hash__ = None  # the tensors are mutable

    def to(self, *args, **kwargs) -> "Posterior":
        """Moves/casts both tensors, as ``torch.Tensor.to``."""
        logvar = None if self.logvar is None else self.logvar.to(*args, **kwargs)
        return Posterior(self.mu.to(*args, **kwargs), logvar, self.latent_shape)

    def sample(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``[N, n, D]`` reparameterised samples, ``n`` per input, reproducible from ``seed``
        (see :func:`latentsweep.sample`)."""
        if self.logvar is None:
            raise ValueError(
                "Posterior.sample: this posterior has no logvar (a plain autoencoder); "
                "there is nothing to sample"
            )
        if self.mu.dtype != self.logvar.dtype:  # (sample's own message named latentsweep.sample)
            raise ValueError(f"Posterior.sample: mu ({self.mu.dtype}) and logvar ({self.logvar.dtype}) differ in dtype; "
                             f"cast them to one first, e.g. posterior.to({self.mu.dtype})")
        from .sampling import sample

        return sample(self.mu, self.logvar, n, seed=seed)


def unwrapped(anchors, logvar, reference, *, flat: bool = False):
    """``(anchors, logvar, reference)`` with a :class:`Posterior` given as ``anchors`` read as its
    means (and its log-variances, unless ``logvar`` is given) in its own latent shape, the
    decoder's (``flat``: as ``[A, D]`` rows, for a caller that gives its own ``latent_shape``),
    and one given as ``reference`` as its means ``[M, D]`` (as ``principal_directions`` and
    ``clusters`` read one). Anything else passes through for the caller's checks."""
    if isinstance(anchors, Posterior):
        shape = (anchors.num_inputs, *((anchors.latent_dim,) if flat else anchors.latent_shape))
        if logvar is None and anchors.logvar is not None:
            logvar = anchors.logvar.view(shape)
        anchors = anchors.mu.view(shape)
    if isinstance(reference, Posterior):
        reference = reference.mu
    return anchors, logvar, reference


_ROWS_ONLY = (
    "a Posterior indexes its inputs (rows) only, e.g. posterior[:16], posterior[[0, 5]] or a "
    "boolean mask of N; pick latents from its tensors: posterior.mu[:, k] (and posterior.logvar[:, k])"
)


def _row_index(index):
    """``index`` as an index of rows (a list becomes a tensor: torch reads a list holding slices
    as one index per axis). Anything that could reach the latents is refused:
    ``posterior[:, 0]`` indexed mu as ``mu[:, 0]`` and made N inputs into one input of N latents."""
    fn = "latentsweep.Posterior[...]"
    if isinstance(index, (list, range)):
        try:
            index = torch.as_tensor(index, device="cpu") if len(index) else \
                torch.zeros(0, dtype=torch.int64, device="cpu")
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{fn}: got {index!r:.60}; {_ROWS_ONLY}") from None
    integer = isinstance(index, numbers.Integral) and not isinstance(index, bool)
    if not (integer or isinstance(index, (slice, torch.Tensor)) or hasattr(index, "__array__")):
        raise TypeError(f"{fn}: got {index!r:.60}; {_ROWS_ONLY}")
    if getattr(index, "ndim", 0) > 1:
        raise ValueError(f"{fn}: got a {index.ndim}-D index, which would pick single entries; {_ROWS_ONLY}")
    if not integer and not isinstance(index, slice):  # a tensor or an array: integers, or a mask of N
        dtype = index.dtype
        kind = ("bool" if dtype == torch.bool else "int" if not (dtype.is_floating_point or dtype.is_complex) else "other") \
            if isinstance(index, torch.Tensor) else {"b": "bool", "i": "int", "u": "int"}.get(getattr(dtype, "kind", ""), "other")
        if kind == "other" or (kind == "bool" and getattr(index, "ndim", 0) != 1):
            raise TypeError(f"{fn}: got an index of dtype {dtype} and {getattr(index, 'ndim', 0)} dimension(s); "
                            f"{_ROWS_ONLY}")
        if not isinstance(index, torch.Tensor):  # a copy: torch takes no negative strides (array[::-1])
            index = torch.as_tensor(np.array(index), device="cpu")
        largest = _checks.uint64_beyond_int64(index)  # (int64 would wrap it around to a negative index: a last row)
        if largest is not None:
            raise IndexError(f"{fn}: index {largest} is out of range")
        if kind == "int":
            index = index.long()  # as int64: torch reads uint8 as a mask
    return index
