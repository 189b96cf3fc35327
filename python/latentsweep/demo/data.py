"""Demo data from the data sets bundled with scikit-learn (on disk, nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import torch


def load_digits_data() -> tuple[torch.Tensor, np.ndarray]:
    """The 1797 8x8 digits: ``x [1797, 64]`` float32 in [0, 1] (pixels / 16) and labels 0-9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.data.astype(np.float32) / 16.0)
    return x, digits.target


def load_wine_data() -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """The 178 wines: ``x [178, 13]`` float32 standardised per feature, labels 0-2, feature names.

    Standardised with the data set's own mean and SD (population SD), so no scaler needs shipping.
    """
    from sklearn.datasets import load_wine

    wine = load_wine()
    data = wine.data.astype(np.float64)
    x = (data - data.mean(axis=0)) / data.std(axis=0)
    return torch.from_numpy(x.astype(np.float32)), wine.target, list(wine.feature_names)
