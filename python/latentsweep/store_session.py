"""Opening the store of a sweep: created, resumed, joined (shards) or replaced, after checking
that it holds the same sweep, is intact, and is not being written by another sweep."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ._checks import call_name
from ._modules import fingerprint
from .decoder_probe import PROBE_REVISION
from .grid_spec import GridSpec
from .stores import (StoreDamaged, SweepStore, create_store, crc, existing_store, recorded_params, remove_store,
                     stored_array, sweep_id, writer_of)


# The statistics' revision per output dtype, bumped when a kernel's bits change for it (float64:
# 2, its fused CPU kernel). Units of two revisions differ in their last bits, so a store is
# resumed only by its own revision. Revision 1 is not recorded: stores made before revisions
# were (all float32 ones, whose bits never changed) keep their identity.
STATISTICS_REVISIONS = {"torch.float64": 2}
# Sweeps decoded on CUDA: 3, the fused CUDA kernel (the CPU kernel's bits; before it, torch ops
# summed in another order), whatever the dtype.
CUDA_STATISTICS_REVISION = 3
# The anchors' probe revision a CPU store was decoded with (decoder_probe.PROBE_REVISION), kept
# when above 1: stores made before it was recorded probed with revision 1.
PROBE_REVISION_KEY = "anchor_probe_revision"


def restarted_by_torchrun() -> bool:
    """Under ``torchrun --max-restarts N`` (N >= 1) one call both starts the sweep and continues it
    in the restarted workers, so ``resume=True`` there also starts a store that is not there yet
    (the first attempt's, or a restart's whose first attempt died before creating it)."""
    try:
        return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0
    except ValueError:
        return False


def probe_revision_to_use(path: Path | None, *, overwrite: bool) -> int:
    """The anchors' probe revision of a sweep into ``path``: that of the store there, read
    before the probe (a resume or another shard must batch the anchors as the store's start
    did, or their outputs' bits may differ from the stored ones), else this version's."""
    params = None if path is None or overwrite else recorded_params(path)
    if params is None:
        return PROBE_REVISION
    revision = params.get(PROBE_REVISION_KEY, 1)
    # (a revision this version does not know: its own, and the store is refused as another version's)
    return revision if type(revision) is int and 1 <= revision <= PROBE_REVISION else PROBE_REVISION


def sweep_params(decoder, spec: GridSpec, probe, keep_outputs: bool, *, probe_revision: int = PROBE_REVISION) -> dict:
    """Everything that makes two sweeps the same sweep (the store's identity)."""
    params = {
        "decoder": fingerprint(getattr(decoder, "decoder", decoder)),  # the user's, not its DecoderCall
        "output_space": getattr(decoder, "output_space", "decoder output"),
        **spec.digest(),
        "out_shape": list(probe.out_shape),
        "output_dtype": str(probe.outputs.dtype),
        "keep_outputs": keep_outputs,
    }
    revision = STATISTICS_REVISIONS.get(params["output_dtype"], 1)
    if probe.outputs.device.type == "cuda":
        revision = CUDA_STATISTICS_REVISION
    if revision > 1:
        params["statistics_revision"] = revision
    if probe.outputs.device.type != "cuda" and probe_revision > 1:  # (CUDA's probe never changed)
        params[PROBE_REVISION_KEY] = probe_revision
    return params


def static_arrays(spec: GridSpec, probe) -> dict:
    """The arrays a store keeps beside the rows (the directions only for a direction sweep, the
    paths' ends only for an interpolation)."""
    arrays = {"anchors": stored_array(spec.anchors), "dims": stored_array(spec.dims),
              "values": stored_array(spec.values), "anchor_outputs": stored_array(probe.outputs)}
    if spec.directions is not None:
        arrays["directions"] = stored_array(spec.directions)
    if spec.path_ends is not None:
        arrays["path_ends"] = stored_array(spec.path_ends)
    return arrays


@contextlib.contextmanager
def named_errors(fn: str):
    """The stores' own messages (which do not know the public function called) begin with
    ``fn`` as every other message does; the command line tells the library's messages from
    those of the user's code by it. Not for blocks that run the user's decoder."""
    try:
        yield
    except (ValueError, RuntimeError) as error:
        if type(error) not in (ValueError, RuntimeError, StoreDamaged) or str(error).startswith("latentsweep"):
            raise
        named = type(error)(f"{fn}: {error}")
        for note in getattr(error, "__notes__", ()):
            named.add_note(note)
        raise named from None


def leader_store(fn: str, path: Path, want: dict, new_plan, *, explicit, resume, overwrite, join) -> SweepStore:
    """The store at path for this sweep: created, resumed (resume=True), joined (shards) or
    replaced (overwrite=True), after checking it is the same sweep, intact, and not in use;
    ``fn`` names the public function the user called, in the messages."""
    params = want["params"]
    for _ in range(3):  # another shard may create or replace it while we look
        with named_errors(fn):
            try:
                store = existing_store(path, writable=True)
            except StoreDamaged:
                if not overwrite:
                    raise
                store = None
                remove_store(path)
            if store is not None and overwrite:
                remove_store(path)
                store = None
        if store is None and resume and not restarted_by_torchrun():
            raise ValueError(f"{fn}: resume=True but there is no sweep at {path}")
        if store is None:
            plan = new_plan()  # runs the decoder (batch trials): its errors are not named as ours
            with named_errors(fn):
                if create_store(path, plan=plan, **want):
                    return checked_store(fn, path, want, explicit=explicit)
            continue  # created by someone else meanwhile: open theirs
        if store.sweep_id != sweep_id(params):
            differing = sorted(k for k in set(params) | set(store.params) if params.get(k) != store.params.get(k))
            if differing == ["statistics_revision"] and CUDA_STATISTICS_REVISION in (
                    store.params.get("statistics_revision"), params.get("statistics_revision")):
                def decoded(params: dict) -> str:
                    return "on CUDA" if params.get("statistics_revision") == CUDA_STATISTICS_REVISION else "on the CPU"

                raise ValueError(
                    f"{fn}: {path} holds this sweep, decoded {decoded(store.params)}, and this call decodes "
                    f"{decoded(params)}: units decoded on two devices differ in their last bits (the decoder's own "
                    f"arithmetic), so its units cannot be merged with new ones: resume it {decoded(store.params)} (device=), read it with "
                    "latentsweep.open_sweep, or pass overwrite=True to start over"
                )
            if differing == [PROBE_REVISION_KEY]:
                raise ValueError(
                    f"{fn}: {path} holds this sweep, started by another latentsweep version that decoded the "
                    f"anchors in other batches (anchor probe revision {store.params.get(PROBE_REVISION_KEY, 1)}, this "
                    f"version's is {params.get(PROBE_REVISION_KEY, 1)}), so their outputs may differ in their last "
                    "bits: finish it with that version, read it with latentsweep.open_sweep, or pass overwrite=True "
                    "to start over"
                )
            if differing == ["statistics_revision"]:
                raise ValueError(
                    f"{fn}: {path} holds this sweep, started by another latentsweep version whose statistics "
                    f"(statistics revision {store.params.get('statistics_revision', 1)}, this version computes "
                    f"revision {params.get('statistics_revision', 1)}) differ in their last bits; its units cannot be "
                    "merged with new ones: finish it with that version, read it with latentsweep.open_sweep, "
                    "or pass overwrite=True to start over"
                )
            if (writer := writer_of(store.params)) != call_name(fn):  # (no arguments of this call resume it)
                raise ValueError(
                    f"{fn}: {path} holds a sweep that {writer} wrote, not {call_name(fn)}: call {writer} with that "
                    "sweep's arguments to resume it, or pass overwrite=True to replace it"
                )
            # Outputs of another dtype from the same decoder: most often a first run inside a
            # torch.autocast block (it decodes in bfloat16/float16) and a resume outside it.
            dtypes = "" if "output_dtype" not in differing else (
                f"; its outputs were {store.params.get('output_dtype')} and this call's are "
                f"{params.get('output_dtype')} (a sweep decoded under torch.autocast resumes in the same autocast block)")
            raise ValueError(
                f"{fn}: {path} holds a sweep with different parameters (it differs in: {', '.join(differing)}){dtypes}; "
                f"call {call_name(fn)} with that sweep's arguments to resume it, or pass overwrite=True to replace it"
            )
        if not (resume or join):
            done = len(store.status().done)
            raise ValueError(
                f"{fn}: {path} already holds this sweep ({done} of {store.plan.num_units} units done); pass "
                "resume=True to continue it or overwrite=True to replace it"
            )
        with named_errors(fn):
            return checked_store(fn, path, want, explicit=explicit, store=store)
    raise RuntimeError(f"{fn}: could not open or create {path}: other processes keep replacing it")


def checked_store(fn: str, path, want, *, explicit, store=None) -> SweepStore:
    store = store or SweepStore(path, writable=True)
    if store.geometry != want["geometry"] or store.latent_dim != want["latent_dim"]:
        raise StoreDamaged(
            f"{fn}: the sweep store {path} is damaged: its geometry ({store.geometry}) does not match its "
            f"parameters ({want['geometry']}); pass overwrite=True to start over"
        )
    if explicit is not None and store.plan.batch_size != min(explicit, store.plan.num_rows):
        raise ValueError(
            f"{fn}: the sweep at {path} was planned with batch_size={store.plan.batch_size} (every rank, shard "
            f"and resume uses it for bitwise-identical results); pass batch_size={store.plan.batch_size} or 'auto'"
        )
    if crc(want["static"]["anchor_outputs"]) != store.static_crc["anchor_outputs"]:
        raise ValueError(
            f"{fn}: the decoder's outputs at the anchors differ from those stored in {path}: the decoder "
            "changed (weights or forward) since the sweep started, or it runs on other hardware or software "
            "(another GPU, torch or latentsweep version); pass overwrite=True to start over"
        )
    try:
        store.repair_static(want["static"])
        store.repair_npy()
    except BaseException:
        store.close()  # a repair takes the writer's lease: a live process must not keep it
        raise
    return store
