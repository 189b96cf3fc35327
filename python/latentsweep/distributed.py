"""Who does which part of a sweep: one process, the ranks of a process group, or a shard.

Under ``torchrun`` (or any launcher that sets ``RANK``/``WORLD_SIZE``) the ranks split the
sweep's units. An existing process group is used as it is (an embedding application owns it);
one is created (gloo on the CPU, nccl on CUDA) only when the environment asks for it and there is
none, and only a group created here is destroyed here: at the process's exit, because torchrun's
rendezvous store cannot host a second group in the same process, so later sweeps of the same
script reuse it. ``group=`` (a subgroup of the caller's, from ``torch.distributed.new_group``)
sweeps on its ranks alone. ``shard=(i, n)`` runs shard i of n with
no process group at all (Slurm job arrays, Kubernetes indexed jobs, several notebooks).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import torch

from . import _checks


class LostContact(RuntimeError):
    """A collective of the sweep failed: another rank is gone (crashed, killed, or it left the
    sweep early) or stopped answering within the group's timeout."""


class AnotherRankFailed(Exception):
    """Raised in a rank's decoding when another rank of its group has failed: it stops, and the
    agreement that follows raises that rank's failure instead."""


# A rank that fails tells the others through the group's store: they stop decoding and agree,
# instead of finishing their share first while it waits idle (past the group's timeout, it gave
# up and they learnt only "lost contact", their next collectives paired with its next call's).
# Decoding ranks look at most this often. (torchrun keeps the store for every attempt of a job:
# what a rank killed before it forgot it told stops one call of the next attempt, not them all.)
# Every key a group's sweeps keep in the default group's store starts with its namespace
# (_namespace): two subgroups sweeping at the same time neither meet nor stop each other.
_DEFAULT_NAMESPACE = "latentsweep"  # (the default group's keys, as before subgroups)
_FAILED_CHECK_SECONDS = 0.5
_STOPPED = "stopped: another rank failed"  # what a rank that stopped so reports (not a failure of its own)


@dataclass
class Workers:
    """This process's place in the sweep: rank of world (ranks of a process group talk to each
    other; shards do not), the group and whether it was created here. ``group``: the subgroup
    the ranks belong to (None: the default group; rank and world are the group's), and
    ``namespace`` its keys in the default group's store, ``meeting`` this call's there (where
    its ranks met; None without a store). ``fn`` names the public function in messages."""

    rank: int = 0
    world: int = 1
    grouped: bool = False
    created: bool = False
    shard: tuple[int, int] | None = None
    fn: str = "latentsweep"
    group: object = None
    namespace: str = _DEFAULT_NAMESPACE
    meeting: str | None = None
    relays: int = field(default=0, init=False, repr=False)  # (how many relayed() this call has made)
    arrivals: int = field(default=0, init=False, repr=False)  # (how many wait_for_every_rank() it has made)
    _next_check: float = field(default=0.0, init=False, repr=False)

    @property
    def leader(self) -> bool:
        return self.rank == 0 or self.shard is not None

    def global_rank(self, rank: int) -> int:
        """The default group's rank of the group's ``rank`` (collectives name their source so,
        and a failure is marked as said by it: the command line compares it with its own)."""
        return rank if self.group is None else torch.distributed.get_global_rank(self.group, rank)

    def _collective(self, call) -> None:
        try:
            call()
        except RuntimeError as error:  # gloo/nccl: a peer's connection closed, or a timeout
            raise LostContact(
                f"{self.fn}: lost contact with another rank (it crashed, was killed, or stopped before this "
                f"point: its own output says why): {' '.join(str(error).split())}"
            ) from error

    def barrier(self) -> None:
        if self.grouped:
            self._collective(lambda: torch.distributed.barrier(group=self.group))

    def broadcast(self, value):
        """Rank 0's value, on every rank (a picklable object)."""
        if not self.grouped:
            return value
        box = [value]
        self._collective(lambda: torch.distributed.broadcast_object_list(box, src=self.global_rank(0),
                                                                         group=self.group))
        return box[0]

    def all_gather(self, value) -> list:
        if not self.grouped:
            return [value]
        gathered = [None] * self.world
        self._collective(lambda: torch.distributed.all_gather_object(gathered, value, group=self.group))
        return gathered

    def agree(self, error: BaseException | None = None, identity: dict | None = None, *,
              near: dict[str, tuple[float, ...]] | None = None, advice: str = "") -> None:
        """Every rank learns whether all ranks got here (``error``: this rank's failure, raised
        here once the others know) and made the same call (``identity``: what makes two calls
        the same sweep, equal on every rank; ``near``: fingerprints, ``(scale, *components)``
        as :func:`fingerprint` makes them, that must agree to 1e-4 of their scale, as ranks on
        other devices or thread counts round differently), so none goes on to
        wait for a rank that has given up, and no rank pairs its collectives with those of
        another call. ``advice`` ends the message of a failed or lost rank."""
        if not self.grouped:
            if error is not None:
                raise error
            return
        stopped = isinstance(error, AnotherRankFailed)  # (not a failure of its own: it learns which here)
        if stopped:
            error = None
        told = error is not None and _tell_the_others_a_rank_failed(self.namespace)
        text = _STOPPED if stopped else None if error is None else (
            f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)  # (Ctrl-C says nothing)
        try:
            reports = self.all_gather((text, identity, near))
        except Exception as lost:  # noqa: BLE001 - this rank's own failure says more
            if error is not None:
                raise error from None
            if isinstance(lost, LostContact) and advice:
                raise LostContact(f"{lost}; {advice}") from lost.__cause__
            raise
        finally:
            if told:  # every rank has stopped decoding: the next call starts without it
                _forget_that_a_rank_failed(self.namespace)
        failures = [(rank, failed) for rank, (failed, _, _) in enumerate(reports) if failed not in (None, _STOPPED)]
        if error is not None:  # said by the first rank that failed alike (bad input: every rank)
            raise _said_by(error, self.global_rank(next(rank for rank, failed in failures if failed == text)))
        if failures:
            rank, failed = failures[0]
            rank = self.global_rank(rank)
            raise _said_by(RuntimeError(f"{self.fn}: rank {rank} failed ({failed})" + (f"; {advice}" if advice
                                                                                         else "")), rank)
        if any(failed == _STOPPED for failed, _, _ in reports):  # (told by a rank killed before it forgot it)
            _forget_that_a_rank_failed(self.namespace)  # (every rank has stopped: so that the call, run again, runs)
            raise _said_by(RuntimeError(f"{self.fn}: a rank stopped, told that another had failed, but none did; "
                                        "run the call again" + (f" ({advice})" if advice else "")), self.global_rank(0))
        name, leader = _checks.call_name(self.fn), self.global_rank(0)
        _, first, first_near = reports[0]
        first, first_near = first or {}, first_near or {}
        for rank, (_, other, other_near) in enumerate(reports[1:], start=1):
            other, other_near = other or {}, other_near or {}
            differing = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            if differing:
                raise _said_by(ValueError(
                    f"{self.fn}: the ranks were called with different arguments (rank {self.global_rank(rank)}'s "
                    f"call differs from rank {leader}'s in: {', '.join(differing)}); every rank must make the same "
                    f"{name} call (the same decoder, anchors, options and out=)"
                ), leader)
            for what, value in first_near.items():
                other_value = other_near.get(what, (math.nan,))
                if not _near(value, other_value):
                    raise _said_by(ValueError(
                        f"{self.fn}: {what} differ between the ranks (summed: {value[0]:.6g} on rank {leader}, "
                        f"{other_value[0]:.6g} on rank {self.global_rank(rank)}; their fingerprints: "
                        f"{_shown(value)} and {_shown(other_value)}); every rank must make the same {name} call, with "
                        "the same decoder and options: load the same weights (or seed their initialisation) in every "
                        "process"
                    ), leader)

    def stop_if_another_rank_failed(self) -> None:
        """Raises AnotherRankFailed when another rank of the group has failed (it told the
        group's store); looks at most every _FAILED_CHECK_SECONDS, and then counts this rank's
        progress there (a rank waiting for it tells one that decodes from one that hangs:
        wait_for_every_rank). Nothing without a group."""
        if not self.grouped or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + _FAILED_CHECK_SECONDS
        try:
            store = _group_store()
            if self.meeting is not None:
                store.add(_progress_key(self, self.rank), 1)
            failed = store.check([_failed_key(self.namespace)])
        except Exception:  # noqa: BLE001 - no store to ask: the agreement after the units tells
            return
        if failed:
            raise AnotherRankFailed(f"{self.fn}: another rank failed")

    def close(self) -> None:
        """Nothing to release now: a group created here lives until the process exits."""


# Whether this process created a group (see the module's docstring): torchrun's rendezvous
# store cannot host a second one, so one destroyed by its caller is not created again.
_created_a_group = False


def _destroy_created_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _environment_integer(name: str, default: int, fn: str = "latentsweep") -> int:
    """What a launcher put in the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``). A value
    that is not an integer is refused: taken as the default, a rank swept the whole grid alone."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"{fn}: {name}={text!r} in the environment is not an integer (torchrun and other launchers "
            f"set it; unset it to run in this process alone)"
        ) from None


def _env_world(fn: str = "latentsweep") -> int:
    """``WORLD_SIZE`` (1 when unset); 0 or less is refused (taken as 1, the process swept the
    whole grid alone, as if no launcher had asked for a group)."""
    world = _environment_integer("WORLD_SIZE", 1, fn)
    if world < 1:
        raise ValueError(f"{fn}: WORLD_SIZE={world} in the environment is not a number of processes (>= 1); "
                         "torchrun and other launchers set it; unset it to run in this process alone")
    return world


def _env_rank(fn: str = "latentsweep") -> int:
    """``RANK`` of a launcher's group of ``WORLD_SIZE`` > 1 processes: one of 0..WORLD_SIZE-1
    (another one waited for a rendezvous that never came)."""
    world, rank = _env_world(fn), _environment_integer("RANK", 0, fn)
    if world > 1 and not 0 <= rank < world:
        raise ValueError(f"{fn}: RANK={rank} in the environment is not a rank of WORLD_SIZE={world} processes "
                         f"(0..{world - 1}); start every rank with torchrun, or unset WORLD_SIZE to run in this "
                         "process alone")
    return rank


def ranks_on_this_machine(workers: Workers) -> int:
    """How many of the sweep's ranks share this machine's memory: ``LOCAL_WORLD_SIZE`` (what
    torchrun sets) for the ranks of a process group, at most the group's size; 1 for one process
    or a shard (a job array's tasks are the scheduler's to place)."""
    if not workers.grouped:
        return 1
    return max(1, min(_environment_integer("LOCAL_WORLD_SIZE", 1, workers.fn), workers.world))


# Where a launcher says which of its machine's GPUs a rank has: torchrun, else srun.
LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "SLURM_LOCALID")


def _local_gpu(fn: str, world: int) -> torch.device:
    """This rank's GPU, ``cuda:LOCAL_RANK``, one this machine has (torch.cuda.set_device raised
    its own AttributeError on a CPU-only build; a LOCAL_RANK beyond the GPUs failed later, in
    the decoder, as an invalid device ordinal). Under srun, which sets SLURM_LOCALID instead,
    ``cuda:(SLURM_LOCALID mod the GPUs the task sees)``: a task bound to GPUs of its own
    (``--gpus-per-task``) sees only those, numbered from 0, while its SLURM_LOCALID counts the
    node's tasks. Neither set in a group of ``world`` > 1 ranks is refused: each rank took cuda:0
    (a group started by hand sets only RANK and WORLD_SIZE)."""
    name = next((name for name in LOCAL_RANK_VARIABLES if os.environ.get(name, "").strip()), None)
    local = 0 if name is None else _environment_integer(name, 0, fn)
    if not torch.cuda.is_available():
        raise ValueError(f"{fn}: device='cuda' but this torch has no CUDA device available")
    if name is None and world > 1:
        raise ValueError(
            f"{fn}: under a process group of {world} ranks, CUDA means each rank's GPU cuda:LOCAL_RANK, but "
            "neither LOCAL_RANK nor SLURM_LOCALID is set in the environment (every rank would use cuda:0); set "
            "LOCAL_RANK to the rank's GPU on its machine (torchrun does), or pass each rank's device='cuda:i' yourself"
        )
    count = torch.cuda.device_count()
    if name == "SLURM_LOCALID":
        return torch.device("cuda", local % count)
    if not 0 <= local < count:
        raise ValueError(
            f"{fn}: under a process group, CUDA means each rank's GPU cuda:LOCAL_RANK, but LOCAL_RANK={local} and "
            f"this machine has {count} CUDA device(s) (0..{count - 1}); start at most {count} processes per "
            "machine (torchrun --nproc-per-node), or pass each rank's device='cuda:i' yourself"
        )
    return torch.device("cuda", local)


def world_and_rank() -> tuple[int, int]:
    """(world size, rank) of the initialised process group, else of the launcher's environment
    (``WORLD_SIZE``, ``RANK``), else (1, 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    world = _env_world()
    return world, _env_rank() if world > 1 else 0


def shard_refusal(world: int) -> str | None:
    """Why shard= cannot be used by a process of a group of ``world`` processes, None when it can:
    the one rule for the library and the command line (which says it before loading anything)."""
    if world <= 1:
        return None
    return (f"shard= is for independent processes; under torchrun ({world} processes) the ranks split the sweep "
            "by themselves: leave shard= out")


def join(fn: str, shard, device: torch.device | None, *, distributed: bool = True, group=None,
         sharing: Callable[[int], str] | None = None) -> Workers:
    """The Workers of this call (creating a process group only if the environment asks).
    ``distributed=False``: this process alone, whatever group it belongs to. ``group``: a
    ProcessGroup of the caller's (a subgroup) whose ranks alone make the call; None: the
    default group. ``sharing``: how the ranks share the call, in the meeting's advice, given
    the global rank of the group's rank 0 (None: they split its work)."""
    global _created_a_group
    if group is not None:
        group = _checked_group(fn, group, shard=shard, distributed=distributed)
    if not distributed and shard is None:
        return Workers(fn=fn)
    initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    if shard is not None:
        if not isinstance(shard, (tuple, list)) or len(shard) != 2:
            raise TypeError(f"{fn}: shard must be a pair (index, count), e.g. (0, 4), got {shard!r}")
        count = _checks.integer(fn, "shard count", shard[1], low=1)
        index = _checks.integer(fn, "shard index", shard[0], low=0)
        if index >= count:
            raise ValueError(f"{fn}: shard index must lie in [0, {count}) for {count} shards, got {index}")
        refusal = shard_refusal(max(torch.distributed.get_world_size() if initialized else 1, _env_world(fn)))
        if refusal is not None:
            raise ValueError(f"{fn}: {refusal}")
        return Workers(rank=index, world=count, shard=(index, count), fn=fn)
    if initialized:
        rank, world = _rank_and_world(group)
        meeting = _meet_the_other_ranks(fn, group, sharing) if world > 1 else None
        return Workers(rank=rank, world=world, grouped=world > 1, fn=fn, group=group, namespace=_namespace(group),
                       meeting=meeting)
    if _env_world(fn) > 1 and "RANK" in os.environ:
        _env_rank(fn)  # (a RANK that is not one of the group's, in these words rather than the rendezvous')
        if not torch.distributed.is_available():
            raise RuntimeError(f"{fn}: WORLD_SIZE={_env_world(fn)} but this torch build has no torch.distributed")
        if _created_a_group:  # (creating it again waited in the rendezvous for 30 minutes)
            raise RuntimeError(
                f"{fn}: the process group latentsweep created for WORLD_SIZE={_env_world(fn)} was destroyed "
                "(torch.distributed.destroy_process_group()), and torchrun's rendezvous cannot host a second one "
                "in this process; keep it until the process ends (latentsweep destroys it at exit), or pass "
                "distributed=False to sweep in this process alone"
            )
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        if backend == "nccl":
            _checks.usable_device(fn, device)
            torch.cuda.set_device(_local_gpu(fn, _env_world(fn)))
        try:
            torch.distributed.init_process_group(backend=backend)
        except (ValueError, RuntimeError) as error:  # no rendezvous: not started by a launcher, or it failed
            message = (
                f"{fn}: WORLD_SIZE={_env_world(fn)} and RANK={os.environ['RANK']} in the environment ask for a "
                f"process group, but it could not be created ({' '.join(str(error).split())}); start every rank "
                "with torchrun (it sets MASTER_ADDR and MASTER_PORT too), or unset WORLD_SIZE to sweep in this "
                "process alone"
            )
            raise (ValueError if isinstance(error, ValueError) else RuntimeError)(message) from error
        _created_a_group = True
        atexit.register(_destroy_created_group)
        meeting = _meet_the_other_ranks(fn, sharing=sharing)
        return Workers(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size(),
                       grouped=True, created=True, fn=fn, meeting=meeting)
    return Workers(fn=fn)


def _checked_group(fn: str, group, *, shard, distributed: bool):
    """``group=`` of a call, checked: a ProcessGroup of the initialised default group that this
    process belongs to. None when it is the default group itself (its keys stay the default's)."""
    if not distributed:
        raise ValueError(f"{fn}: group= sweeps on that group's ranks and distributed=False in this process alone: "
                         "pass one of them")
    if shard is not None:
        raise ValueError(f"{fn}: group= splits the sweep among that group's ranks, shard= among independent "
                         "processes: pass one of them")
    if not torch.distributed.is_available():
        raise ValueError(f"{fn}: group= needs torch.distributed, which this torch build does not have")
    from torch.distributed import distributed_c10d

    outside = distributed_c10d.GroupMember.NON_GROUP_MEMBER  # what new_group returns outside the group
    if type(group) is type(outside) and group == outside:
        rank = f" (rank {torch.distributed.get_rank()})" if torch.distributed.is_initialized() else ""
        raise ValueError(
            f"{fn}: group= is what torch.distributed.new_group returns on a process outside the group: this "
            f"process{rank} is not one of its ranks; call {_checks.call_name(fn)} with group= on the group's ranks "
            "only (or distributed=False to run in this process alone)"
        )
    if not isinstance(group, torch.distributed.ProcessGroup):
        raise TypeError(f"{fn}: group must be a torch.distributed.ProcessGroup (from torch.distributed.new_group) "
                        f"or None (the default group), got {type(group).__name__}")
    if not torch.distributed.is_initialized():
        raise ValueError(f"{fn}: group= is given but no process group is initialised (call "
                         "torch.distributed.init_process_group, then new_group, before the sweep)")
    try:
        ranks = torch.distributed.get_process_group_ranks(group)
    except (KeyError, ValueError, RuntimeError):  # (torch forgets a destroyed group)
        raise ValueError(f"{fn}: group= is not a process group of the initialised one (destroyed, or made before "
                         "the default group was created again); pass a group from torch.distributed.new_group"
                         ) from None
    rank = torch.distributed.get_rank()
    if rank not in ranks:
        raise ValueError(f"{fn}: this process (rank {rank}) is not a member of group=, which holds ranks "
                         f"{sorted(ranks)}; call {_checks.call_name(fn)} with group= on those ranks only")
    return None if group is distributed_c10d._get_default_group() else group


def _rank_and_world(group) -> tuple[int, int]:
    """This process's rank in ``group`` (None: the default group) and the group's size."""
    if group is None:
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return torch.distributed.get_rank(group), torch.distributed.get_world_size(group)


def _namespace(group) -> str:
    """Where ``group``'s keys live in the default group's store: its ranks (sorted), or their
    digest for a large group; the default group keeps the keys it had before subgroups."""
    if group is None:
        return _DEFAULT_NAMESPACE
    ranks = "-".join(map(str, sorted(torch.distributed.get_process_group_ranks(group))))
    if len(ranks) > 64:  # (keys set every call by every rank stay short)
        ranks = hashlib.sha256(ranks.encode()).hexdigest()[:32]
    return f"{_DEFAULT_NAMESPACE}/group-{ranks}"


# Every rank of a group must make the same call: the ranks pair their collectives. A rank that
# calls alone (`if rank == 0: traverse(...)` in a training job) waited in its first collective
# for the group's timeout, 30 minutes by default, or paired it with the training's own (DDP's
# gradient all-reduce). So the ranks first meet in the group's store, which no collective uses,
# and a rank that has waited this long says why.
ARRIVAL_WARNING_SECONDS = 30.0
# The meetings this process came to in each group's namespace (those called off included):
# each rank's n-th meet in that group.
_calls_met: dict[str, int] = {}


def _meet_the_other_ranks(fn: str, group=None, sharing: Callable[[int], str] | None = None) -> str | None:
    """Returns once every rank of ``group`` (None: the default group) has made its n-th grouped
    call (warning after ARRIVAL_WARNING_SECONDS where the wait is longer, raising at the group's
    timeout or its store's, whichever is shorter, naming the ranks that have not): the call's
    key in the store. Without a store to meet in, returns None (the collectives pair the ranks,
    as before). Ranks that came in different functions raise (_refuse_other_calls). ``sharing``:
    as for join.

    A call one rank gave up on is called off for every rank (``{call}/decided``, set once):
    a rank that comes to it later goes on to meet the others' next call, so that the ranks stay
    in step (the late rank's call met the one given up on and waited in a collective no other
    rank made, while their next call waited for its next: each later call of the group failed)."""
    try:
        store = _group_store()
        rank, world = _rank_and_world(group)
        namespace = _namespace(group)
    except Exception:  # noqa: BLE001 - no store (a backend without one): met in the first collective
        return None
    named = Workers(group=group).global_rank  # (ranks are named as torchrun's logs name them)
    shared = f"{_checks.call_name(fn)} splits its work among them" if sharing is None else sharing(named(0))
    advice = (f"every rank of the process group must make the same call ({shared}); to run it in one process "
              "alone (rank 0 of a training job while the others train), pass distributed=False; on some ranks "
              "alone, pass group= (torch.distributed.new_group)")

    def absent(keys: list[str]) -> str:
        missing = [named(r) for r in range(world) if r != rank and not _arrived_within(store, [keys[r]], 0.0)]
        return f"rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}"

    while True:
        call = f"{namespace}/call-{_calls_met.get(namespace, 0)}"
        keys = [f"{call}/rank-{r}" for r in range(world)]
        try:
            store.set(keys[rank], fn)  # (arrived, in this function)
        except Exception:  # noqa: BLE001 - as without a store
            return None
        _calls_met[namespace] = _calls_met.get(namespace, 0) + 1
        timeout, whose = _meeting_timeout(store, group)
        # (a group's own timeout may be the shorter, new_group(..., timeout=): the 30 s were waited first)
        warning_after = min(ARRIVAL_WARNING_SECONDS, timeout)
        if not _arrived_within(store, keys, warning_after):  # not yet: said, then waited as the group waits
            if warning_after < timeout:  # (else the error below says it)
                _checks.warn(f"{fn}: rank {named(rank)} has waited {warning_after:g} s for {absent(keys)} to make the "
                             f"same call; {advice}", RuntimeWarning)
            if not _arrived_within(store, keys, timeout - warning_after):
                if _decided(store, call, "off") == "met":  # (the last came as this rank gave up)
                    _refuse_other_calls(store, keys, fn, named, advice)
                    return call
                raise RuntimeError(f"{fn}: {absent(keys)} did not make the same call as rank {named(rank)} (waited "
                                   f"{timeout:g} s, {whose}); {advice}") from None
        if _decided(store, call, "met") == "met":
            _refuse_other_calls(store, keys, fn, named, advice)
            return call
        # Called off by a rank that gave up before this one came (it raised): its next call is this one.


def _refuse_other_calls(store, keys: list[str], fn: str, named, advice: str) -> None:
    """Raises, on every rank alike, where the ranks met in different functions (``keys``: each
    rank's arrival, holding its function): rank 0 in explain (``if rank == 0:``) and rank 1 in
    a traverse of every rank met, then paired explain's broadcast with traverse's gather, and
    both said "lost contact" at the group's timeout. A store that cannot say is trusted."""
    try:
        called = [value.decode() for value in store.multi_get(keys)]
    except Exception:  # noqa: BLE001 - a store without multi_get, or gone: the collectives pair them, as before
        return
    other = next((r for r, name in enumerate(called) if name != called[0]), None)
    if other is not None:
        raise _said_by(ValueError(
            f"{fn}: the ranks made different calls (rank {named(other)} called {called[other]}, rank {named(0)} "
            f"{called[0]}); {advice}"), named(0))


def _arrived_within(store, keys: list[str], seconds: float) -> bool:
    """Whether every key is set within ``seconds`` (0: now), looked for at most a second apart:
    a store.wait blocks in C++, where Ctrl-C waited for it to end (the group's timeout)."""
    deadline, pause = time.monotonic() + seconds, 0.01
    while True:
        try:
            if store.check(keys):
                return True
        except Exception:  # noqa: BLE001 - the store is gone: no rank will come
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(2 * pause, 1.0)


def _meeting_timeout(store, group) -> tuple[float, str]:
    """How long the meeting waits, and in words whose timeout that is: the process group's (its
    collectives wait as long), or its store's where that is shorter (a group made with
    ``store=``: a wait in that store ends at its timeout). Under torchrun and an
    ``init_process_group`` without ``store=`` the two are the same."""
    stored, own = _store_timeout_seconds(store), _group_timeout_seconds(group)
    if own is not None and own <= stored:
        return own, "the process group's timeout"
    return stored, "the timeout of the process group's store"


def _store_timeout_seconds(store) -> float:
    """The group store's timeout (the group's under torchrun and an init_process_group without store=)."""
    try:
        return store.timeout.total_seconds()
    except Exception:  # noqa: BLE001 - a store that does not say: torch's default
        return 1800.0


def _group_timeout_seconds(group) -> float | None:
    """``group``'s own timeout (None: the default group's), the shortest of its backends'; None
    where torch does not say. torch keeps it only in each backend's options (``_timeout``, which
    ProcessGroup.set_timeout updates): should that change, the store's timeout is used alone."""
    from torch.distributed import distributed_c10d

    try:
        group = distributed_c10d._get_default_group() if group is None else group
        seconds = [group._get_backend(device).options._timeout.total_seconds() for device in group._device_types]
    except Exception:  # noqa: BLE001 - a backend without options, or another torch
        return None
    return min(seconds) if seconds else None


def _decided(store, call: str, outcome: str) -> str:
    """Whether ``call`` met ("met") or was called off ("off"): the first rank to decide it sets
    it, every other reads it (``outcome``, this rank's own view, where the store cannot say)."""
    try:
        return store.compare_set(f"{call}/decided", "", outcome).decode()
    except Exception:  # noqa: BLE001 - a store without compare_set, or gone
        return outcome


def local_device(device: torch.device, workers: Workers) -> torch.device:
    """``cuda`` without an index means this rank's GPU (LOCAL_RANK) in a process group, a
    subgroup's too: one of a rank alone (new_group([3])) took the current device, cuda:0 unless
    its caller had set one, where a subgroup of two took each rank's own."""
    if device.type == "cuda" and device.index is None and (workers.grouped or workers.group is not None):
        return _local_gpu(workers.fn, workers.world if workers.group is None else torch.distributed.get_world_size())
    return device


def leaders_failure(error: BaseException, leader: int = 0) -> tuple[str, str]:
    """Rank 0's failure, as sent to the ranks that wait for it (picklable); rank 0 says it
    (``leader``: its rank in the default group, see Workers.global_rank)."""
    _said_by(error, leader)
    return type(error).__name__, str(error)


def raise_leaders_failure(failure: tuple[str, str], leader: int = 0) -> NoReturn:
    """Raises rank 0's failure on a rank that waited for it: bad input (ValueError, and a
    damaged store's StoreDamaged, a ValueError) as ValueError, what every rank alone would have
    raised; anything else as RuntimeError, naming what it was. ``leader``: as for leaders_failure."""
    kind, message = failure
    if kind in ("ValueError", "StoreDamaged"):
        raise _said_by(ValueError(f"{message} (reported by rank {leader})"), leader)
    said = f"{kind}: {message}" if message else kind  # (Ctrl-C says nothing: "KeyboardInterrupt: ")
    raise _said_by(RuntimeError(f"{said} (reported by rank {leader})"), leader)


# While rank 0 works for its group (leader_only's body, leader_decides' decide), a thread of
# its own counts in the group's store every LEADER_BEAT_SECONDS; a rank waiting for it that sees
# the count stand still for LEADER_SILENT_SECONDS stops waiting and says that rank 0 stopped
# answering: its process ended without raising (os._exit under torchrun, whose agent keeps the
# store and the other ranks alive), and they waited for ever. Generous: the count needs the
# interpreter, which a long call that holds it (a C extension's) withholds.
LEADER_BEAT_SECONDS = 5.0
LEADER_SILENT_SECONDS = 300.0


@contextlib.contextmanager
def leader_only(fn: str, checked: Callable[[], dict], *, distributed: bool = True, group=None):
    """For work that one process does for all (a report): yields the call's Workers; the body
    works on the group's rank 0 (``workers.leader``) while the other ranks skip it, then wait for
    rank 0 however long it takes (relayed) and raise if it failed. The ranks first meet, as a
    sweep's do (join: a rank calling alone waited at the end, in a broadcast the others never
    made, for the group's timeout); then each checks its call, ``checked()``, as a sweep's ranks
    do once they met: what it raises every rank raises at once (a rank that raised before the
    meeting left the others waiting there), and what it returns, the call's identity, must be
    the same on every rank (Workers.agree: a rank called with another out= returned a path where
    no report was, other options differing were silently rank 0's). Under a launcher's
    environment without a group one is created, as for a sweep (the other ranks returned at
    once, before the report was written). Alone, or with ``distributed=False``, the process is
    rank 0."""
    name = _checks.call_name(fn)
    workers = join(fn, None, None, distributed=distributed, group=group,
                   sharing=lambda leader: f"rank {leader} writes {name}'s report while the others wait for it")
    try:
        identity = checked()
    except Exception as error:  # noqa: BLE001 - the other ranks learn it, then it is raised
        workers.agree(error)
        raise
    workers.agree(identity=identity)
    failure = None
    try:
        with _leading(workers):
            yield workers
    except BaseException as error:
        if workers.grouped and workers.leader:  # (rank 0's failure, sent to the others)
            failure = leaders_failure(error, workers.global_rank(0))
        raise
    finally:
        if workers.grouped:
            failure = relayed(workers, failure, failed=failure is not None, doing="wrote the report for the others")
            if not workers.leader and failure is not None:
                raise_leaders_failure(failure, workers.global_rank(0))


def leader_decides(workers: Workers, decide: Callable[[], object], doing: str):
    """decide() on the leader (rank 0, or every shard), its result on every rank, however long
    it takes (relayed; ``doing`` says what the leader does, should it stop answering); an
    error on the leader is raised on every rank, so none waits for an answer that never comes."""
    outcome, failure = None, None
    if workers.leader:
        with _leading(workers):
            try:
                outcome = ("ok", decide())
            except Exception as error:  # noqa: BLE001 - the other ranks raise it too
                if not workers.grouped:
                    raise
                outcome, failure = ("error", leaders_failure(error, workers.global_rank(0))), error
    outcome = relayed(workers, outcome, failed=failure is not None, doing=doing)
    if outcome[0] == "ok":
        return outcome[1]
    if failure is not None:
        raise failure
    raise_leaders_failure(outcome[1], workers.global_rank(0))


def _leading(workers: Workers):
    """:func:`beating` on rank 0 (its work for the others); nothing elsewhere."""
    return beating(workers) if workers.leader else contextlib.nullcontext()


@contextlib.contextmanager
def beating(workers: Workers):
    """In a grouped call that met in the store, a daemon thread that counts at this rank's alive
    key every LEADER_BEAT_SECONDS while the body runs (rank 0's work for all, or a rank's share
    of the units), so that a rank waiting for it tells one at work from one that is gone;
    elsewhere, nothing."""
    if not (workers.grouped and workers.meeting is not None):
        yield
        return
    with contextlib.suppress(Exception):  # noqa: BLE001 - no store: the others wait on the count alone
        _group_store().set(_process_key(workers, workers.rank), f"{_this_machine()} {os.getpid()}")
    stop = threading.Event()
    threading.Thread(target=_count_while_alive, args=(_alive_key(workers, workers.rank), stop), daemon=True,
                     name="latentsweep-alive").start()
    try:
        yield
    finally:
        stop.set()


def _alive_key(workers: Workers, rank: int = 0) -> str:
    return f"{workers.meeting}/alive-{rank}"


def _progress_key(workers: Workers, rank: int) -> str:
    return f"{workers.meeting}/progress-{rank}"


def _process_key(workers: Workers, rank: int) -> str:
    return f"{workers.meeting}/process-{rank}"


def _this_machine() -> str:
    """This machine's name and process-id namespace: a pid is looked up only where it means the
    same process (containers on one host may share a name, each with its own pids)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}|{namespace}".replace(" ", "_")


def _process_ended(store, workers: Workers, rank: int) -> bool:
    """Whether ``rank``'s process, when it runs on this machine, has ended (a rank that exited
    quietly mid-sweep, os._exit under torchrun, was otherwise waited for LEADER_SILENT_SECONDS;
    the collective had said so at once). A rank on another machine is never said to have ended."""
    key = _process_key(workers, rank)
    if not store.check([key]):
        return False
    machine, pid = store.get(key).decode().rsplit(" ", 1)
    if machine != _this_machine():
        return False
    try:  # (an exited child its launcher has not reaped yet is a zombie: ended too)
        with open(f"/proc/{int(pid)}/status", encoding="ascii", errors="replace") as status:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return True
    except OSError:  # (no /proc: ask the kernel whether the process is there)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False


def _count_while_alive(key: str, stop: threading.Event) -> None:
    while True:
        # (a store that failed once may answer the next time; one that is gone, no rank waits in)
        with contextlib.suppress(Exception):  # noqa: BLE001 - a thread of its own: it never raises
            _group_store().add(key, 1)
        if stop.wait(LEADER_BEAT_SECONDS):
            return


def wait_for_every_rank(workers: Workers, doing: str, *, advice: str = "") -> None:
    """Waits in the group's store until every rank of the call has come here, however long the
    slowest one's share takes (``doing``: what the others do meanwhile, for the message), before
    the collective that follows: waiting in the collective alone, a rank done first gave up at
    the group's timeout and said it had lost contact, and the sweep failed on every rank. Stops
    waiting when a rank has failed (it tells the store; the collective then says which), and
    says a rank is lost when its process on this machine has ended, its alive count
    (:func:`beating`) has stood still for LEADER_SILENT_SECONDS, or its progress (each batch it
    decodes counts) for the group's timeout: a rank that hangs is given up at the timeout, as the
    collective did (``advice`` ends those messages). Nothing without a store to meet in (the
    collective waits, as before)."""
    if not workers.grouped or workers.meeting is None:
        return
    workers.arrivals += 1
    here = f"{workers.meeting}/arrived-{workers.arrivals}"
    keys = [f"{here}/{rank}" for rank in range(workers.world)]
    counts: dict[tuple[str, int], int] = {}
    heard: dict[tuple[str, int], float] = {}
    try:
        store = _group_store()
        store.set(keys[workers.rank], "here")
        hang_seconds, whose = _meeting_timeout(store, workers.group)
        while not _arrived_within(store, keys, LEADER_BEAT_SECONDS):
            if store.check([_failed_key(workers.namespace)]):
                return  # (agree, next, says which rank failed)
            now = time.monotonic()
            for rank, key in enumerate(keys):
                if store.check([key]):
                    continue
                still = {}  # seconds each of its counts has stood still
                for kind, counter in (("alive", _alive_key(workers, rank)), ("progress", _progress_key(workers, rank))):
                    count = store.add(counter, 0)  # (0: read, without waiting for the key)
                    if counts.get((kind, rank)) != count:
                        counts[kind, rank], heard[kind, rank] = count, now
                    still[kind] = now - heard[kind, rank]
                why = None
                if _process_ended(store, workers, rank):
                    why = "its process on this machine has ended"
                elif still["alive"] >= LEADER_SILENT_SECONDS:
                    why = (f"no sign of life from it in the process group's store for {LEADER_SILENT_SECONDS:g} s: its "
                           "process ended without an error, or holds the interpreter")
                elif still["progress"] >= hang_seconds:
                    why = f"it decoded nothing for {hang_seconds:g} s, {whose}: it hangs, or one decoder call takes longer"
                if why is not None:
                    raise LostContact(
                        f"{workers.fn}: lost contact with another rank: rank {workers.global_rank(rank)} stopped "
                        f"answering while it {doing} ({why}; its own output says why)"
                        + (f"; {advice}" if advice else ""))
    except LostContact:
        raise
    except Exception:  # noqa: BLE001 - the store is gone: the collective that follows says what happened
        return


def relayed(workers: Workers, value, *, failed: bool, doing: str):
    """Rank 0's ``value`` (picklable) on every rank of the group, once rank 0 has it (``failed``:
    it is rank 0's failure, which rank 0 raises whatever happens to the others). The others
    first wait in the group's store until rank 0 is done, however long its work takes: in the
    broadcast alone they gave up at the group's timeout, saying they had lost contact with rank
    0 (it had crashed or been killed), and rank 0, done later, raised the same instead of
    returning (under torchrun, a rank that exits so makes it end rank 0). The store gone (rank
    0's process held it), the broadcast says that rank 0 is lost; rank 0 silent for
    LEADER_SILENT_SECONDS while the store lives on (its process ended without raising,
    ``os._exit(0)`` under torchrun, whose agent lets the others be), they raise LostContact
    saying what it was ``doing``, without the broadcast (which a gone rank 0 may leave waiting
    for the group's timeout). Each relay of a call has its own key (the ranks relay in the same
    order)."""
    if not workers.grouped:
        return value
    workers.relays += 1
    done = None if workers.meeting is None else f"{workers.meeting}/leader-done-{workers.relays}"
    if workers.leader:
        if done is not None:
            with contextlib.suppress(Exception):  # noqa: BLE001 - as without a store: they wait in the broadcast
                _group_store().set(done, "done")
        if not failed:
            return workers.broadcast(value)
        with contextlib.suppress(Exception):  # noqa: BLE001 - its own failure says more than a rank gone meanwhile
            workers.broadcast(value)
        return value
    silent = False
    try:
        if done is not None:
            with contextlib.suppress(Exception):  # noqa: BLE001 - no store to ask: the broadcast waits
                silent = not _leader_done(_group_store(), done, _alive_key(workers))
    finally:  # (after Ctrl-C too: torchrun passes it to every rank, and rank 0 sends what stopped it)
        if not silent:
            value = workers.broadcast(value)
    if silent:
        raise LostContact(
            f"{workers.fn}: rank {workers.global_rank(0)} stopped answering while it {doing} (no sign of life from "
            f"it in the process group's store for {LEADER_SILENT_SECONDS:g} s: its process ended without an error, "
            "or hangs; its own output says why)"
        )
    return value


def _leader_done(store, done: str, alive: str) -> bool:
    """Waits until rank 0 says it is ``done`` (True), or until its count at ``alive`` has stood
    still for LEADER_SILENT_SECONDS (False); looked for at most a second apart, so Ctrl-C
    stops the wait (see _arrived_within)."""
    count, heard = None, time.monotonic()
    while not _arrived_within(store, [done], min(LEADER_BEAT_SECONDS, LEADER_SILENT_SECONDS)):
        now = store.add(alive, 0)  # (0: read, without waiting for the key as store.get does)
        if now != count:
            count, heard = now, time.monotonic()
        elif time.monotonic() - heard >= LEADER_SILENT_SECONDS:
            return False
    return True


# A fingerprint's projections (beside the sum of magnitudes), and the period of their weights:
# a prime, so that features a row's width apart (an image's) do not share their weights.
FINGERPRINT_PROJECTIONS = 8
_FINGERPRINT_PERIOD = 4093


def fingerprint(values: torch.Tensor) -> tuple[float, ...]:
    """``(sum |v|, p_1 .. p_8)`` of a tensor, in float64: p_k weighs element i by
    ``sin((k + 1) * (i mod 4093))``, so what the sum alone keeps (two output features swapped:
    other weights, the same total) differs in the projections, and ranks compare nine numbers
    instead of their whole outputs (:meth:`Workers.agree`'s ``near``). One pass: the elements
    are summed by their place in the period, then weighed."""
    flat = values.detach().reshape(-1).double()
    period = _FINGERPRINT_PERIOD
    padded = torch.nn.functional.pad(flat, (0, -flat.numel() % period))
    by_place = padded.view(-1, period).sum(0)  # [period]
    place = torch.arange(period, dtype=torch.float64, device=flat.device)
    rates = torch.arange(1, FINGERPRINT_PROJECTIONS + 1, dtype=torch.float64, device=flat.device)
    projections = torch.sin(rates[:, None] * place[None, :]) @ by_place
    return (float(flat.abs().sum()), *projections.tolist())


def _near(first, other) -> bool:
    """Two fingerprints alike to 1e-4 of their scale (their first entries: no component exceeds it)."""
    first, other = tuple(first), tuple(other)
    if len(first) != len(other) or not all(map(math.isfinite, (*first, *other))):
        return first == other
    scale = max(abs(first[0]), abs(other[0]), 1e-30)
    return all(abs(a - b) <= 1e-4 * scale for a, b in zip(first, other))


def _shown(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"

# ---- one message for a failure every rank raises -------------------------------------------
# Where a failure is relayed (agree, raise_leaders_failure), every rank of the group raises it,
# or the same bad input, at once: under torchrun each rank printed the same message. The error
# carries the rank that says it (the one that failed, or the first of those that failed alike);
# the others stay silent until it has been said (a process that exits failed makes torchrun end
# the others: a silent rank that left first could end the one about to say it).
_SAID_BY = "_latentsweep_said_by"
_SAID_WAIT_SECONDS = 30.0  # a rank saying its failure first unwinds (closes its store): seconds at most


def _said_by(error: BaseException, rank: int) -> BaseException:
    """``error``, marked as said by ``rank`` for the whole group (a mark already there stays: a
    failure relayed once is relayed again as it is)."""
    if getattr(error, _SAID_BY, None) is None:
        with contextlib.suppress(AttributeError, TypeError):  # (an exception type without a __dict__)
            setattr(error, _SAID_BY, rank)
    return error


def failure_said_by(error: BaseException) -> int | None:
    """The rank that says ``error`` for its group, if every rank of the group raised it (or the
    error it was raised from) together; None for this rank's own failure, which it says itself."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        rank = getattr(error, _SAID_BY, None)
        if rank is not None:
            return rank
        error = error.__cause__  # (a CliError raised from it says the same failure)
    return None


def _said_key(rank: int) -> str:
    return f"latentsweep/failure-said-by-rank-{rank}"


def _group_store():
    """The store of the process group (torchrun's agent keeps it when a rank has exited). torch
    names it privately (since 1.x): should that change, the callers' fallback says the failure
    on every rank again, as before."""
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


def _failed_key(namespace: str) -> str:
    return f"{namespace}/a-rank-failed"


def _tell_the_others_a_rank_failed(namespace: str) -> bool:
    """Whether the group's store now says that a rank of the group whose keys are in
    ``namespace`` failed (see AnotherRankFailed)."""
    try:
        _group_store().set(_failed_key(namespace), str(torch.distributed.get_rank()))
    except Exception:  # noqa: BLE001 - no store: the others learn it when they agree, as before
        return False
    return True


def _forget_that_a_rank_failed(namespace: str) -> None:
    with contextlib.suppress(Exception):  # noqa: BLE001 - a store that is gone has forgotten it too
        _group_store().delete_key(_failed_key(namespace))


def tell_failure_said() -> None:
    """Tells the group's other ranks that this rank has said its failure. Nothing without a group;
    a store that is gone leaves them to say it themselves."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    with contextlib.suppress(Exception):  # noqa: BLE001 - an exit path: they say it after their wait
        _group_store().set(_said_key(torch.distributed.get_rank()), "said")


def wait_until_failure_said(rank: int, seconds: float | None = None) -> bool:
    """Whether ``rank`` said the group's failure within ``seconds`` (_SAID_WAIT_SECONDS): False
    without a group, or when it did not (it died first, or its store did): say it here then."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    try:
        _group_store().wait([_said_key(rank)],
                            datetime.timedelta(seconds=_SAID_WAIT_SECONDS if seconds is None else seconds))
    except Exception:  # noqa: BLE001 - a timeout, or the store is gone
        return False
    return True
