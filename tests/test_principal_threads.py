"""principal_directions runs on the thread count the caller gave torch, scipy's eigensolver too:
its LAPACK (a few components of >= PARTIAL_MIN_SIZE latents) ran on OpenBLAS's own threads
(OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, else every core) whatever torch.set_num_threads said.
The BLAS pool is the process's: it is left as found, and a call never waits for another thread
that has it set."""

from __future__ import annotations

import threading

import pytest
import scipy.linalg
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import latentsweep as ls
from conftest import num_threads
from latentsweep import _blas_threads, principal

WAIT = 30  # seconds: a bound on every wait, never reached when all is well


def blas_pools() -> dict[str, int]:
    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.fixture
def pools_in_eigh(monkeypatch) -> list[dict[str, int]]:
    """The BLAS pools' thread counts inside each call of scipy's subset eigensolver, which
    principal_directions takes (PARTIAL_MIN_SIZE lowered to 32) for 4 components of 64 latents."""
    monkeypatch.setattr(principal, "PARTIAL_MIN_SIZE", 32)
    seen, eigh = [], scipy.linalg.eigh

    def recording(*args, **kwargs):
        seen.append(blas_pools())
        return eigh(*args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "eigh", recording)
    return seen


def codes() -> torch.Tensor:
    return torch.randn(200, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.skipif(not blas_pools(), reason="threadpoolctl finds no BLAS library to set")
def test_scipys_eigensolver_runs_on_torchs_thread_count_and_the_pool_is_left_as_found(pools_in_eigh):
    with threadpool_limits(limits=2, user_api="blas"):  # (OpenBLAS's count on a 2-core machine: more than 1)
        before = blas_pools()
        with num_threads(1):
            ls.principal_directions(codes(), k=4)
        assert blas_pools() == before
    assert len(pools_in_eigh) == 1 and set(pools_in_eigh[0].values()) == {1}


@pytest.mark.skipif(not blas_pools(), reason="threadpoolctl finds no BLAS library to set")
def test_a_call_while_another_thread_has_the_pool_set_neither_waits_nor_changes_it(pools_in_eigh):
    """(A metric in another thread holds the pool at one thread for its whole run.)"""
    held, done = threading.Event(), threading.Event()

    def other():
        with _blas_threads.turn:
            held.set()
            done.wait(WAIT)

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    try:
        assert held.wait(WAIT)
        with threadpool_limits(limits=2, user_api="blas"):
            before = blas_pools()
            with num_threads(1):
                ls.principal_directions(codes(), k=4)  # (one that waited for the turn: WAIT s, then set it)
            assert pools_in_eigh == [before] and blas_pools() == before
    finally:
        done.set()
        thread.join(WAIT)
    assert not thread.is_alive()
