"""Every name the sources use is defined: a test that runs only on a GPU (or only on another
platform) cannot find its own NameError on the CPU machines CI runs on. One CUDA test called an
undefined helper for sessions, until a GPU ran it. pyflakes reads the code without running it."""

from __future__ import annotations

from pathlib import Path

import pytest

pyflakes = pytest.importorskip("pyflakes", reason="pyflakes is in the test extra")
from pyflakes import api, messages  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("python", "tests", "benchmarks", "scripts")
# Names used but not defined; unused imports and the like are style, not failures.
UNDEFINED = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)


class _Collect:
    """pyflakes' reporter protocol, keeping what it reports."""

    def __init__(self):
        self.found: list[str] = []

    def flake(self, message):
        if isinstance(message, UNDEFINED):
            self.found.append(str(message))

    def syntaxError(self, filename, msg, lineno, offset, text):  # noqa: N802  (pyflakes' names)
        self.found.append(f"{filename}:{lineno}: syntax error: {msg}")

    def unexpectedError(self, filename, msg):  # noqa: N802
        self.found.append(f"{filename}: {msg}")


def test_no_source_file_uses_an_undefined_name():
    collect = _Collect()
    files = sorted(path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py"))
    assert len(files) > 100, files  # the folders were found
    for path in files:
        api.checkPath(str(path), collect)
    assert not collect.found, "\n".join(collect.found)


def test_an_undefined_name_is_found(tmp_path):
    """(This test's own check can fail.)"""
    collect = _Collect()
    (tmp_path / "bad.py").write_text("def f():\n    return z(1)\n")
    api.checkPath(str(tmp_path / "bad.py"), collect)
    assert len(collect.found) == 1 and "undefined name 'z'" in collect.found[0]
