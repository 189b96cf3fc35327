"""Defects a triage of mypy's errors in the package found; each test failed before its fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from training_models import TinyVAE, digits


def test_the_package_imports_under_python_OO():
    """``python -OO`` strips docstrings: decoding.py formatted ``decoder_call.__doc__`` (None)
    at import, so ``import latentsweep`` raised AttributeError ('NoneType' ... 'format')."""
    run = subprocess.run([sys.executable, "-OO", "-c", "import latentsweep"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


class WriterWithoutFlush:
    """A SummaryWriter look-alike with the methods is_summary_writer asks for, and no flush."""

    def __init__(self):
        self.calls = []

    def add_scalar(self, *args, **kwargs):
        self.calls.append("add_scalar")

    def add_image(self, *args, **kwargs):
        self.calls.append("add_image")

    def add_text(self, *args, **kwargs):
        self.calls.append("add_text")


def test_log_traversals_takes_a_writer_look_alike_without_flush():
    """log_traversals accepts any writer with add_scalar, add_image and add_text (its TypeError
    lists those three), then called writer.flush(): AttributeError after the whole snapshot."""
    pytest.importorskip("tensorboard")
    from latentsweep.integrations.tensorboard import log_traversals

    vae = TinyVAE()
    writer = WriterWithoutFlush()
    log_traversals(writer, vae.encoder, vae.decoder, digits(16), step=0, max_dims=2, anchors=2, steps=3)
    assert {"add_scalar", "add_image", "add_text"} <= set(writer.calls)
