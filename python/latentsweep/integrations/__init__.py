"""Latent traversals while a model trains.

- :mod:`latentsweep.integrations.lightning`: ``TraversalCallback`` for Lightning
  (``pip install 'latentsweep[lightning]'``);
- :mod:`latentsweep.integrations.tensorboard`: ``log_traversals`` for plain PyTorch loops with a
  SummaryWriter (``pip install 'latentsweep[tensorboard]'``).

Both compute the same :class:`TraversalSnapshot`. Importing this package needs neither extra.
"""

from ._common import TraversalSnapshot

__all__ = ["TraversalSnapshot"]
