"""How axis-aligned the codes are (issue 8 item 8): the shares and the Wasserstein correlation
against a direct numpy computation, on constructed codes whose axes are, and are not, the
coordinates; and what diagnose says about it for a VAE and a plain autoencoder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import alignment
from latentsweep.alignment import axis_alignment
from latentsweep.findings import findings

N = 3000
SCALES = torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)  # distinct variances: the axes are defined


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def aligned_codes(seed: int = 0) -> torch.Tensor:
    return torch.randn(N, len(SCALES), generator=gen(seed), dtype=torch.float64) * SCALES


def rotation(seed: int = 1) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(len(SCALES), len(SCALES), generator=gen(seed), dtype=torch.float64)).Q


def numpy_reference(codes: np.ndarray) -> tuple[float, float, float]:
    """(top coordinate share, top component share, Wasserstein correlation / tr C), written
    from the definitions: the eigenvalues of C diag(C) taken as they are (not symmetrised)."""
    c = np.cov(codes, rowvar=False)
    total = np.trace(c)
    top = np.linalg.eigvalsh(c)[-1]
    roots = np.sqrt(np.clip(np.linalg.eigvals(c @ np.diag(np.diag(c))).real, 0, None)).sum()
    return np.diag(c).max() / total, top / total, (2 * total - 2 * roots) / total


@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_numbers_match_numpy(rotated, dtype):
    codes = aligned_codes() @ rotation() if rotated else aligned_codes()
    axes = axis_alignment(codes.to(dtype) + 5.0)  # a shifted mean changes nothing
    coordinate, component, wasserstein = numpy_reference(codes.to(dtype).double().numpy())
    tolerance = 1e-9 if dtype == torch.float64 else 1e-5
    assert axes.top_coordinate_share == pytest.approx(coordinate, rel=tolerance)
    assert axes.top_component_share == pytest.approx(component, rel=tolerance)
    assert axes.wasserstein_correlation == pytest.approx(wasserstein, rel=1e-6, abs=1e-7)
    assert axes.ratio == pytest.approx(coordinate / component, rel=tolerance)


def test_axis_aligned_codes_and_rotated_ones_are_told_apart():
    aligned = axis_alignment(aligned_codes())
    rotated = axis_alignment(aligned_codes() @ rotation())
    # The top variance share is 9 / 14.25 either way; only the coordinates' share moves.
    assert aligned.top_component_share == pytest.approx(9 / 14.25, rel=0.05)
    assert rotated.top_component_share == pytest.approx(aligned.top_component_share, rel=1e-9)
    assert aligned.ratio > 0.99 and aligned.wasserstein_correlation < 1e-3
    assert rotated.ratio < 0.9 and rotated.wasserstein_correlation > 0.05


def test_equal_variances_hide_a_rotation_as_documented():
    """The documented limit of a second-order measure: codes with equal variance per
    coordinate look aligned whatever rotation they went through."""
    isotropic = torch.randn(N, 4, generator=gen(2), dtype=torch.float64)
    for codes in (isotropic, isotropic @ rotation()):
        axes = axis_alignment(codes)
        assert axes.ratio > 0.85 and axes.wasserstein_correlation < 0.01


def test_constant_codes_have_no_axes():
    assert axis_alignment(torch.ones(10, 3)) is None
    assert ls.diagnose(torch.ones(10, 3)).axes is None


def test_many_latents_take_the_randomised_top_component(monkeypatch):
    codes = aligned_codes() @ rotation()
    exact = axis_alignment(codes)
    monkeypatch.setattr(alignment, "EXACT_MAX_DIM", 2)
    randomised = axis_alignment(codes)
    assert randomised.wasserstein_correlation is None
    assert randomised.top_coordinate_share == exact.top_coordinate_share
    assert randomised.top_component_share == pytest.approx(exact.top_component_share, rel=1e-6)
    assert "Wasserstein" not in randomised.describe() and "Wasserstein" in exact.describe()


def vae(codes: torch.Tensor) -> ls.Posterior:
    return ls.Posterior(codes, torch.full_like(codes, 2 * math.log(0.3)))


def test_diagnose_reports_how_axis_aligned_a_vae_is():
    aligned = ls.diagnose(vae(aligned_codes() / 3))
    rotated = ls.diagnose(vae(aligned_codes() @ rotation() / 3))
    assert aligned.axis_aligned is True and rotated.axis_aligned is False
    assert aligned.recommended_directions == rotated.recommended_directions == "coordinates"
    assert "close to the codes' principal axes" in aligned.recommendation
    assert "main axes are not the latents" in rotated.recommendation
    assert "principal_directions" in rotated.recommendation
    assert "rotated-axes" not in [f.code for f in findings(aligned)]
    finding = next(f for f in findings(rotated) if f.code == "rotated-axes")
    share = f"{rotated.axes.top_coordinate_share:.0%}"
    assert f"The top latent carries {share} of the codes' variance" in finding.text
    assert f"ratio {rotated.axes.ratio:.2f}" in finding.text
    data = json.loads(json.dumps(rotated.to_dict()))
    assert data["axes"]["ratio"] == pytest.approx(rotated.axes.ratio)
    assert data["recommended_directions"] == "coordinates"


def test_diagnose_recommends_principal_directions_for_an_autoencoder_and_says_why():
    diagnosis = ls.diagnose(aligned_codes())  # a bare tensor: autoencoder codes
    assert diagnosis.recommended_directions == "principal"
    assert "coordinate axes are arbitrary" in diagnosis.recommendation
    assert "invertible linear map" in diagnosis.recommendation
    assert "principal_directions" in diagnosis.recommendation
    found = findings(diagnosis)
    assert [f.code for f in found] == ["autoencoder"]
    assert "principal directions" in found[0].headline and "arbitrary" in found[0].text
    assert diagnosis.axes.describe()[1:] in found[0].text


def test_codes_with_non_finite_rows_use_the_finite_rows():
    codes = aligned_codes() @ rotation()
    dirty = codes.clone()
    dirty[7, 2] = math.nan
    dirty[11, 0] = math.inf
    keep = torch.ones(N, dtype=torch.bool)
    keep[[7, 11]] = False
    expected = axis_alignment(codes[keep])
    got = ls.diagnose(dirty).axes
    assert got.top_component_share == pytest.approx(expected.top_component_share, rel=1e-12)
    assert got.wasserstein_correlation == pytest.approx(expected.wasserstein_correlation, rel=1e-9)
