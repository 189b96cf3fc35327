"""latentsweep called from several Python threads at once (a server's request handlers, a
monitoring thread beside a training loop): the results are those of the same calls one after the
other, and the process-wide state the library touches (thread pools, warnings) is left as found
and not taken from the other threads. Every wait is bounded."""

from __future__ import annotations

import io
import sys
import threading
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_info

import latentsweep as ls
from latentsweep.metrics._reference_fits import reference_fits
from latentsweep.metrics._threads import one_cpu_thread

D, F = 3, 5
WAIT = 30  # seconds: a bound on every join, never reached when all is well


def _run_together(*targets):
    """Runs the targets in threads started together; returns their results (re-raising)."""
    results, errors = [None] * len(targets), []
    start = threading.Barrier(len(targets))

    def run(i, target):
        try:
            start.wait(WAIT)
            results[i] = target()
        except BaseException as error:  # noqa: BLE001 - re-raised below in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, t), daemon=True) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "deadlock"
    if errors:
        raise errors[0]
    return results


def _decoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.Tanh(), torch.nn.Linear(8, F))


def _same(a, b):
    for name in ("outputs", "values", "dim_effect", "sensitivity"):
        got = getattr(a, name)
        got = got if isinstance(got, torch.Tensor) else torch.from_numpy(np.asarray(got))  # a store's outputs
        assert torch.equal(got, getattr(b, name)), name


def test_two_threads_traversing_get_the_results_of_the_calls_one_after_the_other(tmp_path):
    decoder = _decoder()
    anchors = [torch.randn(4, D, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    call = dict(steps=5, batch_size=7, progress=False)
    alone = [ls.traverse(decoder, a, **call) for a in anchors]
    together = _run_together(*(lambda a=a: ls.traverse(decoder, a, **call) for a in anchors))
    for got, expected in zip(together, alone):
        _same(got, expected)
    stored = _run_together(*(lambda i=i, a=a: ls.traverse(decoder, a, out=tmp_path / f"s{i}.zarr", **call)
                             for i, a in enumerate(anchors)))
    for i, (got, expected) in enumerate(zip(stored, alone)):
        _same(got, expected)
        _same(ls.open_sweep(tmp_path / f"s{i}.zarr"), expected)
    opened = _run_together(*(lambda: ls.open_sweep(tmp_path / "s0.zarr") for _ in range(2)))
    for got in opened:
        _same(got, alone[0])


def _pools() -> dict:
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


def _new_threads_count() -> int:
    counts = []
    thread = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    thread.start()
    thread.join(WAIT)
    return counts[0]


def test_metrics_overlapping_in_two_threads_leave_the_thread_pools_as_found():
    """Each call used to restore what it found: with A inside, B entered and found A's 1 (a
    thread that never set torch's count reads the last one set in any thread), A left, B left and
    restored 1: B's thread, and often the BLAS pool (process-wide), stayed at one thread."""
    torch.tensor(1.0).exp()  # torch (and its OpenMP) loaded, as in any program that calls metrics
    pools, count = _pools(), _new_threads_count()
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()

    def a():
        with one_cpu_thread():
            a_inside.set()
            b_inside.wait(1)  # B gets in meanwhile unless the calls take turns
        a_left.set()

    def b():
        a_inside.wait(WAIT)
        with one_cpu_thread():
            b_inside.set()
            assert torch.get_num_threads() == 1
            a_left.wait(WAIT)
        return torch.get_num_threads()

    assert _run_together(a, b)[1] == count
    assert _pools() == pools and torch.get_num_threads() == count
    assert _new_threads_count() == count


def test_a_warning_another_thread_raises_during_a_metrics_fits_reaches_that_thread():
    """reference_fits collected every warning of the process while its fits ran: a user's own
    ConvergenceWarning in another thread was counted as a metric's fit and swallowed."""
    from sklearn.exceptions import ConvergenceWarning

    inside, raised = threading.Event(), threading.Event()

    def metric():
        with reference_fits("metric", "LogisticRegression"):
            inside.set()
            assert raised.wait(WAIT)

    def users_fit():
        assert inside.wait(WAIT)
        warnings.warn("the user's own fit", ConvergenceWarning)
        raised.set()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run_together(metric, users_fit)
    assert [str(w.message) for w in caught] == ["the user's own fit"]


def test_a_warnings_filter_set_in_another_thread_during_evaluate_stays():
    """evaluate muted its own repeated remark with catch_warnings around FactorVAE's votes: on
    leaving it put back the process's filters as they were when it entered, dropping a filter
    another thread had set meanwhile (and two overlapping calls could leave its filter behind)."""
    from latentsweep import datasets, metrics

    labels = np.c_[np.arange(300) % 3, np.arange(300) % 5, np.zeros(300, int)]
    data = datasets.LabelledArrays(torch.tensor(labels, dtype=torch.float32), labels)
    voting, filtered = threading.Event(), threading.Event()

    def representation(x):
        if not voting.is_set():
            voting.set()
            assert filtered.wait(WAIT)
        return x[:, :2]

    def add_filter():
        assert voting.wait(WAIT)
        warnings.filterwarnings("ignore", message="the host's own filter")
        filtered.set()

    with warnings.catch_warnings():  # (the test's own: entered before and left after both threads)
        warnings.simplefilter("ignore", UserWarning)  # evaluate's remark on factor 2
        _run_together(lambda: metrics.evaluate(representation, data, metrics=["factor_vae"], num_train=300,
                                               num_test=100, sampling_votes=(50, 50), progress=False),
                      add_filter)
        assert any(f[1] is not None and f[1].pattern == "the host's own filter" for f in warnings.filters)


def test_a_bar_in_another_thread_is_not_a_callers_bar(monkeypatch):
    """Two calls in two threads: the second's bar is not nested in the first's (it was cleared
    when done, as if inside a caller's loop); a caller's own bar still nests them."""
    from tqdm.auto import tqdm

    from latentsweep import _progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    first = _progress.bar(True, total=3, unit="row", desc="first")
    made = {}

    def other():
        with _progress.bar(True, total=2, unit="row", desc="second") as bar:
            made["leave"] = bar.leave

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    first.close()
    assert first.leave is True and made["leave"] is True
    with tqdm(total=5, file=sys.stderr) as caller:  # a caller's live bar, in this thread
        with _progress.bar(True, total=2, unit="row", desc="inner") as inner:
            assert inner.leave is False
        assert caller.leave is True
