"""The command line as a demanding user meets it: what an adversarial pass found said wrongly,
silently ignored, or said as a bug (each case failed before its fix)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from test_cli import assert_one_line_error, invoke, workspace  # noqa: F401  (workspace: the fixture)

WEIGHTS = ("--model", "tiny_models:make", "--weights", "tiny.pt")


def test_a_report_whose_sweep_stopped_does_not_advise_a_store_it_has_not(workspace, tmp_path):
    """The library's advice after a stopped sweep ("Pass --store sweep.zarr to keep partial
    results") named an option that report does not take."""
    completed = invoke("report", "--model", "tiny_models:failing", "--weights", "tiny.pt", "--data", "data.npy",
                       "--steps", "40", "--out", str(tmp_path / "r"), cwd=workspace, check=False)
    line = assert_one_line_error(completed, "the decoder broke")
    assert "--store" not in line and "sweep.zarr" not in line, line
    # (the decoder's 5th call falls in the batch trials or in the units, as the timed trials go:
    # only a sweep stopped in its units says what was kept)
    assert ("stopped after" in line) == ("report.html is written at the end" in line), line
    # traverse, which has --store, still says it
    completed = invoke("traverse", "--model", "tiny_models:failing", "--weights", "tiny.pt", "--data", "data.npy",
                       "--steps", "40", "--sweep-batch-size", "4", "--out", str(tmp_path / "t"), cwd=workspace,
                       check=False)
    assert_one_line_error(completed, "Pass --store sweep.zarr")


def test_no_store_to_keep_rewrites_the_advice_of_an_interrupt():
    from latentsweep.cli.errors import no_store_to_keep, one_line

    interrupt = KeyboardInterrupt()
    interrupt.add_note("latentsweep.traverse: the sweep stopped after 2 of 5 work units. Pass out='sweep.zarr' to "
                       "keep partial results on disk and make long sweeps resumable.")
    with pytest.raises(KeyboardInterrupt) as caught, no_store_to_keep("Nothing is kept."):
        raise interrupt
    assert caught.value.__notes__ == ["latentsweep.traverse: the sweep stopped after 2 of 5 work units. Nothing is "
                                      "kept."]
    assert "--store" not in one_line(" ".join(caught.value.__notes__))


@pytest.mark.parametrize("command", ["traverse", "diagnose", "sample", "report"])
def test_weights_key_without_weights_is_a_usage_error(workspace, tmp_path, command):
    """--weights-key without --weights was ignored: the model ran with its built weights."""
    data = () if command == "sample" else ("--data", "data.npy")
    out = () if command == "diagnose" else ("--out", str(tmp_path / "o"))
    completed = invoke(command, "--model", "tiny_models:make", "--weights-key", "model", *data, *out,
                       cwd=workspace, check=False)
    assert_one_line_error(completed, "--weights-key", "it needs --weights", code=2)
    assert not (tmp_path / "o").exists()


def test_metrics_weights_key_without_weights_is_a_usage_error(workspace):
    completed = invoke("metrics", "--model", "tiny_models:make", "--weights-key", "model", "--no-progress",
                       cwd=workspace, check=False)
    assert_one_line_error(completed, "--weights-key", "it needs --weights", code=2)


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_prior_samples_are_saved_in_the_models_dtype(workspace, tmp_path, dtype):
    """sample's help says codes.npy is in the model's dtype: prior codes were float32 always
    (a float16 model decoded other values than those saved)."""
    (tmp_path / "typed.py").write_text(
        "import torch, tiny_models\n"
        f"def make():\n    return tiny_models.make().to(torch.{dtype})\n")
    invoke("sample", "--model", f"{tmp_path / 'typed.py'}:make", "-n", "5", "--out", str(tmp_path / "o"),
           cwd=workspace)
    codes = np.load(tmp_path / "o" / "codes.npy")
    assert codes.dtype == np.dtype(dtype) and codes.shape == (5, 3)
    float32 = np.load(_sampled(workspace, tmp_path / "f32"))
    np.testing.assert_allclose(codes.astype(np.float64), float32, rtol=1e-3)  # the same draws, in the dtype


def _sampled(workspace, out):
    invoke("sample", *WEIGHTS, "-n", "5", "--out", str(out), cwd=workspace)
    return out / "codes.npy"


@pytest.mark.parametrize("prior_std, needles", [
    ("1e300", ("--prior-std 1e+300: the samples reach", "beyond the largest float32", "pass a smaller --prior-std")),
    ("1e-300", ("--prior-std 1e-300 is below the smallest normal float32", "pass a larger --prior-std")),
])
def test_sample_names_a_prior_std_beyond_the_decoders_dtype(workspace, tmp_path, prior_std, needles):
    """The codes overflowed to Inf and the error blamed the decoder ("the decoder returned NaN/Inf
    for some of the sampled codes"); a tiny one made every code 0, silently."""
    completed = invoke("sample", *WEIGHTS, "--prior-std", prior_std, "--out", str(tmp_path / "o"), cwd=workspace,
                       check=False)
    line = assert_one_line_error(completed, *needles, code=2)  # (a value the decoder's dtype cannot hold: usage)
    assert "decoder returned" not in line
    assert not (tmp_path / "o").exists()


def test_a_float16_decoder_gets_no_infinite_prior_codes(workspace, tmp_path):
    (tmp_path / "half.py").write_text("import torch, tiny_models\ndef make():\n    return tiny_models.make().half()\n")
    completed = invoke("sample", "--model", f"{tmp_path / 'half.py'}:make", "--prior-std", "1e5", "--out",
                       str(tmp_path / "o"), cwd=workspace, check=False)
    assert_one_line_error(completed, "--prior-std 100000", "beyond the largest float16", code=2)


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_a_closed_standard_stream_is_not_said_as_a_bug(workspace, tmp_path, closed):
    """`latentsweep traverse ... >&-`: print() went to None.write ("AttributeError: 'NoneType'
    object has no attribute 'write' (run with --debug ...)", exit 1); with stderr closed
    (`2>&-`), the progress check asked None.isatty() and the command failed the same way. A
    closed stream drops what goes to it, as Python's print() does."""
    fd = 1 if closed == "stdout" else 2
    completed = subprocess.run(
        [sys.executable, "-m", "latentsweep", "traverse", "--model", "tiny_models:make", "--data", "data.npy",
         "--anchors", "2", "--steps", "3", "--out", str(tmp_path / "o")],
        preexec_fn=lambda: os.close(fd), stdout=None if closed == "stdout" else subprocess.PIPE,
        stderr=None if closed == "stderr" else subprocess.PIPE, text=True, cwd=workspace, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "o" / "traversal.npz").exists()
    if closed == "stdout":
        assert "AttributeError" not in completed.stderr and "no --weights" in completed.stderr, completed.stderr
    else:  # (the warning is dropped, not printed among the summary)
        assert "wrote traversal.npz" in completed.stdout and "latentsweep:" not in completed.stdout, completed.stdout


def test_warnings_and_notes_are_said_by_rank_zero_only(monkeypatch, capsys):
    """Under torchrun every rank printed the command's warnings and notes ("no --weights" twice)."""
    from latentsweep.cli.errors import say

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    for kind in ("warning", "note", "error"):
        say(kind, "a message")
    assert capsys.readouterr().err == "latentsweep: error: a message\n"
    monkeypatch.setenv("RANK", "0")
    say("warning", "a message")
    assert capsys.readouterr().err == "latentsweep: warning: a message\n"


def test_torchrun_says_the_no_weights_warning_once(workspace):
    args = ["traverse", "--model", "tiny_models:make", "--data", "data.npy", "--anchors", "2", "--steps", "3",
            "--out", "ranks_warned", "--store", "ranks_warned.zarr", "--no-progress"]
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "latentsweep",
         *args], capture_output=True, text=True, cwd=workspace, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[:4000]
    assert completed.stderr.count("latentsweep: warning: no --weights") == 1, completed.stderr
    assert completed.stdout.count("points/s") == 1, completed.stdout


def test_diagnose_checks_its_out_folder_before_the_work(workspace, tmp_path):
    """A file in the way of diagnose's --out was found after the diagnosis had been printed (the
    other commands make --out's folder first)."""
    (tmp_path / "taken").write_text("a file")
    completed = invoke("diagnose", *WEIGHTS, "--data", "data.npy", "--out", str(tmp_path / "taken"), cwd=workspace,
                       check=False)
    assert_one_line_error(completed, "a file is in the way of the output folder")
    assert completed.stdout == "", completed.stdout
    failed = invoke("diagnose", *WEIGHTS, "--data", "missing.npy", "--out", str(tmp_path / "new"), cwd=workspace,
                    check=False)
    assert_one_line_error(failed, "--data: no such file")
    assert not (tmp_path / "new").exists()  # (made for the work, removed when it failed)
    invoke("diagnose", *WEIGHTS, "--data", "data.npy", "--out", str(tmp_path / "new"), cwd=workspace)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["diagnosis.json", "diagnosis.txt"]


@pytest.mark.parametrize("args, expected", [
    # the flag said twice ("--image-shape: --image-shape holds ...")
    (("traverse", *WEIGHTS, "--data", "data.npy", "--image-shape", "3,3", "--out", "{tmp}/o"),
     "latentsweep: error: traverse: --image-shape (3, 3) holds 9 values but each decoder output (1, 4, 4) holds 16"),
    # the library's keyword (metrics=) and name (dims[...], sample_prior's D), not the flag
    (("metrics", *WEIGHTS, "--data", "data.npy", "--factors", "{tmp}/f.npy", "--metrics", ",", "--no-progress"),
     "latentsweep: error: metrics: --metrics must be 'all' or a non-empty list of names"),
    (("traverse", *WEIGHTS, "--data", "data.npy", "--dims", "99999999999999999999", "--out", "{tmp}/o"),
     "latentsweep: error: traverse: each of --dims must be <= 9223372036854775807"),
    # (a --latent-dim or --latent-shape beyond the op's limit is now a usage error: test_cli_output_claims.py)
])
def test_library_messages_name_the_flag(workspace, tmp_path, args, expected):
    np.save(tmp_path / "f.npy", np.arange(80).reshape(40, 2) % 3)
    completed = invoke(*(a.format(tmp=tmp_path) for a in args), cwd=workspace, check=False)
    line = assert_one_line_error(completed, code=2 if "traverse: " in expected or "metrics: " in expected else 1)  # (the typed values: usage)
    assert line.startswith(expected), line


@pytest.mark.parametrize("args, blocked", [
    (("report", *WEIGHTS, "--data", "data.npy", "--steps", "3", "--anchors", "2"), "report.html"),  # said "--store"
    (("sample", *WEIGHTS, "-n", "2"), "codes.npy"),  # "[Errno 21] Is a directory: ...", after the work
    (("sample", *WEIGHTS, "-n", "2"), "samples.png"),  # "plots: cannot write path=..."
    (("traverse", *WEIGHTS, "--data", "data.npy", "--steps", "3", "--anchors", "2", "--no-progress"),
     "traversal-anchor1.png"),  # "plots.traversal_grid: path=... is a folder; give a file name inside it"
    (("diagnose", *WEIGHTS, "--data", "data.npy"), "diagnosis.json"),  # "[Errno 21] Is a directory"
])
def test_a_folder_in_the_way_of_an_output_file_is_found_before_the_work(workspace, tmp_path, args, blocked):
    (tmp_path / "o" / blocked).mkdir(parents=True)
    completed = invoke(*args, "--out", str(tmp_path / "o"), cwd=workspace, check=False)
    line = assert_one_line_error(completed, f"a folder named {blocked} is in the way of the results")
    assert line.startswith("latentsweep: error: --out "), line
    assert completed.stdout == "" and sorted(p.name for p in (tmp_path / "o").iterdir()) == [blocked]


def test_a_folder_named_as_a_picture_this_run_does_not_draw_is_left_alone(workspace, tmp_path):
    (tmp_path / "o" / "traversal-anchor7.png").mkdir(parents=True)  # (anchor 7 of an earlier, larger run)
    invoke("traverse", *WEIGHTS, "--data", "data.npy", "--steps", "3", "--anchors", "2", "--no-progress", "--out",
           str(tmp_path / "o"), cwd=workspace)
    assert (tmp_path / "o" / "traversal-anchor1.png").is_file()


def test_the_demo_finds_a_folder_in_the_way_before_its_work(tmp_path):
    (tmp_path / "index.html").mkdir()
    completed = invoke("demo", "--quick", "--out", str(tmp_path), cwd=tmp_path, check=False)
    assert_one_line_error(completed, "a folder named index.html is in the way of the results")
    assert completed.stdout == ""


def test_a_report_too_large_for_memory_advises_what_report_can_change(workspace, tmp_path):
    """The library's advice ("pass --store sweep.zarr ... or --no-outputs") named two options that
    report does not take."""
    from latentsweep._batching import physical_memory

    (tmp_path / "wide.py").write_text(
        "import torch\n"
        "class Wide(torch.nn.Module):  # 1 MB per decoded code: the outputs, not the grid, are too large\n"
        "    def encoder(self, x):\n        return x[:, :2], x[:, 2:4] - 2\n"
        "    def decoder(self, z):\n        return z[:, :1].expand(-1, 250_000)\n"
        "def make():\n    return Wide()\n")
    steps = physical_memory() // 1_000_000 + 1
    completed = invoke("report", "--model", f"{tmp_path / 'wide.py'}:make", "--data", "data.npy", "--anchors", "1",
                       "--dims", "0", "--mode", "prior", "--steps", str(steps), "--out", str(tmp_path / "o"),
                       cwd=workspace, check=False)
    line = assert_one_line_error(completed, "explain: keeping its sweeps' results",
                                 "pass fewer --steps, --anchors or --dims")
    assert "--store" not in line and "--no-outputs" not in line, line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["diagnose", "traverse", "report"])
@pytest.mark.parametrize("value", ["1e300", "1e-150"])
def test_a_prior_std_beyond_the_diagnosis_range_is_a_usage_error_before_any_work(workspace, tmp_path, command, value):
    """It was refused after the model was loaded and the data encoded, with exit 1, in the
    diagnosis' words ("diagnose: prior_std must lie in ...", also from traverse)."""
    completed = invoke(command, *WEIGHTS, "--data", "data.npy", "--prior-std", value, "--out", str(tmp_path / "o"),
                       cwd=workspace, check=False)
    assert_one_line_error(completed, f"{command}: argument --prior-std: must lie in [1e-100, 1e+100]", code=2)


def test_a_second_sample_into_one_folder_removes_the_picture_it_no_longer_draws(workspace, tmp_path):
    """The first run's samples.png stayed beside the second run's codes of another model, with
    nothing said (traverse removes the pictures it wrote and did not rewrite)."""
    out = tmp_path / "s"
    invoke("sample", *WEIGHTS, "-n", "3", "--out", str(out), cwd=workspace)
    assert (out / "samples.png").is_file()
    (out / "mine.png").write_bytes(b"a user's file")
    second = invoke("sample", "--model", "tiny_models:method_vae", "-n", "3", "--out", str(out), cwd=workspace)
    assert not (out / "samples.png").exists() and (out / "mine.png").read_bytes() == b"a user's file"
    assert "removed 1 it wrote that this run did not" in second.stderr
    assert np.load(out / "decoded.npy").shape == (3, 16)


def test_repeated_directions_in_a_file_are_named_by_the_option(workspace, tmp_path):
    """They were refused in the engine's words, "traverse: directions must be distinct"."""
    np.save(tmp_path / "dup.npy", np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 0.0, 0.0]]))
    completed = invoke("report", *WEIGHTS, "--data", "data.npy", "--directions", str(tmp_path / "dup.npy"),
                       "--out", str(tmp_path / "r"), cwd=workspace, check=False)
    assert_one_line_error(completed, f"--directions '{tmp_path / 'dup.npy'}': directions must be distinct, got rows "
                                     "[0, 2]")
