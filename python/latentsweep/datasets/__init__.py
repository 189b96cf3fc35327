"""Ground-truth data sets for the disentanglement metrics (nothing is downloaded).

- :class:`Shapes`: procedural dSprites-like images (shape, scale, orientation, x, y).
- :class:`LabelledArrays`: your own observations with their factor labels.

A ground-truth data set is any object with ``factor_sizes``, ``sample_factors(n, generator)``
and ``observations(factors)`` (see ``latentsweep.metrics.evaluate``).
"""

from .labelled_arrays import LabelledArrays
from .shapes import FACTOR_NAMES, SHAPES, Shapes

__all__ = ["FACTOR_NAMES", "LabelledArrays", "SHAPES", "Shapes"]
