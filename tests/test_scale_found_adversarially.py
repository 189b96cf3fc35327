"""Costs that grew faster than the work at legitimate but unbenchmarked shapes, found by an
adversarial pass: each test of a fix failed before it (the others guard what the fixes kept).
Counted (operations, calls, values or bytes held at once), never timed."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

import latentsweep as ls
from latentsweep import modes, stores
from peak_memory import linux_only, peak_bytes


class Sorts(TorchFunctionMode):
    """Records each sort: (its input's shape, the dim sorted, whether that dim is the last of a
    contiguous input)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], int, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "sort":
            tensor = args[0]
            dim = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], int) else -1) % tensor.dim()
            self.calls.append((tuple(tensor.shape), dim, dim == tensor.dim() - 1 and tensor.is_contiguous()))
        return func(*args, **kwargs)


def _old_empirical_quantiles(samples: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """The definition before the fix (the whole [M, K] in float64, sorted along dim 0)."""
    ordered = samples.double().sort(dim=0).values
    ranks = levels.double() * (ordered.shape[0] - 1)
    below, above = ranks.floor().long(), ranks.ceil().long()
    return torch.lerp(ordered[below], ordered[above], (ranks - below)[:, None]).T.contiguous()


def test_empirical_quantiles_sort_each_column_in_contiguous_memory():
    """Mode "empirical" sorted its reference [M, K] along the strided dim 0: 23 s for the values
    of one traverse with a reference [10^5, 1024] (5 s sorted by columns in contiguous memory);
    the same quantiles, bit for bit (zeros of both signs included)."""
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(300, 20, generator=g)
    reference[torch.rand(300, 20, generator=g) < 0.3] = 0.0
    reference[torch.rand(300, 20, generator=g) < 0.3] = -0.0
    levels = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    with Sorts() as sorts:
        got = modes.empirical_quantiles(reference, levels)
    assert sorts.calls and all(contiguous_last for *_, contiguous_last in sorts.calls), sorts.calls
    assert torch.equal(got.view(torch.int64), _old_empirical_quantiles(reference, levels).view(torch.int64))


def test_empirical_values_hold_a_block_of_the_reference_at_a_time(monkeypatch):
    """The whole reference was converted, sorted and indexed at once: 24 bytes a value beside a
    copy of its columns (1.7 GB for a 244 MB reference), while traversal_values' memory check
    counted 8, so a reference it passed could exhaust the memory."""
    monkeypatch.setattr(modes, "QUANTILE_BLOCK_VALUES", 1000)
    g = torch.Generator().manual_seed(1)
    reference = torch.randn(250, 12, generator=g)
    anchors = torch.randn(2, 12, generator=g)
    with Sorts() as sorts:
        values = ls.traversal_values(anchors, mode="empirical", reference=reference, steps=5, dims=[11, 0, 3, 4, 7])
    assert max(torch.Size(shape).numel() for shape, *_ in sorts.calls) <= 1000, sorts.calls
    levels = modes.prior_levels(2.0, 5)
    levels = torch.where(levels[1] > 0, 1.0 - levels[0], levels[0])
    expected = _old_empirical_quantiles(reference[:, [11, 0, 3, 4, 7]], levels).float()
    assert torch.equal(values, expected.expand(2, 5, 5))


@linux_only
def test_traversal_values_peak_at_the_values_own_size():
    """The check that the values are finite made isfinite's masks of the whole grid: 11 bytes a
    float32 point at the peak (7 of them temporaries), where the memory check counted 5, so a
    grid it passed could exhaust the memory."""
    setup = "import torch, latentsweep as ls\nanchors = torch.randn(20000, 16)\nls.traversal_values(anchors[:2], steps=3)"
    values_bytes = 20000 * 16 * 101 * 4  # 129 MB of float32 values
    peak = peak_bytes(setup, "values = ls.traversal_values(anchors, steps=101)")
    assert peak < 1.25 * values_bytes, (peak, values_bytes)


def test_traversal_values_of_no_anchors_are_empty():
    """(The finiteness check of the values reads their extremes, which an empty tensor lacks.)"""
    assert ls.traversal_values(torch.zeros(0, 3), steps=4).shape == (0, 3, 4)


def test_open_command_checks_a_complete_store_once(tmp_path, capsys, monkeypatch):
    """`latentsweep open` took the status of the store, then opened it: every unit's record and
    rows (all the outputs of a store that keeps them) were read and checked twice."""
    from latentsweep.cli import main

    path = tmp_path / "s.zarr"
    ls.traverse(torch.nn.Linear(3, 4), torch.randn(4, 3), steps=3, batch_size=3, out=path, progress=False)
    units = ls.sweep_status(path).num_units
    read = stores.read_record
    calls = []
    monkeypatch.setattr(stores, "read_record", lambda *a, **k: calls.append(a[0]) or read(*a, **k))
    assert main(["open", str(path)]) == 0
    assert "4 anchors x 3 latents x 3 steps" in capsys.readouterr().out
    assert len(calls) == units > 1, calls


def test_open_command_still_prints_the_status_of_an_incomplete_store(tmp_path, capsys):
    from latentsweep.cli import main

    path = tmp_path / "s.zarr"
    result = ls.traverse(torch.nn.Linear(3, 4), torch.randn(4, 3), steps=3, batch_size=3, out=path,
                         shard=(0, 2), progress=False)
    assert isinstance(result, stores.StoreStatus)
    assert main(["open", str(path)]) == 1
    captured = capsys.readouterr()
    assert "missing units: 1" in captured.out and "is incomplete" in captured.err, captured
