"""latentsweep in users' unusual but legitimate Python environments: an ASCII locale, an ASCII
stdout, ``-X warn_default_encoding`` with its warnings as errors, torch's default dtype float64,
``python -OO``, output paths in folders that cannot be written or behind symbolic links.
Each test failed before its fix. Process-wide settings run in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import _checks
from cli_models import tiny_data, tiny_vae_source

# An ASCII locale as Python sees it without its UTF-8 mode (LANG=C on a system Python that does
# not coerce the C locale; the same failures as a cp1252 or latin-1 locale for characters outside it).
ASCII_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}


def _python(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "vae.py").write_text(tiny_vae_source(), encoding="utf-8")
    np.save(tmp_path / "x.npy", tiny_data())
    return tmp_path


@pytest.mark.skipif(sys.platform == "win32", reason="the C locale of POSIX systems")
def test_diagnose_writes_its_files_under_an_ascii_locale(folder: Path):
    # diagnosis.txt was written in the locale's encoding: its '²' failed the command after the
    # work ("'ascii' codec can't encode character '\xb2'", exit 1); every file it writes is UTF-8
    done = _python("-m", "latentsweep", "diagnose", "--model", "vae.py:make", "--data", "x.npy", "--out", "o",
                   cwd=folder, env=ASCII_LOCALE)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "codec" not in done.stderr
    for name in ("diagnosis.txt", "diagnosis.json"):
        (folder / "o" / name).read_text(encoding="utf-8")


def test_no_file_is_read_or_written_in_the_locales_encoding(tmp_path: Path):
    # (-X warn_default_encoding, its EncodingWarnings as errors, as a project checking its own code
    # for PEP 597 runs: the store's lease was written without an encoding, so every sweep into a
    # store raised)
    program = textwrap.dedent(
        """
        import sys, warnings
        import torch, latentsweep as ls

        warnings.filterwarnings("error", category=EncodingWarning, module="latentsweep")
        out = sys.argv[1]
        decoder, codes = torch.nn.Linear(3, 4), torch.randn(2, 3)
        for store in ("s.zarr", "s.npy"):
            ls.traverse(decoder, codes, steps=3, progress=False, out=f"{out}/{store}")
            ls.traverse(decoder, codes, steps=3, progress=False, out=f"{out}/{store}", resume=True)
            ls.traverse(decoder, codes, steps=3, progress=False, out=f"{out}/{store}", overwrite=True)
            ls.open_sweep(f"{out}/{store}")
        posterior = ls.Posterior(torch.randn(20, 3), torch.full((20, 3), -4.0))
        ls.report(f"{out}/report.html", diagnosis=ls.diagnose(posterior), posterior=posterior)
        print("done")
        """
    )
    done = _python("-X", "warn_default_encoding", "-c", program, str(tmp_path))
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]


def test_every_commands_help_prints_under_an_ascii_stdout():
    # `latentsweep traverse --help` (and report's) failed with exit 1: "'ascii' codec can't
    # encode character '\xb1'" (the ± of --span's help)
    program = textwrap.dedent(
        """
        import sys
        from latentsweep.cli import COMMANDS, main

        for command in ["", *COMMANDS]:
            try:
                status = main([command, "--help"] if command else ["--help"])
            except SystemExit as exit:
                status = exit.code
            print(f"{command or 'latentsweep'}: {status}", file=sys.stderr)
        """
    )
    done = _python("-c", program, env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr[-2000:]
    statuses = dict(line.split(": ", 1) for line in done.stderr.splitlines() if ": " in line)
    assert len(statuses) > 5 and set(statuses.values()) == {"0"}, done.stderr[-2000:]


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def test_shapes_renders_under_a_float64_default_dtype(monkeypatch):
    # building the table of images failed: "Index put requires the source and destination
    # dtypes match, got Double for the destination and Float for the source"
    from latentsweep.datasets import shapes as shapes_module

    monkeypatch.setattr(shapes_module, "_TABLES", {})  # (built anew, not found built by another test)
    shapes = ls.datasets.Shapes()
    factors = shapes.sample_factors(8, torch.Generator().manual_seed(0))
    with _default_dtype(torch.float64):
        images = shapes.observations(factors)
    assert images.dtype == torch.float32 and images.shape == (8, 1, 32, 32)
    monkeypatch.setattr(shapes_module, "_TABLES", {})
    assert torch.equal(ls.datasets.Shapes().observations(factors), images)  # the same images either way


def test_the_shipped_models_are_float32_like_their_data_under_a_float64_default_dtype():
    # the README's `shapes_vae.encoder(shapes.observations(factors))` failed: the model was built
    # float64 ("mat1 and mat2 must have the same dtype, but got Float and Double"), though
    # load_shapes_vae says float32
    from latentsweep.demo import load_demo_model, load_digits_data
    from latentsweep.demo.shapes_vae import load_shapes_vae

    with _default_dtype(torch.float64):
        shapes_vae, digits_ae = load_shapes_vae(), load_demo_model("digits-ae")
        with torch.no_grad():
            shapes_vae.encoder(ls.datasets.Shapes().observations(torch.zeros(2, 5, dtype=torch.int64)))
            digits_ae.decoder(digits_ae.encoder(load_digits_data()[0][:2]))
    assert {p.dtype for model in (shapes_vae, digits_ae) for p in model.parameters()} == {torch.float32}


def test_a_report_to_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    # (a read-only working directory, or read-only media, as os.access tells it; as root every
    # folder is writable, so it is simulated) explain encoded, traversed and drew everything,
    # then failed to write its report: "latentsweep.report: cannot write path=...: Permission denied"
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda place, mode, *args, **kwargs: False if mode & os.W_OK and str(
        place).startswith(str(read_only)) else real_access(place, mode, *args, **kwargs))
    torch.manual_seed(0)
    encoder, decoder = torch.nn.Linear(6, 4), torch.nn.Linear(2, 6)
    calls = []
    decoder.register_forward_hook(lambda *_: calls.append(1))
    data = torch.randn(20, 6)
    split = lambda x: tuple(encoder(x).chunk(2, dim=1))  # noqa: E731
    with pytest.raises(ValueError, match=r"latentsweep\.explain: cannot write out='.*read-only.*report\.html': "
                                         r"'.*read-only' is not writable \(read-only media or no permission\)"):
        ls.explain(split, decoder, data, out=read_only / "report", anchors=2, progress=False)
    posterior = ls.encode(split, data, progress=False)
    with pytest.raises(ValueError, match=r"latentsweep\.report: cannot write path="):
        ls.report(read_only / "r.html", diagnosis=ls.diagnose(posterior), posterior=posterior)
    with pytest.raises(ValueError, match=r"latentsweep\.plots\.kl_bars: cannot write path="):
        ls.plots.kl_bars(ls.diagnose(posterior), path=read_only / "kl.png")
    assert calls == [] and list(read_only.iterdir()) == []
    ls.plots.kl_bars(ls.diagnose(posterior), path=tmp_path / "writable" / "kl.png")  # (a folder yet to be made)
    assert (tmp_path / "writable" / "kl.png").is_file()


def test_an_output_path_linked_to_a_file_not_yet_written_is_writable(tmp_path):
    """A symbolic link to a report not written yet (reports/today.html) was refused as "not
    writable": os.access on the link follows it to a file that does not exist."""
    (tmp_path / "reports").mkdir()
    link = tmp_path / "report.html"
    link.symlink_to(tmp_path / "reports" / "today.html")
    assert _checks.output_file("f", "path", link) == link
    (tmp_path / "later").symlink_to(tmp_path / "new" / "folder" / "x.html")  # (its folders made on writing)
    assert _checks.output_file("f", "path", tmp_path / "later") == tmp_path / "later"


def test_the_package_imports_under_python_OO():
    """``python -OO`` strips docstrings: decoding.py formatted ``decoder_call.__doc__`` (None)
    at import, so ``import latentsweep`` raised AttributeError ('NoneType' ... 'format')."""
    run = subprocess.run([sys.executable, "-OO", "-c", "import latentsweep"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
