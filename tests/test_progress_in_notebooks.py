"""progress=None in a Jupyter notebook: ipykernel's output stream says it is no terminal, so a
sweep of many minutes there showed no bar at all."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import latentsweep as ls


class OutStream:
    """Stands in for ipykernel.iostream.OutStream: a writer whose isatty() is False."""

    def __init__(self):
        self.text = []

    def write(self, text):
        self.text.append(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


class PlainWriter(OutStream):
    """An application's own non-terminal writer: still no bar."""


OutStream.__module__ = "ipykernel.iostream"


@pytest.mark.parametrize("progress", [None, False])
def test_a_notebook_shows_the_sweeps_bar_unless_told_not_to(monkeypatch, progress):
    stream = OutStream()
    monkeypatch.setattr("sys.stderr", stream)
    ls.traverse(torch.nn.Linear(4, 5), torch.zeros(3, 4), steps=3, progress=progress)
    shown = "".join(stream.text)
    assert ("traverse" in shown) == (progress is None), shown


def test_a_notebook_shows_the_encoders_bar(monkeypatch):
    stream = OutStream()
    monkeypatch.setattr("sys.stderr", stream)
    ls.encode(torch.nn.Linear(6, 4), torch.zeros(10, 6), progress=None)
    assert "encode" in "".join(stream.text)


def test_another_writer_without_a_terminal_shows_no_bar(monkeypatch):
    stream = PlainWriter()
    monkeypatch.setattr("sys.stderr", stream)
    ls.traverse(torch.nn.Linear(4, 5), torch.zeros(3, 4), steps=3, progress=None)
    assert stream.text == []


# A Jupyter kernel without ipywidgets (a VS Code notebook needs only ipykernel): tqdm.auto takes
# it for a notebook by 'ipykernel.zmqshell' in sys.modules, and stderr is ipykernel's OutStream.
_KERNEL_WITHOUT_WIDGETS = textwrap.dedent("""
    import io, sys, types, warnings
    warnings.simplefilter("always")
    sys.modules["ipykernel"] = types.ModuleType("ipykernel")
    sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace()
    sys.modules["IPython"] = ipython
    OutStream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})
    import torch, latentsweep as ls
    sys.stderr = captured = OutStream()
    ls.encode(torch.nn.Linear(3, 4), torch.randn(20, 3), progress=None)
    sys.stderr = sys.__stderr__
    print(captured.getvalue())
""")


def test_a_notebook_bar_without_ipywidgets_draws_text_without_a_warning():
    """progress=None now shows a bar in a notebook; without ipywidgets tqdm.auto warned
    "IProgress not found. Please update jupyter and ipywidgets" at the first call (a call
    that showed nothing and said nothing before), then drew the text bar anyway."""
    pytest.importorskip("tqdm")
    env = {**os.environ, "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-c", _KERNEL_WITHOUT_WIDGETS], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    shown = done.stdout + done.stderr
    assert "encode:" in shown and "100%" in shown  # (the bar)
    assert "IProgress" not in shown and "Warning" not in shown
