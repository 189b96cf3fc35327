"""The suite's temporary files go under pytest's base folder (conftest's session fixture):
left in /tmp by every run (torchrun's log folders, subprocesses' own mkdtemp), they once filled
the CI machine's disk."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def test_this_process_makes_its_temporary_files_under_pytests_base_folder(tmp_path_factory):
    base = tmp_path_factory.getbasetemp().resolve()
    with tempfile.TemporaryDirectory() as folder:
        assert base in Path(folder).resolve().parents
    assert base in Path(os.environ["TMPDIR"]).resolve().parents


def test_a_started_process_makes_its_temporary_files_under_pytests_base_folder(tmp_path_factory):
    base = tmp_path_factory.getbasetemp().resolve()
    made = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert base in Path(made).resolve().parents
