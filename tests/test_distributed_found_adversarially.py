"""Defects of the sweeps' process groups found by an adversarial pass (latentsweep.distributed):
a launcher's environment with values no launcher sets, and a rank's GPU that is not there, are
refused with the library's words before any rendezvous, instead of a hang, a sweep alone, or
torch's own error from deep inside."""

from __future__ import annotations

import pytest
import torch

import latentsweep as ls
from latentsweep import distributed as _distributed
from sweep_models import mlp_decoder

ANCHORS = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


@pytest.fixture
def no_rendezvous(monkeypatch):
    """init_process_group fails the test: a check must refuse the environment before it (with
    a rank that is not one of the group's, the real one waited for its peers for 30 minutes)."""
    def refuse(*args, **kwargs):
        raise AssertionError("init_process_group was called: a rendezvous that never completes")

    monkeypatch.setattr(torch.distributed, "init_process_group", refuse)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert not torch.distributed.is_initialized()


def sweep(**kwargs):
    return ls.traverse(mlp_decoder(4, 6), ANCHORS, steps=3, batch_size=4, keep_outputs=False, progress=False, **kwargs)


@pytest.mark.parametrize("world", ["0", "-2"])
def test_a_world_size_below_one_is_refused(no_rendezvous, monkeypatch, world):
    """WORLD_SIZE=0 (or negative) was taken as 1: the process swept the whole grid alone, as
    WORLD_SIZE=abc did before it was refused."""
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=rf"^latentsweep\.traverse: WORLD_SIZE={world} in the environment is not a "
                                         r"number of processes \(>= 1\)"):
        sweep()
    with pytest.raises(ValueError, match=f"WORLD_SIZE={world}"):
        _distributed.world_and_rank()
    assert isinstance(sweep(distributed=False), ls.TraversalResult)  # this process alone: the environment unread


@pytest.mark.parametrize("rank", ["2", "-1", "9"])
def test_a_rank_outside_the_group_is_refused_before_the_rendezvous(no_rendezvous, monkeypatch, rank):
    """RANK=2 of WORLD_SIZE=2 (or -1) went to the rendezvous, which waited for 30 minutes; the
    command line took it for another rank than 0 and kept its usage errors to itself."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    monkeypatch.setenv("MASTER_PORT", "29599")
    with pytest.raises(ValueError, match=rf"^latentsweep\.traverse: RANK={rank} in the environment is not a rank of "
                                         r"WORLD_SIZE=2 processes \(0\.\.1\)"):
        sweep()
    with pytest.raises(ValueError, match=f"RANK={rank}"):
        _distributed.world_and_rank()
    from latentsweep.cli import _other_rank

    assert not _other_rank()  # its usage errors are said
    monkeypatch.setenv("WORLD_SIZE", "1")  # a stray RANK without a group is still no group
    assert _distributed.world_and_rank() == (1, 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_cuda_ranks_on_a_torch_without_cuda_are_refused(no_rendezvous, monkeypatch):
    """device='cuda' under torchrun's environment: torch.cuda.set_device for the nccl group
    raised torch's AttributeError ("module 'torch._C' has no attribute '_cuda_setDevice'")."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=rf"^latentsweep\.traverse: device='{device}' but this torch has no CUDA"):
            sweep(device=device)


@pytest.fixture
def one_gpu(monkeypatch):
    """A machine with one CUDA device, as far as the checks can tell (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def set_device(device):
        raise AssertionError(f"torch.cuda.set_device({device}) was called")

    monkeypatch.setattr(torch.cuda, "set_device", set_device)


@pytest.mark.parametrize("local_rank", ["1", "-1"])
def test_a_local_rank_beyond_the_gpus_is_refused(no_rendezvous, one_gpu, monkeypatch, local_rank):
    """LOCAL_RANK=1 on a machine with one GPU (more processes per node than GPUs): the nccl
    group's torch.cuda.set_device(1) failed with CUDA's "invalid device ordinal", and under the
    caller's group device='cuda' became cuda:1, which failed later in the decoder."""
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    message = (rf"^latentsweep\.traverse: under a process group, CUDA means each rank's GPU cuda:LOCAL_RANK, but "
               rf"LOCAL_RANK={local_rank} and this machine has 1 CUDA device\(s\) \(0\.\.0\)")
    workers = _distributed.Workers(rank=1, world=2, grouped=True, fn="latentsweep.traverse")
    with pytest.raises(ValueError, match=message):
        _distributed.local_device(torch.device("cuda"), workers)
    assert _distributed.local_device(torch.device("cuda", 0), workers) == torch.device("cuda", 0)  # the caller's
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match=message):
        _distributed.join("latentsweep.traverse", None, torch.device("cuda"))
    monkeypatch.setenv("LOCAL_RANK", "0")  # the one GPU there is: on to the (refused) rendezvous
    with pytest.raises(AssertionError, match="set_device"):
        _distributed.join("latentsweep.traverse", None, torch.device("cuda"))
