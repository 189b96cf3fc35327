"""The latentsweep command line, end to end through subprocesses."""

from __future__ import annotations

import json
import shutil
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_models import tiny_data, tiny_vae_source

MODEL_SOURCE = tiny_vae_source(
    """
    class TinyAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(16, 3)
            self.dec = nn.Linear(3, 5)

        def encode(self, x):
            return self.enc(x)

        def decode(self, z):
            return self.dec(z)

    tabular = TinyAE()

    class FlatImageAE(nn.Module):
        # An MLP autoencoder on flattened 8x8 images: outputs [B, 64].

        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(64, 2)
            self.dec = nn.Linear(2, 64)

        def encoder(self, x):
            return self.enc(x.flatten(1))

        def decoder(self, z):
            return torch.sigmoid(self.dec(z))

    flat = FlatImageAE()

    class NoLatentDimAE(nn.Module):
        # No latent_dim attribute; the first layer of the decoder is Linear(3, 16).
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(16, 3)
            self.decoder = nn.Sequential(nn.Linear(3, 16), nn.Sigmoid(), nn.Unflatten(1, (1, 4, 4)))

    def no_latent_dim():
        return NoLatentDimAE()

    class MethodVAE(nn.Module):
        # As in PyTorch's VAE example: decode is a method, the sizes are only in the layers.
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(16, 8), nn.Linear(8, 3), nn.Linear(8, 3)
            self.fc3, self.fc4 = nn.Linear(3, 8), nn.Linear(8, 16)

        def encode(self, x):
            h = torch.relu(self.fc1(x))
            return self.fc21(h), self.fc22(h)

        def decode(self, z):
            return torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))

    def method_vae():
        return MethodVAE()

    class ConvDecoderAE(nn.Module):
        # Neither an attribute nor a Linear first layer: the latent size cannot be told.
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(16, 3)
            self.decoder = nn.Sequential(nn.Unflatten(1, (3, 1, 1)), nn.ConvTranspose2d(3, 1, 4))

    def conv_decoder():
        return ConvDecoderAE()

    class SlowVAE(TinyVAE):
        calls = 0

        def decoder(self, z):
            import pathlib
            import time

            SlowVAE.calls += 1
            if SlowVAE.calls == 20:  # well inside the sweep: the test may press Ctrl-C now
                pathlib.Path("slow_sweep_running").touch()
            time.sleep(0.02)
            return super().decoder(z)

    def slow():
        torch.manual_seed(0)
        return SlowVAE()

    class LogitsVAE(TinyVAE):
        # Returns logits, wrapped as diffusers does: DecoderOutput(sample=...) -> here a dict.
        def decoder(self, z):
            return {"sample": self.out(z).view(-1, 1, 4, 4), "extra": torch.zeros(len(z))}

    def logits():
        torch.manual_seed(0)
        return LogitsVAE()

    class FailingVAE(TinyVAE):
        calls = 0

        def decoder(self, z):
            FailingVAE.calls += 1
            if FailingVAE.calls > 4:
                raise RuntimeError("the decoder broke")
            return super().decoder(z)

    def failing():
        torch.manual_seed(0)
        FailingVAE.calls = 0
        return FailingVAE()

    def broken():
        raise RuntimeError("cannot build the model")

    class SpatialVAE(nn.Module):
        # A spatial VAE: [B, 1, 8, 8] images -> (mu, logvar) of [B, 2, 4, 4] -> [B, 1, 8, 8].
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(1, 4, 4, stride=2, padding=1)
            self.dec = nn.ConvTranspose2d(2, 1, 4, stride=2, padding=1)

        def encoder(self, x):
            h = self.enc(x)
            return h[:, :2], h[:, 2:] - 1.0

        def decoder(self, z):
            assert z.shape[1:] == (2, 4, 4), z.shape  # flat codes would be a bug
            return torch.sigmoid(self.dec(z))

    def spatial():
        torch.manual_seed(0)
        return SpatialVAE()
    """
)


def stderr_lines(completed: subprocess.CompletedProcess, kind: str = "error") -> list[str]:
    """The lines of stderr that are not warnings or notes (those may precede an error)."""
    return [line for line in completed.stderr.strip().splitlines()
            if not line.startswith(("latentsweep: warning:", "latentsweep: note:"))]


def run(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [sys.executable, "-m", "latentsweep", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"exit {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}")
    return completed


def invoke(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """``run`` in this process (much faster than a new interpreter per call): what main()
    returns or exits with, and what it printed. An exception escaping main() fails the test,
    as a traceback would."""
    import contextlib
    import io
    import os

    from latentsweep.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = exit_.code
    finally:
        os.chdir(previous)
    completed = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"exit {code}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}")
    return completed


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "tiny_models.py").write_text(MODEL_SOURCE)
    sys.path.insert(0, str(folder))
    try:
        import tiny_models

        model = tiny_models.make()
        torch.save(model.state_dict(), folder / "tiny.pt")
        from safetensors.torch import save_file

        save_file(model.state_dict(), folder / "tiny.safetensors")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("tiny_models", None)
    data = tiny_data()
    np.save(folder / "data.npy", data)
    np.save(folder / "data64.npy", data.astype(np.float64))  # numpy's default dtype
    np.save(folder / "data16.npy", data.astype(np.float16))
    images = np.random.default_rng(1).random((40, 1, 8, 8)).astype(np.float32)
    np.save(folder / "images.npy", images)
    np.save(folder / "flat_images.npy", images.reshape(40, 64))
    np.savez(folder / "data.npz", x=data, labels=np.arange(40))
    torch.save({"x": torch.from_numpy(data)}, folder / "data.pt")
    return folder


def test_help_everywhere():
    top = run("--help")
    for command in ("demo", "diagnose", "traverse", "sample", "report", "info"):
        assert command in top.stdout
        assert "usage: latentsweep " + command in run(command, "--help").stdout


def test_console_script_is_installed():
    script = shutil.which("latentsweep", path=str(Path(sys.executable).parent))
    assert script is not None
    assert subprocess.run([script, "--help"], capture_output=True, text=True).returncode == 0


def test_info():
    assert "torch" in run("info").stdout
    info = json.loads(run("info", "--json").stdout)
    assert info["torch"] == torch.__version__ and "cuda_available" in info


@pytest.mark.parametrize("data", ["data.npy", "data.npz", "data.pt"])
def test_diagnose(workspace, data):
    out = run("diagnose", "--model", "tiny_models:make", "--weights", "tiny.safetensors", "--data", data,
              "--out", "diag", cwd=workspace)
    assert "small-posterior-sd" in out.stdout  # logvar ~ -7: SD ~ 0.03, tiny
    saved = json.loads((workspace / "diag" / "diagnosis.json").read_text())
    assert saved["latent_dim"] == 3


def test_diagnose_json_and_file_model(workspace):
    out = run("diagnose", "--model", "tiny_models.py:make", "--weights", "tiny.pt", "--data", "data.npy", "--json",
              cwd=workspace)
    assert json.loads(out.stdout)["num_inputs"] == 40


def test_traverse_with_a_resumable_store(workspace):
    args = ["traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
            "--anchors", "3", "--steps", "5", "--out", "trav", "--store", "trav/sweep.zarr", "--no-progress"]
    out = run(*args, cwd=workspace)
    assert "points/s" in out.stdout
    saved = np.load(workspace / "trav" / "traversal.npz")
    assert saved["effect"].shape == (3, 3, 5) and saved["sensitivity"].shape == (3, 16)
    assert (workspace / "trav" / "traversal-anchor0.png").exists()
    again = run(*args, cwd=workspace, check=False)
    assert again.returncode == 1 and "--resume" in again.stderr and "--overwrite" in again.stderr
    assert "resume=True" not in again.stderr and "overwrite=True" not in again.stderr
    run(*args, "--resume", cwd=workspace)


def test_traverse_tabular_autoencoder(workspace):
    out = run("traverse", "--model", "tiny_models:tabular", "--data", "data.npy", "--mode", "auto",
              "--out", "tab", "--no-progress", cwd=workspace)
    assert "mode 'empirical'" in out.stdout  # a plain autoencoder: no prior to traverse by


def test_sample_prior_and_posterior(workspace):
    prior = run("sample", "--model", "tiny_models:make", "-n", "6", "--out", "samp", cwd=workspace)
    assert "prior" in prior.stdout
    assert np.load(workspace / "samp" / "decoded.npy").shape == (6, 1, 4, 4)
    assert (workspace / "samp" / "samples.png").exists()
    run("sample", "--model", "tiny_models:make", "--data", "data.npy", "--inputs", "2", "-n", "5", "--out", "post",
        cwd=workspace)
    assert np.load(workspace / "post" / "codes.npy").shape == (10, 3)


def test_report(workspace):
    out = run("report", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
              "--anchors", "2", "--steps", "5", "--out", "rep", cwd=workspace)
    page = (workspace / "rep" / "report.html").read_text()
    assert "report.html" in out.stdout and "small-posterior-sd" in page and "data:image/png;base64," in page


@pytest.mark.parametrize(
    "args, message",
    [
        (["diagnose", "--model", "no_such_module:x", "--data", "data.npy"], "cannot import 'no_such_module'"),
        (["diagnose", "--model", "tiny_models", "--data", "data.npy"], "--model must look like"),
        (["diagnose", "--model", "tiny_models:nothing", "--data", "data.npy"], "has no attribute 'nothing'"),
        (["diagnose", "--model", "tiny_models:make", "--data", "missing.npy"], "no such file 'missing.npy'"),
        (["diagnose", "--model", "tiny_models:make", "--data", "tiny_models.py"], "unsupported file type"),
        (["diagnose", "--model", "tiny_models:make", "--weights", "data.npy", "--data", "data.npy"], "--weights"),
        (["diagnose", "--model", "tiny_models:tabular", "--weights", "tiny.pt", "--data", "data.npy"], "do not fit the model"),
        (["traverse", "--model", "tiny_models:make", "--data", "data.npy", "--store", "x.zarr", "--resume"], "no sweep at"),
        (["sample", "--model", "tiny_models:tabular", "--data", "data.npy"], "no posterior to sample"),
    ],
)
def test_errors_are_one_line_without_traceback(workspace, args, message):
    completed = invoke(*args, cwd=workspace, check=False)
    assert completed.returncode == 1
    assert message in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(stderr_lines(completed)) == 1


def test_the_librarys_runtime_errors_are_not_reported_as_bugs(workspace, monkeypatch):
    """A RuntimeError the library raises on purpose (another rank failed, contact lost, a store
    replaced meanwhile) is said as it is, like a ValueError: not as a bug with a --debug hint."""
    import latentsweep

    def other_rank_failed(*args, **kwargs):
        raise RuntimeError("latentsweep.traverse: rank 1 failed (RuntimeError: out of memory)")

    monkeypatch.setattr(latentsweep, "traverse", other_rank_failed)
    completed = invoke("traverse", "--model", "tiny_models:make", "--data", "data.npy", cwd=workspace, check=False)
    assert completed.returncode == 1
    assert stderr_lines(completed) == ["latentsweep: error: traverse: rank 1 failed (RuntimeError: out of memory)"], \
        completed.stderr


def test_usage_errors_exit_2(workspace):
    completed = run("traverse", "--data", "data.npy", cwd=workspace, check=False)
    assert completed.returncode == 2 and "--model" in completed.stderr
    assert run("traverse", "--model", "m:x", "--data", "d.npy", "--steps", "0", cwd=workspace, check=False).returncode == 2


@pytest.mark.parametrize(
    "args, line",
    [
        # argparse printed its usage block first (6-18 lines), and an unknown option after a command
        # with the top-level usage, as if the command were the problem
        (["info", "--bogus"], "latentsweep: error: info: unrecognized arguments: --bogus (see 'latentsweep info --help')"),
        (["traverse", "--data", "d.npy", "--bogus"],
         "latentsweep: error: traverse: the following arguments are required: --model (see 'latentsweep traverse --help')"),
        (["traverse", "--model", "m:x", "--data", "d.npy", "--steps", "0", "-x"],
         "latentsweep: error: traverse: argument --steps: must be >= 1, got 0 (see 'latentsweep traverse --help')"),
        (["--debug", "info", "--x", "1"], "latentsweep: error: info: unrecognized arguments: --x 1 (see 'latentsweep info --help')"),
        ([], "latentsweep: error: the following arguments are required: COMMAND (see 'latentsweep --help')"),
        # a command's option before the command was blamed on the command, which takes it
        (["--json", "info"], "latentsweep: error: unrecognized arguments before the command: --json (a command's "
                             "options go after it: latentsweep info --json ...) (see 'latentsweep --help')"),
        # an option with a value before the command: the value was taken for an invalid command
        (["--debug", "--out", "o3", "info"], "latentsweep: error: unrecognized arguments before the command: --out o3 "
                                             "(a command's options go after it: latentsweep info --out o3 ...) "
                                             "(see 'latentsweep --help')"),
        # still one line, without the terminal's escape codes
        (["info", "--a\nb", "\x1b[31mred", ""],
         "latentsweep: error: info: unrecognized arguments: '--a\\nb' '\\x1b[31mred' '' (see 'latentsweep info --help')"),
        # a negative value argparse does not read as a number was "expected one argument"
        (["traverse", "--model", "m:x", "--data", "d.npy", "--span", "-1e3"],
         "latentsweep: error: traverse: argument --span: must be a finite number > 0, got -1e3 "
         "(see 'latentsweep traverse --help')"),
        (["traverse", "--model", "m:x", "--data", "d.npy", "--span", "inf\n"],
         "latentsweep: error: traverse: argument --span: must be a finite number > 0, got inf\\n "
         "(see 'latentsweep traverse --help')"),
    ],
)
def test_usage_errors_are_one_line_naming_the_command(tmp_path, args, line):
    completed = run(*args, cwd=tmp_path, check=False)
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr.splitlines() == [line], completed.stderr


def test_a_usage_error_under_torchrun_is_said_once(tmp_path, monkeypatch, capsys):
    """Every rank parses the same command line: each printed the same error."""
    from latentsweep.cli import main

    monkeypatch.setattr("latentsweep.cli.RANK_0_SPEAKS_SECONDS", 0.0)  # (who says it, not when)

    monkeypatch.setenv("WORLD_SIZE", "2")
    said = "latentsweep: error: info: unrecognized arguments: --x"
    # (rank 1 waits for rank 0 to say it, and for torchrun to end it; not ended here, it says it)
    for rank, alone in (("1", "rank 1's alone; "), ("0", "")):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(SystemExit) as exit_:
            main(["info", "--x"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err == f"{said} ({alone}see 'latentsweep info --help')\n", err
    monkeypatch.delenv("WORLD_SIZE")  # a RANK alone (some clusters set one) is no group: the error is said
    with pytest.raises(SystemExit):
        main(["info", "--x"])
    assert capsys.readouterr().err.startswith("latentsweep: error: info:")


# Each command as it runs without a launcher (valid options): under torchrun only traverse splits
# its work; the others ran in full on every rank.
ONE_PROCESS_COMMANDS = {
    "report": ["--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--out", "ranked_out"],
    "diagnose": ["--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--out", "ranked_out"],
    "sample": ["--model", "tiny_models:make", "--weights", "tiny.pt", "--out", "ranked_out"],
    "metrics": ["--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--factors", "data.npy"],
    "demo": ["--quick", "--out", "ranked_out"],
    "open": ["ranked.zarr"],
    "info": [],
}


@pytest.mark.parametrize("command", sorted(ONE_PROCESS_COMMANDS))
def test_commands_other_than_traverse_are_refused_under_torchrun(workspace, monkeypatch, capsys, command):
    """Under torchrun `report` ran in full on every rank, and rank 1 printed "wrote .../report.html"
    and exited 0 before rank 0 had written it: a usage error now, said by rank 0 alone, before any
    work; every rank exits 2."""
    from latentsweep.cli import main

    monkeypatch.setattr("latentsweep.cli.RANK_0_SPEAKS_SECONDS", 0.0)  # (who says it, not when)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(SystemExit) as exit_:
            main([command, *ONE_PROCESS_COMMANDS[command]])
        said = capsys.readouterr()
        # (rank 1 waits for rank 0 to say it and for torchrun to end it; not ended here, it says it itself)
        alone = "rank 1's alone; " if rank == "1" else ""
        expected = (f"latentsweep: error: {command}: runs in one process; run it without torchrun (WORLD_SIZE=2: only "
                    f"traverse splits its work across ranks) ({alone}see 'latentsweep {command} --help')\n")
        assert exit_.value.code == 2 and said.out == "" and said.err == expected, said
    assert not (workspace / "ranked_out").exists()
    monkeypatch.setenv("WORLD_SIZE", "1")  # a group of one is no launcher's: the command runs
    assert "torch" in invoke("info", cwd=workspace).stdout


# ---- a typed value that cannot work with the data given is the option's usage error ----------
@pytest.mark.parametrize(
    "args, line",
    [
        # exit 1 ("--clusters must be <= 39, got 40"), while --clusters 1 or x exit 2
        (["report", "--clusters", "40"], "latentsweep: error: report: --clusters must be <= 39 (fewer than the 40 "
                                         "inputs in --data), got 40 (see 'latentsweep report --help')"),
        (["traverse", "--dims", "0,3"], "latentsweep: error: traverse: --dims must lie in [0, 3) for D=3, got values "
                                        "in [0, 3] (see 'latentsweep traverse --help')"),
        (["sample", "--data", "data.npy", "--latent-dim", "4"],
         "latentsweep: error: sample: --latent-dim 4, but the encoder gives 3 latents (see 'latentsweep sample --help')"),
        # exit 1, in the library's words ("shard index must lie in"), while --shard a/b exits 2
        (["traverse", "--store", "s.zarr", "--shard", "3/3"], "latentsweep: error: traverse: --shard's I must lie in "
                                                              "[0, 3) for 3 shards, got 3 (see 'latentsweep traverse --help')"),
        (["traverse", "--store", "s.zarr", "--shard", "0/0"], "latentsweep: error: traverse: --shard's N must be >= 1, "
                                                              "got 0 (see 'latentsweep traverse --help')"),
        (["traverse", "--store", "s.zarr", "--shard", "0/3", "--overwrite"],
         "latentsweep: error: traverse: --overwrite with --shard would let each shard delete the others' work; remove the "
         "old store once before starting the shards (see 'latentsweep traverse --help')"),
    ],
)
def test_a_value_that_cannot_work_with_the_data_is_a_usage_error(workspace, tmp_path, args, line):
    command, *rest = args
    data = [] if command == "sample" else ["--data", "data.npy"]
    completed = invoke(command, "--model", "tiny_models:make", "--weights", "tiny.pt", *data, *rest, "--out",
                       str(tmp_path / "o"), cwd=workspace, check=False)
    assert completed.returncode == 2 and stderr_lines(completed) == [line], completed.stderr
    assert not (tmp_path / "o").exists()


def test_values_beyond_the_data_that_were_taken_still_are(workspace, tmp_path):
    """The same rule changes how a refusal is said, not what is refused: more --anchors or
    --max-directions than the data holds are still taken (all the inputs; as many directions as
    there are)."""
    completed = invoke("report", "--model", "tiny_models:tabular", "--data", "data.npy", "--anchors", "500",
                       "--max-directions", "500", "--steps", "2", "--out", str(tmp_path / "o"), cwd=workspace)
    assert (tmp_path / "o" / "report.html").exists() and "--anchors 500, but --data has 40 inputs" in completed.stderr


@pytest.mark.parametrize(
    "args, line",
    [
        # --out '' wrote into the current folder; --store '' was taken as no store
        (["traverse", "--out", ""], "latentsweep: error: --out: the path is empty (. is the current folder)"),
        (["traverse", "--store", " "], "latentsweep: error: --store: the path is empty"),
        # --encoder '' was taken as not given
        (["diagnose", "--encoder", ""], "latentsweep: error: the model has no encoder (''); name it with --encoder ATTR"),
    ],
)
def test_empty_paths_and_names_are_refused(workspace, args, line):
    command, *rest = args
    completed = invoke(command, "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", *rest,
                       cwd=workspace, check=False)
    assert completed.returncode == 1 and stderr_lines(completed) == [line], completed.stderr


@pytest.mark.parametrize("where", ["before", "after", "abbreviated"])
def test_debug_shows_the_traceback(workspace, where):
    """Also after the command, where a user adds it when an error asks for it (that was a usage
    error), and abbreviated as argparse allows (that was ignored)."""
    command = ["diagnose", "--model", "tiny_models:make", "--data", "missing.npy"]
    args = {"before": ["--debug", *command], "after": [*command, "--debug"], "abbreviated": ["--deb", *command]}[where]
    completed = run(*args, cwd=workspace, check=False)
    assert completed.returncode != 0 and "Traceback" in completed.stderr, completed.stderr


def test_version():
    import latentsweep

    completed = run("--version")
    assert completed.stdout.strip() == f"latentsweep {latentsweep.__version__}"


def test_demo(tmp_path):
    out = run("demo", "--out", str(tmp_path))
    for name in ("digits-vae", "digits-vae-relu-heads", "digits-ae", "wine-vae", "shapes-beta-vae"):
        assert (tmp_path / f"{name}.html").exists()
        assert f"== {name}" in out.stdout
    for code in ("small-posterior-sd", "collapsed", "nonnegative-mean", "nonnegative-logvar"):
        assert code in out.stdout
    assert (tmp_path / "index.html").exists()
    # issue 8 item 10: the AE read along principal directions, with 10 KMeans clusters and the paths
    # between the closest and the farthest; the VAE's latents beside its principal directions.
    autoencoder = (tmp_path / "digits-ae.html").read_text()
    assert "<h2>Traversals along directions</h2>" in autoencoder and "<h2>Clusters</h2>" in autoencoder
    assert "10 clusters of 1797 codes (KMeans with k=10)" in autoencoder
    assert "The closest clusters are" in autoencoder and "The farthest clusters are" in autoencoder
    assert "Along the linear path" in autoencoder
    vae = (tmp_path / "digits-vae.html").read_text()
    assert 'alt="latents, anchor 0"' in vae and 'alt="principal directions, anchor 0"' in vae
    assert "Beside the latents" in vae


# ---- issue 12 items 6-9, issue 13 items 4, 5, 7, 8, 15 ---------------------------------------
def assert_one_line_error(completed: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    assert completed.returncode == code, completed.stderr
    assert "Traceback" not in completed.stderr and "\x1b" not in completed.stderr, completed.stderr
    lines = stderr_lines(completed)
    assert len(lines) == 1 and lines[0].startswith("latentsweep: error: "), completed.stderr
    if code == 2:  # argparse's: which command, what is wrong, and where the options are listed
        assert lines[0].endswith("--help')"), completed.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "x"])
def test_sample_refuses_a_prior_std_that_is_not_a_positive_number(workspace, value, tmp_path):
    completed = invoke("sample", "--model", "tiny_models:make", "--prior-std", value, "--out", str(tmp_path),
                    cwd=workspace, check=False)
    assert_one_line_error(completed, "--prior-std", code=2)
    assert not (tmp_path / "codes.npy").exists()


@pytest.mark.parametrize("value", ["", ",", "0,0", "4,-4", "7", "1,2,2,2", "x,y"])
@pytest.mark.parametrize("command", ["sample", "traverse", "report"])
def test_an_image_shape_that_is_no_shape_is_a_usage_error(workspace, tmp_path, command, value):
    """An empty --image-shape was taken as "no shape", silently; a shape of zeros or of 1 or 4
    numbers was refused after the work (exit 1). Now --latent-shape's rule: a usage error that
    names the flag and the form it takes, before any work."""
    data = () if command == "sample" else ("--data", "data.npy")
    completed = invoke(command, "--model", "tiny_models:make", *data, f"--image-shape={value}", "--out",
                       str(tmp_path / "o"), cwd=workspace, check=False)
    line = assert_one_line_error(completed, f"latentsweep: error: {command}: argument --image-shape: expected ",
                                 code=2)
    assert f"got {value!r}" in line and ("H,W or C,H,W" in line or value == "x,y"), line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("data", ["data64.npy", "data16.npy"])
def test_data_as_numpy_saves_it_is_cast_to_the_encoders_dtype(workspace, data):
    expected = json.loads(invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                              "data.npy", "--json", cwd=workspace).stdout)
    got = json.loads(invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", data,
                         "--json", cwd=workspace).stdout)
    assert got["num_inputs"] == 40
    tolerance = 1e-6 if data == "data64.npy" else 1e-2  # float16 data lost digits before the cast
    np.testing.assert_allclose(got["kl"], expected["kl"], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    "args, needles, code",
    [
        (["traverse", "--sweep-batch-size", "-3"], ["--sweep-batch-size", ">= 1"], 2),
        (["traverse", "--sweep-batch-size", "many"], ["--sweep-batch-size"], 2),
        (["traverse", "--device", "banana"], ["--device"], 2),
        (["traverse", "--device", "meta"], ["--device"], 2),
        (["diagnose", "--prior-std", "1e200"], ["--prior-std", "must lie in [1e-100, 1e+100]"], 2),
        (["diagnose", "--prior-std", "1e-200"], ["--prior-std", "must lie in [1e-100, 1e+100]"], 2),
    ],
)
def test_bad_options_are_one_line(workspace, args, needles, code):
    command, *rest = args
    completed = invoke(command, "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", *rest,
                    cwd=workspace, check=False)
    assert_one_line_error(completed, *needles, code=code)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_is_a_usage_error(workspace):
    completed = invoke("traverse", "--model", "tiny_models:make", "--data", "data.npy", "--device", "cuda",
                    cwd=workspace, check=False)
    assert_one_line_error(completed, "--device", "CUDA", code=2)


@pytest.mark.parametrize(
    "model, needles",
    [
        ("tiny_models:broken", ["--model", "RuntimeError", "cannot build the model"]),
        ("raises_on_import:make", ["--model", "importing 'raises_on_import'", "ZeroDivisionError"]),
        ("syntax_error.py:make", ["--model", "SyntaxError"]),
    ],
)
def test_model_code_that_raises_is_one_line(workspace, model, needles):
    (workspace / "raises_on_import.py").write_text("1 / 0\n")
    (workspace / "syntax_error.py").write_text("def make(:\n")
    completed = invoke("diagnose", "--model", model, "--data", "data.npy", cwd=workspace, check=False)
    assert_one_line_error(completed, *needles)


def test_a_model_file_named_like_a_stdlib_module_leaves_the_stdlib_alone(workspace, tmp_path, monkeypatch):
    import json as stdlib_json

    from latentsweep.cli.loading import load_model

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "json.py").write_text(MODEL_SOURCE)
    monkeypatch.chdir(tmp_path)
    model = load_model("models/json.py:make")
    assert type(model).__name__ == "TinyVAE"
    assert sys.modules["json"] is stdlib_json
    assert not any(name == "json" or name.endswith(".json") for name in sys.modules if sys.modules[name] is not stdlib_json
                   and getattr(sys.modules[name], "__file__", "") == str(folder / "json.py"))
    # and end to end: --json output goes through the real json module
    completed = invoke("diagnose", "--model", str(folder / "json.py") + ":make", "--data", "data.npy", "--json",
                    cwd=workspace)
    assert json.loads(completed.stdout)["num_inputs"] == 40


# ---- checkpoints as people save them (issue 13 item 4) ----------------------------------------
def tiny_state() -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    namespace: dict = {}
    exec(MODEL_SOURCE, namespace)  # noqa: S102  (our own test model)
    return namespace["make"]().state_dict()


@pytest.mark.parametrize(
    "checkpoint",
    [
        lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}, "epoch": 3},
        lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 7, "global_step": 70,
                    "pytorch-lightning_version": "2.4.0", "optimizer_states": [{"state": {}}]},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DataParallel
        lambda sd: {"state_dict": {**{f"model.{k}": v for k, v in sd.items()}, "loss.weight": torch.ones(2)}},
    ],
    ids=["model_state_dict", "lightning", "dataparallel", "lightning-with-other-modules"],
)
def test_checkpoints_as_people_save_them(workspace, checkpoint, tmp_path):
    path = tmp_path / "checkpoint.ckpt"
    torch.save(checkpoint(tiny_state()), path)
    expected = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--json",
                   cwd=workspace).stdout
    got = invoke("diagnose", "--model", "tiny_models:make", "--weights", str(path), "--data", "data.npy", "--json",
              cwd=workspace)
    assert got.stdout == expected
    assert "warning" not in got.stderr


def test_checkpoint_with_an_unusual_key_names_it(workspace, tmp_path):
    path = tmp_path / "ema.pt"
    torch.save({"ema_weights": tiny_state(), "step": 3}, path)
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", str(path), "--data", "data.npy",
                    cwd=workspace, check=False)
    assert_one_line_error(completed, "--weights-key", "ema_weights")
    invoke("diagnose", "--model", "tiny_models:make", "--weights", str(path), "--weights-key", "ema_weights",
        "--data", "data.npy", cwd=workspace)


def test_a_pickled_whole_model_is_refused_in_one_clean_line(workspace, tmp_path):
    sys.path.insert(0, str(workspace))
    try:
        import tiny_models

        torch.save(tiny_models.make(), tmp_path / "whole.pt")
    finally:
        sys.path.remove(str(workspace))
        sys.modules.pop("tiny_models", None)
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", str(tmp_path / "whole.pt"),
                    "--data", "data.npy", cwd=workspace, check=False)
    assert_one_line_error(completed, "--weights", "tiny_models.TinyVAE", "state_dict()")


# ---- random weights, flat images, sample (issue 13 items 5, 7, 8) ------------------------------
def test_no_weights_warns_loudly(workspace):
    without = invoke("diagnose", "--model", "tiny_models:make", "--data", "data.npy", cwd=workspace)
    assert "latentsweep: warning: no --weights" in without.stderr and "random" in without.stderr
    with_weights = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                       cwd=workspace)
    assert "warning" not in with_weights.stderr
    invoke("report", "--model", "tiny_models:make", "--data", "data.npy", "--anchors", "1", "--steps", "3",
           "--out", "random_report", cwd=workspace)
    assert "no --weights" in (workspace / "random_report" / "report.html").read_text()


def test_flat_image_outputs_get_the_inputs_image_shape(workspace):
    invoke("traverse", "--model", "tiny_models:flat", "--data", "images.npy", "--anchors", "1", "--steps", "3",
        "--out", "flat_from_images", "--no-progress", cwd=workspace)
    assert (workspace / "flat_from_images" / "traversal-anchor0.png").exists()


def test_flat_square_outputs_suggest_image_shape(workspace):
    completed = invoke("traverse", "--model", "tiny_models:flat", "--data", "flat_images.npy", "--anchors", "1",
                    "--steps", "3", "--out", "flat_plain", "--no-progress", cwd=workspace)
    assert "--image-shape 8,8" in completed.stderr
    assert not (workspace / "flat_plain" / "traversal-anchor0.png").exists()
    invoke("traverse", "--model", "tiny_models:flat", "--data", "flat_images.npy", "--anchors", "1", "--steps", "3",
        "--image-shape", "8,8", "--out", "flat_hinted", "--no-progress", cwd=workspace)
    assert (workspace / "flat_hinted" / "traversal-anchor0.png").exists()


def test_sample_infers_the_latent_size(workspace):
    out = invoke("sample", "--model", "tiny_models:no_latent_dim", "-n", "3", "--out", "samp_inferred", cwd=workspace)
    assert "3 codes of 3 latents" in out.stdout
    assert np.load(workspace / "samp_inferred" / "codes.npy").shape == (3, 3)
    out = invoke("sample", "--model", "tiny_models:method_vae", "-n", "2", "--out", "samp_method", cwd=workspace)
    assert "2 codes of 3 latents" in out.stdout
    completed = invoke("sample", "--model", "tiny_models:conv_decoder", "-n", "3", "--out", "samp_conv",
                    cwd=workspace, check=False)
    assert_one_line_error(completed, "--latent-dim")
    invoke("sample", "--model", "tiny_models:conv_decoder", "-n", "3", "--latent-dim", "3", "--out", "samp_conv",
        cwd=workspace)


def test_samples_picture_is_labelled(tmp_path):
    from latentsweep.cli.samples import save_samples_picture

    images = np.random.default_rng(0).random((6, 4, 4))
    figure = save_samples_picture(images, tmp_path / "s.png", per_row=3, row_label="input {}".format,
                                  title="3 posterior samples per input")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["input 0", "input 1"]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["0", "1", "2"]
    assert "posterior samples" in axes.get_title() and axes.get_xlabel() == "sample"
    assert (tmp_path / "s.png").stat().st_size > 0


# ---- CLI wording (issue 13 item 15) ------------------------------------------------------------
def test_mode_posterior_on_an_autoencoder_suggests_empirical(workspace):
    completed = invoke("traverse", "--model", "tiny_models:tabular", "--data", "data.npy", "--mode", "posterior",
                    cwd=workspace, check=False)
    assert_one_line_error(completed, "--mode empirical", code=2)


def test_more_anchors_than_inputs_says_so(workspace):
    completed = invoke("traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                    "--anchors", "5000", "--steps", "2", "--no-outputs", "--out", "many", "--no-progress",
                    cwd=workspace)
    assert "--anchors 5000, but --data has 40 inputs" in completed.stderr
    assert np.load(workspace / "many" / "traversal.npz")["effect"].shape[0] == 40


def test_no_doubled_prefix(workspace):
    completed = invoke("traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                    "--image-shape", "5,5", "--steps", "2", "--out", "bad_shape", cwd=workspace, check=False)
    line = assert_one_line_error(completed, "--image-shape (5, 5)", code=2)
    assert line.count("latentsweep:") == 1, line


def test_one_line_wording():
    from latentsweep.cli.errors import one_line

    assert one_line("latentsweep: latentsweep: x\n y") == "x y"
    assert one_line("latentsweep.traverse: pass resume=True or overwrite=True") == "traverse: pass --resume or --overwrite"
    assert one_line("\x1b[1mbold\x1b[0m text") == "bold text"
    error = RuntimeError("boom")
    error.add_note("latentsweep.traverse: the sweep stopped after 3 of 9 points. Call traverse(...) again with the "
                   "same arguments and resume=True to continue.")
    assert one_line(error) == ("boom; the sweep stopped after 3 of 9 points. Run the same command again with "
                               "--resume to continue.")
    error = RuntimeError("boom.")  # (a message that ends its sentence: no "; ")
    error.add_note("latentsweep.traverse: the sweep stopped after 3 of 9 points.")
    assert one_line(error) == "boom. the sweep stopped after 3 of 9 points."


def test_ctrl_c_on_the_command_line_says_resume(workspace, tmp_path):
    import signal
    import time

    store = tmp_path / "sweep.zarr"
    (workspace / "slow_sweep_running").unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "latentsweep", "traverse", "--model", "tiny_models:slow", "--weights", "tiny.pt",
         "--data", "data.npy", "--anchors", "40", "--steps", "21", "--sweep-batch-size", "4", "--store", str(store), "--out", str(tmp_path / "out"),
         "--no-progress"],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even when pytest runs under nohup
    )
    deadline = time.monotonic() + 120
    while not (workspace / "slow_sweep_running").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep never started"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "resume=True" not in stderr, stderr
    assert "--resume" in stderr and str(store) in stderr, stderr
    assert len(stderr_lines(subprocess.CompletedProcess([], 130, "", stderr))) == 1, stderr


def test_demo_quick_writes_one_lighter_report(tmp_path, capsys):
    """--quick diagnoses all four models but draws only one report, without GIFs (issue 13
    item 16: drawing is what takes the time)."""
    from latentsweep.cli.demo import QUICK_REPORT_MODEL, run_demo

    assert run_demo(tmp_path, quick=True) == 0
    out = capsys.readouterr().out
    for name in ("digits-vae", "digits-vae-relu-heads", "digits-ae", "wine-vae"):
        assert f"== {name}" in out
    assert sorted(p.name for p in tmp_path.glob("*.html")) == sorted([f"{QUICK_REPORT_MODEL}.html", "index.html"])
    page = (tmp_path / f"{QUICK_REPORT_MODEL}.html").read_text()
    assert "data:image/png;base64," in page and "image/gif" not in page
    for code in ("small-posterior-sd", "collapsed", "nonnegative-mean", "nonnegative-logvar"):
        assert code in out
    # the autoencoder's advice names the demo's own inputs: the demo has no --data
    assert "--mode empirical (its range: the codes of the demo's inputs)" in out and "--data" not in out, out


def test_a_decoder_that_fails_mid_sweep_is_named_and_the_store_kept(workspace, tmp_path):
    store = tmp_path / "failing.zarr"
    completed = invoke("traverse", "--model", "tiny_models:failing", "--weights", "tiny.pt", "--data", "data.npy",
                       "--sweep-batch-size", "8", "--store", str(store), "--out", str(tmp_path / "out"),
                       "--no-progress", cwd=workspace, check=False)
    line = assert_one_line_error(completed, "the decoder", "RuntimeError: the decoder broke", "--resume", str(store))
    assert "resume=True" not in line


def test_output_activation_and_decoder_output(workspace):
    """--output-activation sigmoid on a decoder that returns logits (in a dict): the same
    numbers as the model whose decoder applies the sigmoid itself; the summary names the space."""
    common = ["--weights", "tiny.pt", "--data", "data.npy", "--anchors", "2", "--steps", "3", "--mode", "prior",
              "--no-progress", "--sweep-batch-size", "7"]
    plain = invoke("traverse", "--model", "tiny_models:make", *common, "--out", "act_plain", cwd=workspace)
    logits = invoke("traverse", "--model", "tiny_models:logits", *common, "--output-activation", "sigmoid",
                    "--decoder-output", "sample", "--out", "act_logits", cwd=workspace)
    assert "sigmoid(" in logits.stdout and "sigmoid(" not in plain.stdout
    expected, got = np.load(workspace / "act_plain" / "traversal.npz"), np.load(workspace / "act_logits" / "traversal.npz")
    for name in ("effect", "dim_effect", "sensitivity", "anchor_outputs"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7)
    invoke("sample", "--model", "tiny_models:logits", "--weights", "tiny.pt", "-n", "3", "--output-activation",
           "sigmoid", "--out", "act_sample", cwd=workspace)
    decoded = np.load(workspace / "act_sample" / "decoded.npy")
    assert decoded.shape == (3, 1, 4, 4) and decoded.min() >= 0 and decoded.max() <= 1


def test_a_decoder_output_key_the_decoders_output_lacks_is_a_usage_error(workspace):
    """A value the model cannot take (the README's rule for exit 2), as --latent-shape's; it exited 1."""
    completed = invoke("traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                       "--anchors", "2", "--steps", "3", "--decoder-output", "nokey", "--out", "no_key",
                       cwd=workspace, check=False)
    assert_one_line_error(completed, "--decoder-output 'nokey', but the decoder returned a Tensor", code=2)


def test_traverse_under_torchrun_then_open(workspace):
    """Two ranks share one store; one summary and one traversal.npz (rank 0); `open` reads it."""
    args = ["traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
            "--anchors", "4", "--steps", "5", "--sweep-batch-size", "4", "--out", "ranks", "--store",
            "ranks.zarr", "--no-progress"]
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "latentsweep",
         *args], capture_output=True, text=True, cwd=workspace, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[:4000]
    assert completed.stdout.count("points/s") == 1, completed.stdout
    single = run(*[a if a not in ("ranks", "ranks.zarr") else a + "1" for a in args], cwd=workspace)
    assert "points/s" in single.stdout
    for key in ("effect", "dim_effect", "sensitivity"):
        assert np.array_equal(np.load(workspace / "ranks" / "traversal.npz")[key],
                              np.load(workspace / "ranks1" / "traversal.npz")[key]), key
    opened = run("open", "ranks.zarr", cwd=workspace)
    assert "4 anchors x 3 latents x 5 steps" in opened.stdout


def test_traverse_shards_then_open(workspace):
    args = ["traverse", "--model", "tiny_models:make", "--data", "data.npy", "--anchors", "4", "--steps", "5",
            "--sweep-batch-size", "4", "--store", "shards.zarr", "--no-progress", "--out", "shards"]
    first = run(*args, "--shard", "1/2", cwd=workspace)
    assert "work units done" in first.stdout and "missing units" in first.stdout
    incomplete = run("open", "shards.zarr", cwd=workspace, check=False)
    assert incomplete.returncode == 1 and "missing units" in incomplete.stdout
    # (it printed the status alone: no error line, no advice)
    assert_one_line_error(incomplete, "open: the sweep at shards.zarr is incomplete", "Finish it: run the traverse "
                          "command that wrote it again with --resume, or its missing --shard runs")
    last = run(*args, "--shard", "0/2", cwd=workspace)
    assert "points/s" in last.stdout
    assert "4 anchors x 3 latents x 5 steps" in run("open", "shards.zarr", cwd=workspace).stdout
    bad = run(*args, "--shard", "2/2", cwd=workspace, check=False)
    assert bad.returncode == 2 and "--shard's I must lie in [0, 2)" in bad.stderr  # (a usage error, as "x" is)
    assert run(*args, "--shard", "x", cwd=workspace, check=False).returncode == 2


# ---- report: directions and clusters (issue 8 item 7) -----------------------------------------
def test_report_with_principal_directions_and_clusters(workspace):
    out = invoke("report", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--anchors", "1",
                 "--steps", "3", "--directions", "pca", "--clusters", "3", "--out", "rep_dirs", cwd=workspace)
    page = (workspace / "rep_dirs" / "report.html").read_text()
    assert "report.html" in out.stdout
    assert "Traversals along directions" in page and "principal directions" in page
    assert "3 clusters of 40 codes (KMeans with k=3)" in page and "slerp path" in page


def test_report_with_directions_from_a_file(workspace):
    np.save(workspace / "my_directions.npy", np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
    invoke("report", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--anchors", "1",
           "--steps", "3", "--directions", "my_directions.npy", "--out", "rep_file", cwd=workspace)
    page = (workspace / "rep_file" / "report.html").read_text()
    assert "your directions" in page and "<td>u0</td>" in page and "<td>u1</td>" in page


@pytest.mark.parametrize(
    "content, needles",
    [
        (np.array([[1.0, np.nan, 0.0]]), ["--directions", "non-finite"]),
        (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), ["--directions", "zero"]),
        (np.eye(2, 5), ["--directions", "vectors of 5 values", "3 latents"]),
        (np.eye(2, 3)[:, :, None], ["--directions", "vectors of shape [3, 1], but the encoder gives codes of shape [3]"]),
        (np.zeros((0, 3)), ["--directions", "[K, D]"]),
        (np.array([["a", "b", "c"]]), ["--directions", "expected real numbers"]),
        (np.array([1 + 1j, 0, 0]), ["--directions", "expected real numbers"]),
        ("pickle", ["--directions", "cannot read"]),
        ("missing", ["--directions", "no such file"]),
        ("not-npy", ["--directions", "expected auto, coordinates, pca, clusters or a .npy file"]),
    ],
)
def test_bad_directions_files_are_one_line_errors(workspace, tmp_path, content, needles):
    target = tmp_path / "directions.npy"
    if isinstance(content, np.ndarray):
        np.save(target, content)
    elif content == "pickle":
        np.save(target, np.array([object()], dtype=object), allow_pickle=True)
    elif content == "not-npy":
        target = tmp_path / "directions.txt"
        target.write_text("1 0 0")
    completed = invoke("report", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                       "--directions", str(target), "--out", str(tmp_path / "out"), cwd=workspace, check=False)
    # (a mistyped word is a usage error, as a mistyped --mode is, and so are vectors the model cannot take
    # (another width than its codes, as the README says): exit 2; a file that is bad in itself: 1)
    usage = (isinstance(content, str) and content == "not-npy") or "vectors of" in needles[1]
    assert_one_line_error(completed, *needles, code=2 if usage else 1)
    assert not (tmp_path / "out" / "report.html").exists()


@pytest.mark.parametrize(
    "args, needles, code",
    [
        (["--clusters", "1"], ["--clusters", "must be >= 2"], 2),
        (["--clusters", "x"], ["--clusters"], 2),
        (["--clusters", "40"], ["report: --clusters must be <= 39 (fewer than the 40 inputs in --data), got 40"], 2),
        (["--directions", "clusters"], ["report: --directions clusters needs --clusters K"], 2),
        (["--mode", "posterior", "--directions", "coordinates"], ["--mode posterior", "--mode empirical"], 2),
    ],
)
def test_bad_cluster_and_mode_options_are_one_line(workspace, tmp_path, args, needles, code):
    model = ["tiny_models:tabular"] if "posterior" in args else ["tiny_models:make", "--weights", "tiny.pt"]
    completed = invoke("report", "--model", *model, "--data", "data.npy", *args,
                       "--out", str(tmp_path / "out"), cwd=workspace, check=False)
    assert_one_line_error(completed, *needles, code=code)


def test_store_errors_name_the_flags_and_the_command(workspace):
    """A negative --shard gets the shard message (argparse took "-1/2" for an option); the
    library's store messages say --overwrite/--shard and traverse:, and are not blamed on the
    decoder."""
    args = ["traverse", "--model", "tiny_models:make", "--data", "data.npy", "--anchors", "2", "--steps", "3",
            "--no-progress", "--out", "store_errors"]
    negative = invoke(*args, "--store", "negative.zarr", "--shard", "-1/2", cwd=workspace, check=False)
    assert_one_line_error(negative, "--shard's I must be >= 0, got -1", code=2)
    both = invoke(*args, "--store", "both.zarr", "--shard", "0/2", "--overwrite", cwd=workspace, check=False)
    line = assert_one_line_error(both, "--overwrite with --shard would", code=2)
    assert "shard=" not in line
    (workspace / "foreign.zarr").mkdir()
    (workspace / "foreign.zarr" / "notes.txt").write_text("mine")
    foreign = invoke(*args, "--store", "foreign.zarr", cwd=workspace, check=False)
    assert_one_line_error(foreign, "error: traverse: foreign.zarr exists and is not a latentsweep sweep store")
    assert (workspace / "foreign.zarr" / "notes.txt").read_text() == "mine"


def test_a_store_that_cannot_be_created_is_not_blamed_on_the_decoder(workspace, tmp_path):
    """An OSError from the library (a file where the store's folder should be) is not "the
    decoder raised"; the decoder's own errors still are (test above)."""
    (tmp_path / "afile").write_text("mine")
    completed = invoke("traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                       "--steps", "3", "--store", str(tmp_path / "afile" / "x.zarr"), "--out", str(tmp_path / "o"),
                       "--no-progress", cwd=workspace, check=False)
    line = assert_one_line_error(completed, "--store '", "afile' is in the way of the store's folder")
    assert "decoder" not in line
    assert (tmp_path / "afile").read_text() == "mine"


def test_out_inside_the_store_is_refused_before_any_work(workspace, tmp_path):
    for out in ("same.zarr", "same.zarr/sub"):
        completed = invoke("traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                           "--store", str(tmp_path / "same.zarr"), "--out", str(tmp_path / out), "--no-progress",
                           cwd=workspace, check=False)
        assert_one_line_error(completed, "is --store", "pass another --out")
        assert not (tmp_path / "same.zarr").exists()


def test_a_second_run_into_the_same_out_leaves_none_of_the_first_runs_pictures(workspace, tmp_path):
    out = tmp_path / "o"
    common = ["--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--steps", "3",
              "--out", str(out), "--no-progress"]
    invoke("traverse", *common, "--anchors", "3", cwd=workspace)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "traversal-anchor0.png", "traversal-anchor1.png", "traversal-anchor2.png", "traversal.npz"]
    (out / "mine.txt").write_text("not latentsweep's")
    (out / "traversal-anchor7.png").write_text("a user's file, named like ours")
    second = invoke("traverse", *common, "--anchors", "1", cwd=workspace)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "mine.txt", "traversal-anchor0.png", "traversal-anchor7.png", "traversal.npz"]
    assert "latentsweep: note: --out" in second.stderr
    assert "replaced 2 file(s) of an earlier run and removed 2 it wrote that this run did not" in second.stderr
    assert np.load(out / "traversal.npz")["effect"].shape[0] == 1
    # A picture of the last run that the user changed since is theirs now: kept.
    invoke("traverse", *common, "--anchors", "2", cwd=workspace)
    (out / "traversal-anchor1.png").write_bytes(b"edited")
    invoke("traverse", *common, "--anchors", "1", cwd=workspace)
    assert (out / "traversal-anchor1.png").read_bytes() == b"edited"


def test_report_checks_feature_names_before_the_long_work(workspace, tmp_path):
    """By explain's rule (the command refused names for image outputs, explain and report
    ignored them): as many names as tabular outputs have features, none for images."""
    completed = invoke("report", "--model", "tiny_models:tabular", "--data", "data.npy",
                       "--feature-names", "a,b", "--out", str(tmp_path / "rep"), cwd=workspace, check=False)
    assert_one_line_error(completed, "--feature-names has 2 names but the decoder outputs 5 features", code=2)
    assert not (tmp_path / "rep").exists() or not any((tmp_path / "rep").iterdir())
    images = invoke("report", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                    "--feature-names", "a,b", "--out", str(tmp_path / "rep"), cwd=workspace, check=False)
    assert_one_line_error(images, "--feature-names names the features of tabular outputs, but these outputs "
                          "(shape [1, 4, 4] per code) are drawn as images; leave --feature-names out", code=2)
    assert not (tmp_path / "rep").exists() or not any((tmp_path / "rep").iterdir())
    invoke("report", "--model", "tiny_models:tabular", "--data", "data.npy", "--steps", "3", "--anchors", "2",
           "--feature-names", "a,b,c,d,e", "--out", str(tmp_path / "rep"), cwd=workspace)
    assert "report.html" in {p.name for p in (tmp_path / "rep").iterdir()}


def test_library_warnings_are_one_line_in_the_command_lines_words(workspace, tmp_path):
    """A damaged store resumed: the warning is 'latentsweep: warning: ...' with flags, not
    Python's 'file.py:174: RuntimeWarning:' and the source line."""
    store = tmp_path / "s.zarr"
    common = ["--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--steps", "3",
              "--store", str(store), "--out", str(tmp_path / "o"), "--no-progress", "--sweep-batch-size", "6"]
    invoke("traverse", *common, cwd=workspace)
    chunks = sorted(p for p in (store / "effect").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunks[0].unlink()  # a unit's effect lost (an interrupted copy): resumed with a warning
    completed = invoke("traverse", *common, "--resume", cwd=workspace)
    warnings = [line for line in completed.stderr.splitlines() if "damaged" in line or "Warning" in line]
    assert warnings and all(line.startswith("latentsweep: warning: ") for line in warnings), completed.stderr
    assert "RuntimeWarning" not in completed.stderr and ".py:" not in completed.stderr


def test_bad_files_and_folders_say_what_is_there(workspace, tmp_path):
    """A folder or a device as --data/--weights, an empty .npz, NaN or float32-overflowing data,
    a file where --out's folder goes, a folder named traversal.npz: one line each, naming the
    option, before any work."""
    data = np.random.default_rng(0).random((40, 16))
    with_nan, too_big = data.copy(), data.copy()
    with_nan[3, 2], too_big[5, 1] = np.nan, 1e308
    np.save(tmp_path / "nan.npy", with_nan)
    np.save(tmp_path / "big.npy", too_big)
    np.savez(tmp_path / "empty.npz")
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "o6" / "traversal.npz").mkdir(parents=True)
    model = ["--model", "tiny_models:make"]
    cases = [
        (["traverse", *model, "--data", str(tmp_path)], "--data: '" + str(tmp_path) + "' is a folder, not a file"),
        (["traverse", *model, "--weights", str(tmp_path), "--data", "data.npy"], "--weights: '" + str(tmp_path) + "' is a folder"),
        (["traverse", *model, "--data", str(tmp_path / "empty.npz")], "holds no arrays"),
        (["traverse", *model, "--data", str(tmp_path / "nan.npy")], "NaN or Inf in row(s) [3]"),
        (["traverse", *model, "--data", str(tmp_path / "big.npy")], "NaN or Inf in row(s) [5] (as float32"),
        (["traverse", *model, "--weights", "tiny.pt", "--data", "data.npy", "--out", str(tmp_path / "o6")],
         "a folder named traversal.npz is in the way"),
        (["demo", "--out", str(tmp_path / "afile")], "a file is in the way of the output folder"),
    ]
    if Path("/dev/null").exists():
        cases.append((["traverse", *model, "--data", "/dev/null"], "is not a regular file"))
    for args, needle in cases:
        completed = invoke(*args, *([] if "--out" in args else ["--out", str(tmp_path / "out")]), cwd=workspace,
                           check=False)
        assert_one_line_error(completed, needle)


def test_traverse_checks_the_image_shape_before_the_sweep_and_notes_one_step(workspace, tmp_path):
    common = ["--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--no-progress"]
    completed = invoke("traverse", *common, "--image-shape", "7,7", "--out", str(tmp_path / "o"), cwd=workspace,
                       check=False)
    assert_one_line_error(completed, "--image-shape (7, 7) holds 49 values but each decoder output (1, 4, 4) holds 16",
                          code=2)
    assert not (tmp_path / "o" / "traversal.npz").exists()  # refused before the sweep, nothing written
    completed = invoke("traverse", *common, "--steps", "1", "--out", str(tmp_path / "one"), cwd=workspace)
    assert "latentsweep: note: --steps 1: one value per latent" in completed.stderr


def test_option_errors_are_worded_as_flags(workspace, tmp_path):
    completed = invoke("sample", "--model", "tiny_models:make", "--inputs", "3", "--out", str(tmp_path / "s"),
                       cwd=workspace, check=False)
    assert_one_line_error(completed, "sample: --inputs picks inputs of --data", code=2)
    completed = invoke("report", "--model", "tiny_models:make", "--data", "data.npy", "--clusters", "0",
                       "--out", str(tmp_path / "r"), cwd=workspace, check=False)
    assert completed.returncode == 2 and "--clusters: must be >= 2" in completed.stderr
    completed = invoke("traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                       "--span", "1e308", "--out", str(tmp_path / "o"), cwd=workspace, check=False)
    # a value the model's float32 codes cannot take: the option's usage error (it exited 1)
    assert_one_line_error(completed, "traverse: --span must be <= 3.403e+38 (the largest torch.float32), got 1e+308",
                          code=2)
    assert "span must" not in completed.stderr.replace("--span", "")


# ---- paths and messages found by the fourth adversarial pass --------------------------------
TRAVERSE = ("traverse", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--steps", "3",
            "--no-progress")


def test_out_and_store_inside_an_existing_store_are_refused(workspace, tmp_path):
    store = tmp_path / "kept.zarr"
    invoke(*TRAVERSE, "--store", str(store), "--out", str(tmp_path / "o"), cwd=workspace)
    for flag, path in (("--out", store / "sub"), ("--out", store), ("--store", store / "inner.zarr")):
        extra = ("--out", str(tmp_path / "o2")) if flag == "--store" else ()
        completed = invoke(*TRAVERSE, flag, str(path), *extra, cwd=workspace, check=False)
        assert_one_line_error(completed, f"{flag} '{path}' is inside the sweep store")
    assert sorted(p.name for p in store.iterdir() if p.name not in ("units", "leases", "zarr.json")) == \
        sorted(["anchors", "anchor_outputs", "dims", "effect", "outputs", "values"])
    assert_one_line_error(invoke(*TRAVERSE, "--overwrite", "--out", str(tmp_path / "o3"), cwd=workspace, check=False),
                          "traverse: --overwrite replaces a stored sweep: it needs --store", code=2)


def test_a_failed_command_leaves_no_empty_out_folder(workspace, tmp_path):
    out = tmp_path / "never"
    completed = invoke(*TRAVERSE, "--steps", "1000000000", "--out", str(out), cwd=workspace, check=False)
    assert_one_line_error(completed, "pass fewer --steps, --anchors or --dims")
    assert not out.exists()
    completed = invoke("report", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                       "--clusters", "500", "--out", str(out), cwd=workspace, check=False)
    assert_one_line_error(completed, "--clusters must be <= ", code=2)
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("traverse", "--resume"), "--resume needs --store (the store of the sweep to continue)"),
        (("traverse", "--shard", "0/2"), "--shard needs --store (the store the shards share)"),
        (("traverse", "--overwrite"), "--overwrite replaces a stored sweep: it needs --store"),
        (("report", "--directions", "clusters"), "--directions clusters needs --clusters K"),
        (("report", "--factor-names", "a,b"), "--factor-names needs --factors"),
    ],
)
def test_options_that_need_each_other_are_usage_errors(workspace, tmp_path, args, message):
    """Said as argparse's own usage errors (exit 2, the command, its --help), before the model is
    loaded: they were exit 1 without the hint, some after the model's loading."""
    command, *rest = args
    completed = invoke(command, "--model", "tiny_models:make", "--weights", "missing.pt", "--data", "data.npy", *rest,
                       "--out", str(tmp_path / "o"), cwd=workspace, check=False)
    line = assert_one_line_error(completed, f"latentsweep: error: {command}: {message}", code=2)
    assert line.endswith(f"(see 'latentsweep {command} --help')"), line
    assert not (tmp_path / "o").exists()


def test_report_metrics_options_without_factors_are_refused(workspace, tmp_path):
    completed = invoke("report", "--model", "tiny_models:make", "--data", "data.npy", "--metrics", "mig",
                       "--num-train", "5", "--out", str(tmp_path / "r"), cwd=workspace, check=False)
    assert_one_line_error(completed, "report: --metrics/--num-train need --factors", code=2)
    assert not (tmp_path / "r").exists()


def test_open_speaks_of_open(workspace, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    assert_one_line_error(invoke("open", str(tmp_path / "plain"), cwd=workspace, check=False),
                          f"open: {tmp_path / 'plain'} exists and is not a latentsweep sweep store")


def test_a_store_path_that_cannot_be_made_names_store(workspace, tmp_path):
    (tmp_path / "file").write_text("in the way")
    completed = invoke(*TRAVERSE, "--store", str(tmp_path / "file" / "s.zarr"), "--out", str(tmp_path / "o"),
                       cwd=workspace, check=False)
    assert_one_line_error(completed, "--store", "is in the way of the store's folder")
    assert not (tmp_path / "o").exists()


def test_output_cut_short_by_the_reader_is_not_an_error(workspace, tmp_path):
    """``latentsweep open s.zarr | head -1``: the reader closed the pipe; no error, exit 0."""
    store = tmp_path / "s.zarr"
    invoke(*TRAVERSE, "--store", str(store), "--out", str(tmp_path / "o"), cwd=workspace)
    reader, writer = os.pipe()
    os.close(reader)
    completed = subprocess.run([sys.executable, "-m", "latentsweep", "open", str(store)], stdout=writer,
                               stderr=subprocess.PIPE, text=True, cwd=workspace, timeout=300)
    os.close(writer)
    assert completed.returncode == 0 and completed.stderr == "", completed.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_on_stdout_is_named(tmp_path):
    """``latentsweep info --json > /dev/full`` said "[Errno 28] No space left on device", as if
    a store could not be written."""
    with open("/dev/full", "w") as full:
        completed = subprocess.run([sys.executable, "-m", "latentsweep", "info", "--json"], stdout=full,
                                   stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=300)
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == ["latentsweep: error: cannot write to standard output: No space left "
                                             "on device"], completed.stderr


def test_files_of_the_wrong_kind_are_named_for_what_they_are(workspace, tmp_path):
    import pickle

    with open(tmp_path / "pick.pt", "wb") as handle:
        pickle.dump({"a": 1}, handle)
    (tmp_path / "text.npy").write_text("hello")
    np.save(tmp_path / "plain.npy", np.ones((3, 3)))
    np.savez(tmp_path / "z.npz", a=np.ones(2))
    base = ("diagnose", "--model", "tiny_models:make")
    for args, needles in [
        (("--weights", "tiny.pt", "--data", str(tmp_path / "pick.pt")),
         ("--data:", "holds pickled Python objects", "Save the inputs as an array instead")),
        (("--weights", str(tmp_path / "plain.npy"), "--data", "data.npy"), ("--weights:", "is a numpy .npy file")),
        (("--weights", str(tmp_path / "z.npz"), "--data", "data.npy"), ("--weights:", "is a numpy .npz archive")),
        (("--weights", "tiny.pt", "--data", str(tmp_path / "text.npy")),
         ("--data:", "is not a numpy .npy file (it does not start with numpy's .npy header)")),
    ]:
        completed = invoke(*base, *args, cwd=workspace, check=False)
        assert_one_line_error(completed, *needles)


def _wait_until_mapped(process: subprocess.Popen, library: str, timeout: float = 60.0) -> None:
    """Until ``process`` has loaded a shared library whose path contains ``library``: a fixed
    delay is no point of its start on a loaded machine (0.05 s was still Python's own start on
    a 16-core machine running 12 test workers, before latentsweep could say anything)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with open(f"/proc/{process.pid}/maps") as maps:
            if library in maps.read():
                return
        time.sleep(0.001)
    pytest.fail(f"the command did not load {library} within {timeout} s (exit status {process.poll()})")


# Inside torch's import (libtorch loading) and inside latentsweep's (its compiled core loading).
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/PID/maps (Linux)")
@pytest.mark.parametrize("library", ["libtorch_cpu", "latentsweep/_C"])
def test_ctrl_c_while_the_command_starts_is_one_line(library):
    """Ctrl-C during the first second (torch and the core still importing) gave Python's
    traceback; a program importing latentsweep keeps its KeyboardInterrupt."""
    import signal

    started = subprocess.Popen([sys.executable, "-m", "latentsweep", "info"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_until_mapped(started, library)
    started.send_signal(signal.SIGINT)
    _, err = started.communicate(timeout=120)
    assert started.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "latentsweep: interrupted: stopped by Ctrl-C"
    # A program: Python's handler stays (a Ctrl-C that lands inside torch's own import is torch's
    # and numpy's to handle: there it was swallowed, or became numpy's RecursionError).
    script = ("import latentsweep, signal, time; "
              "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True); time.sleep(60)")
    library = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert library.stdout.readline().strip() == "True"
    library.send_signal(signal.SIGINT)
    _, err = library.communicate(timeout=120)
    assert library.returncode != 0 and "KeyboardInterrupt" in err


def test_the_parts_of_a_model_run_in_their_own_modules_dtype(tmp_path):
    """The module behind the encoder and decoder is found by the one rule, owning_module, which
    follows wrappers (functools.wraps): the CLI had its own getattr(part, "__self__", model),
    which missed a wrapped float64 method of a model that is not a module and cast the codes
    and the data to float32 on the way in."""
    import argparse
    import functools
    import types

    from latentsweep.cli.commands import _decoded, _encode

    module = torch.nn.Linear(2, 2, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.eye(2))
        module.bias.zero_()

    @functools.wraps(module.forward)
    def part(x):
        return module(x)

    model = types.SimpleNamespace(encoder=part, decoder=part)  # a factory may build any object
    fine = torch.full((3, 2), 1 + 1e-12, dtype=torch.float64)  # 1.0 as a float32
    args = argparse.Namespace(decoder_output=None, output_activation="none", data=str(tmp_path / "x.npy"), key=None,
                              batch_size=8, device=None)
    assert torch.equal(_decoded(fine, part, model, args, "latentsweep sample"), fine)
    np.save(tmp_path / "x.npy", fine.numpy())
    posterior, data = _encode(part, model, args)
    assert data.dtype == torch.float64 and torch.equal(posterior.mu, fine)


def test_store_advice_names_the_flags_and_open_says_what_to_pass(workspace, tmp_path, monkeypatch):
    """The library's "pass batch_size=4 or 'auto'" and "latentsweep.open_sweep(path)" in the
    command line's words; `open` of a file that is no store says what to pass."""
    store = tmp_path / "planned.zarr"
    invoke(*TRAVERSE, "--sweep-batch-size", "4", "--store", str(store), "--out", str(tmp_path / "o1"), cwd=workspace)
    other = invoke(*TRAVERSE, "--sweep-batch-size", "8", "--store", str(store), "--resume", "--out",
                   str(tmp_path / "o2"), cwd=workspace, check=False)
    line = assert_one_line_error(other, "planned with --sweep-batch-size 4", "pass --sweep-batch-size 4 or auto")
    assert "batch_size=" not in line
    np.save(tmp_path / "plain.npy", np.arange(3))
    assert_one_line_error(invoke("open", str(tmp_path / "plain.npy"), cwd=workspace, check=False),
                          "exists and is not a latentsweep sweep store: pass the path of a stored sweep (a .zarr "
                          "folder, or the .npy file of a .npy store)")
    (store / "units" / "u000000000.rec").unlink()  # something left to compute, on read-only media
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda place, mode, *args, **kwargs: False if mode & os.W_OK and str(
        place).startswith(str(store)) else real_access(place, mode, *args, **kwargs))
    read_only = invoke(*TRAVERSE, "--sweep-batch-size", "4", "--store", str(store), "--resume", "--out",
                       str(tmp_path / "o3"), cwd=workspace, check=False)
    line = assert_one_line_error(read_only, "is read-only", "`latentsweep open PATH` reads it as it is")
    assert "open_sweep" not in line and "sweep_status" not in line


@pytest.mark.parametrize(
    "options, differs",
    [
        (("--no-outputs",), "its statistics-only setting (--no-outputs)"),
        (("--output-activation", "sigmoid"), "its output space (--output-activation, --decoder-output)"),
        (("--steps", "5"), "its grid's shape (--anchors, --dims, --steps) and values (--mode, --span, --steps, "
                           "--prior-std; --data for --mode empirical)"),
        (("--mode", "posterior"), "its mode (--mode) and values ("),
        (("--dims", "0,1"), "its latents (--dims), grid's shape (--anchors, --dims, --steps) and values ("),
    ],
)
def test_a_store_of_another_sweep_names_the_options_it_differs_in(workspace, tmp_path, options, differs):
    """The library's parameter names (keep_outputs, output_space, grid, values) as traverse's
    options that set them, run twice on one store."""
    store = tmp_path / "one.zarr"
    invoke(*TRAVERSE, "--store", str(store), "--out", str(tmp_path / "o1"), cwd=workspace)
    for resume in ((), ("--resume",)):
        other = invoke(*TRAVERSE, *options, "--store", str(store), *resume, "--out", str(tmp_path / "o2"),
                       cwd=workspace, check=False)
        line = assert_one_line_error(other, f"holds a sweep made with other options: it differs in {differs}",
                                     "run the command with that sweep's options and --resume, or pass --overwrite")
        assert not re.search(r"keep_outputs|output_space|\bgrid\b,|: values|=", line), line


def test_a_spatial_vae_through_the_commands(workspace, tmp_path):
    """Codes [B, 2, 4, 4] (a spatial VAE): encode refused them, so no command could read such a
    model. Now they are 32 flat latents that reach the decoder in their own shape."""
    model = ["--model", "tiny_models:spatial", "--data", "images.npy"]
    diagnosis = json.loads(invoke("diagnose", *model, "--json", cwd=workspace).stdout)
    assert diagnosis["latent_dim"] == 32
    traversed = invoke("traverse", *model, "--steps", "3", "--anchors", "2", "--dims", "0,31", "--no-progress",
                       "--image-shape", "8,8", "--out", str(tmp_path / "t"), cwd=workspace)
    assert "z[1,3,3]" in traversed.stdout, traversed.stdout
    saved = np.load(tmp_path / "t" / "traversal.npz")
    assert saved["latent_shape"].tolist() == [2, 4, 4] and saved["labels"].tolist() == ["z[0,0,0]", "z[1,3,3]"]
    sampled = invoke("sample", *model, "-n", "3", "--inputs", "2", "--out", str(tmp_path / "s"), cwd=workspace)
    assert np.load(tmp_path / "s" / "codes.npy").shape == (6, 2, 4, 4), sampled.stdout
    assert "6 codes of 32 latents (posterior)" in sampled.stdout
    # from the prior: the decoder's code shape is the user's to say
    spatial = ["--model", "tiny_models:spatial"]
    lost = invoke("sample", *spatial, "-n", "3", "--out", str(tmp_path / "p0"), cwd=workspace, check=False)
    assert_one_line_error(lost, "--latent-shape C,H,W")
    prior = invoke("sample", *spatial, "-n", "3", "--latent-shape", "2,4,4", "--out", str(tmp_path / "p"), cwd=workspace)
    assert np.load(tmp_path / "p" / "codes.npy").shape == (3, 2, 4, 4), prior.stdout
    assert np.load(tmp_path / "p" / "decoded.npy").shape == (3, 1, 8, 8)
    for args, needle in [(["--latent-shape", "2,0,4"], "--latent-shape"),
                         (["--latent-shape", "2,4,4", "--latent-dim", "16"], "holds 32 latents")]:
        code = 2  # (two options that contradict each other: a usage error too)
        assert_one_line_error(invoke("sample", *spatial, *args, "--out", str(tmp_path / "p1"), cwd=workspace,
                                     check=False), needle, code=code)
    mismatched = invoke("sample", *model, "--latent-shape", "4,2,4", "--out", str(tmp_path / "p2"), cwd=workspace,
                        check=False)
    assert_one_line_error(mismatched, "--latent-shape 4,2,4, but the encoder gives codes of shape 2,4,4", code=2)
    invoke("report", *model, "--steps", "3", "--anchors", "2", "--out", str(tmp_path / "r"),
           cwd=workspace)
    assert "z[" in (tmp_path / "r" / "report.html").read_text()
    # directions shaped like the latent (the library takes them so; the command refused them)
    np.save(tmp_path / "shaped.npy", np.eye(32, dtype=np.float32)[:2].reshape(2, 2, 4, 4))
    invoke("report", *model, "--steps", "3", "--anchors", "1", "--directions", str(tmp_path / "shaped.npy"),
           "--out", str(tmp_path / "r3"), cwd=workspace)
    assert "your directions" in (tmp_path / "r3" / "report.html").read_text()
    np.save(tmp_path / "other.npy", np.eye(32, dtype=np.float32)[:2].reshape(2, 4, 2, 4))
    other = invoke("report", *model, "--directions", str(tmp_path / "other.npy"), "--out", str(tmp_path / "r4"),
                   cwd=workspace, check=False)
    assert_one_line_error(other, "vectors of shape [4, 2, 4], but the encoder gives codes of shape [2, 4, 4]", code=2)
    # the options checked on one decoded code before the work gave it flat codes
    named = invoke("report", *model, "--feature-names", "a,b", "--out", str(tmp_path / "r2"), cwd=workspace, check=False)
    assert_one_line_error(named, "--feature-names names the features of tabular outputs, but these outputs (shape "
                          "[1, 8, 8] per code) are drawn as images", code=2)


# ---- the library's Python words, integer data, odd files and paths (adversarial pass on encode) ----
def test_library_keywords_and_python_advice_in_the_command_lines_words():
    from latentsweep.cli.errors import one_line
    from latentsweep.encoding import ONE_DIMENSIONAL_HINT

    cases = {
        "latentsweep.metrics.evaluate: num_train must be >= 2, got 1": "--num-train must be >= 2, got 1",
        "latentsweep.metrics.evaluate: num_test must be >= 2, got 0": "--num-test must be >= 2, got 0",
        "latentsweep.metrics.evaluate: seed must be >= 0, got -1": "--seed must be >= 0, got -1",
        "latentsweep.metrics.evaluate: sampling_votes must be (train, eval), got (0,)":
            "--votes must be (train, eval), got (0,)",
        "latentsweep.metrics.evaluate: sampling_votes[...] must be >= 1, got 0": "each of --votes must be >= 1, got 0",
        "latentsweep.metrics.evaluate: BetaVAE's sampling_votes[0]=1 training points all drew one factor; its "
        "classifier needs two factors to tell apart: raise sampling_votes[0] (the training votes)":
            "metrics.evaluate: BetaVAE's --votes TRAIN=1 training points all drew one factor; its classifier needs two "
            "factors to tell "
            "apart: raise --votes TRAIN (the training votes)",
        "latentsweep.datasets.LabelledArrays: factor_names has 1 names for 2 factors":
            "--factor-names has 1 names for 2 factors",
        "latentsweep.traverse: dims must be distinct, got [0] more than once":
            "--dims must be distinct, got [0] more than once",
        "latentsweep.explain: directions='clusters' needs clusters=K (KMeans) or labels":
            "--directions clusters needs --clusters K",
        "latentsweep.principal_directions: codes must be [N, D] with N >= 2 and D >= 1, got shape (1, 3)":
            "--data needs at least 2 inputs for principal directions (--directions pca, or auto for an autoencoder), "
            "got 1",
        "latentsweep.clusters: codes must be [N, D] with N >= 3 and D >= 1, got shape (2, 3)":
            "--data needs at least 3 inputs for --clusters, got 2",
        "latentsweep.encode: data is empty (no batches, or no rows)": "--data holds no inputs (0 rows)",
        # the function's name stays where no flag takes its place
        "latentsweep.traverse: pass resume=True or overwrite=True": "traverse: pass --resume or --overwrite",
        # a store of this sweep that another device or version decoded (store_session.leader_store)
        "latentsweep.traverse: s.zarr holds this sweep, decoded on CUDA, and this call decodes on the CPU: units "
        "decoded on two devices differ in their last bits (the decoder's own arithmetic), so its units cannot be "
        "merged with new ones: resume it on CUDA (device=), read it with latentsweep.open_sweep, or pass "
        "overwrite=True to start over":
            "traverse: s.zarr holds this sweep, decoded on CUDA, and this call decodes on the CPU: units decoded on "
            "two devices differ in their last bits (the decoder's own arithmetic), so its units cannot be merged with "
            "new ones: resume it on CUDA (--device), read it with `latentsweep open PATH`, or pass --overwrite to "
            "start over",
        "latentsweep.traverse: s.zarr holds a sweep with different parameters (it differs in: codes, keep_outputs); "
        "call traverse with that sweep's arguments to resume it, or pass overwrite=True to replace it":
            "traverse: s.zarr holds a sweep made with other options: it differs in its codes and statistics-only "
            "setting (--no-outputs); run the command with that sweep's options and --resume, or pass --overwrite to "
            "replace it",
        "latentsweep.clusters: codes must be [N, D] with N >= 3 and D >= 1, got shape (5, 0)":
            "clusters: codes must be [N, D] with N >= 3 and D >= 1, got shape (5, 0)",
    }
    for library, cli in cases.items():
        assert one_line(library) == cli, library
    hinted = one_line(
        "latentsweep.encode: the encoder returned a tuple of 3 items (Tensor, Tensor, Tensor) for batch 0; expected "
        "a (mu, logvar) tuple (for an encoder returning (z, mu, logvar), pass types.MethodType(lambda self, x: "
        "self(x)[1:], model): a method of the model, which encode runs in eval mode)")
    assert "MethodType" not in hinted and "lambda" not in hinted and "--encoder" in hinted, hinted
    assert hinted.endswith("pass --encoder encode_mu_logvar)"), hinted
    unbatched = one_line(f"latentsweep.encode: the encoder's codes for batch 0 must be [B=20, D], got shape (20,)"
                         f"{ONE_DIMENSIONAL_HINT}")
    assert "DataLoader" not in unbatched and unbatched.endswith("pass its name with --encoder)"), unbatched
    note = RuntimeError("mat1 and mat2 must have the same dtype")
    note.add_note("latentsweep.encode: data is torch.int64 while the encoder's parameters are torch.float32; pass "
                  "floating-point data (e.g. data.float() / 255 for uint8 images) unless the encoder takes integers "
                  "(an Embedding)")
    worded = one_line(note)
    assert "data.float()" not in worded and "--data is int64 while the encoder's parameters are float32" in worded


def test_keyword_errors_end_to_end_name_the_flags(workspace, tmp_path):
    np.save(tmp_path / "one.npy", np.random.default_rng(0).random((1, 16)).astype(np.float32))
    np.save(tmp_path / "two.npy", np.random.default_rng(0).random((2, 16)).astype(np.float32))
    np.save(tmp_path / "none.npy", np.zeros((0, 16), np.float32))
    ae = ("--model", "tiny_models:tabular")
    for args, needle in [
        (("traverse", *TRAVERSE[1:], "--dims", "0,0"), "latentsweep: error: traverse: --dims must be distinct"),
        (("report", *ae, "--data", "data.npy", "--dims", "99"), "latentsweep: error: report: --dims must lie in [0, 3)"),
        (("report", *ae, "--data", str(tmp_path / "one.npy")), "latentsweep: error: --data needs at least 2 inputs"),
        (("diagnose", *ae, "--data", str(tmp_path / "one.npy")),
         "latentsweep: error: --data needs at least 2 inputs for the diagnosis, got 1 (a latent's activity"),
        (("report", *ae, "--data", str(tmp_path / "two.npy"), "--clusters", "2"),
         "latentsweep: error: --data needs at least 3 inputs for --clusters, got 2"),
        (("diagnose", *ae, "--data", str(tmp_path / "none.npy")), "latentsweep: error: --data holds no inputs"),
    ]:
        extra = () if args[0] == "diagnose" or "--out" in args else ("--out", str(tmp_path / "o"))
        completed = invoke(*args, *extra, cwd=workspace, check=False)
        line = assert_one_line_error(completed, code=2 if "--dims" in args else 1)  # (a typed value: usage)
        assert line.startswith(needle), line


EMBEDDING_MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn

    class TokenVAE(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = nn.Embedding(50, 4)
            self.head = nn.Linear(4, 4)

        def encoder(self, ids):
            h = self.head(self.embed(ids).mean(1))
            return h[:, :2], h[:, 2:]

        def decoder(self, z):
            return z
    """
)


def test_integer_ids_reach_an_embedding_encoder_as_integers(workspace, tmp_path):
    """As latentsweep.encode: int32/int64 data is passed as it is (token ids); uint8 images and
    bool masks still become floats; int64 data for a float encoder says what to do in CLI words."""
    (tmp_path / "token_model.py").write_text(EMBEDDING_MODEL)
    ids = np.random.default_rng(0).integers(0, 50, (40, 5))
    for dtype in (np.int64, np.int32):
        np.save(tmp_path / "ids.npy", ids.astype(dtype))
        completed = invoke("diagnose", "--model", f"{tmp_path / 'token_model.py'}:TokenVAE", "--data",
                           str(tmp_path / "ids.npy"), "--json", cwd=workspace)
        assert json.loads(completed.stdout)["num_inputs"] == 40
    torch.save(torch.from_numpy(ids), tmp_path / "ids.pt")
    invoke("diagnose", "--model", f"{tmp_path / 'token_model.py'}:TokenVAE", "--data", str(tmp_path / "ids.pt"),
           cwd=workspace)
    data = np.random.default_rng(0).random((40, 16))
    np.save(tmp_path / "u8.npy", (data * 255).astype(np.uint8))
    np.save(tmp_path / "mask.npy", data > 0.5)
    for name in ("u8.npy", "mask.npy"):
        invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", str(tmp_path / name),
               cwd=workspace)
    np.save(tmp_path / "i64.npy", (data * 10).astype(np.int64))
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                       str(tmp_path / "i64.npy"), cwd=workspace, check=False)
    line = assert_one_line_error(completed, "int64", "save --data as floating-point numbers")
    assert "data.float()" not in line


@pytest.mark.parametrize("content, kind", [([torch.ones(40, 16)], "list"), ((torch.ones(40, 16),), "tuple"),
                                           ({"x": [torch.ones(40, 16)]}, "list"), ("text", "str")])
def test_a_torch_file_of_something_else_than_an_array_is_refused(workspace, tmp_path, content, kind):
    torch.save(content, tmp_path / "inputs.pt")
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                       str(tmp_path / "inputs.pt"), cwd=workspace, check=False)
    assert_one_line_error(completed, f"--data: '{tmp_path / 'inputs.pt'}' holds a {kind}, not an array",
                          "one tensor or array of inputs [N, ...]")


@pytest.mark.parametrize("flag", ["--out", "--data", "--store", "--weights"])
def test_a_path_too_long_for_the_file_system_names_its_option(workspace, tmp_path, flag):
    long = "a" * 300
    args = {"--out": str(tmp_path / long), "--data": long + ".npy", "--store": long + ".zarr",
            "--weights": long + ".pt"}
    options = {"--data": "data.npy", "--weights": "tiny.pt", "--out": str(tmp_path / "o")}
    options[flag] = args[flag]
    extra = ("--store", options.pop("--store", args["--store"])) if flag == "--store" else ()
    completed = invoke("traverse", "--model", "tiny_models:make", *[w for item in options.items() for w in item],
                       *extra, "--steps", "2", "--no-progress", cwd=workspace, check=False)
    line = assert_one_line_error(completed, f"latentsweep: error: {flag}: the path is too long: a name in it has")
    assert "Errno" not in line and len(line) < 300, line
    assert not (tmp_path / "o").exists()


def test_a_text_file_as_weights_is_said_to_be_no_torch_file(workspace, tmp_path):
    (tmp_path / "notes.pt").write_text("hello, these are not weights\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    for name, why in (("notes.pt", "it starts with neither torch.save's zip header nor a pickle's"),
                      ("empty.pt", "it is empty")):
        completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", str(tmp_path / name), "--data",
                           "data.npy", cwd=workspace, check=False)
        line = assert_one_line_error(completed, f"--weights: '{tmp_path / name}' is not a torch file ({why})",
                                     "--weights takes a .safetensors file")
        assert "KeyError" not in line
