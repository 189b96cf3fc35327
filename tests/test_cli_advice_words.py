"""The command line's words for what the library says in Python's: the diagnosis's advice as the
options of traverse (``--mode empirical``, ``--dims 0,1``), and ``open``'s advice for a damaged
store that Python's interpolate wrote (its arguments, not traverse's options)."""

from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pytest
import torch

import latentsweep as ls
from test_cli import assert_one_line_error, invoke

COLLAPSED_VAE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class CollapsedVAE(nn.Module):
        # dims 0 and 3: active, their codes far off the prior (a marginal mismatch); 1-2: collapsed
        def __init__(self):
            super().__init__()
            self.dec = nn.Linear(4, 6)

        def encoder(self, x):
            zero = torch.zeros_like(x[:, :1])
            mu = torch.cat([3.0 + x[:, :1], zero, zero, 3.0 + x[:, 1:2]], 1)
            logvar = torch.cat([zero - 2.0, zero, zero, zero - 2.0], 1)
            return mu, logvar

        def decoder(self, z):
            return self.dec(z)
    """
)
PYTHON_WORDS = ("reference=posterior.mu", "dims=diagnosis", 'mode "', "mode '", "principal_directions(")


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("words")
    (folder / "collapsed_vae.py").write_text(COLLAPSED_VAE)
    np.save(folder / "x.npy", np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32))
    return folder


def test_diagnose_gives_its_advice_as_options(collapsed):
    done = invoke("diagnose", "--model", "collapsed_vae.py:CollapsedVAE", "--data", "x.npy", "--out", "diag",
                  cwd=collapsed)
    text = done.stdout
    assert "marginal-mismatch" in text and "collapsed" in text, text
    for python in PYTHON_WORDS:
        assert python not in text, (python, text)
    assert "Recommendation (--mode empirical): Traverse with --mode empirical (its range: the codes of --data)" in text
    assert text.count("(--dims 0,3 traverses the active ones)") == 2, text  # (a finding and the recommendation)
    assert (collapsed / "diag" / "diagnosis.txt").read_text() == text  # what was printed
    # the JSON is the library's data as it is
    saved = json.loads((collapsed / "diag" / "diagnosis.json").read_text())
    assert "(dims=diagnosis.active_dims)" in saved["recommendation"] and saved["active_dims"] == [0, 3]
    printed = json.loads(invoke("diagnose", "--model", "collapsed_vae.py:CollapsedVAE", "--data", "x.npy", "--json",
                                cwd=collapsed).stdout)
    assert 'mode "empirical" (reference=posterior.mu)' in printed["recommendation"]


def test_the_diagnosis_words_of_each_advice():
    """Every form of the library's advice, as the command line says it (the digits VAEs and the
    autoencoder of the demo say these)."""
    from latentsweep.cli.errors import cli_words

    assert cli_words('Traverse by the prior (mode "prior" or "absolute"), not the posterior') == \
        "Traverse by the prior (--mode prior or absolute), not the posterior"
    assert cli_words('traverse with mode "prior" or "absolute", not "posterior".') == \
        "traverse with --mode prior or absolute, not posterior."
    assert cli_words('Traverse with mode "prior" (the default): the codes') == \
        "Traverse with --mode prior (what --mode auto, the default, picks): the codes"
    assert cli_words("leave them out of traversals (dims=diagnosis.active_dims: 0-3, 8, 10-11).") == \
        "leave them out of traversals (--dims 0,1,2,3,8,10,11 traverses the active ones)."
    assert cli_words("the principal directions (latentsweep.principal_directions(posterior)).") == \
        "the principal directions (`latentsweep report --directions pca` draws them)."


def test_the_demo_summary_lists_the_active_dims():
    """A summary names the active latents without listing them ("leave them out
    (dims=diagnosis.active_dims)"): the demo prints them as --dims takes them."""
    from latentsweep.cli.errors import diagnosis_words

    torch.manual_seed(0)
    mu = torch.cat([torch.randn(64, 2) + 3.0, torch.zeros(64, 2), torch.randn(64, 1) + 3.0], 1)
    logvar = torch.cat([torch.full((64, 2), -2.0), torch.zeros(64, 2), torch.full((64, 1), -2.0)], 1)
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    assert "(dims=diagnosis.active_dims)" in diagnosis.summary()  # (the library's words stay)
    text = diagnosis_words(diagnosis.summary(), diagnosis)
    assert "leave them out (--dims 0,1,4 traverses the active ones)" in text, text
    assert "Traverse with --mode empirical (its range: the codes of --data)" in text, text
    # the demo has no --data: its summaries name its own inputs
    demo = diagnosis_words(diagnosis.summary(), diagnosis, inputs="the demo's inputs")
    assert "Traverse with --mode empirical (its range: the codes of the demo's inputs)" in demo, demo
    assert "--data" not in demo, demo


def _damaged_interpolation(tmp_path, name="p.zarr"):
    store = tmp_path / name
    ls.interpolate(torch.nn.Linear(3, 4), torch.randn(2, 3), torch.randn(2, 3), steps=3, out=str(store),
                   progress=False)
    meta = store.with_name(store.name + ".latentsweep") if name.endswith(".npy") else store
    shutil.rmtree(meta / "path_ends")
    return store


@pytest.mark.parametrize("name", ["p.zarr", "p.npy"])
def test_open_of_a_damaged_interpolation_advises_interpolates_arguments(tmp_path, name):
    store = _damaged_interpolation(tmp_path, name)
    line = assert_one_line_error(invoke("open", str(store), cwd=tmp_path, check=False),
                                 "is damaged", "pass overwrite=True to start over",
                                 # (the argument the advice names: both were said)
                                 "(overwrite=True: argument of latentsweep.interpolate, which wrote it)")
    assert "--overwrite" not in line and "--resume" not in line and "traverse" not in line


def test_open_of_unreadable_metadata_keeps_the_commands_words(tmp_path):
    """Which function wrote it cannot be read: the advice of the traverse command, as before."""
    store = _damaged_interpolation(tmp_path)
    (store / "zarr.json").write_text("{")
    line = assert_one_line_error(invoke("open", str(store), cwd=tmp_path, check=False), "is damaged")
    assert "overwrite=True" not in line and "resume=True" not in line
