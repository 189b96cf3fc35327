"""The traversal modes are one table (latentsweep.modes.MODE_TABLE): each entry's values against a
plain-torch reference, what it needs enforced from the table, and everything that lists or
dispatches on modes (traversal_values, traverse, the command line, diagnose, the integrations,
the report) asks it, so a new entry works everywhere."""

from __future__ import annotations

import html
import math

import pytest
import torch

import latentsweep as ls
from latentsweep import modes
from latentsweep.cli import build_parser

GEN = torch.Generator().manual_seed(4)
ANCHORS = torch.randn(3, 4, generator=GEN, dtype=torch.float64)
LOGVAR = torch.randn(3, 4, generator=GEN, dtype=torch.float64) - 1
REFERENCE = torch.randn(30, 4, generator=GEN, dtype=torch.float64)
SPAN, STEPS = 1.5, 5


def plain_values(name: str) -> torch.Tensor:
    """Each mode's values by the README's formula, in float64."""
    t = torch.linspace(-SPAN, SPAN, STEPS, dtype=torch.float64)
    low = 0.5 * math.erfc(SPAN / math.sqrt(2))  # Phi(-span)
    levels = torch.linspace(low, 1 - low, STEPS, dtype=torch.float64)
    if name == "prior":
        return ANCHORS[:, :, None] + t
    if name == "absolute":
        return t.expand(3, 4, STEPS)
    if name == "quantile":
        return torch.special.ndtri(levels).expand(3, 4, STEPS)
    if name == "posterior":
        return ANCHORS[:, :, None] + t * torch.exp(0.5 * LOGVAR)[:, :, None]
    if name == "empirical":
        return torch.quantile(REFERENCE, levels, dim=0).T.expand(3, 4, STEPS)
    raise AssertionError(f"no reference for mode {name!r}: add one with the new entry")


def test_the_public_names_come_from_the_table():
    assert ls.MODES == modes.MODES == tuple(modes.MODE_TABLE) == ("prior", "absolute", "quantile", "posterior", "empirical")
    assert ls.traversal.MODES is modes.MODES and modes.DEFAULT_MODE == ls.MODES[0]
    for name, entry in modes.MODE_TABLE.items():
        assert entry.name == name and entry.use and entry.values and entry.along_direction


@pytest.mark.parametrize("name", list(modes.MODE_TABLE))
def test_each_entry_computes_its_formula(name):
    entry = modes.MODE_TABLE[name]
    options = {"logvar": LOGVAR, "reference": REFERENCE}
    values = ls.traversal_values(ANCHORS, mode=name, span=SPAN, steps=STEPS, **options)
    torch.testing.assert_close(values, plain_values(name), rtol=1e-12, atol=1e-12)
    # centred modes move with the anchors, the others do not
    shifted = ls.traversal_values(ANCHORS + 1, mode=name, span=SPAN, steps=STEPS, **options)
    assert torch.allclose(shifted - values, torch.ones_like(values)) == entry.centred
    # the prior's SD scales exactly the modes that use it
    wide = ls.traversal_values(ANCHORS, mode=name, span=SPAN, steps=STEPS, prior_std=2.0, **options)
    assert (not torch.equal(wide, values)) == entry.uses_prior_std


@pytest.mark.parametrize("name", list(modes.MODE_TABLE))
def test_what_each_entry_needs_is_required(name):
    entry = modes.MODE_TABLE[name]
    for needed in ("logvar", "reference"):
        given = {"logvar": LOGVAR, "reference": REFERENCE}
        del given[needed]
        if needed in entry.needs:
            with pytest.raises(ValueError, match=f"mode='{name}' needs {needed}"):
                ls.traversal_values(ANCHORS, mode=name, **given)
        else:
            ls.traversal_values(ANCHORS, mode=name, **given)


@pytest.mark.parametrize("bad, error", [(3, TypeError), ("Prior", ValueError), ("values", ValueError)])
def test_an_unknown_mode_names_the_table(bad, error):
    with pytest.raises(error, match="mode must be .*'prior', 'absolute', 'quantile', 'posterior', 'empirical'"):
        ls.traversal_values(ANCHORS, mode=bad)


def test_a_new_entry_works_everywhere(monkeypatch, tmp_path):
    """Adding a mode is one entry: traversal_values, traverse (also along directions), the command
    line's --mode, the integrations' options and the report's suggested call pick it up."""
    entry = modes.Mode(
        "reference-centred", "`mean(reference[:, d]) + t · prior_std`", "the same along u",
        "test: the data's mean, the prior's range", needs_logvar=False, needs_reference=True,
        uses_prior_std=True, centred=False,
        compute=lambda x: (x.reference.mean(0).to(x.anchors.dtype)[x.dims, None] + x.t * x.prior_std).expand(*x.grid_shape),
    )
    monkeypatch.setitem(modes.MODE_TABLE, entry.name, entry)
    expected = REFERENCE.mean(0)[:, None] + torch.linspace(-2, 2, 5, dtype=torch.float64)
    values = ls.traversal_values(ANCHORS, mode=entry.name, steps=5, reference=REFERENCE)
    torch.testing.assert_close(values, expected.expand(3, 4, 5))
    with pytest.raises(ValueError, match="needs reference"):
        ls.traversal_values(ANCHORS, mode=entry.name)
    result = ls.traverse(lambda z: z * 2, ANCHORS, mode=entry.name, reference=REFERENCE, steps=5, progress=False)
    assert result.mode == entry.name and torch.equal(result.values, values)
    along = ls.traverse(lambda z: z * 2, ANCHORS, mode=entry.name, reference=REFERENCE, steps=5, progress=False,
                        directions=torch.eye(4, dtype=torch.float64)[:2])
    torch.testing.assert_close(along.values, values[:, :2])
    assert build_parser().parse_args(["traverse", "--model", "m:f", "--data", "x.npy", "--mode", entry.name]).mode == entry.name
    assert entry.traverse_call() == (
        'latentsweep.traverse(decoder, posterior[:8], mode="reference-centred", reference=posterior.mu)'
    )
    assert entry.name in modes.markdown_table()
    from latentsweep.integrations._common import SnapshotOptions

    assert SnapshotOptions.checked("test", mode=entry.name).mode == entry.name  # as every table entry
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'prior'"):
        SnapshotOptions.checked("test", mode="nonsense")


def test_the_report_suggests_the_recommended_modes_call():
    vae = ls.Posterior(torch.randn(200, 3), torch.full((200, 3), -4.0))
    ae = ls.Posterior(torch.randn(200, 3) * 5 + 3)
    for posterior in (vae, ae):
        diagnosis = ls.diagnose(posterior)
        entry = modes.MODE_TABLE[diagnosis.recommended_mode]
        from latentsweep.html_report import _recommendation

        call = html.escape(entry.traverse_call(prior_std=diagnosis.prior_std).removesuffix(")"))
        assert call in _recommendation(diagnosis)
        options = diagnosis.traversal_options()
        assert ("reference" in options) == entry.needs_reference


def test_span_limits_come_from_the_table():
    limited = [m for m in modes.MODE_TABLE.values() if m.max_span is not None]
    assert [m.name for m in limited] == ["quantile"] and limited[0].max_span == modes.MAX_QUANTILE_SPAN
    with pytest.raises(ValueError, match=r"mode='quantile' needs span <= 37.5"):
        ls.traversal_values(ANCHORS, mode="quantile", span=math.nextafter(37.5, 40))
    ls.traversal_values(ANCHORS, mode="prior", span=40.0)


# --------------------------------------------------------------------------- quantile mode at small spans


@pytest.mark.parametrize("span", [5e-324, 1e-310, 1e-300, 1e-20, 1e-17, 1e-16, 1e-12, 1e-8, 1e-6, 1e-3, 0.1, 0.49])
@pytest.mark.parametrize("steps", [1, 2, 3, 7, 101])
def test_quantile_mode_keeps_its_ends_at_tiny_spans(span, steps):
    """ndtr(-span) rounds to 0.5 below span ~1e-16, and the grid collapsed to 0 (span 1e-17)
    or missed its ends by 39% (1e-16), 4e-5 (1e-12)."""
    row = ls.traversal_values(torch.zeros(1, 1, dtype=torch.float64), mode="quantile", span=span, steps=steps,
                              prior_std=1.5)[0, 0]
    end = torch.tensor(1.5 * span, dtype=torch.float64)
    torch.testing.assert_close(row[0], -end, rtol=1e-15, atol=0)
    if steps > 1:
        torch.testing.assert_close(row[-1], end, rtol=1e-15, atol=0)
        assert torch.equal(row, -row.flip(0)) and (row.diff() >= 0).all()
    if 1e-300 < span <= 1e-3:  # the body: Phi^-1 is c span (1 - (1 - c^2) span^2 / 6 + O(span^4))
        i = torch.arange(steps, dtype=torch.float64)
        c = (2 * i - (steps - 1)) / (steps - 1) if steps > 1 else i - 1  # positions in [-1, 1]; [-1] for one step
        torch.testing.assert_close(row, 1.5 * c * span * (1 - (1 - c**2) * span**2 / 6), rtol=1e-13, atol=0)
    # float32 anchors: the same ends, in float32
    row32 = ls.traversal_values(torch.zeros(1, 1), mode="quantile", span=span, steps=steps)[0, 0]
    assert row32[0] == torch.tensor(-span, dtype=torch.float32)


@pytest.mark.parametrize("span", [modes.CENTRED_QUANTILE_SPAN, 1.0, 2.0, 3.7, 9.0, modes.MAX_QUANTILE_SPAN])
def test_quantile_mode_at_ordinary_spans_is_the_normal_quantile_of_the_levels(span):
    """The centred computation is for small spans only: from 0.5 up the values are, bit for
    bit, ndtri of the prior levels, with the ends at exactly +-span (ndtri(ndtr(2)) is
    1.9999999999999996)."""
    tail, side = modes.prior_levels(span, 11)
    quantiles = torch.special.ndtri(tail) * torch.where(side > 0, -1.0, 1.0)
    quantiles[0], quantiles[-1] = -span, span
    expected = 1.5 * quantiles
    for dtype in (torch.float64, torch.float32):
        values = ls.traversal_values(torch.zeros(2, 3, dtype=dtype), mode="quantile", span=span, prior_std=1.5)
        assert torch.equal(values, expected.to(dtype).expand(2, 3, 11))
