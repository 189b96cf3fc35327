"""Who writes a sweep store: its writers' leases, whether the process behind one still runs, and
the temporaries a creating process leaves when it is killed (see stores.py for the layout)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

LEASE_SECONDS = 300.0  # a writer on another host whose lease is older than this is presumed dead
LEASE_REFRESH_SECONDS = 30.0
STALE_TEMPORARY_SECONDS = 3600.0  # a temporary whose creator cannot be checked is presumed dead after this


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # (no such pid can run: a damaged lease or name)
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process pid started (field 22 of /proc/<pid>/stat: clock ticks after boot), so that
    a pid reused by a later process is told apart; None where it cannot be read (not Linux)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def writer_alive(pid: int, start_time) -> bool:
    """Whether the process of a lease made on this host still runs: its pid exists and, where
    the lease recorded one, it has the lease's start time (not a later process given its pid)."""
    if not pid_alive(pid):
        return False
    now = process_start(pid) if start_time is not None else None
    return now is None or now == start_time


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_path(path: Path) -> Path:
    """A hidden temporary beside path, to be renamed into place; its name says who made it (host,
    pid, start time), so that one left by a killed process is recognised and removed."""
    pid = os.getpid()
    return path.with_name(f".{path.name}.tmp-{_host_tag()}-{pid}-{process_start(pid) or 0}-{uuid.uuid4().hex}")


def _temporaries(path: Path):
    """(entry, live) for each temporary of path (see temporary_path): live while its creator may
    still be using it (see _creator_live)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.tmp-(?:([0-9a-f]{{8}})-(\d+)-(\d+)-)?[0-9a-f]{{32}}")
    yield from _named_temporaries(path.parent, pattern, 10)


def _named_temporaries(folder: Path, pattern: re.Pattern, base: int):
    """(entry, live) for each entry of folder whose name ``pattern`` matches, its groups the
    creator's host tag, pid and start time (digits in ``base``; absent: a version that did not
    name its creator)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        host, pid, start_time = match.groups()
        try:
            live = _creator_live(entry, host, int(pid or "0", base), int(start_time or "0", base))
        except OSError:
            continue  # removed meanwhile
        yield entry, live


def _creator_live(entry: Path, host: str | None, pid: int, start_time: int) -> bool:
    """Whether the process that made a temporary may still be using it: made on this host (its
    name's host tag) by a process that still runs (start time 0: not known); else (another
    host, or a version that did not name its creator) while younger than STALE_TEMPORARY_SECONDS
    (its writer refreshes it as it writes). OSError when it is gone."""
    if host == _host_tag():
        return writer_alive(pid, start_time or None)
    return time.time() - entry.lstat().st_mtime < STALE_TEMPORARY_SECONDS


def chunk_temporary_path(path: Path) -> Path:
    """A temporary beside the chunk file at path, written while its unit is decoded and renamed
    onto it when the unit is done (streamed_chunks.py). Named as zarr names its own
    ("<name>.<32 hex>.partial", which stores.foreign_entries, of this version and older ones,
    counts as a store's), with hex that says who made it, as temporary_path's name does: host
    tag, pid, start time, then 4 random."""
    pid = os.getpid()
    creator = f"{_host_tag()}{pid % 16**8:08x}{(process_start(pid) or 0) % 16**12:012x}"
    return path.with_name(f"{path.name}.{creator}{uuid.uuid4().hex[:4]}.partial")


def remove_dead_chunk_temporaries(path: Path) -> None:
    """Removes the temporaries of the chunk file at path (chunk_temporary_path's) whose creator
    is gone (_creator_live): those a killed writer left, as large as the rows it had written.
    A zarr temporary there (random hex) reads as another host's, removed once stale."""
    hex_ = "[0-9a-f]"
    pattern = re.compile(rf"{re.escape(path.name)}\.({hex_}{{8}})({hex_}{{8}})({hex_}{{12}}){hex_}{{4}}\.partial")
    for entry, live in _named_temporaries(path.parent, pattern, 16):
        # (a folder or link by that name is not a temporary this code made: left alone)
        if not live and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(OSError):  # (removed meanwhile by another process)
                entry.unlink()


def remove_stale_temporaries(path: Path, own_entries: set[str]) -> None:
    """Removes the temporaries of path left by killed processes (not live, see _temporaries). A
    folder only if it holds nothing but `own_entries` (a store's own)."""
    for entry, live in _temporaries(path):
        if live:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                if all(e.name in own_entries for e in entry.iterdir()):
                    shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue  # removed meanwhile by another process, or not ours to remove


def being_created(path: Path) -> bool:
    """Whether a live process is creating path: a live temporary of it exists (renamed into place
    when done, so once it is gone, path is there or nobody is making it)."""
    return any(live for _, live in _temporaries(path))


# A lease's file name, as a writer makes it (stores.SweepStore._take_lease): host-pid-token.json.
# A file in leases/ by any other name was not written by latentsweep (overwrite=True keeps it).
LEASE_NAME = re.compile(r"[^/]*-\d+-[0-9a-f]{8}\.json")


def lease_name(host: str, pid: int) -> str:
    return f"{host}-{pid}-{uuid.uuid4().hex[:8]}.json"


def lease_record(meta_path: Path, sweep_id: str) -> dict:
    """What a writer's lease on the store at meta_path says: who holds it (host, pid and start
    time, see writer_alive), for which sweep, and the store folder's inode and real path (see
    copied_lease)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "sweep_id": sweep_id, "start_time": process_start(pid),
            "store_ino": os.stat(meta_path).st_ino, "store_path": os.path.realpath(meta_path)}


def copied_lease(info: dict, meta_path: Path) -> bool:
    """Whether a lease of this host lies in a store folder other than the one it was written
    for, i.e. was copied along with its store (shutil.copytree while the writer ran): its writer
    does not write this store. The inode alone, not st_dev: a second mount of the same file
    system (NFS mounted twice) gives the same folder another st_dev, and a copy on the same file
    system always has another inode. A rename or a symbolic link keeps the inode, so a moved
    store stays protected. The folder's real path counts too: a lease still in the folder it
    names is no copy's, even where inode numbers are not stable over a folder's life (FUSE
    without use_ino, CIFS with noserverino). A lease without an inode (older versions) or a
    folder that cannot be read is not taken for a copy."""
    recorded = info.get("store_ino")
    if type(recorded) is not int:
        return False
    try:
        if os.stat(meta_path).st_ino == recorded:
            return False
        return info.get("store_path") != os.path.realpath(meta_path)
    except OSError:  # removed meanwhile: nothing to protect, nor to tell
        return False


def live_writers(meta_path: Path) -> list[str]:
    """Other processes holding a live lease on the store at meta_path ('pid 12 on host'). The
    one rule for every reader of leases: a lease of this host is live while its process runs
    (writer_alive) and it was written for this folder (copied_lease); another host's while it
    is younger than LEASE_SECONDS (its pids and inodes cannot be checked from here)."""
    live = []
    for lease in sorted((meta_path / "leases").glob("*.json")):
        if not LEASE_NAME.fullmatch(lease.name):
            continue  # not a lease (see foreign_entries)
        try:
            age = time.time() - lease.stat().st_mtime
        except OSError:
            continue  # released meanwhile
        try:
            info = json.loads(lease.read_text(encoding="utf-8"))
            host, pid, start_time = str(info["host"]), int(info["pid"]), info.get("start_time")
        except Exception:  # noqa: BLE001 - half-written (a writer starting) or damaged: judged by age alone
            if age < LEASE_SECONDS:
                live.append(f"an unreadable lease {lease.name}, {age:.0f} s old: a writer starting, or damaged (it "
                            f"counts as live until {LEASE_SECONDS:.0f} s old)")
            continue
        if host == socket.gethostname() and pid > 0:  # (kill() of pid 0 or -1 signals groups)
            alive = pid != os.getpid() and writer_alive(pid, start_time) and not copied_lease(info, meta_path)
        else:
            alive = age < LEASE_SECONDS
        if alive:
            live.append(f"pid {pid} on {host}")
    return live


def keep_fresh(lease: Path) -> tuple[threading.Event, threading.Thread]:
    """Refreshes the lease file every LEASE_REFRESH_SECONDS from a daemon thread until the event
    is set: seen from another host a lease is live only while younger than LEASE_SECONDS, and
    one batch may take longer than that. Returns (stop event, thread)."""
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(LEASE_REFRESH_SECONDS):
            try:
                os.utime(lease)
            except OSError:
                return  # removed: the writer finds out at its next write
    thread = threading.Thread(target=refresh, name=f"latentsweep lease {lease.name}", daemon=True)
    thread.start()
    return stop, thread
