"""A sweep on disk: resumable, shared by the ranks or shards of one sweep, never silently wrong.

Layout of ``out="sweep.zarr"`` (a zarr v3 group; with ``out="sweep.npy"`` the outputs go to that
memory-mappable ``.npy`` file and the rest to the group ``sweep.npy.latentsweep`` beside it):

- ``zarr.json``: the sweep's identity (``sweep_id``, a hash of its parameters), the parameters,
  the plan (batch size, unit and chunk rows) and checksums of the static arrays;
- static arrays ``anchors``, ``dims``, ``values``, ``anchor_outputs`` (and ``directions`` for a
  sweep along directions, ``path_ends`` for an interpolation), written before the store
  exists under its name (it is created in a temporary directory and renamed into place, so a
  store never exists half-made);
- ``effect`` and ``outputs`` chunked along the grid: every chunk belongs to exactly one work unit,
  so no two processes ever write the same chunk;
- ``units/uNNNNNNNNN.rec``: one completion record per unit (written atomically after the unit's
  rows): its statistics (its sums for the latents its traversals touch, see merge.py) and CRC-32
  checksums of its effect and output rows. A unit counts as done only if its record loads and
  its rows still match the checksums; zarr does not store chunks equal to the fill value, so a
  chunk file's existence is never taken as a record;
- ``leases/``: one file per live writer process. ``overwrite=True`` is refused while another
  process holds a live lease (a crashed writer's lease is not live: its process is gone or its
  pid now belongs to a process started later, or, on another host, the lease was not refreshed
  for ``LEASE_SECONDS``; a writer refreshes its lease every ``LEASE_REFRESH_SECONDS`` from a
  thread while it holds it; see store_writers.py). A lease records the inode of the store's
  folder, so one of this host found in another folder was copied there with its store and
  does not lock the copy (a renamed store keeps its inode and its protection).

A store removes (overwrite=True) or replaces (a repair) only what it wrote: the paths of
``_OWN_FOLDER``/``_OWN_FILE`` in its folder, and the ``.npy`` only when it holds the outputs its
metadata says (``foreign_npy``); a ``keep_outputs=False`` store writes no ``.npy``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import threading
import time
import uuid
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr

from . import _checks
from ._modules import tensor_digest
from .merge import OrderedMerge, RunningMerge, UnitStatistics, unit_latents
from .paths import PATHS
from .plan import SweepPlan, plan_from_dict
from .sinks import Geometry
from .store_verified import VerifiedSoFar
from .store_writers import (LEASE_NAME, being_created, copied_lease, keep_fresh, lease_name, lease_record,
                            live_writers, remove_stale_temporaries, temporary_path)
from .streamed_chunks import ChunkStream, pwrite_all, raw_chunks, write_chunk

# 3: unit records end with a checksum of the whole record (2's header had none); 4: an
# interpolation's store keeps its paths' ends (3's could not be opened as an Interpolation); 5: a
# unit's record holds the statistics of the latents its traversals touch (4's: of all K, its size
# grew with K: a store's records with K²)
STORE_FORMAT = 5
_ATTR = "latentsweep"
_STATIC = ("anchors", "dims", "values", "anchor_outputs")  # every store has these
_OPTIONAL_STATIC = ("directions", "path_ends")  # [K, D] for a sweep along directions, [A, D] for an interpolation
_ROW_ARRAYS = ("effect", "outputs")
_OWN_ENTRIES = {"zarr.json", "units", "leases", "checkpoint", *_STATIC, *_OPTIONAL_STATIC, *_ROW_ARRAYS}
NPY_CREATION_GRACE_SECONDS = 10.0  # a joiner waits at most this long for a live creator's .npy to appear
READ_BLOCK_BYTES = 64 << 20  # checking a store reads the rows of this many bytes' worth of units at once
# What another machine wrote into a shared store may not be visible here at once: NFS keeps a name
# it found absent for up to its acdirmax, 60 s by default (this process looked: a store's check
# looks for every unit's record, a rank's argument checks at out=). A name another process says it
# has written (rank 0's new store, the other ranks' unit records) is looked for again until then.
WRITTEN_ELSEWHERE_VISIBLE_SECONDS = 60.0
# A resumed sweep keeps at most this many bytes of statistics of units done but not yet mergeable
# (a unit after one still missing) for its final merge; the units beyond are read again then.
KEEP_STATISTICS_BYTES = 64 << 20
_OUTPUT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                  "float64": torch.float64}


class StoreDamaged(ValueError):
    """The store's own files are missing or do not match their records."""


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype a torch dtype is stored as (bfloat16, which numpy lacks, as float32)."""
    if dtype == torch.bfloat16:
        return np.dtype(np.float32)
    return torch.empty((), dtype=dtype, device="cpu").numpy().dtype


def stored_array(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as the store keeps it: on the CPU, detached, bfloat16 widened to float32."""
    tensor = tensor.detach().cpu()
    tensor = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
    return np.ascontiguousarray(tensor.numpy())


def crc(array: np.ndarray, value: int = 0) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), value)


# What a unit whose rows are not what its record says is found to be (status, reads, results).
_EFFECT_ROWS_ALTERED = "its effect rows do not match their checksum (missing or altered chunks)"
_OUTPUT_ROWS_ALTERED = "its output rows do not match their checksum (missing or altered chunks)"
_RECORD_MAGIC = b"LSUNIT1\n"
_RECORD_CRC_BYTES = 4


def _record_pieces(header: dict, arrays: dict[str, np.ndarray]) -> list:
    """A unit's completion record before its CRC, in pieces: magic, header length, JSON header
    (with each array's shape), then the float64 arrays' bytes in the header's order (views of
    their memory, not copies). The CRC32 of all that ends the record: the header is checked as
    the payload is (with the payload's CRC alone, a header edited to list the arrays in another
    order read each from the other's bytes). Fast to read; no pickle."""
    text = json.dumps({**header, "arrays": {name: list(a.shape) for name, a in arrays.items()}}).encode()
    return [_RECORD_MAGIC, len(text).to_bytes(8, "little"), text,
            *(np.ascontiguousarray(a, dtype="<f8").reshape(-1).view(np.uint8) for a in arrays.values())]


def encode_record(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """A unit's completion record (see _record_pieces) as bytes."""
    record = b"".join(_record_pieces(header, arrays))
    return record + zlib.crc32(record).to_bytes(_RECORD_CRC_BYTES, "little")


def write_record(path: Path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Writes encode_record's bytes to ``path`` piece by piece: built as one bytes object, a
    unit's sums [n, F] were copied four times at every unit's end, two copies alive at once
    (+0.25 GiB at the peak of a store's sweep of 32 latents of 3 x 512 x 512 outputs)."""
    crc_so_far = 0
    with open(path, "wb") as file:
        for piece in _record_pieces(header, arrays):
            crc_so_far = zlib.crc32(piece, crc_so_far)
            file.write(piece)
        file.write(crc_so_far.to_bytes(_RECORD_CRC_BYTES, "little"))


def visible_by(path: Path, deadline: float) -> bool:
    """Whether ``path`` exists, looked for again until ``deadline`` (time.monotonic()) when it
    does not (see WRITTEN_ELSEWHERE_VISIBLE_SECONDS)."""
    pause = 0.05
    while not os.path.lexists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(2 * pause, 1.0)
    return True


def read_record(path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a record whose arrays are exactly ``shapes`` (name -> shape); ValueError
    saying what is wrong if it is not intact or not such a record."""
    if not os.path.lexists(path):  # (said "is a folder": a record another rank wrote into a store not shared)
        raise ValueError(f"{path.name} is missing")
    if not path.is_file() or path.is_symlink():
        raise ValueError(f"{path.name} is a {'symbolic link' if path.is_symlink() else 'folder'}, not a record")
    data = path.read_bytes()
    if not data.startswith(_RECORD_MAGIC) or len(data) < len(_RECORD_MAGIC) + 8 + _RECORD_CRC_BYTES:
        raise ValueError("not a unit record")
    data, checksum = data[:-_RECORD_CRC_BYTES], int.from_bytes(data[-_RECORD_CRC_BYTES:], "little")
    if zlib.crc32(data) != checksum:
        raise ValueError("truncated or altered")
    size = int.from_bytes(data[len(_RECORD_MAGIC) : len(_RECORD_MAGIC) + 8], "little")
    body = len(_RECORD_MAGIC) + 8
    try:
        header = json.loads(data[body : body + size])
        found = {str(k): tuple(int(n) for n in v) for k, v in header["arrays"].items()}
        header["rows"], header["crc"] = [int(r) for r in header["rows"]], [int(c) for c in header["crc"]]
        header["sweep_id"] = str(header["sweep_id"])
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"unreadable header ({type(error).__name__})") from None
    if found != {name: tuple(shape) for name, shape in shapes.items()} or len(header["crc"]) != 2 \
            or len(header["rows"]) != 2:
        raise ValueError(f"a record of other arrays ({found})")
    payload = data[body + size :]
    if len(payload) != 8 * sum(math.prod(shape) for shape in found.values()):
        raise ValueError("truncated or altered")
    arrays, offset = {}, 0
    for name, shape in found.items():
        count = math.prod(shape)
        arrays[name] = np.frombuffer(payload, dtype="<f8", count=count, offset=offset).reshape(shape)
        offset += 8 * count
    return header, arrays


@dataclass
class StoreStatus:
    """Which units of a stored sweep are complete and intact (:func:`latentsweep.sweep_status`,
    and what a sweep with ``shard=`` returns).

    Attributes:
        path: the store.
        num_units: the work units the sweep is planned as.
        done: the units whose record is there and whose data match it.
        damaged: unit -> why its record is not valid (missing data, a checksum that differs);
            ``resume=True`` computes them again.
        done_rows: grid points in the done units. total_rows: grid points in the sweep.
        damaged_arrays: static array (anchors, values, ...) -> why it is not valid
            (``resume=True`` writes it again).
    Properties: ``missing`` (the units not done, in order), ``complete`` (every unit done and
    intact, and the static arrays too).
    """

    path: Path
    num_units: int
    done: set[int]
    damaged: dict[int, str] = field(default_factory=dict)
    done_rows: int = 0
    total_rows: int = 0
    damaged_arrays: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = (f"{self.path}: {len(self.done)} of {self.num_units} work units done "
                f"({self.done_rows} of {self.total_rows} points)")
        if self.missing:
            text += f"; missing units: {describe_units(self.missing)}"
        if self.damaged:
            text += "; damaged: " + "; ".join(f"unit {u}: {why}" for u, why in sorted(self.damaged.items())[:5])
        if self.damaged_arrays:
            text += "; damaged arrays: " + "; ".join(f"{name} {why}" for name, why in self.damaged_arrays.items())
        return text

    def __str__(self) -> str:  # print(traverse(..., shard=...)) in a job's log: which units are missing
        return self.summary()

    @property
    def missing(self) -> list[int]:
        return [u for u in range(self.num_units) if u not in self.done]

    @property
    def complete(self) -> bool:
        """Every unit done and intact, and so are the static arrays (anchors, values...)."""
        return len(self.done) == self.num_units and not self.damaged_arrays


def describe_units(units: list[int], limit: int = 12) -> str:
    """``0-3, 7, 9`` (ranges of consecutive units)."""
    parts, start = [], None
    for i, unit in enumerate(units):
        start = unit if start is None else start
        if i + 1 == len(units) or units[i + 1] != unit + 1:
            parts.append(f"{start}" if start == unit else f"{start}-{unit}")
            start = None
    return ", ".join(parts[:limit]) + (", ..." if len(parts) > limit else "")


def sweep_id(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]


_NPY_FOLDER = ".latentsweep"  # a .npy store keeps its metadata in the folder <name>.npy.latentsweep


def paths_of(path: Path) -> tuple[Path, Path | None]:
    """(zarr group path, .npy outputs path or None) for a user's out= path."""
    if path.suffix == ".npy":
        return path.with_name(path.name + _NPY_FOLDER), path
    return path, None


def writer_of(params: dict) -> str:
    """The function that wrote a store, from its recorded mode: interpolation paths are stored
    under their path's name ("linear", "slerp"), traversals under theirs."""
    return "interpolate" if params.get("mode") in PATHS else "traverse"


def recorded_params(path: Path) -> dict | None:
    """The parameters of the store at ``path`` as its metadata records them, read unchecked
    (opening it checks them): None where there is no store or it cannot be read."""
    try:
        meta = json.loads((paths_of(path)[0] / "zarr.json").read_text(encoding="utf-8"))
        return dict(meta["attributes"][_ATTR]["params"])
    except Exception:  # noqa: BLE001 - missing, damaged or foreign metadata
        return None


def recorded_writer(path: Path) -> str:
    """:func:`writer_of` the store at ``path`` by its recorded parameters, for the words of
    advice about a store that may be damaged: "traverse" where they cannot be read."""
    params = recorded_params(path)
    return "traverse" if params is None else writer_of(params)


def store_path(fn: str, argument: str, path) -> Path:
    """The path of a store as a public function takes it (``out=``, ``path``), checked once for
    all of them: ``~`` expanded (else a folder named ``~`` is made), and not the metadata folder
    of a .npy store, which read on its own looks damaged and, replaced, loses the .npy store."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: {argument} must be a str or os.PathLike, got {type(path).__name__}")
    if not os.fspath(path).strip():  # (Path("") is ".": refused as "`.` is not a sweep store")
        raise ValueError(f"{fn}: {argument} is an empty path; pass the store's path, e.g. 'sweep.zarr'")
    path = _checks.user_path(path)
    if path.name.endswith(".npy" + _NPY_FOLDER):
        npy = path.with_name(path.name.removesuffix(_NPY_FOLDER))
        if path.exists() or npy.exists():
            raise ValueError(f"{fn}: {path} is the metadata folder of the .npy store {npy}; pass {npy} "
                             f"(the store is the .npy and this folder together)")
        raise ValueError(f"{fn}: {argument}={str(path)!r} names the metadata folder of a .npy store; pass {npy} "
                         "for a .npy store, or choose another name")
    return path


# What the longest name a store writes beside its own adds to it: a temporary
# ".NAME.tmp-<host 8>-<pid <= 7 digits>-<start time <= 20>-<uuid 32>" (store_writers.temporary_path).
_TEMPORARY_NAME_EXTRA = len(".") + len(".tmp-") + 8 + 1 + 7 + 1 + 20 + 1 + 32


def check_store_name(fn: str, path: Path) -> None:
    """A store to be written at ``path`` (``out=``): its folder and the temporaries beside it
    fit the file system's name length (a longer name failed with a bare OSError, "File name too
    long", after the decoder's probe)."""
    longest = max(len(p.name) for p in paths_of(path) if p is not None) + _TEMPORARY_NAME_EXTRA
    existing = next((p for p in (path.parent, *path.parent.parents) if p.is_dir()), Path("."))
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if longest > limit:
        raise ValueError(
            f"{fn}: out={str(path)!r}: the name {path.name!r} is {len(path.name)} characters long; the file system "
            f"takes names of at most {limit} and the store writes temporaries named after it, "
            f"{longest - len(path.name)} characters longer: choose a name of at most {len(path.name) - longest + limit}"
        )


def looks_like_store(meta_path: Path) -> bool:
    """Whether a folder holds what every store has, even without its zarr.json: the units'
    records folder and the effect array."""
    return (meta_path / "units").is_dir() and (meta_path / "effect" / "zarr.json").is_file()


def _own_folder(meta_path: Path) -> bool:
    """Whether a folder is a store's even without its zarr.json: it looks like one, has the
    leases folder, and holds nothing a store does not write."""
    try:
        return (looks_like_store(meta_path) and (meta_path / "leases").is_dir()
                and all(e.name in _OWN_ENTRIES or _TEMPORARY.fullmatch(e.name) for e in meta_path.iterdir()))
    except OSError:
        return False


_NPY_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    """(shape, fortran_order, dtype) of a .npy file; None when it is not one (another format, or
    cut short before the end of its header). OSError when it cannot be read at all."""
    with open(path, "rb") as file:
        try:
            return _NPY_READERS[np.lib.format.read_magic(file)](file, max_header_size=1 << 16)
        except (ValueError, KeyError, EOFError, SyntaxError):
            return None


def foreign_npy(meta_path: Path, npy_path: Path) -> str | None:
    """Why the file at ``npy_path`` is not the outputs file the .npy store at ``meta_path`` wrote
    (None when it is, or when nothing is there): the store may remove or replace its own file
    only. Its own is an .npy of the array its metadata says (or, with that unreadable, of as
    many grid points as its effect array), in any state of damage that left it a file."""
    if not os.path.lexists(npy_path):
        return None
    if npy_path.is_symlink() or not npy_path.is_file():
        return f"it is a {'symbolic link' if npy_path.is_symlink() else 'folder'}, not a file"
    try:
        meta = json.loads((meta_path / "zarr.json").read_text(encoding="utf-8"))["attributes"][_ATTR]
        g = meta["geometry"]
        if not meta["keep_outputs"]:
            return "its sweep was made with keep_outputs=False: it writes no .npy"
        shape = (int(g["num_anchors"]), int(g["num_dims"]), int(g["num_steps"]), *map(int, g["out_shape"]))
        fits = lambda found: found == shape  # noqa: E731
    except Exception:  # noqa: BLE001 - damaged metadata: judged by the number of grid points alone
        try:
            rows = int(json.loads((meta_path / "effect" / "zarr.json").read_text(encoding="utf-8"))["shape"][0])
        except Exception:  # noqa: BLE001
            return "the store's metadata is unreadable, so nothing says the store wrote it"
        fits = lambda found: len(found) >= 3 and math.prod(found[:3]) == rows  # noqa: E731
    try:
        if npy_path.stat().st_size == 0:
            return None  # (emptied: nothing in it to keep)
        header = npy_header(npy_path)
        with open(npy_path, "rb") as file:
            magic = file.read(6)
    except OSError as error:
        return f"it cannot be read ({error.strerror or error})"
    if magic != b"\x93NUMPY":
        return "it is not a .npy file"
    if header is not None and not fits(tuple(header[0])):
        return f"it holds an array of shape {tuple(header[0])}, not the store's outputs"
    return None  # the store's, or its own file cut short in its header


def consecutive_runs(units: list[int], longest: int) -> list[list[int]]:
    """Sorted ``units`` cut into runs of consecutive units, each at most ``longest`` long: a
    block of rows read at once holds recorded units only (a shard's units, every n-th, read as
    one block spanned the other shards' rows: a read of n times the block size)."""
    runs: list[list[int]] = []
    for unit in units:
        if runs and unit == runs[-1][-1] + 1 and len(runs[-1]) < longest:
            runs[-1].append(unit)
        else:
            runs.append([unit])
    return runs


class SweepStore:
    """An opened store (implements :class:`latentsweep.sinks.Sink`). Open with
    :func:`open_store`, :func:`create_store` or :func:`read_store`."""

    def __init__(self, path: Path, *, writable: bool):
        self.path = path
        self.meta_path, self.npy_path = paths_of(path)
        self.writable = writable
        try:
            self.group = zarr.open_group(self.meta_path, mode="r+" if writable else "r")
            meta = dict(self.group.attrs[_ATTR])
        except Exception:  # noqa: BLE001 - anything unreadable is "not ours", unless clearly ours
            meta_file = self.meta_path / "zarr.json"
            if _own_folder(self.meta_path):
                raise StoreDamaged(
                    f"the sweep store {path} is damaged: its metadata {meta_file} is "
                    f"{'unreadable' if meta_file.exists() else 'missing'}, so its units cannot be used; pass "
                    "overwrite=True to start over"
                ) from None
            raise not_a_store(path, reading=not writable) from None
        if meta.get("format") != STORE_FORMAT:
            raise StoreDamaged(
                f"{path} was written by an incompatible latentsweep version (store format "
                f"{meta.get('format')!r}, this version reads {STORE_FORMAT}); pass overwrite=True to replace it"
            )
        try:
            self.sweep_id = str(meta["sweep_id"])
            self.params = dict(meta["params"])
            self.plan = plan_from_dict(meta["plan"])
            g = meta["geometry"]
            self.geometry = Geometry(int(g["num_anchors"]), int(g["num_dims"]), int(g["num_steps"]),
                                     tuple(int(s) for s in g["out_shape"]), _OUTPUT_DTYPES[g["output_dtype"]])
            self.latent_dim = int(meta["latent_dim"])
            self.keep_outputs = bool(meta["keep_outputs"])
            self.static_crc = {name: int(meta["static_crc"][name]) for name in _STATIC}
            self.static_crc |= {name: int(meta["static_crc"][name]) for name in _OPTIONAL_STATIC
                                if name in meta["static_crc"]}
            # (recorded since the 34th session; an older store's grid arrays share the anchors' dtype)
            recorded_dtypes = meta.get("static_dtypes")
            self.static_dtypes = None if recorded_dtypes is None else {
                name: np.dtype(str(recorded_dtypes[name])) for name in self.static_crc}
            if sweep_id(self.params) != self.sweep_id or self.plan.num_rows != self.geometry.num_rows:
                raise ValueError("the sweep's identity does not match its parameters")
            recorded = {"keep_outputs": self.keep_outputs, "grid": list(self.geometry.grid_shape),
                        "out_shape": list(self.geometry.out_shape), "latent_dim": self.latent_dim,
                        "output_dtype": str(self.geometry.output_dtype)}
            if any(self.params.get(key, value) != value for key, value in recorded.items()):
                raise ValueError("its keep_outputs or geometry do not match its parameters")
            if self.plan.trial_units:  # a store's units all have its chunks' size (see plan.py)
                raise ValueError("its plan has trial units, which only in-memory sweeps keep")
            if ("directions" in self.static_crc) != (self.params.get("codes") == "directions"):
                raise ValueError("its directions do not match its parameters")
            if ("path_ends" in self.static_crc) != (self.params.get("mode") in PATHS):
                raise ValueError("its paths' ends do not match its parameters")
            for folder in (self.meta_path / "units", self.meta_path / "leases"):
                if os.path.lexists(folder) and not folder.is_dir():  # (missing ones are made again)
                    raise StoreDamaged(
                        f"the sweep store {path} is damaged: {folder} is a file, not the store's folder (latentsweep "
                        "did not write it): move it away, then resume=True computes the units it has no records of"
                    )
            self._arrays = {name: self.group[name] for name in (*self.static_crc, "effect")}
            if self.keep_outputs and self.npy_path is None:
                self._arrays["outputs"] = self.group["outputs"]
            self._check_array_shapes()
            # A unit that is one chunk of outputs (not one batch) goes to its chunk file as its
            # batches arrive, where the file is its rows' raw bytes (see streamed_chunks.py);
            # else it is held until done and written through zarr.
            plan = self.plan
            self._unit_chunks = raw_chunks(self._arrays["outputs"]) if (
                "outputs" in self._arrays and plan.chunk_rows == plan.unit_rows != plan.batch_size) else None
            # Where a chunk is a batch, each batch is written as its chunk's file (zarr's bytes,
            # without zarr's call into its event-loop thread, 0.6 ms a write); a unit's effect is
            # one chunk, written so too.
            self._batch_chunks = raw_chunks(self._arrays["outputs"]) if (
                "outputs" in self._arrays and plan.chunk_rows == plan.batch_size) else None
            self._effect_chunks = raw_chunks(self._arrays["effect"])
        except StoreDamaged:
            raise
        except Exception as error:  # noqa: BLE001 - forged or truncated metadata
            raise StoreDamaged(
                f"the sweep store {path} is damaged: its metadata ({self.meta_path / 'zarr.json'}) or arrays "
                f"are unreadable or inconsistent ({type(error).__name__}: {error}); pass overwrite=True to start over"
            ) from None
        # What this open has checked (static arrays, units' records and rows) and merged: not read again.
        self._verified = VerifiedSoFar(num_units=self.plan.num_units, num_rows=self.plan.num_rows,
                                       num_dims=self.geometry.num_dims, features=self.geometry.features,
                                       effect_dtype=numpy_dtype(self.geometry.statistics_dtype))
        self._effect_crc: dict[int, int] = {}  # unit -> its effect rows' checksum, as merged() read its record
        self._npy_offset = None
        # The public function writing through this store, for the messages of errors raised
        # while it writes (the command line tells the library's messages by their prefix).
        self.caller = "latentsweep"
        self._lease: Path | None = None
        self._refresher: tuple[threading.Event, threading.Thread] | None = None
        self._unit_crc = [0, 0]
        self._unit_effect: list[np.ndarray] = []
        self._unit_outputs: list[np.ndarray] = []
        self._unit_stream: ChunkStream | None = None  # the unit being written, when streamed
        self._chunk_stream: ChunkStream | None = None  # a batch's chunk written in pieces (a retry's smaller batches)

    # -- consistency --------------------------------------------------------------------------
    def _check_array_shapes(self) -> None:
        g, p = self.geometry, self.plan
        expected = {
            "anchors": (g.num_anchors, self.latent_dim),
            "dims": (g.num_dims,),
            "values": g.grid_shape,
            "anchor_outputs": (g.num_anchors, *g.out_shape),
            "directions": (g.num_dims, self.latent_dim),
            "path_ends": (g.num_anchors, self.latent_dim),
            "effect": (g.num_rows,),
            "outputs": (g.num_rows, *g.out_shape),
        }
        # The grid's arrays' dtypes as recorded (an altered one stood out only when a resume had
        # rewritten it, and was then refused); in an older store, the anchors' dtype they share.
        grid_dtype = self._arrays["anchors"].dtype
        dtypes = {"effect": numpy_dtype(g.statistics_dtype), "outputs": numpy_dtype(g.output_dtype),
                  "anchor_outputs": numpy_dtype(g.output_dtype), "dims": np.dtype(np.int64), "values": grid_dtype,
                  "directions": grid_dtype, "path_ends": grid_dtype, **(self.static_dtypes or {})}
        for name, array in self._arrays.items():
            if tuple(array.shape) != expected[name]:
                raise StoreDamaged(
                    f"the sweep store {self.path} is damaged: array {name!r} has shape {tuple(array.shape)}, "
                    f"its metadata says {expected[name]}; pass overwrite=True to start over"
                )
            if name in dtypes and array.dtype != dtypes[name]:
                if dtypes[name] is grid_dtype:  # (which of the two was altered, nothing says)
                    raise StoreDamaged(
                        f"the sweep store {self.path} is damaged: arrays 'anchors' ({grid_dtype}) and {name!r} "
                        f"({array.dtype}) must share the anchors' dtype, so the metadata of one of them was altered "
                        f"({self.meta_path / 'anchors' / 'zarr.json'} or {self.meta_path / name / 'zarr.json'}); "
                        "pass overwrite=True to start over")
                raise StoreDamaged(
                    f"the sweep store {self.path} is damaged: array {name!r} has dtype {array.dtype}, its metadata "
                    f"says {dtypes[name]} ({self.meta_path / name / 'zarr.json'}); pass overwrite=True to start over"
                )
        chunks = {"effect": p.unit_rows, "outputs": p.chunk_rows}
        for name in chunks.keys() & self._arrays.keys():
            if self._arrays[name].chunks[0] != chunks[name]:
                raise StoreDamaged(f"the sweep store {self.path} is damaged: array {name!r} is not chunked as planned "
                                   f"({self.meta_path / name / 'zarr.json'}); pass overwrite=True to start over")

    def _open_npy(self, wait: bool) -> np.memmap | None:
        """The .npy outputs as a read-only memory map, or None when missing or the wrong size.
        With ``wait``, a missing one is waited for while a live process is creating it."""
        deadline = time.monotonic() + (NPY_CREATION_GRACE_SECONDS if wait else 0)
        g = self.geometry
        creating = True  # until seen otherwise: one more try after, as its creator may just have finished
        while True:
            try:
                # The header as a whole: rows written in C order into a Fortran-order file read
                # back transposed (every unit recomputed, then refused, on every resume).
                if npy_header(self.npy_path) != ((*g.grid_shape, *g.out_shape), False, numpy_dtype(g.output_dtype)):
                    return None
                return np.load(self.npy_path, mmap_mode="r", allow_pickle=False)  # (raises when too short)
            except FileNotFoundError:
                if not creating or time.monotonic() >= deadline:
                    return None
                # Deleted or moved, with nobody making it: no wait (a resume used to wait 10 s).
                creating = being_created(self.npy_path)
                if creating:
                    time.sleep(0.2)
            except Exception:  # noqa: BLE001 - truncated or not an .npy
                return None

    def _outputs_array(self):
        if self.npy_path is None:
            return self._arrays["outputs"]
        # Only a writer waits for a .npy not there yet: a shard joining a store that another is
        # creating (the group is renamed into place before the .npy). A reader is told at once.
        array = self._open_npy(wait=self.writable)
        if array is None and not self.npy_path.exists():
            raise StoreDamaged(f"the sweep store {self.path} is damaged: its outputs file {self.npy_path} is missing "
                               "(moved or deleted)")
        if array is None:
            raise StoreDamaged(
                f"the sweep store {self.path} is damaged: its outputs file {self.npy_path} is missing, "
                "truncated or of the wrong shape, dtype or order"
            )
        return array.reshape(self.geometry.num_rows, *self.geometry.out_shape)

    def repair_npy(self) -> None:
        """Recreates a missing or damaged .npy outputs file (its units are then recomputed); a file
        there that the store did not write is refused, never replaced."""
        if self.npy_path is None or not self.keep_outputs or self._open_npy(wait=True) is not None:
            return
        foreign = foreign_npy(self.meta_path, self.npy_path)
        if foreign is not None:
            raise ValueError(
                f"the sweep store {self.path} is damaged: {self.npy_path} is not the outputs file it wrote ({foreign}) "
                "and is never replaced: move it away, then resume=True writes the outputs again"
            )
        self._refuse_blocked()  # (its lease is the first write: not into a linked folder)
        self._take_lease()
        g = self.geometry
        temporary = temporary_path(self.npy_path)
        try:
            np.lib.format.open_memmap(temporary, mode="w+", dtype=numpy_dtype(g.output_dtype),
                                      shape=(*g.grid_shape, *g.out_shape))
            os.replace(temporary, self.npy_path)
        finally:
            temporary.unlink(missing_ok=True)  # (gone once renamed into place)

    def static_problems(self) -> dict[str, str]:
        """Static arrays whose stored bytes do not match their checksums (those found intact
        before by this store are not read again)."""
        problems = {}
        for name in self.static_crc:
            if self._verified.static_intact(name):
                continue
            try:
                if crc(np.asarray(self._arrays[name][...])) != self.static_crc[name]:
                    problems[name] = "does not match its checksum"
                else:
                    self._verified.mark_static_intact(name)
            except Exception as error:  # noqa: BLE001
                problems[name] = f"is unreadable ({type(error).__name__})"
        return problems

    def repair_static(self, static: dict[str, np.ndarray]) -> None:
        """Rewrites damaged static arrays from this sweep's own (identical by checksum) values."""
        problems = self.static_problems()
        if problems:
            self._refuse_blocked()  # (a rewrite through a linked folder changes what it points to)
        for name in problems:
            array = self._arrays[name]
            if (array.dtype, tuple(array.shape)) != (static[name].dtype, static[name].shape):
                raise StoreDamaged(  # (said before writing: a refused repair left the store changed)
                    f"the sweep store {self.path} is damaged: its {name} array cannot be rewritten (its metadata "
                    f"{self.meta_path / name / 'zarr.json'} was altered: {array.dtype} {tuple(array.shape)}, this "
                    f"sweep's are {static[name].dtype} {static[name].shape}); pass overwrite=True to start over"
                )
            if crc(static[name]) != self.static_crc[name]:
                raise StoreDamaged(
                    f"the sweep store {self.path} is damaged: its {name} array does not match the checksum in its "
                    f"metadata ({self.meta_path / 'zarr.json'}), nor do this sweep's own {name}, so it cannot be "
                    "repaired; pass overwrite=True to start over"
                )
            self._take_lease()
            self._arrays[name][...] = static[name]
            if crc(np.asarray(self._arrays[name][...])) != self.static_crc[name]:  # e.g. its dtype was altered
                raise StoreDamaged(
                    f"the sweep store {self.path} is damaged: its {name} array cannot be rewritten (its metadata "
                    f"{self.meta_path / name / 'zarr.json'} was altered); pass overwrite=True to start over"
                )
            self._verified.mark_static_intact(name)  # (read back above)

    # -- units ---------------------------------------------------------------------------------
    def _record_path(self, unit: int) -> Path:
        return self.meta_path / "units" / f"u{unit:09d}.rec"

    def _read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        array = self._arrays["effect"] if name == "effect" else self._outputs_array()
        return np.asarray(array[start:stop])

    def _read_unit_record(self, unit: int) -> tuple[list[int] | None, dict | None, str]:
        """The unit's recorded (effect, outputs) checksums and statistics arrays, or None, None
        and why there are none."""
        record = self._record_path(unit)
        if not os.path.lexists(record):
            return None, None, "not done"
        try:
            header, arrays = read_record(record, self._record_shapes(unit))
        except Exception as error:  # noqa: BLE001
            return None, None, f"its record {record.name} is unreadable ({error})"
        if header["sweep_id"] != self.sweep_id or header["rows"] != list(self.plan.unit_rows_of(unit)) \
                or header.get("decoded_as", self._decoded_as(unit)) != self._decoded_as(unit):  # (older records lack it)
            return None, None, f"its record {record.name} belongs to another sweep or plan"
        return header["crc"], arrays, ""

    def _decoded_as(self, unit: int) -> list:
        """How the plan decodes a unit, which its bits can depend on (batch size, padding): in
        its record, so that a plan edited in the metadata does not pass units decoded otherwise."""
        return [self.plan.unit_batch_size(unit), bool(self.plan.padded)]

    def status(self, *, keep_for_merge: bool = False) -> StoreStatus:
        """Checks every unit's record, then its rows against the checksums, reading the rows of
        many units at once (one read per block of about READ_BLOCK_BYTES). With
        ``keep_for_merge`` (the owner sweep opening its store) what the records of the done
        units say is kept, merged in unit order as far as it goes: :meth:`merged` and
        :meth:`checked_merge` then read only the records of units completed since (a store has
        one owner sweep, whose ranks and shards write only units not done: a done unit does not
        change), and units written here are kept as they finish; so are the effect rows of the
        done units, checked here, for :meth:`effect` (the result holds them all anyway)."""
        return self._check(merge=False, keep=keep_for_merge)[0]

    def checked_merge(self) -> tuple[StoreStatus, OrderedMerge | None]:
        """:meth:`status`, and for a complete store the merge of its units' statistics in unit
        order, from one reading of each record (status, then :meth:`merged`, read every record
        twice); the effect rows checked are kept for :meth:`effect` (read once, and what was
        checked is what is returned)."""
        status, merged = self._check(merge=True)
        return status, merged if status.complete else None

    def _check(self, *, merge: bool, keep: bool = False) -> tuple[StoreStatus, OrderedMerge | None]:
        """status; with ``merge``, also the records' statistics merged in unit order, for a
        complete store (else None), whose effect rows as read are kept; ``keep``: see
        :meth:`status`. What this open verified so far (see VerifiedSoFar) is not read again:
        the rows of units known intact are checked against their kept checksums, their
        statistics are merged already or waiting, and their kept effect rows are not read
        (their outputs are)."""
        done, damaged = set(), {}
        recorded = {}
        g = self.geometry
        verified = self._verified
        if keep:  # a fresh start: the owner's open
            verified.start_keeping(KEEP_STATISTICS_BYTES)
        merging = merge or keep
        # The records read go to the merge kept, or to this check's own (nothing waits: complete, or no merge).
        running = verified.merge
        if merge and running is None:
            running = RunningMerge(g.num_dims, g.features, 0)
        for unit in range(self.plan.num_units):
            sums = verified.known_sums(unit, with_statistics=merging)
            if sums is not None:
                recorded[unit] = sums
                continue
            sums, arrays, why = self._read_unit_record(unit)
            if sums is not None:
                recorded[unit] = sums
                if merging:  # (tentatively: taken back below if its rows are damaged)
                    running.offer(unit, UnitStatistics.from_arrays(arrays, self._unit_latents(unit), g.features))
            elif why != "not done":
                damaged[unit] = why
        complete = len(recorded) == self.plan.num_units
        # The merge of a store with every record keeps the effect rows it reads, for the result (given
        # up below if the store is not complete after all).
        rows_for_result = merge and complete and verified.keep_effect_rows()
        # Blocks of units whose rows are read at once, each (units, with their effect rows): the
        # effect rows kept are known intact (checked before, or written here: a done unit does
        # not change), so only their outputs are read and checked again.
        units_per_block = max(1, READ_BLOCK_BYTES // max(1, self.plan.unit_rows * (self._row_bytes() + 8)))
        ordered = np.array(sorted(recorded), dtype=np.int64)
        has_rows = verified.rows_known(ordered)
        blocks = [(run, True) for run in consecutive_runs(ordered[~has_rows].tolist(), units_per_block)]
        if self.keep_outputs:
            blocks += [(run, False) for run in consecutive_runs(ordered[has_rows].tolist(), units_per_block)]
        else:  # (nothing of theirs to read)
            done.update(ordered[has_rows].tolist())
        blocks.sort(key=lambda block: block[0][0], reverse=True)  # taken from the end: in unit order
        while blocks:
            block, with_effect = blocks.pop()
            lo, hi = self.plan.unit_rows_of(block[0])[0], self.plan.unit_rows_of(block[-1])[1]
            output_bytes = (hi - lo) * self._row_bytes()
            by_file = len(block) == 1 and self._read_from_file(block[0], block[0])
            try:
                effect = self._read_rows("effect", lo, hi) if with_effect else None
                outputs = self._read_rows("outputs", lo, hi) if self.keep_outputs and not by_file else None
                outputs_crc = self._unit_chunks.checksum(lo // self.plan.chunk_rows, output_bytes,
                                                         READ_BLOCK_BYTES)[0] if by_file else None
            except StoreDamaged as error:
                damaged.update({u: str(error) for u in block})
                continue
            except Exception as error:  # noqa: BLE001 - unreadable chunk files
                if len(block) > 1:  # whose: read unit by unit
                    blocks.extend(([unit], with_effect) for unit in reversed(block))
                else:
                    damaged[block[0]] = f"its rows are unreadable ({type(error).__name__}: {error})"
                continue
            for unit in block:
                start, stop = (r - lo for r in self.plan.unit_rows_of(unit))
                sums = recorded[unit]
                if effect is not None and crc(effect[start:stop]) != sums[0]:
                    damaged[unit] = _EFFECT_ROWS_ALTERED
                elif self.keep_outputs and (outputs_crc if by_file else crc(outputs[start:stop])) != sums[1]:
                    damaged[unit] = _OUTPUT_ROWS_ALTERED
                else:
                    done.add(unit)
            if effect is not None:  # (units without kept rows: known once found intact, below)
                verified.effect_rows_read(lo, hi, effect)
        verified.units_checked(recorded, done)  # (the damaged ones: recomputed, then kept as written)
        rows = sum(self.plan.unit_rows_of(u)[1] - self.plan.unit_rows_of(u)[0] for u in done)
        status = StoreStatus(self.path, self.plan.num_units, done, damaged, rows, self.plan.num_rows,
                             damaged_arrays=self.static_problems())
        if rows_for_result and not status.complete:
            verified.forget_effect_rows()  # (no result: nothing to keep them for)
        if not (merge and status.complete):
            return status, None
        verified.take_merge()  # (consumed: when one is kept, it is ``running``)
        return status, running.finish(self.plan.num_units, self.unit_statistics)

    def done_units(self) -> set[int]:
        return self.status().done

    def write_rows(self, start: int, count: int, outputs: torch.Tensor | None, effect: torch.Tensor) -> None:
        self._take_lease()
        with self._refusing_blocked_places():
            self._write_rows(start, count, outputs, effect)

    def _write_rows(self, start: int, count: int, outputs: torch.Tensor | None, effect: torch.Tensor) -> None:
        if start % self.plan.unit_rows == 0:
            self._unit_crc, self._unit_effect, self._unit_outputs = [0, 0], [], []
            self._discard_streams()  # (a unit started again: retried at half the batch size)
            if self._unit_chunks is not None:
                self._unit_stream = ChunkStream(self._unit_chunks, start // self.plan.chunk_rows)
        self._unit_effect.append(stored_array(effect).copy())  # one write per unit (one chunk)
        if not self.keep_outputs:
            return
        rows = stored_array(outputs)
        if self._unit_stream is not None:
            self._unit_stream.write((start % self.plan.unit_rows) * self._row_bytes(), rows)
        elif self.npy_path is None and self.plan.chunk_rows != self.plan.batch_size:
            self._unit_outputs.append(rows.copy())  # a unit is one chunk: written once, when done
        elif self._batch_chunks is not None:
            self._write_batch_chunks(start, rows)
        elif self.npy_path is None:
            self._arrays["outputs"][start : start + count] = rows
        else:  # pwrite, not a memory map: the process's memory does not grow with the sweep
            if self._npy_offset is None:
                self._npy_offset = np.load(self.npy_path, mmap_mode="r").offset
            with open(self.npy_path, "r+b") as file:
                pwrite_all(file.fileno(), memoryview(rows).cast("B"), self._npy_offset + start * rows[0:1].nbytes)
        self._unit_crc[1] = crc(rows, self._unit_crc[1])

    def finish_unit(self, unit: int, start: int, stop: int, statistics: UnitStatistics) -> None:
        self._check_lease()
        with self._refusing_blocked_places():
            self._finish_unit(unit, start, stop, statistics)

    def _finish_unit(self, unit: int, start: int, stop: int, statistics: UnitStatistics) -> None:
        effect = np.concatenate(self._unit_effect) if self._unit_effect else np.zeros(0)
        if effect.shape[0] != stop - start:
            raise RuntimeError(f"unit {unit}: {effect.shape[0]} effect rows arrived for rows [{start}, {stop})")
        if self._effect_chunks is not None:  # (a store has no trial units: unit i is chunk i)
            write_chunk(self._effect_chunks, start // self.plan.unit_rows, effect)
        else:
            self._arrays["effect"][start:stop] = effect
        self._unit_crc[0] = crc(effect)
        if self._unit_stream is not None:
            self._unit_stream.finish()  # (its rows in place before the record)
            self._unit_stream = None
        elif self._unit_outputs:
            self._arrays["outputs"][start:stop] = np.concatenate(self._unit_outputs)
        record = self._record_path(unit)
        temporary = record.with_name(f".{record.name}.tmp-{uuid.uuid4().hex}")
        write_record(temporary, {"sweep_id": self.sweep_id, "rows": [start, stop], "decoded_as": self._decoded_as(unit),
                                 "crc": list(self._unit_crc)}, statistics.arrays())
        try:
            os.replace(temporary, record)  # the unit is done exactly when this file appears
        except BaseException:
            temporary.unlink(missing_ok=True)  # (a folder at the record's name: not left beside it)
            raise
        self._verified.unit_written(unit, start, stop, self._unit_crc, statistics, effect)
        self._unit_crc, self._unit_effect, self._unit_outputs = [0, 0], [], []

    def _write_batch_chunks(self, start: int, rows: np.ndarray) -> None:
        """Rows of a store whose chunks are batches, as chunk files: a batch, one whole chunk, at
        once; the smaller batches of an out-of-memory retry (one may straddle two chunks) into
        their chunks' files in pieces, each renamed into place when its last row arrives. (Merged
        through zarr, a piece read the chunk's file there: one damaged since its unit was written,
        the unit a resume recomputes, failed to decode, and the resume with it.)"""
        chunk_rows, row_bytes = self.plan.chunk_rows, self._row_bytes()
        while len(rows):
            chunk, offset = divmod(start, chunk_rows)
            size = min(chunk_rows, self.plan.num_rows - chunk * chunk_rows)  # (the edge chunk's rows)
            piece, rows = rows[: size - offset], rows[size - offset :]
            if offset == 0 and len(piece) == size:
                write_chunk(self._batch_chunks, chunk, piece)
            else:
                if offset == 0:  # (a unit starts at a chunk: its batches fill each chunk in order)
                    self._chunk_stream = ChunkStream(self._batch_chunks, chunk, clean=False)
                self._chunk_stream.write(offset * row_bytes, piece)
                if offset + len(piece) == size:
                    self._chunk_stream.finish()
                    self._chunk_stream = None
            start += len(piece)

    def _discard_streams(self) -> None:
        """Removes the temporaries of a streamed unit or chunk not finished (see ChunkStream)."""
        for stream in (self._unit_stream, self._chunk_stream):
            if stream is not None:
                stream.discard()
        self._unit_stream = self._chunk_stream = None

    def _row_bytes(self) -> int:
        """The bytes of a row's outputs as stored (0 without outputs)."""
        return self.geometry.features * numpy_dtype(self.geometry.output_dtype).itemsize if self.keep_outputs else 0

    def _unit_latents(self, unit: int) -> tuple[int, int]:
        """(first, count) of the latents the unit's traversals touch, by the plan (see unit_latents)."""
        return unit_latents(*self.plan.unit_rows_of(unit), self.geometry.num_steps, self.geometry.num_dims)

    def _record_shapes(self, unit: int) -> dict[str, tuple[int, ...]]:
        """The shapes of the unit's statistics in its record, by the plan (not by the record)."""
        return UnitStatistics.shapes(self._unit_latents(unit)[1], self.geometry.features)

    def unit_statistics(self, unit: int) -> UnitStatistics:
        return self._recorded(unit)[1]

    def _recorded(self, unit: int, visible_by_deadline: float | None = None, *,
                  statistics: bool = True) -> tuple[int, UnitStatistics | None]:
        """The unit's effect rows' checksum (kept for effect()) and, with ``statistics``, its
        statistics, from its record; one written elsewhere since this open is looked for until
        ``visible_by_deadline``."""
        if visible_by_deadline is not None:
            visible_by(self._record_path(unit), visible_by_deadline)
        try:
            header, arrays = read_record(self._record_path(unit), self._record_shapes(unit))
            self._effect_crc[unit] = int(header["crc"][0])
            return self._effect_crc[unit], UnitStatistics.from_arrays(
                arrays, self._unit_latents(unit), self.geometry.features) if statistics else None
        except Exception as error:  # noqa: BLE001
            raise StoreDamaged(
                f"the sweep store {self.path} is damaged: the record of unit {unit} is unreadable "
                f"({type(error).__name__}: {error}); resume=True recomputes it"
            ) from None

    def merged(self) -> OrderedMerge:
        """Every unit's statistics merged in unit order; after status(keep_for_merge=True), from
        what it kept, reading only the other units' records (called once every unit is done: a
        record another machine wrote is given WRITTEN_ELSEWHERE_VISIBLE_SECONDS to show; one this
        open found done or wrote itself is read at once: gone, it is damage, not a cache's delay)."""
        g = self.geometry
        running = self._verified.take_merge() or RunningMerge(g.num_dims, g.features, 0)
        deadline = time.monotonic() + WRITTEN_ELSEWHERE_VISIBLE_SECONDS

        def written(unit: int) -> UnitStatistics:
            elsewhere = self._verified.known_sums(unit, with_statistics=False) is None  # (written since this open)
            return self._recorded(unit, deadline if elsewhere else None)[1]

        return running.finish(self.plan.num_units, written)

    def effect(self) -> torch.Tensor:
        """Every unit's effect rows: those kept (checked by the owner's open or checked_merge, or
        written here) as they are, the others' (written by other ranks or shards since) read
        now; consumes what was kept (the result holds it)."""
        kept = self._verified.take_effect_rows()
        if kept is None:  # (none kept: a rank other than 0, whose open checked nothing) all read and checked
            kept = (np.empty(self.plan.num_rows, numpy_dtype(self.geometry.statistics_dtype)),
                    np.zeros(self.plan.num_units, dtype=bool))
        rows, known = kept
        units_per_block = max(1, READ_BLOCK_BYTES // max(1, self.plan.unit_rows * 8))
        deadline = time.monotonic() + WRITTEN_ELSEWHERE_VISIBLE_SECONDS
        for block in consecutive_runs(np.flatnonzero(~known).tolist(), units_per_block):
            lo, hi = self.plan.unit_rows_of(block[0])[0], self.plan.unit_rows_of(block[-1])[1]
            rows[lo:hi] = self._read_rows("effect", lo, hi)
            for unit in block:  # (a chunk missing reads as zeros: zarr stores none of zeros)
                start, stop = self.plan.unit_rows_of(unit)
                if unit not in self._effect_crc:  # (its record not read by merged(): written elsewhere)
                    self._recorded(unit, deadline, statistics=False)
                if crc(rows[start:stop]) != self._effect_crc[unit]:
                    raise StoreDamaged(f"the sweep store {self.path} is damaged: unit {unit}: {_EFFECT_ROWS_ALTERED}; "
                                       "resume=True recomputes it")
        return torch.from_numpy(rows)

    def outputs(self):
        if not self.keep_outputs:
            return None
        return StoredOutputs(self)

    def checked_output_rows(self, lo: int, hi: int) -> np.ndarray:
        """Output rows ``[lo, hi)``, each unit they fall in read whole and checked against its
        record (the sweep's identity and the rows' checksum), as a fresh array."""
        g = self.geometry
        if hi <= lo:
            return np.empty((0, *g.out_shape), numpy_dtype(g.output_dtype))
        first, last = lo // self.plan.unit_rows, (hi - 1) // self.plan.unit_rows  # a store has no trial units
        start, stop = self.plan.unit_rows_of(first)[0], self.plan.unit_rows_of(last)[1]
        changed = f"the sweep store {self.path} changed or is damaged since this result was made"
        if not os.path.lexists(self.path):  # (said as such: "unit 0: it has no record" read as damage)
            raise StoreDamaged(f"the sweep store {self.path} is gone (moved or deleted) since this result was made; "
                               "open it where it is now with latentsweep.open_sweep(path)")
        if first == last and self._read_from_file(first, last):
            return self._checked_rows_from_file(first, lo, hi, changed)
        try:
            rows = self._read_rows("outputs", start, stop)
            if self.npy_path is not None:
                rows = np.array(rows)  # a copy: never a view of a file that can shrink
        except StoreDamaged:
            raise  # (the .npy file is missing or truncated: its own message says so)
        except Exception as error:  # noqa: BLE001 - unreadable chunk files
            raise _unreadable(changed, start, stop, error) from None
        for unit in range(first, last + 1):
            u_start, u_stop = self.plan.unit_rows_of(unit)
            self._check_output_crc(unit, crc(rows[u_start - start : u_stop - start]), changed)
        # (a copy when it is a part: a view would keep every unit read alive in the caller's hands)
        return rows if (lo, hi) == (start, stop) else rows[lo - start : hi - start].copy()

    def _read_from_file(self, first: int, last: int) -> bool:
        """Whether units first..last are one unit that is one chunk of raw bytes larger than a
        read block: its outputs are read from its file a block at a time (zarr reads a chunk
        whole, and its reading held it twice)."""
        if first != last or self._unit_chunks is None:
            return False
        start, stop = self.plan.unit_rows_of(first)
        return (stop - start) * self._row_bytes() > READ_BLOCK_BYTES

    def _checked_rows_from_file(self, unit: int, lo: int, hi: int, changed: str) -> np.ndarray:
        """checked_output_rows of rows in one unit read from its file (_read_from_file): the
        checksum a block at a time, the rows asked for copied out in the same pass."""
        start, stop = self.plan.unit_rows_of(unit)
        row_bytes = self._row_bytes()
        try:
            checksum, kept = self._unit_chunks.checksum(unit, (stop - start) * row_bytes, READ_BLOCK_BYTES,
                                                        keep=((lo - start) * row_bytes, (hi - start) * row_bytes))
        except (OSError, ValueError) as error:
            raise _unreadable(changed, start, stop, error) from None
        self._check_output_crc(unit, checksum, changed)
        return np.frombuffer(kept, dtype=self._unit_chunks.dtype).reshape(hi - lo, *self.geometry.out_shape)

    def _check_output_crc(self, unit: int, checksum: int, changed: str) -> None:
        """StoreDamaged unless the unit has its record and its outputs' recorded checksum."""
        sums, _, why = self._read_unit_record(unit)
        if sums is None:
            problem = "it has no record" if why == "not done" else why
        elif checksum != sums[1]:
            problem = _OUTPUT_ROWS_ALTERED
        else:
            return
        raise StoreDamaged(f"{changed}: unit {unit}: {problem}; latentsweep.open_sweep(path) says what is wrong")

    def read_static(self, name: str) -> torch.Tensor:
        """A static array in the sweep's own dtype: bfloat16, stored widened to float32, comes
        back as bfloat16 (the anchor outputs by the geometry; anchors, values and directions
        when their recorded digest is that of the bfloat16 tensor)."""
        value = torch.from_numpy(np.asarray(self._arrays[name][...]).copy())
        if name == "anchor_outputs":
            return value.to(self.geometry.output_dtype)
        if value.dtype == torch.float32 and name in self.params and self.params[name] != tensor_digest(value):
            narrow = value.bfloat16()
            if tensor_digest(narrow) == self.params[name]:
                return narrow
        return value

    def has_static(self, name: str) -> bool:
        return name in self.static_crc

    # -- ownership -----------------------------------------------------------------------------
    def _take_lease(self) -> None:
        """Marks this process as a writer (lazily: a store nobody writes to stays untouched)."""
        if self._lease is not None:
            return self._check_lease()
        if not self.writable:
            raise RuntimeError(f"{self.path} was opened read-only")
        leases = self.meta_path / "leases"
        try:
            leases.mkdir(exist_ok=True)
            (self.meta_path / "units").mkdir(exist_ok=True)
            lease = leases / lease_name(socket.gethostname(), os.getpid())
            record = lease_record(self.meta_path, self.sweep_id)
            lease.write_text(json.dumps(record), encoding="utf-8")
        except FileNotFoundError:
            raise self._replaced() from None
        except OSError as error:
            if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise self._read_only(f"{error.filename}: {error.strerror}") from None
        # Until now another process could replace the store (overwrite=True sees no live lease):
        # with the lease in place, the store must still be this sweep's, and the folder whose
        # inode the lease records (else it would read as copied there, see copied_lease).
        try:
            here = str(zarr.open_group(self.meta_path, mode="r").attrs[_ATTR]["sweep_id"])
        except Exception:  # noqa: BLE001 - removed, or being replaced
            here = None
        if here != self.sweep_id or copied_lease(record, self.meta_path):
            lease.unlink(missing_ok=True)
            raise self._replaced()
        self._lease = lease
        self._refresher = keep_fresh(lease)
        weakref.finalize(self, self._refresher[0].set)

    def check_writable(self) -> None:
        """Before a sweep computes units into the store: a ValueError saying it is read-only
        (read-only media, no permission) rather than an OSError at its first row, and a
        StoreDamaged where a folder or link sits at a unit's record or chunk file (the unit
        could not be written after it was computed) or a link at one of its folders."""
        for place in (self.meta_path, self.meta_path / "leases", self.meta_path / "units", self.meta_path / "effect",
                      *((self.npy_path or self.meta_path / "outputs",) if self.keep_outputs else ())):
            if os.path.lexists(place) and not os.access(place, os.W_OK):  # (also read-only mounts)
                raise self._read_only(f"{place} is not writable")
        self._refuse_blocked()

    def _refuse_blocked(self) -> None:
        """StoreDamaged naming the first of :meth:`_blocked_places`, if any."""
        blocked = next(self._blocked_places(), None)
        if blocked is None:
            return
        place, folder = blocked
        if folder:
            raise StoreDamaged(
                f"the sweep store {self.path} is damaged: {place} is a symbolic link where the store keeps its own "
                f"folder, so what it wrote there would change the files the link points to "
                f"({os.path.realpath(place)}): replace the link with a copy of that folder, then resume"
            )
        raise StoreDamaged(
            f"the sweep store {self.path} is damaged: {place} is a "
            f"{'symbolic link' if place.is_symlink() else 'folder'} where the store keeps a file (a unit's "
            "record or rows), so no unit can be written there: remove it, or pass overwrite=True to start over"
        )

    @contextlib.contextmanager
    def _refusing_blocked_places(self):
        """A write that fails because a folder or link took one of the store's places after
        :meth:`check_writable` looked (another process, a user's mkdir, mid-sweep): the
        StoreDamaged that check_writable says, in the caller's name, not a bare
        IsADirectoryError naming a temporary. The unit is not recorded (the units done stay);
        resume=True computes it once the place is cleared."""
        try:
            yield
        except OSError as error:
            try:
                self._refuse_blocked()
            except StoreDamaged as damaged:
                raise StoreDamaged(f"{self._caller_prefix()}{damaged}") from error
            raise

    def _blocked_places(self):
        """(place, keeps a folder) for each place of the store's own files (unit records, chunks
        of the row arrays) taken by a folder or a link, and of its own folders (units, leases,
        the arrays and their chunks' folders) taken by a link: written through, it would change
        another store's files or the user's. One listing per folder, so the check costs what
        the store holds, not what the plan could write."""
        def entries(folder: Path):
            try:
                return list(os.scandir(folder))
            except OSError:  # (missing: nothing there yet)
                return []

        for name in ("units", "leases", *self._arrays):
            for folder in (self.meta_path / name, self.meta_path / name / "c"):
                if folder.is_symlink():
                    yield folder, True
        for name in self.static_crc:  # (few chunks, rewritten by a repair: every folder of theirs)
            for root, folders, _ in os.walk(self.meta_path / name / "c"):
                yield from ((Path(root, f), True) for f in folders if Path(root, f).is_symlink())
        record = re.compile(r"u\d{9}\.rec")
        for entry in entries(self.meta_path / "units"):
            if record.fullmatch(entry.name) and not entry.is_file(follow_symlinks=False):
                yield Path(entry.path), False
        for name in ("effect", "outputs") if self.keep_outputs and self.npy_path is None else ("effect",):
            depth = self._arrays[name].ndim  # chunk (i, 0, ...) is the file c/i/0/...
            for entry in entries(self.meta_path / name / "c"):
                for folder in (Path(entry.path, *["0"] * k) for k in range(depth - 1)):  # c/i, c/i/0, ...
                    if folder.is_symlink():
                        yield folder, True
                leaf = Path(entry.path, *["0"] * (depth - 1))
                if os.path.lexists(leaf) and (leaf.is_symlink() or not leaf.is_file()):
                    yield leaf, False

    def _caller_prefix(self) -> str:
        """``"fn: "`` of the public function writing (named_errors names the store's opening)."""
        return "" if self.caller == "latentsweep" else f"{self.caller}: "

    def _read_only(self, why: str) -> ValueError:
        return ValueError(
            f"{self._caller_prefix()}the sweep store {self.path} is read-only ({why}: read-only media or no "
            "permission), so no units can be added to it. latentsweep.open_sweep(path) reads it as it is "
            "(latentsweep.sweep_status(path) says which units it lacks); to finish it, copy it somewhere writable "
            "and resume the copy"
        )

    def _replaced(self) -> RuntimeError:
        return RuntimeError(
            f"{self.caller}: the sweep store {self.path} was removed or replaced by another process while "
            "this sweep was writing to it"
        )

    def _check_lease(self) -> None:
        """Takes this writer's lease at its first write; then fails if the store was removed or
        replaced meanwhile (its lease gone). The lease's thread keeps it fresh (keep_fresh)."""
        if self._lease is None:
            return self._take_lease()
        if not self._lease.exists():
            raise self._replaced()

    shared = True  # every rank and shard writes into and reads from the same store

    def heartbeat(self) -> None:
        if self._lease is not None:
            self._check_lease()

    def export_units(self, plan, units) -> dict:
        return {}  # the other processes read the store itself

    def import_units(self, plan, exported: dict) -> None:
        pass

    def close(self) -> None:
        self._discard_streams()  # (a sweep stopped mid-unit: nothing of it is kept)
        if self._refresher is not None:
            stop, thread = self._refresher
            stop.set()
            thread.join()
            self._refresher = None
        if self._lease is not None:
            self._lease.unlink(missing_ok=True)
            self._lease = None


def not_a_store(path: Path, *, reading: bool = False) -> ValueError:
    """The error for a path where something other than a store is, naming what is in the way;
    ``reading``: for open_sweep / sweep_status, which only read it (and so ask for a store's path)."""
    meta_path, npy_path = paths_of(path)
    if reading:
        advice = ": pass the path of a stored sweep (a .zarr folder, or the .npy file of a .npy store)"
    else:
        advice = "; choose another path (it is never overwritten)"
    if npy_path is not None and not os.path.lexists(npy_path):  # only the metadata folder's place is taken
        return ValueError(f"{meta_path} (where the .npy store {path} would keep its metadata) exists and is not a "
                          f"latentsweep sweep store's folder{advice}")
    return ValueError(f"{path} exists and is not a latentsweep sweep store{advice}")


def existing_store(path: Path, *, writable: bool) -> SweepStore | None:
    """The store at path, None when nothing is there; an error when something else is."""
    meta_path, npy_path = paths_of(path)
    if not os.path.lexists(meta_path) or (meta_path.is_dir() and not any(meta_path.iterdir())):
        # Nothing, or an empty folder made for the store: unless a .npy is there, which is then the
        # user's (a store's .npy never exists without its metadata) and must not be replaced.
        if npy_path is not None and os.path.lexists(npy_path):
            raise not_a_store(path, reading=not writable)
        return None
    return SweepStore(path, writable=writable)


# What a store writes, as paths relative to its folder, exactly (overwrite=True removes nothing
# else): its group's metadata, each array's metadata and chunk keys (and those of the checkpoint
# array that stores of format 1 had), the units' records and the writers' leases. A folder's
# name taken by a file, or a file's by a folder, is not the store's.
_ARRAYS = "|".join((*_STATIC, *_OPTIONAL_STATIC, *_ROW_ARRAYS, "checkpoint"))
_OWN_FOLDER = re.compile(rf"(?:{_ARRAYS})(?:/c(?:/\d+)*)?|units|leases")
_OWN_FILE = re.compile(rf"zarr\.json|(?:{_ARRAYS})/(?:zarr\.json|c(?:/\d+)*)|units/u\d{{9}}\.rec"
                       rf"|leases/{LEASE_NAME.pattern}")
# Its temporaries, left by a process killed while writing: a unit's record before it is renamed
# into place (finish_unit), and zarr's before a metadata or chunk file is ("<name>.<hex>.partial",
# zarr.storage.LocalStore), a name the chunk files it writes itself have too (see
# streamed_chunks.py; the next writer of a streamed unit whose chunk has its own folder removes a
# dead writer's).
_TEMPORARY = re.compile(r"units/\.u\d{9}\.rec\.tmp-[0-9a-f]{32}|(?:[^/]+/)*(?:zarr|\d+)\.[0-9a-f]{32}\.partial")


def foreign_entries(meta_path: Path) -> list[str]:
    """The paths under a store's folder (relative) that latentsweep did not write, e.g. a user's
    notes or a ``.git`` folder: overwrite=True must not delete them."""
    foreign = []
    for root, folders, files in os.walk(meta_path):
        relative = Path(root).relative_to(meta_path)
        for names, own in ((folders, _OWN_FOLDER), (files, _OWN_FILE)):
            for name in names:
                entry = (relative / name).as_posix()
                if not (own.fullmatch(entry) or _TEMPORARY.fullmatch(entry)) or (meta_path / entry).is_symlink():
                    foreign.append(entry)
        folders[:] = [f for f in folders if (relative / f).as_posix() not in foreign]
    return sorted(foreign)


def remove_store(path: Path) -> None:
    """Removes what a store wrote at path, refusing while another process writes to it, when
    the store's folder holds anything latentsweep did not write, and when it cannot be removed
    (read-only media, no permission) before removing anything."""
    meta_path, npy_path = paths_of(path)
    if meta_path.is_dir():
        writers = live_writers(meta_path)
        if writers:
            raise ValueError(
                f"{path} is in use by another sweep ({', '.join(writers)}); overwrite=True never replaces a "
                "store while it is being written. Wait for it to finish or stop it first"
            )
        foreign = foreign_entries(meta_path)
        if foreign:
            raise ValueError(
                f"{meta_path} holds files latentsweep did not write ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); overwrite=True removes only a store's own files: move them, "
                "or choose another path"
            )
    if npy_path is not None and (why := foreign_npy(meta_path, npy_path)) is not None:
        raise ValueError(f"overwrite=True does not remove {npy_path}, which the store did not write ({why}); move it, "
                         "or choose another path; nothing was removed")
    for folder in (meta_path.parent, *((meta_path,) if meta_path.is_dir() else ())):
        if not os.access(folder, os.W_OK):  # (also read-only mounts and immutable folders)
            raise ValueError(f"overwrite=True cannot remove the store at {path}: {folder} is not writable "
                             "(read-only media or no permission); nothing was removed")
    # In an order that a removal stopped half way (Ctrl-C, kill, an error) leaves a store a
    # second overwrite=True still recognises: the .npy first, the group's zarr.json last.
    try:
        if npy_path is not None and os.path.lexists(npy_path):
            npy_path.unlink()  # (the store's own: see foreign_npy above)
        if meta_path.is_dir():
            for entry in sorted(meta_path.iterdir(), key=lambda e: e.name == "zarr.json"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            meta_path.rmdir()
    except OSError as error:
        raise ValueError(f"overwrite=True could not remove the store at {path} ({error.strerror or error}: "
                         f"{error.filename}); what is left is still recognised as the store") from None


def create_store(path: Path, *, params: dict, plan: SweepPlan, geometry: Geometry, latent_dim: int,
                 keep_outputs: bool, static: dict[str, np.ndarray]) -> bool:
    """Creates the store in a temporary folder and renames it into place. Returns False when
    another process created one at path first (the caller then opens that one)."""
    meta_path, npy_path = paths_of(path)
    try:
        meta_path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocked = _checks.blocking_file(meta_path) or meta_path.parent
        raise ValueError(f"out={str(path)!r}: the file {str(blocked)!r} is in the way of the store's folder") from None
    except OSError as error:  # no permission, read-only media
        raise ValueError(f"out={str(path)!r}: cannot create the store's folder {str(meta_path.parent)!r} "
                         f"({error.strerror or error})") from None
    for own in (meta_path, npy_path) if npy_path is not None else (meta_path,):
        remove_stale_temporaries(own, _OWN_ENTRIES)  # of a creation or repair killed before
    temporary = temporary_path(meta_path)
    g = geometry
    try:
        group = zarr.open_group(temporary, mode="w")
        plain = {"compressors": None, "fill_value": 0}  # raw chunks: writing must not cost CPU time
        for name in static:
            group.create_array(name, shape=static[name].shape, dtype=static[name].dtype, **plain)[...] = static[name]
        effect_dtype = numpy_dtype(g.statistics_dtype)
        group.create_array("effect", shape=(g.num_rows,), chunks=(plan.unit_rows,), dtype=effect_dtype, **plain)
        if keep_outputs and npy_path is None:
            group.create_array("outputs", shape=(g.num_rows, *g.out_shape), chunks=(plan.chunk_rows, *g.out_shape),
                               dtype=numpy_dtype(g.output_dtype), **plain)
        (temporary / "units").mkdir()
        (temporary / "leases").mkdir()
        group.attrs[_ATTR] = {
            "format": STORE_FORMAT,
            "sweep_id": sweep_id(params),
            "params": params,
            "plan": plan.as_dict(),
            "geometry": {"num_anchors": g.num_anchors, "num_dims": g.num_dims, "num_steps": g.num_steps,
                         "out_shape": list(g.out_shape), "output_dtype": str(g.output_dtype).removeprefix("torch.")},
            "latent_dim": latent_dim,
            "keep_outputs": keep_outputs,
            "static_crc": {name: crc(static[name]) for name in static},
            "static_dtypes": {name: static[name].dtype.name for name in static},
        }
        npy_temporary = None
        if keep_outputs and npy_path is not None:
            npy_temporary = temporary_path(npy_path)
            np.lib.format.open_memmap(npy_temporary, mode="w+", dtype=numpy_dtype(g.output_dtype),
                                      shape=(*g.grid_shape, *g.out_shape))
        try:
            if npy_temporary is not None and os.path.lexists(npy_path) and not os.path.lexists(meta_path / "zarr.json"):
                raise FileExistsError  # not this store's .npy (never replaced): existing_store says so
            if meta_path.is_dir():
                meta_path.rmdir()  # an empty folder made for the store (fails if no longer empty)
            os.rename(temporary, meta_path)
        except OSError:
            if npy_temporary is not None:
                npy_temporary.unlink(missing_ok=True)
            return False  # another process created it first
        if npy_temporary is not None:
            os.replace(npy_temporary, npy_path)
        return True
    except OSError as error:  # a folder that takes no files (/proc), no permission, disk full
        raise ValueError(f"out={str(path)!r}: cannot create the store there ({error.strerror or error})") from None
    finally:
        with contextlib.suppress(OSError):  # (the error above says what went wrong)
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)


def _unreadable(changed: str, start: int, stop: int, error: Exception) -> StoreDamaged:
    return StoreDamaged(f"{changed}: rows [{start}, {stop}) are unreadable ({type(error).__name__}: {error}); "
                        "latentsweep.open_sweep(path) says what is wrong")


class StoredOutputs:
    """The outputs of a store as an array-like ``[A, K, S, *out_shape]``.

    ``numpy.asarray(outputs)`` reads everything; indexing reads only the anchors it needs,
    e.g. ``outputs[3]`` or ``outputs[:10, 2]``, and for one anchor only the traversals or steps
    it needs, e.g. ``outputs[3, 2]`` or ``outputs[3, 2, 10:20]`` (the whole units they fall in
    are read to check them, a block at a time where a unit is larger than a read block). Every read is checked against the units'
    records: a store replaced by another sweep, or whose chunks were deleted or altered after
    the result was made, raises :class:`StoreDamaged` instead of returning its rows (or zeros).
    """

    def __init__(self, store: "SweepStore"):
        self._store = store
        self._geometry = store.geometry
        self.shape = (*store.geometry.grid_shape, *store.geometry.out_shape)
        self.dtype = numpy_dtype(store.geometry.output_dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        data = self._store.checked_output_rows(0, self._geometry.num_rows).reshape(self.shape)
        return data if dtype is None else data.astype(dtype)

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        if not index or index[0] is Ellipsis:  # outputs[()] and outputs[...]: everything, as numpy
            return np.asarray(self)[index]
        first, rest = index[0], index[1:]
        rows_per_anchor = self._geometry.num_dims * self._geometry.num_steps
        if _advanced_after_a_basic(rest):  # numpy moves the axes of an int and a separated array first
            return np.asarray(self)[index]
        if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            if not -self.shape[0] <= first < self.shape[0]:  # (range()'s error named nothing)
                raise IndexError(f"index {first} is out of bounds for the stored outputs' axis 0 (the anchors) with "
                                 f"size {self.shape[0]}")
            a = range(self.shape[0])[first]
            if rest and _contiguous(rest[0]):
                # outputs[a, k], outputs[a, k0:k1], outputs[a, k, s0:s1]: only the rows asked for
                # are kept (the whole units they fall in read and checked), not the anchor's K x S
                return self._rows_of_anchor(a, rest)
            block = self._store.checked_output_rows(a * rows_per_anchor, (a + 1) * rows_per_anchor)
            return block.reshape(self.shape[1:])[rest]
        if isinstance(first, slice) and first.step in (None, 1):
            lo, hi, _ = first.indices(self.shape[0])
            hi = max(hi, lo)
            block = self._store.checked_output_rows(lo * rows_per_anchor, hi * rows_per_anchor)
            return block.reshape(hi - lo, *self.shape[1:])[(slice(None), *rest)]
        return np.asarray(self)[index]

    def _rows_of_anchor(self, a: int, rest: tuple):
        """outputs[a][rest], where rest[0] (the latents) is an int or a slice of step 1, and so is
        rest[1] (the steps) when rest[0] is an int: those rows read, then indexed by the rest."""
        num_dims, num_steps = self.shape[1], self.shape[2]
        dims = range(num_dims)[rest[0]]  # (numpy's IndexError for k out of range)
        if isinstance(dims, int) and len(rest) > 1 and _contiguous(rest[1]):
            steps = range(num_steps)[rest[1]]
            row = (a * num_dims + dims) * num_steps + (steps if isinstance(steps, int) else steps.start)
            count = 1 if isinstance(steps, int) else len(steps)
            block = self._store.checked_output_rows(row, row + count)
            return block[0][rest[2:]] if isinstance(steps, int) else block[(slice(None), *rest[2:])]
        first, count = (dims, 1) if isinstance(dims, int) else (dims.start, len(dims))
        row = (a * num_dims + first) * num_steps
        block = self._store.checked_output_rows(row, row + count * num_steps).reshape(count, *self.shape[2:])
        return block[(0 if isinstance(dims, int) else slice(None), *rest[1:])]

    def __repr__(self) -> str:
        return f"StoredOutputs(shape={self.shape}, dtype={self.dtype})"


def _advanced_after_a_basic(rest: tuple) -> bool:
    """Whether an array, list or bool index follows a slice, Ellipsis or None in ``rest`` (the
    index after the anchors'): with an int for the anchors, numpy puts their axes first
    (outputs[0, :, True] is not outputs[0][:, True]), so such an index is read whole."""
    basic = False
    for index in rest:
        if index is None or index is Ellipsis or isinstance(index, slice):
            basic = True
        elif basic and (isinstance(index, bool) or not isinstance(index, (int, np.integer))):
            return True
    return False


def _contiguous(index) -> bool:
    """An index of one axis that selects a run of consecutive entries: an int or a slice of step 1."""
    if isinstance(index, slice):
        return index.step in (None, 1)
    return isinstance(index, (int, np.integer)) and not isinstance(index, bool)
