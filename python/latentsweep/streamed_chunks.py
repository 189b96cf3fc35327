"""A store's unit that is one chunk, written as its batches arrive instead of held whole.

Where a few batches hold no whole number of traversals, a unit is one chunk of whole traversals
(see plan.py): held in memory until done, then written through zarr, one traversal of 4001 steps
of 3x128x128 float32 images took 786 MB, and its writing twice that. Its rows go instead to a
temporary file beside the chunk's, each batch at its offset, and the file is renamed onto the
chunk's when the unit is done, before its record is written (a unit is done exactly when its
record appears). The process's memory holds a batch, whatever the number of steps.

The bytes are those zarr writes: the stores create their row arrays raw (zarr v3, the bytes codec
alone, see stores.create_store), so a chunk file is the chunk's rows in C order, an edge chunk
padded with the fill value to the full chunk shape, and a chunk equal to its fill value is not
stored. :func:`raw_chunks` reads that from the array's own metadata; an array that says anything
else (edited, or made otherwise) is written through zarr, whole units at a time, as before.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from zarr.storage import LocalStore

from .store_writers import chunk_temporary_path, remove_dead_chunk_temporaries

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # (a link at the temporary's name is not written through)


@dataclass(frozen=True)
class RawChunks:
    """The chunk files of a raw zarr array chunked along its first axis only: chunk ``i`` is the
    file ``folder/c/i/0/...`` holding ``chunk_bytes`` bytes."""

    folder: Path
    ndim: int
    dtype: np.dtype
    chunk_bytes: int
    skip_empty: bool  # a chunk equal to the fill value is not stored (zarr's write_empty_chunks=False)

    def path(self, chunk: int) -> Path:
        return self.folder.joinpath("c", str(chunk), *["0"] * (self.ndim - 1))

    def checksum(self, chunk: int, size: int, block_bytes: int, keep: tuple[int, int] = (0, 0)) -> tuple[int, bytearray]:
        """The CRC-32 of the first ``size`` bytes of chunk ``chunk`` as zarr reads it (no file:
        the fill value's zero bytes), read ``block_bytes`` at a time (zarr reads a chunk whole,
        and its reading held two copies of it), and a copy of its bytes ``[keep[0], keep[1])``
        taken in the same pass (what was checked is what is returned). ValueError when the file
        is not a chunk's size, which zarr cannot read either."""
        checksum, block = 0, bytearray(min(size, block_bytes))
        kept = bytearray(max(0, keep[1] - keep[0]))
        try:
            file = open(self.path(chunk), "rb")
        except FileNotFoundError:
            for offset in range(0, size, len(block)):
                checksum = zlib.crc32(memoryview(block)[: size - offset], checksum)
            return checksum, kept  # (zeros)
        with file:
            found = os.fstat(file.fileno()).st_size
            if found != self.chunk_bytes:
                raise ValueError(f"its chunk file {self.path(chunk)} holds {found} bytes, not {self.chunk_bytes}")
            for offset in range(0, size, len(block)):
                view = memoryview(block)[: size - offset]
                if file.readinto(view) != len(view):
                    raise ValueError(f"its chunk file {self.path(chunk)} was cut short while read")
                checksum = zlib.crc32(view, checksum)
                low, high = max(keep[0], offset), min(keep[1], offset + len(view))
                if low < high:
                    kept[low - keep[0] : high - keep[0]] = view[low - offset : high - offset]
        return checksum, kept


def raw_chunks(array) -> RawChunks | None:
    """The chunk files of a zarr ``array`` when its metadata (as zarr.json has it) says each
    holds its rows' bytes as they are in memory, else None (then only zarr writes them): zarr v3
    in a local folder, the bytes codec alone (no compression, transpose or sharding) in this
    machine's byte order, chunks of whole rows keyed ``c/i/0/...`` (where stores.SweepStore
    looks for links and folders in the way), and a fill value of zero bytes (what an edge chunk
    is padded with)."""
    try:
        fields, store = array.metadata.to_dict(), array.store_path.store
        chunk_shape = tuple(fields["chunk_grid"]["configuration"]["chunk_shape"])
        dtype = np.dtype(array.dtype)
        if not (fields["zarr_format"] == 3 and isinstance(store, LocalStore) and not fields["storage_transformers"]
                and [dict(codec) for codec in fields["codecs"]] == [{"name": "bytes",
                                                                     "configuration": {"endian": sys.byteorder}}]
                and fields["chunk_grid"]["name"] == "regular" and chunk_shape[1:] == tuple(array.shape[1:])
                and fields["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}
                and np.asarray(array.metadata.fill_value, dtype).tobytes() == bytes(dtype.itemsize)):
            return None
        return RawChunks(Path(store.root, *array.store_path.path.split("/")), len(chunk_shape), dtype,
                         math.prod(chunk_shape) * dtype.itemsize, skip_empty=not array.config.write_empty_chunks)
    except Exception:  # noqa: BLE001 - metadata unlike zarr 3.1's: written through zarr
        return None


class ChunkStream:
    """One chunk's file being written: rows at their offsets into a temporary beside it (see
    store_writers.chunk_temporary_path), renamed onto it by :meth:`finish`."""

    def __init__(self, chunks: RawChunks, chunk: int, *, clean: bool = True):
        self._chunks = chunks
        self.path = chunks.path(chunk)
        self.path.parent.mkdir(parents=True, exist_ok=True)  # (zarr makes them too: c/i/0/...)
        # A killed writer's temporary of this chunk, from the chunk's own folder c/i/0/...; a 1-D
        # array's chunks share one, c/ (scalar outputs; the effect): scanned at each unit, n units
        # read n²/2 entries (4000: 5 s), so its temporaries (a unit's scalars) wait for overwrite=True.
        if clean and chunks.ndim > 1:
            remove_dead_chunk_temporaries(self.path)
        self.temporary = chunk_temporary_path(self.path)
        os.close(os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o666))
        self._empty = True  # every byte written so far is zero

    def write(self, offset: int, rows: np.ndarray) -> None:
        """``rows`` at byte ``offset`` of the chunk (in the array's dtype, as zarr casts them)."""
        rows = np.ascontiguousarray(rows, dtype=self._chunks.dtype)
        if self._empty and self._chunks.skip_empty:
            self._empty = not rows.view(f"u{rows.itemsize}").any()  # (bits: -0.0 is not empty)
        fd = os.open(self.temporary, os.O_WRONLY | _NO_FOLLOW)
        try:
            pwrite_all(fd, memoryview(rows).cast("B"), offset)
        finally:
            os.close(fd)

    def finish(self) -> None:
        """The chunk in place, as zarr would have stored it: padded with zeros (the fill value)
        to the full chunk (an edge chunk, short of rows); not stored when every byte is zero."""
        if self._empty and self._chunks.skip_empty:
            os.unlink(self.temporary)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # (an older chunk of this unit there would read instead of zeros)
            return
        fd = os.open(self.temporary, os.O_WRONLY | _NO_FOLLOW)
        try:
            os.ftruncate(fd, self._chunks.chunk_bytes)
        finally:
            os.close(fd)
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        """Removes the temporary (the unit was not finished: it is computed again)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temporary)


def write_chunk(chunks: RawChunks, chunk: int, rows: np.ndarray) -> None:
    """Chunk ``chunk`` written whole, as zarr writes it (through a temporary renamed onto it),
    without zarr's call into its event-loop thread: 0.6 ms a chunk, most of a small unit's
    writing."""
    stream = ChunkStream(chunks, chunk, clean=False)
    try:
        stream.write(0, rows)
        stream.finish()
    except BaseException:
        stream.discard()
        raise


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """``os.pwrite`` until all of ``data`` is written: one call writes at most about 2 GiB on
    Linux (0x7ffff000 bytes), and may write less on any system."""
    while data:
        written = os.pwrite(fd, data, offset)
        if written <= 0:  # (not seen; a loop that never ends would hang the sweep)
            raise OSError(errno.EIO, f"pwrite wrote nothing of {len(data)} bytes at offset {offset}")
        data, offset = data[written:], offset + written
