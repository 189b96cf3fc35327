"""Progress bars for long work: tqdm on a terminal or in a notebook, silent otherwise."""

from __future__ import annotations

import importlib.util
import sys
import threading


def wanted(progress: bool | None, fn: str) -> bool:
    """progress=True/False forces the bar on/off; None shows it when stderr is a terminal or a
    Jupyter kernel's output (not when it is a program's own writer without isatty()). Never when
    there is no stderr to write to (pythonw, or a closed stderr, which Python sets to None; a
    stream the program closed): tqdm would fail writing to it."""
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"{fn}: progress must be True, False or None, got {type(progress).__name__}")
    stream = sys.stderr
    if stream is None or getattr(stream, "closed", False) is True:
        return False
    if progress is None:
        if _notebook_output(stream):
            return True
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError, OSError):  # a writer without isatty(), a closed file
            return False
    return progress


def _notebook_output(stream) -> bool:
    """ipykernel's output stream (Jupyter notebooks and JupyterLab, VS Code's notebooks, Colab)
    says it is no terminal, yet shows a bar (tqdm.auto draws a widget there): a sweep of many
    minutes in a notebook showed nothing at all."""
    return type(stream).__module__.split(".")[0] == "ipykernel"


def _has_widgets() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # (a module in sys.modules without a spec)
        return "ipywidgets" in sys.modules


# The thread that made one of the library's bars (tqdm does not record it).
_THREAD = "_latentsweep_thread"


class NoBar:
    n, total = 0, None

    def update(self, n: int) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


def recount(bar, *, total: int, done: int) -> None:
    """Sets a bar's total and count once they are known (a sweep's, after its plan)."""
    bar.total, bar.n = total, done
    bar.refresh()


def bar(show: bool, *, total: int | None, unit: str, desc: str):
    """A tqdm bar (rate and ETA) or a stand-in with the same update/close methods; both are
    context managers that close the bar."""
    if not show:
        return NoBar()
    # tqdm.auto draws a widget in a notebook, but without ipywidgets (a VS Code notebook needs
    # only ipykernel) it warns "IProgress not found. Please update jupyter and ipywidgets" at its
    # import, then draws the text bar that tqdm.std draws anyway: that one, without the warning.
    if _has_widgets():
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm

    # A bar of its own stays when done; one nested in the caller's live bar (a training loop's
    # tqdm) is cleared, or every epoch left its finished encode/traverse lines behind. Said
    # explicitly: leave=None means this in a terminal, but a notebook's bar reads it as False
    # (a single call's finished bar vanished).
    # The library's own bars of other threads (two calls from two threads) are not callers' bars.
    here = threading.get_ident()
    nested = any(not getattr(other, "disable", False) and getattr(other, _THREAD, here) == here
                 for other in list(getattr(tqdm, "_instances", ())))
    made = tqdm(total=total, unit=unit, unit_scale=True, desc=desc, dynamic_ncols=True, leave=not nested)
    setattr(made, _THREAD, here)
    return made

