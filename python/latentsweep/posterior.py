"""The encoder's output for a batch of inputs: a diagonal Gaussian per input, or plain codes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _checks


@dataclass(frozen=True)
class Posterior:
    """Encoder outputs for N inputs.

    Attributes:
        mu: ``[N, D]`` posterior means (or the codes of a plain autoencoder).
        logvar: ``[N, D]`` posterior log-variances, or ``None`` for a plain autoencoder.
    """

    mu: torch.Tensor
    logvar: torch.Tensor | None = None

    def __post_init__(self) -> None:
        fn = "latentsweep.Posterior"
        mu = _checks.tensor(fn, "mu", self.mu, ndims=(1, 2))
        if mu.dim() == 1:
            object.__setattr__(self, "mu", mu[None])
        if self.logvar is not None:
            logvar = _checks.tensor(fn, "logvar", self.logvar, ndims=(1, 2))
            if logvar.dim() == 1:
                logvar = logvar[None]
            if logvar.shape != self.mu.shape:
                raise ValueError(
                    f"{fn}: logvar must have mu's shape {tuple(self.mu.shape)}, got {tuple(logvar.shape)}"
                )
            _checks.same_device(fn, mu=self.mu, logvar=logvar)
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
        """Rows of the posterior, e.g. ``posterior[:16]`` as traversal anchors."""
        mu = self.mu[index]
        logvar = None if self.logvar is None else self.logvar[index]
        return Posterior(mu, logvar)

    def to(self, *args, **kwargs) -> "Posterior":
        """Moves/casts both tensors, as ``torch.Tensor.to``."""
        logvar = None if self.logvar is None else self.logvar.to(*args, **kwargs)
        return Posterior(self.mu.to(*args, **kwargs), logvar)

    def sample(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``[N, n, D]`` reparameterised samples (see :func:`latentsweep.sample`)."""
        if self.logvar is None:
            raise ValueError(
                "Posterior.sample: this posterior has no logvar (a plain autoencoder); "
                "there is nothing to sample"
            )
        from .sampling import sample

        return sample(self.mu, self.logvar, n, seed=seed)
