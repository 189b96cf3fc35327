"""The README's scale-out workflow, as a cluster user follows it: torchrun restarts, job-array
shards, open_sweep / sweep_status on the shared store (defects found by an adversarial pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentsweep as ls
from sweep_models import rowwise_decoder

ANCHORS = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))


def sweep(path, **kwargs):
    return ls.traverse(rowwise_decoder, ANCHORS, steps=5, batch_size=8, out=path, progress=False, **kwargs)


def test_resume_under_torchrun_max_restarts_starts_the_store_its_first_attempt_finds_missing(tmp_path, monkeypatch):
    """README: "With torchrun --max-restarts, pass resume=True so restarted workers continue the
    store": the one script runs in the first attempt too, where there is no store yet."""
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    first = sweep(tmp_path / "s.zarr", resume=True)
    assert first.points_computed == 3 * 4 * 5
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    again = sweep(tmp_path / "s.zarr", resume=True)
    assert again.points_computed == 0
    assert torch.equal(first.effect, again.effect) and torch.equal(first.sensitivity, again.sensitivity)


@pytest.mark.parametrize("env", [{}, {"TORCHELASTIC_MAX_RESTARTS": "0"}, {"TORCHELASTIC_MAX_RESTARTS": "x"}])
def test_resume_without_restarts_still_needs_a_store(tmp_path, monkeypatch, env):
    monkeypatch.delenv("TORCHELASTIC_MAX_RESTARTS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=r"^latentsweep.traverse: resume=True but there is no sweep at"):
        sweep(tmp_path / "s.zarr", resume=True)
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("reader", [ls.open_sweep, ls.sweep_status])
def test_reading_a_path_that_holds_no_store_asks_for_a_stores_path(tmp_path, reader):
    """open_sweep / sweep_status only read: "choose another path (it is never overwritten)" is a
    writer's advice; they ask for the path of a stored sweep instead."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("x")
    np.save(tmp_path / "plain.npy", np.arange(3))
    for path in (tmp_path / "results", tmp_path / "plain.npy"):
        with pytest.raises(ValueError, match=rf"^latentsweep\.{reader.__name__}: .* exists and is not a latentsweep "
                                             r"sweep store: pass the path of a stored sweep \(a \.zarr folder, or the "
                                             r"\.npy file of a \.npy store\)$"):
            reader(path)
    with pytest.raises(ValueError, match=r"is not a latentsweep sweep store; choose another path"):
        sweep(tmp_path / "results")  # a writer still says so


def test_a_shards_status_prints_which_units_are_missing(tmp_path):
    """README: a shard returns "a StoreStatus saying which units are missing"; printed in a job's
    log (print(result)) it says so, not just the done set."""
    status = sweep(tmp_path / "s.zarr", shard=(0, 2))
    assert isinstance(status, ls.StoreStatus)
    assert status.missing
    assert str(status) == status.summary()
    assert "missing units: " in str(status) and "missing units: " in f"{status}"
    assert repr(status).startswith("StoreStatus(")  # the dataclass repr is kept


@pytest.mark.parametrize("empty", ["", " ", b""])
def test_an_empty_store_path_is_named_as_empty(empty):
    # (out="" became ".", refused as "`.` exists and is not a latentsweep sweep store")
    with pytest.raises((ValueError, TypeError), match=r"latentsweep\.open_sweep: path (is an empty path|must be)"):
        ls.open_sweep(empty)
    if isinstance(empty, str):
        with pytest.raises(ValueError, match=r"latentsweep\.traverse: out is an empty path"):
            ls.traverse(torch.nn.Linear(2, 3), torch.zeros(1, 2), steps=2, out=empty, progress=False)
