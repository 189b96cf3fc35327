"""explain() says only what its report's reader can use: principal_directions' warning that
explained_variance underflows float32 (codes below ~1e-19) reached explain's user, whose report
reads only the directions and their variance ratios, which are exact; and its overflow (codes
near 1e20) refused explain with advice its user could not follow (pass float64 codes)."""

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


def test_explain_on_huge_float32_codes_reads_their_directions_though_explained_variance_overflows(tmp_path):
    huge = torch.randn(40, 3, generator=torch.Generator().manual_seed(0)) * 1e20  # total variance ~3e40
    with pytest.raises(ValueError, match=r"total variance \(.*\) overflows torch\.float32; pass float64 codes"):
        ls.principal_directions(huge)  # (its own caller can pass float64 codes)
    torch.manual_seed(0)
    ls.explain(None, torch.nn.Linear(3, 5), None, posterior=ls.Posterior(huge), out=tmp_path, progress=False)
    assert "principal directions" in (tmp_path / "report.html").read_text()
    with ls.principal.variance_unread():  # (as explain reads them: the ratios, without the variances)
        pcs = ls.principal_directions(huge)
    exact = ls.principal_directions(huge.double())
    assert pcs.explained_variance is None
    torch.testing.assert_close(pcs.explained_variance_ratio, exact.explained_variance_ratio.float())
    torch.testing.assert_close(pcs.vectors.abs(), exact.vectors.float().abs())
