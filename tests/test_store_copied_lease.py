"""A store copied while its writer runs (shutil.copytree) carried the writer's lease, so
overwrite=True on the copy was refused as "in use" until the original's writer ended, though
no process writes the copy. A lease records its store folder's inode: one of this host in
another folder is a copy's; the store itself, renamed or not, stays protected."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import latentsweep as ls
from latentsweep import store_writers
from sweep_models import rowwise_decoder

TESTS = Path(__file__).parent
ANCHORS = torch.randn(8, 6, generator=torch.Generator().manual_seed(3))
STEPS, BATCH = 10, 16

# A writer that holds the store: once its lease is taken (at its first write), every decoder
# call waits until the test creates the release file.
HOLDING_WRITER = """
import sys, time, torch, latentsweep as ls
from pathlib import Path
sys.path.insert(0, {tests!r})
from sweep_models import rowwise_decoder
out, release = Path({path!r}), Path({release!r})

def held(codes):
    deadline = time.monotonic() + 120
    while list((out / "leases").glob("*.json")) and not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return rowwise_decoder(codes)

ls.traverse(held, torch.randn(8, 6, generator=torch.Generator().manual_seed(3)), steps=10, batch_size=16, out=out)
"""


def sweep(path, **kwargs):
    return ls.traverse(rowwise_decoder, ANCHORS, steps=STEPS, batch_size=BATCH, out=path, **kwargs)


@pytest.fixture
def held_store(tmp_path):
    """(store path, release file, writer process): a live writer holding its lease on the store."""
    path, release = tmp_path / "busy.zarr", tmp_path / "release"
    writer = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER.format(tests=str(TESTS), path=str(path),
                                                                           release=str(release))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (path.is_dir() and list((path / "leases").glob("*.json"))):
            assert writer.poll() is None, writer.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield path, release, writer
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.communicate()


def test_a_copy_of_a_store_being_written_can_be_overwritten_and_the_original_cannot(held_store, tmp_path):
    path, release, writer = held_store
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    assert [p.name for p in (copy / "leases").iterdir()] == [p.name for p in (path / "leases").iterdir()]
    assert sweep(copy, overwrite=True).points_computed == STEPS * ANCHORS.numel()
    with pytest.raises(ValueError, match=rf"in use by another sweep \(pid {writer.pid} on "):
        sweep(path, overwrite=True)
    release.touch()
    assert writer.wait(timeout=60) == 0, writer.communicate()  # its lease was left alone
    assert ls.sweep_status(path).complete and ls.sweep_status(copy).complete


def test_a_store_moved_while_being_written_is_still_refused(held_store, tmp_path):
    path, _, writer = held_store
    moved = tmp_path / "moved.zarr"
    os.rename(path, moved)  # the same folder: its inode, and its writer, go with it
    with pytest.raises(ValueError, match=rf"in use by another sweep \(pid {writer.pid} on "):
        sweep(moved, overwrite=True)
    assert writer.poll() is None


def test_which_leases_of_a_live_process_are_live(tmp_path):
    """live_writers, with leases of a live process written by hand: one recording another
    folder's inode and path is a copy's (not live) on this host; one without an inode (older
    versions), recording this folder's inode, or this folder's path with another inode (a file
    system whose inodes change over a folder's life), or of another host (judged by age alone)
    is live."""
    store, elsewhere = tmp_path / "s.zarr", tmp_path / "elsewhere"
    (store / "leases").mkdir(parents=True)
    elsewhere.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        info = {"pid": other.pid, "sweep_id": "x", "start_time": store_writers.process_start(other.pid)}
        this_host, here, there = socket.gethostname(), os.stat(store).st_ino, os.stat(elsewhere).st_ino
        real_path = os.path.realpath(store)
        for host, fields, live in ((this_host, {"store_ino": there}, False), (this_host, {}, True),
                                   (this_host, {"store_ino": there, "store_path": str(elsewhere)}, False),
                                   (this_host, {"store_ino": there, "store_path": real_path}, True),
                                   (this_host, {"store_ino": here}, True), (this_host, {"store_ino": "9"}, True),
                                   ("another-host", {"store_ino": there}, True)):
            lease = store / "leases" / f"{host}-{other.pid}-0000abcd.json"
            lease.write_text(json.dumps({"host": host, **info, **fields}))
            assert store_writers.live_writers(store) == ([f"pid {other.pid} on {host}"] if live else []), fields
            lease.unlink()
    finally:
        other.kill()
        other.wait()


def test_a_writers_lease_records_its_stores_inode_and_path(tmp_path, monkeypatch):
    import latentsweep.stores as stores

    path = tmp_path / "s.zarr"
    sweep(path)
    (path / "units" / "u000000001.rec").unlink()  # the resume writes: it takes a lease
    seen = []

    def keep_fresh(lease):
        seen.append(json.loads(lease.read_text()))
        return store_writers.keep_fresh(lease)

    monkeypatch.setattr(stores, "keep_fresh", keep_fresh)
    sweep(path, resume=True)
    assert [(record["store_ino"], record["store_path"]) for record in seen] == [(os.stat(path).st_ino,
                                                                                os.path.realpath(path))]
