"""The command line's main() called from a program (a notebook, a server, a test) leaves the
process as it found it: sys.path, the standard streams and file descriptor 1, the warnings'
display and filters, torch's thread count; on success, on failure and on a usage error, and
when two threads call it at once (they take turns)."""

from __future__ import annotations

import errno
import importlib.util
import io
import sys
import threading
import warnings

import numpy as np
import pytest
import torch

from cli_models import tiny_data, tiny_vae_source
from latentsweep.cli import main

WAIT = 30  # seconds: a bound on every wait, never reached when all is well

# Factories a test's threads coordinate through: the module is imported once by name (the
# command line imports it by its --model name, and finds it in sys.modules the second time).
COORDINATED = tiny_vae_source("""
    import threading

    first_inside, second_inside, first_left = threading.Event(), threading.Event(), threading.Event()

    def first():
        first_inside.set()
        second_inside.wait(1)  # the second command gets in meanwhile unless they take turns
        return make()

    def second():
        second_inside.set()
        first_left.wait(30)
        return make()

    class Failing(TinyVAE):
        def encoder(self, x):
            raise RuntimeError("the encoder fails")

    def failing():
        return Failing()
""")


def process_state() -> dict:
    return dict(path=list(sys.path), stdout=sys.stdout, stderr=sys.stderr, showwarning=warnings.showwarning,
                filters=list(warnings.filters), threads=torch.get_num_threads())


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working directory with the models as a module (``state_models``) and as a file, and
    data; not on sys.path, as a program's working directory usually is not."""
    (tmp_path / "state_models.py").write_text(COORDINATED)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vae.py").write_text(COORDINATED)
    np.save(tmp_path / "x.npy", tiny_data())
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path) not in sys.path
    yield tmp_path
    sys.modules.pop("state_models", None)


@pytest.mark.parametrize("argv, status", [
    (["diagnose", "--model", "state_models:make", "--data", "x.npy"], 0),
    (["diagnose", "--model", "models/vae.py:make", "--data", "x.npy"], 0),
    (["diagnose", "--model", "state_models:failing", "--data", "x.npy"], 1),
    (["diagnose", "--model", "models/vae.py:failing", "--data", "x.npy"], 1),
    (["diagnose", "--model", "state_models:make", "--data", "x.npy", "--no-such-option"], 2),
])
def test_main_leaves_the_process_as_it_found_it(folder, capsys, argv, status):
    """Each call appended the working directory (a module's) or the file's folder to sys.path,
    for good: a program's path grew by one entry per call."""
    before = process_state()
    for _ in range(2):
        try:
            code = main(argv)
        except SystemExit as exit_:  # (argparse's usage errors)
            code = exit_.code
        assert code == status, capsys.readouterr().err
        assert process_state() == before


def test_commands_overlapping_in_two_threads_leave_the_streams_and_warnings_as_found(folder, capsys):
    """The second command entered while the first ran, and restored what it found when it left
    last: the first's wrapped stdout and its warnings display, for the rest of the program (every
    later warning of the program printed as "latentsweep: warning: ...")."""
    spec = importlib.util.spec_from_file_location("state_models", folder / "state_models.py")
    state_models = sys.modules["state_models"] = importlib.util.module_from_spec(spec)  # (what main imports)
    spec.loader.exec_module(state_models)
    before = process_state()
    codes = {}

    def run(name: str) -> None:
        codes[name] = main(["diagnose", "--model", f"state_models:{name}", "--data", "x.npy"])
        if name == "first":
            state_models.first_left.set()

    first = threading.Thread(target=run, args=("first",), daemon=True)
    second = threading.Thread(target=run, args=("second",), daemon=True)
    first.start()
    assert state_models.first_inside.wait(WAIT)
    second.start()
    for thread in (first, second):
        thread.join(WAIT)
        assert not thread.is_alive(), "deadlock"
    assert codes == {"first": 0, "second": 0}, capsys.readouterr().err
    assert process_state() == before


class ClosedPipe(io.StringIO):
    """A program's stdout whose reader has gone."""

    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_closed_stdout_of_a_program_is_left_to_the_program(monkeypatch):
    """main() pointed file descriptor 1 at /dev/null for the rest of the process (there, its own
    exit followed), and raised io.UnsupportedOperation where stdout has no descriptor."""
    pointed = []
    monkeypatch.setattr("os.dup2", lambda *fds: pointed.append(fds))
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info"]) == 0  # (the reader has all it wanted, as on the command line)
    assert pointed == []
