"""What the commands say is what happened: limits said as usage errors naming the option,
options that would do nothing refused, advice in the command line's words, and `open`'s
advice naming who wrote a store only when that can be known."""

from __future__ import annotations

import inspect
from unittest import mock

import pytest
import torch

from test_cli import invoke
from test_cli_help_claims import workspace  # noqa: F401  (the fixture: a model file and data)

INT64_MAX = 2**63 - 1




MODEL = ("--model", "claims_models.py:make")


def _error_line(done, code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    (line,) = [line for line in done.stderr.strip().splitlines() if not line.startswith("latentsweep: warning:")]
    assert "Traceback" not in done.stderr
    return line


# ---- integer options beyond the library's limits (exit 2 naming the option; they were exit 1) ----
@pytest.mark.parametrize("command", ["traverse", "report"])
def test_steps_whose_values_overflow_int64_are_a_usage_error(workspace, command):
    """--steps 2**63-1 was the library's "A * K * steps ... overflows int64" after loading, exit 1."""
    done = invoke(command, *MODEL, "--data", "data.npy", "--steps", str(INT64_MAX), "--out", f"o-{command}",
                  cwd=workspace, check=False)
    line = _error_line(done, 2)
    assert f"{command}: --steps {INT64_MAX}" in line and "overflows int64" in line, line


def test_steps_that_overflow_with_the_real_anchors_and_latents_are_a_usage_error(workspace):
    """8 anchors x 3 latents: a --steps that alone fits, but not with them."""
    steps = INT64_MAX // (8 * 3 * torch.float64.itemsize) + 1
    done = invoke("traverse", *MODEL, "--data", "data.npy", "--steps", str(steps), "--out", "o-real", cwd=workspace,
                  check=False)
    line = _error_line(done, 2)
    assert f"--steps {steps} from 8 anchor(s) along 3 latent(s)" in line and "--anchors" in line, line


def _sampling_limits():
    from latentsweep._extension import _C

    return int(_C.MAX_ROW_COUNTER), int(_C.MAX_SAMPLE_COUNTER), int(_C.MAX_LATENT_SIZE)


@pytest.mark.parametrize("which", ["prior", "posterior", "latent-dim", "latent-shape"])
def test_sample_sizes_beyond_the_ops_limits_are_usage_errors(workspace, which):
    """-n 2**63-1 and --latent-dim 2**63-1 were the library's errors (exit 1) naming n= and
    latent_size=."""
    prior, posterior, latent = _sampling_limits()
    args = {"prior": ("-n", str(prior + 1)), "posterior": ("--data", "data.npy", "-n", str(posterior + 1)),
            "latent-dim": ("--latent-dim", str(latent + 1)), "latent-shape": ("--latent-shape", f"{latent},2")}[which]
    done = invoke("sample", *MODEL, *args, "--out", "s", cwd=workspace, check=False)
    line = _error_line(done, 2)
    assert {"latent-dim": "--latent-dim", "latent-shape": "--latent-shape"}.get(which, "-n/--num-samples") in line, line
    assert f"<= {({'prior': prior, 'posterior': posterior}.get(which, latent))}" in line, line


def test_sample_help_states_the_ops_limits():
    from latentsweep.cli import build_parser

    sample = build_parser().get_default("command_parsers")["sample"]
    helps = {a.option_strings[-1]: a.help for a in sample._actions if a.option_strings}
    assert "at most 2**48, 2**47 with --data" in helps["--num-samples"]
    assert "at most 2**34" in helps["--latent-dim"]


def test_posterior_samples_too_large_for_memory_advise_the_options(workspace):
    """The advice ended "(or fewer rows at a time, with row_offset=)": a Python argument."""
    _, posterior, _ = _sampling_limits()
    done = invoke("sample", *MODEL, "--data", "data.npy", "-n", str(posterior), "--out", "s", cwd=workspace,
                  check=False)
    line = _error_line(done, 1)
    assert "row_offset" not in line and line.endswith("draw fewer (-n) or from fewer --inputs"), line


# ---- metrics -----------------------------------------------------------------------------------
@pytest.mark.parametrize("metric, option", [("mig", ("--votes", "5,5")), ("sap", ("--bins", "7")),
                                            ("mig", ("--dci-estimator", "random_forest"))])
def test_metrics_options_of_metrics_that_do_not_run_are_usage_errors(workspace, metric, option):
    """They did nothing (exit 0), and the printed settings left them out."""
    with mock.patch("latentsweep.metrics.evaluate") as evaluate:
        done = invoke("metrics", "--metrics", metric, *option, cwd=workspace, check=False)
    line = _error_line(done, 2)
    assert f"metrics: {option[0]} is for" in line and f"--metrics {metric} runs" in line, line
    evaluate.assert_not_called()


def test_metrics_votes_below_one_are_a_usage_error(workspace):
    """--votes 0,5 was the library's error, exit 1."""
    line = _error_line(invoke("metrics", "--metrics", "factor_vae", "--votes", "0,5", cwd=workspace, check=False), 2)
    assert "argument --votes: must be >= 1, got 0" in line, line


def test_metrics_defaults_are_evaluates(workspace):
    """The defaults the help states and the command passes are metrics.evaluate's (one source)."""
    import latentsweep as ls

    defaults = {name: p.default for name, p in inspect.signature(ls.metrics.evaluate).parameters.items()}
    with mock.patch("latentsweep.metrics.evaluate") as evaluate:
        invoke("metrics", "--metrics", "mig", cwd=workspace, check=False)
    passed = evaluate.call_args.kwargs
    for name in ("num_train", "num_test", "seed", "bins", "dci_estimator"):
        assert passed[name] == defaults[name], name


@pytest.mark.parametrize("args, flags", [(("--metrics", "mig", "--num-train", str(INT64_MAX)),
                                          (f"--num-train {INT64_MAX} and --num-test", "lower --num-train/--num-test")),
                                         (("--metrics", "factor_vae", "--votes", f"{INT64_MAX},3"),
                                          (f"--votes {INT64_MAX},3:", "lower --votes"))])
def test_metrics_sizes_that_cannot_be_held_are_said_by_their_options(workspace, args, flags):
    """They named evaluate's keywords: "num_train=... and num_test=...; lower num_train/num_test"."""
    line = _error_line(invoke("metrics", *args, "--no-progress", cwd=workspace, check=False), 1)
    assert all(flag in line for flag in flags) and "num_train" not in line and "sampling_votes" not in line, line
    assert "metrics.evaluate" not in line, line


def test_report_metrics_options_at_their_default_values_need_factors(workspace):
    """`--num-train 10000` (the default's value) without --factors did nothing, as if left out."""
    done = invoke("report", *MODEL, "--data", "data.npy", "--num-train", "10000", "--out", "r", cwd=workspace,
                  check=False)
    assert "--num-train needs --factors" in _error_line(done, 2)


# ---- open --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def interpolation_stores(workspace):
    """An incomplete store of Python's interpolate (one shard of 4), and a complete one whose
    metadata (zarr.json) is gone."""
    import latentsweep as ls

    decoder = torch.nn.Linear(3, 2)
    start, end = torch.zeros(8, 3), torch.ones(8, 3)
    ls.interpolate(decoder, start, end, steps=8, out=workspace / "half.zarr", batch_size=2, shard=(0, 4),
                   progress=False)
    ls.interpolate(decoder, start, end, steps=3, out=workspace / "bare.zarr", progress=False)
    (workspace / "bare.zarr" / "zarr.json").unlink()
    return workspace


def test_open_names_the_python_arguments_its_advice_names(interpolation_stores):
    """It said "(resume=True and overwrite=True: arguments of latentsweep.interpolate ...)" of
    advice that names resume=True only."""
    line = _error_line(invoke("open", "half.zarr", cwd=interpolation_stores, check=False), 1)
    assert line.endswith("(resume=True: argument of latentsweep.interpolate, which wrote it)"), line


def test_open_does_not_say_traverse_wrote_a_store_whose_writer_cannot_be_read(interpolation_stores):
    """An interpolate store without its metadata was said to be written by "the traverse command"."""
    line = _error_line(invoke("open", "bare.zarr", cwd=interpolation_stores, check=False), 1)
    assert "pass --overwrite to start over" in line, line
    assert "traverse command that wrote it" not in line and "if it wrote it" in line, line
    assert "latentsweep.interpolate takes its overwrite= argument" in line, line


def test_open_summarises_a_store_in_words_the_command_line_uses(workspace):
    """Its summary said "(open_sweep: decoded by the runs that wrote it)", Python's function."""
    invoke("traverse", *MODEL, "--data", "data.npy", "--steps", "3", "--store", "done.zarr", "--out", "o-done",
           cwd=workspace)
    summary = invoke("open", "done.zarr", cwd=workspace).stdout
    assert "read from the store at done.zarr (decoded by the runs that wrote it)" in summary, summary
    assert "open_sweep" not in summary


def test_out_names_the_file_in_the_way(tmp_path):
    """--out afile/sub with afile a file said the file in the way was 'afile/sub'."""
    (tmp_path / "afile").write_text("mine")
    line = _error_line(invoke("demo", "--quick", "--out", "afile/sub", cwd=tmp_path, check=False), 1)
    assert line.endswith("--out 'afile/sub': a file is in the way of the output folder ('afile')"), line
    assert (tmp_path / "afile").read_text() == "mine"
