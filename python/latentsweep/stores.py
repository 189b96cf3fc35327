"""Where a sweep's results go: memory, or a store on disk that makes long sweeps resumable.

A store is a zarr group (``out="sweep.zarr"``) holding the sweep's parameters, the anchors'
outputs, the per-point ``effect``, the decoder outputs (unless ``keep_outputs=False``) chunked
along the grid, and a checkpoint of the streaming statistics. With ``out="sweep.npy"`` the
outputs go to that ``.npy`` file (memory-mappable: ``numpy.load(path, mmap_mode="r")``) and the
rest to a zarr group beside it, ``sweep.npy.latentsweep``.

Consistency: zarr writes each chunk file atomically, and the checkpoint (statistics and the
number of completed rows) is a single chunk, so it is written atomically too. Rows count as
done only when the checkpoint says so; anything written after the last checkpoint is simply
written again on resume. A killed process therefore leaves a consistent store.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr

STORE_FORMAT = 1
_ATTR = "latentsweep"


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype a torch dtype is stored as (bfloat16, which numpy lacks, as float32)."""
    if dtype == torch.bfloat16:
        return np.dtype(np.float32)
    return torch.empty((), dtype=dtype).numpy().dtype


@dataclass
class Geometry:
    """Sizes of a sweep: the grid, the per-point outputs, and how they are chunked."""

    num_anchors: int
    num_dims: int
    num_steps: int
    out_shape: tuple[int, ...]
    output_dtype: torch.dtype
    chunk_rows: int

    @property
    def total_rows(self) -> int:
        return self.num_anchors * self.num_dims * self.num_steps

    @property
    def features(self) -> int:
        return int(np.prod(self.out_shape, dtype=np.int64))

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return (self.num_anchors, self.num_dims, self.num_steps)


class MemorySink:
    """Keeps effect (and, unless keep_outputs=False, the outputs) in CPU tensors."""

    def __init__(self, geometry: Geometry, keep_outputs: bool):
        self.geometry = geometry
        self.effect = torch.empty(geometry.total_rows, dtype=torch.float32)
        self.outputs = (
            torch.empty((geometry.total_rows, *geometry.out_shape), dtype=geometry.output_dtype)
            if keep_outputs
            else None
        )

    def write(self, start: int, count: int, outputs: torch.Tensor | None, effect: torch.Tensor) -> None:
        self.effect[start : start + count] = effect
        if self.outputs is not None:
            self.outputs[start : start + count] = outputs

    def read_effect(self) -> torch.Tensor:
        return self.effect

    def outputs_view(self):
        g = self.geometry
        return None if self.outputs is None else self.outputs.view(*g.grid_shape, *g.out_shape)

    def checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        pass  # nothing to resume from memory

    def record_batch_size(self, batch_size: int) -> None:
        pass  # nothing to resume from memory

    @property
    def path(self) -> None:
        return None


class SweepStore:
    """A sweep on disk (see the module docstring). Create with :func:`open_store`."""

    def __init__(self, path: Path, group: zarr.Group, npy_path: Path | None):
        self._path = path
        self.group = group
        self.npy_path = npy_path
        meta = dict(group.attrs[_ATTR])
        self.geometry = Geometry(
            meta["num_anchors"],
            meta["num_dims"],
            meta["num_steps"],
            tuple(meta["out_shape"]),
            getattr(torch, meta["output_dtype"]),
            meta["chunk_rows"],
        )
        self.keep_outputs = bool(meta["keep_outputs"])
        self.params = meta["params"]
        self._npy_offset = None
        if npy_path is not None and self.keep_outputs:
            self._npy_offset = np.load(npy_path, mmap_mode="r").offset

    @property
    def path(self) -> Path:
        return self._path

    # -- writing ---------------------------------------------------------------------------
    def write(self, start: int, count: int, outputs: torch.Tensor | None, effect: torch.Tensor) -> None:
        self.group["effect"][start : start + count] = effect.numpy()
        if not self.keep_outputs:
            return
        rows = outputs.to(torch.float32) if outputs.dtype == torch.bfloat16 else outputs
        data = rows.contiguous().numpy()
        if self.npy_path is None:
            self.group["outputs"][start : start + count] = data
        else:  # pwrite, not a memory map: the process's memory does not grow with the sweep
            with open(self.npy_path, "r+b") as file:
                os.pwrite(file.fileno(), data.tobytes(), self._npy_offset + start * data[0:1].nbytes)

    def write_static(self, *, anchors, dims, values, anchor_outputs) -> None:
        for name, tensor in [("anchors", anchors), ("dims", dims), ("values", values)]:
            self.group[name][...] = tensor.cpu().numpy()
        self.group["anchor_outputs"][...] = _stored(anchor_outputs)

    def checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        """Atomically records the statistics and the number of completed rows."""
        self.group["checkpoint"][...] = pack_state(state, self.geometry)
        meta = dict(self.group.attrs[_ATTR])
        meta["completed_rows"] = int(state["next_row"])
        self.group.attrs[_ATTR] = meta  # informational; the checkpoint chunk is authoritative

    def record_batch_size(self, batch_size: int) -> None:
        """The decoder batch in use (chosen by timing on the CPU): a resume goes on with it."""
        meta = dict(self.group.attrs[_ATTR])
        if meta.get("batch_size") != batch_size:
            meta["batch_size"] = int(batch_size)
            self.group.attrs[_ATTR] = meta

    # -- reading ---------------------------------------------------------------------------
    def recorded_batch_size(self) -> int | None:
        """The batch size recorded by the sweep's last run, None before one was chosen."""
        size = self.group.attrs[_ATTR].get("batch_size")
        return int(size) if isinstance(size, int) and size >= 1 else None

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        return unpack_state(np.asarray(self.group["checkpoint"][...]), self.geometry)

    @property
    def completed_rows(self) -> int:
        return int(self.load_checkpoint()["next_row"])

    def read_effect(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.group["effect"][...]))

    def read_static(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.group[name][...]))

    def outputs_view(self):
        if not self.keep_outputs:
            return None
        g = self.geometry
        if self.npy_path is not None:
            return np.load(self.npy_path, mmap_mode="r").reshape(*g.grid_shape, *g.out_shape)
        return StoredOutputs(self.group["outputs"], g)


def _stored(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def pack_state(state: dict[str, torch.Tensor], geometry: Geometry) -> np.ndarray:
    """The statistics' state as one float64 vector (one chunk: written atomically)."""
    return np.concatenate(
        [
            np.array([float(state["next_row"])]),
            state["sensitivity_sum"].double().flatten().numpy(),
            state["dim_effect_sum"].double().flatten().numpy(),
            state["previous"].double().flatten().numpy(),
            state["slope"].double().flatten().numpy(),
        ]
    )


def unpack_state(packed: np.ndarray, geometry: Geometry) -> dict[str, torch.Tensor]:
    k, f = geometry.num_dims, geometry.features
    values = torch.from_numpy(packed)
    return {
        "next_row": torch.tensor(int(packed[0]), dtype=torch.int64),
        "sensitivity_sum": values[1 : 1 + k * f].view(k, f).clone(),
        "dim_effect_sum": values[1 + k * f : 1 + k * f + k].clone(),
        "previous": values[1 + k * f + k : 1 + k * f + k + f].float().clone(),
        "slope": values[1 + k * f + k + f :].float().clone(),
    }


class StoredOutputs:
    """The outputs of a zarr store as an array-like ``[A, K, S, *out_shape]``.

    ``numpy.asarray(outputs)`` reads everything; indexing reads only the anchors it needs,
    e.g. ``outputs[3]`` or ``outputs[:10, 2]``.
    """

    def __init__(self, array: zarr.Array, geometry: Geometry):
        self._array = array
        self._geometry = geometry
        self.shape = (*geometry.grid_shape, *geometry.out_shape)
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        data = np.asarray(self._array[...]).reshape(self.shape)
        return data if dtype is None else data.astype(dtype)

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        first, rest = index[0], index[1:]
        rows_per_anchor = self._geometry.num_dims * self._geometry.num_steps
        if isinstance(first, (int, np.integer)):
            a = range(self.shape[0])[first]
            block = self._array[a * rows_per_anchor : (a + 1) * rows_per_anchor]
            return np.asarray(block).reshape(self.shape[1:])[rest]
        if isinstance(first, slice) and first.step in (None, 1):
            lo, hi, _ = first.indices(self.shape[0])
            hi = max(hi, lo)
            block = self._array[lo * rows_per_anchor : hi * rows_per_anchor]
            return np.asarray(block).reshape(hi - lo, *self.shape[1:])[(slice(None), *rest)]
        return np.asarray(self)[index]

    def __repr__(self) -> str:
        return f"StoredOutputs(shape={self.shape}, dtype={self.dtype})"


def _meta_path(path: Path) -> tuple[Path, Path | None]:
    """(zarr group path, .npy outputs path or None) for a user's out= path."""
    if path.suffix == ".npy":
        return path.with_name(path.name + ".latentsweep"), path
    return path, None


def existing_store(path: Path) -> SweepStore | None:
    """The sweep store at `path`, None when nothing is there; an error when something else is."""
    meta_path, npy_path = _meta_path(path)
    if not meta_path.exists() and (npy_path is None or not npy_path.exists()):
        return None
    try:
        group = zarr.open_group(meta_path, mode="r+")
        meta = dict(group.attrs[_ATTR])
    except Exception:  # noqa: BLE001 - anything unreadable is "not ours"
        raise ValueError(
            f"latentsweep.traverse: out={str(path)!r} exists and is not a latentsweep sweep store; "
            "choose another path (it is never overwritten)"
        ) from None
    if meta.get("format") != STORE_FORMAT:
        raise ValueError(f"latentsweep.traverse: {path} was written by an incompatible latentsweep version")
    return SweepStore(path, group, npy_path)


def remove_store(store: SweepStore) -> None:
    meta_path, npy_path = _meta_path(store.path)
    shutil.rmtree(meta_path)
    if npy_path is not None and npy_path.exists():
        npy_path.unlink()


def create_store(path: Path, geometry: Geometry, *, keep_outputs: bool, params: dict, latent_dim: int) -> SweepStore:
    """A new, empty store (its checkpoint says 0 rows are done)."""
    meta_path, npy_path = _meta_path(path)
    g = geometry
    group = zarr.open_group(meta_path, mode="w")
    meta = {
        "format": STORE_FORMAT,
        "num_anchors": g.num_anchors,
        "num_dims": g.num_dims,
        "num_steps": g.num_steps,
        "out_shape": list(g.out_shape),
        "output_dtype": str(g.output_dtype).removeprefix("torch."),
        "chunk_rows": g.chunk_rows,
        "keep_outputs": keep_outputs,
        "total_rows": g.total_rows,
        "completed_rows": 0,
        "params": json.loads(json.dumps(params)),
    }
    group.attrs[_ATTR] = meta
    out_dtype = numpy_dtype(g.output_dtype)
    plain = {"compressors": None, "fill_value": 0}  # raw chunks: writing must not cost CPU time
    group.create_array("effect", shape=(g.total_rows,), chunks=(max(g.chunk_rows, 1),), dtype="float32", **plain)
    group.create_array("anchors", shape=(g.num_anchors, latent_dim), dtype="float32", **plain)
    group.create_array("dims", shape=(g.num_dims,), dtype="int64", **plain)
    group.create_array("values", shape=g.grid_shape, dtype="float32", **plain)
    group.create_array("anchor_outputs", shape=(g.num_anchors, *g.out_shape), dtype=out_dtype, **plain)
    state_size = 1 + g.num_dims * g.features + g.num_dims + 2 * g.features
    group.create_array("checkpoint", shape=(state_size,), chunks=(state_size,), dtype="float64", **plain)
    if keep_outputs:
        if npy_path is None:
            group.create_array(
                "outputs",
                shape=(g.total_rows, *g.out_shape),
                chunks=(max(g.chunk_rows, 1), *g.out_shape),
                dtype=out_dtype,
                **plain,
            )
        else:
            np.lib.format.open_memmap(npy_path, mode="w+", dtype=out_dtype, shape=(*g.grid_shape, *g.out_shape))
    return SweepStore(path, group, npy_path)
