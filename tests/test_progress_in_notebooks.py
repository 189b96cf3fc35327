"""progress=None in a Jupyter notebook: ipykernel's output stream says it is no terminal, so a
sweep of many minutes there showed no bar at all."""

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
