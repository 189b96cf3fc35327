"""What ``latentsweep COMMAND --help`` says of each option is what the option does: the stated
defaults are argparse's, and options said to need another are refused without it."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

from cli_models import tiny_data, tiny_vae_source
from test_cli import invoke


def _command_parsers() -> dict[str, argparse.ArgumentParser]:
    from latentsweep.cli import build_parser

    return build_parser().get_default("command_parsers")


def _stated_default(help_text: str) -> str | None:
    # (a value may hold commas: "default mig,sap,..."; one ends at "; ", ", " or ")")
    match = re.search(r"\(default:? ([^\s;)]+?)(?:[;,]\s|\)| of)", help_text) or \
        re.search(r"[(;] ?default ([^\s;)]+?)(?:[;,]\s|\))", help_text)
    return None if match is None else match.group(1)


# Options whose default is None in the parser (so that giving them can be told apart) and is
# resolved when the command runs: the value their help states.
RESOLVED_WHEN_RUN = {"sample --inputs": "4", "metrics --batch-size": "256", "sample --prior-std": "1",
                     "sample --batch-size": "256", "report --max-directions": "8", "metrics --bins": "20",
                     "metrics --dci-estimator": "gradient_boosting", "report --num-train": "10000",
                     "report --num-test": "5000", "report --seed": "0",
                     "report --metrics": "mig,sap,modularity_explicitness,unsupervised,irs"}


def test_every_stated_default_is_argparses_default():
    """A default the help states as one value ("default 256", "default none") is the parser's;
    one stated in words ("the model's") belongs to an option whose default is None."""
    checked = 0
    for command, parser in _command_parsers().items():
        for action in parser._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS) or \
                    isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)):
                continue
            stated = _stated_default(action.help % {"default": action.default})
            if stated is None:
                continue
            name = f"{command} {action.option_strings[-1]}"
            if name in RESOLVED_WHEN_RUN:
                assert stated == RESOLVED_WHEN_RUN[name], f"{name}: help says default {stated}"
                continue
            if action.default is None:  # said in words: the model's, the file itself, all ...
                assert not re.fullmatch(r"-?[\d.e+]+", stated), f"{name}: help says default {stated}, parser None"
                continue
            value = action.default
            expected = {float: lambda v: f"{v:g}", int: str, str: str}[type(value)](value)
            assert stated == expected, f"{name}: help says default {stated!r}, parser has {value!r}"
            checked += 1
    assert checked >= 20  # (the parse found them)


def test_every_option_with_a_numeric_default_states_it():
    """-n's default (16) was not in its help."""
    for command, parser in _command_parsers().items():
        for action in parser._actions:
            if action.option_strings and type(action.default) in (int, float) and action.default is not False:
                assert "default" in (action.help or ""), f"{command} {action.option_strings[-1]} states no default"


def test_reports_dims_help_says_explains_default():
    """report traverses a VAE's active latents by default (explain's dims=None), not all of them."""
    report = _command_parsers()["report"]
    (dims,) = [a for a in report._actions if "--dims" in a.option_strings]
    assert "active latents" in dims.help
    (traverse_dims,) = [a for a in _command_parsers()["traverse"]._actions if "--dims" in a.option_strings]
    assert "default all" in traverse_dims.help


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("help_claims")
    (folder / "claims_models.py").write_text(tiny_vae_source())
    np.save(folder / "data.npy", tiny_data())
    return folder


def test_report_seed_needs_factors(workspace):
    """--seed is the metrics' seed: without --factors it did nothing (exit 0)."""
    done = invoke("report", "--model", "claims_models.py:make", "--data", "data.npy", "--seed", "3",
                  "--out", "r", cwd=workspace, check=False)
    assert done.returncode == 2
    assert "--seed needs --factors" in done.stderr
    assert not (workspace / "r").exists()


def test_traverse_resume_and_overwrite_together_is_a_usage_error(workspace):
    """Exit 1 and the library's words ("contradict each other"), found after loading; now exit 2."""
    done = invoke("traverse", "--model", "claims_models.py:make", "--data", "data.npy", "--store", "s.zarr",
                  "--resume", "--overwrite", "--out", "t", cwd=workspace, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("latentsweep: error: traverse: --resume") and "--overwrite" in line


def test_traverse_image_shape_with_no_outputs_is_a_usage_error(workspace):
    """--image-shape draws the outputs; with --no-outputs nothing was drawn and nothing said (exit 0)."""
    done = invoke("traverse", "--model", "claims_models.py:make", "--data", "data.npy", "--no-outputs",
                  "--image-shape", "2,2", "--out", "t", cwd=workspace, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("latentsweep: error: traverse: --image-shape says how to draw the outputs, which "
                           "--no-outputs does not keep")


def test_the_shard_help_says_shards_count_from_zero():
    """A 1-based Slurm array (--array=1-N) gives I = N, which is refused."""
    shard = next(a for a in _command_parsers()["traverse"]._actions if "--shard" in a.option_strings)
    assert "I from 0 (a Slurm array --array=0-(N-1)" in shard.help


@pytest.mark.parametrize("options, said", [
    (("--key", "x"), "--key concerns the inputs of --data (posterior samples); without --data the codes come from"),
    (("--key", "x", "--encoder", "enc"), "--key and --encoder concern the inputs of --data"),
    (("--data", "data.npy", "--prior-std", "5"), "--prior-std is the prior's SD, for prior samples; with --data"),
    (("--batch-size", "7"), "--batch-size concerns the inputs of --data (posterior samples); without --data"),
])
def test_sample_options_that_would_do_nothing_are_usage_errors(workspace, options, said):
    """They were ignored silently (exit 0): --key and --encoder without --data, --prior-std with it."""
    done = invoke("sample", "--model", "claims_models.py:make", "-n", "2", *options, "--out", "s", cwd=workspace,
                  check=False)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("latentsweep: error: sample: " + said), line


def test_the_resolved_defaults_are_the_librarys():
    """sample's --batch-size and report's --max-directions are None in the parser (told apart when
    given) and resolved to the library's defaults, which their help states."""
    import inspect

    import latentsweep as ls

    assert RESOLVED_WHEN_RUN["sample --batch-size"] == str(inspect.signature(ls.encode).parameters["batch_size"].default)
    assert RESOLVED_WHEN_RUN["report --max-directions"] == \
        str(inspect.signature(ls.explain).parameters["max_directions"].default)


def test_sample_batch_size_is_used_with_data(workspace):
    from unittest import mock

    import latentsweep as ls

    with mock.patch.object(ls, "encode", wraps=ls.encode) as encode:
        invoke("sample", "--model", "claims_models.py:make", "--data", "data.npy", "-n", "2", "--out", "s",
               cwd=workspace)
        invoke("sample", "--model", "claims_models.py:make", "--data", "data.npy", "-n", "2", "--batch-size", "7",
               "--out", "s", cwd=workspace)
    assert [call.kwargs["batch_size"] for call in encode.call_args_list] == [256, 7]


@pytest.mark.parametrize("command", ["traverse", "report"])
def test_a_span_beyond_an_explicit_modes_limit_is_a_usage_error(workspace, command):
    """--mode quantile --span 40 was the library's error after loading the model (exit 1)."""
    done = invoke(command, "--model", "claims_models.py:make", "--data", "data.npy", "--mode", "quantile",
                  "--span", "40", "--out", f"q-{command}", cwd=workspace, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # (said before loading: no note of the model's weights)
    assert line.startswith(f"latentsweep: error: {command}: --mode quantile takes --span <= 37.5"), line
    assert not (workspace / f"q-{command}").exists()
    invoke(command, "--model", "claims_models.py:make", "--data", "data.npy", "--mode", "quantile", "--span", "37.5",
           "--steps", "3", "--out", f"q-{command}", cwd=workspace)


def test_the_span_help_says_its_unit_in_each_mode():
    """It said "+/- span prior SDs", which posterior mode's span is not."""
    span = next(a for a in _command_parsers()["traverse"]._actions if "--span" in a.option_strings)
    assert "posterior SDs in posterior mode" in span.help and "quantile: at most 37.5" in span.help


@pytest.mark.parametrize("directions", ["coordinates", "clusters", "directions.npy"])
def test_report_max_directions_without_principal_directions_is_a_usage_error(workspace, directions):
    """--max-directions counts principal directions: with these --directions it did nothing (exit 0)."""
    np.save(workspace / "directions.npy", np.eye(2, 3, dtype=np.float32))
    done = invoke("report", "--model", "claims_models.py:make", "--data", "data.npy", "--directions", directions,
                  "--clusters", "2", "--max-directions", "3", "--out", "m", cwd=workspace, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"latentsweep: error: report: --max-directions limits the principal directions "
                           f"(--directions pca, or auto with a plain autoencoder); --directions {directions} "
                           "traverses none"), line


def test_report_max_directions_on_a_vaes_auto_directions_is_said(workspace):
    """A VAE's --directions auto traverses its latents: --max-directions did nothing, silently."""
    done = invoke("report", "--model", "claims_models.py:make", "--data", "data.npy", "--max-directions", "3",
                  "--steps", "3", "--out", "m", cwd=workspace)
    assert "note: --max-directions 3 does nothing here: --directions auto traverses a VAE's latents" in done.stderr
    quiet = invoke("report", "--model", "claims_models.py:make", "--data", "data.npy", "--steps", "3", "--out", "m",
                   cwd=workspace)
    assert "--max-directions" not in quiet.stderr
