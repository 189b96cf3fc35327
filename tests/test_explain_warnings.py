"""explain() says only what its report's reader can use: principal_directions' warning that
explained_variance underflows float32 (codes below ~1e-19) reached explain's user, whose report
reads only the directions and their variance ratios, which are exact."""

from __future__ import annotations

import warnings

import pytest
import torch

import latentsweep as ls

UNDERFLOW = "below the smallest normal"


def tiny_codes() -> torch.Tensor:
    """float32 codes of ~1e-20: a total variance of ~1e-40, below float32's smallest normal."""
    return torch.randn(40, 3, generator=torch.Generator().manual_seed(0)) * 1e-20


def test_explain_on_tiny_codes_does_not_warn_of_explained_variance_but_principal_directions_does(tmp_path):
    torch.manual_seed(0)
    decoder = torch.nn.Linear(3, 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ls.explain(None, decoder, None, posterior=ls.Posterior(tiny_codes()), out=tmp_path, progress=False)
    assert (tmp_path / "report.html").is_file()
    assert not [str(w.message) for w in caught if UNDERFLOW in str(w.message)]
    with pytest.warns(RuntimeWarning, match=rf"latentsweep\.principal_directions: .* {UNDERFLOW} torch\.float32"):
        ls.principal_directions(tiny_codes())  # (called directly, after explain, in the same thread: warned)
