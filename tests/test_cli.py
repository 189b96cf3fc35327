"""The latentsweep command line, end to end through subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

MODEL_SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class TinyVAE(nn.Module):
        latent_dim = 3

        def __init__(self):
            super().__init__()
            self.body = nn.Linear(16, 6)
            self.out = nn.Linear(3, 16)

        def encoder(self, x):
            h = self.body(x)
            return h[:, :3], h[:, 3:] - 7.0   # confident posteriors: SD ~ 0.03

        def decoder(self, z):
            return torch.sigmoid(self.out(z)).view(-1, 1, 4, 4)

    def make():
        torch.manual_seed(0)
        return TinyVAE()

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
    """
)


def run(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [sys.executable, "-m", "latentsweep", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"exit {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}")
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
    data = np.random.default_rng(0).random((40, 16)).astype(np.float32)
    np.save(folder / "data.npy", data)
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
    assert again.returncode == 1 and "resume=True" in again.stderr
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
        (["traverse", "--model", "tiny_models:make", "--data", "data.npy", "--dims", "7"], "dims must lie in"),
        (["traverse", "--model", "tiny_models:make", "--data", "data.npy", "--store", "x.zarr", "--resume"], "no sweep at"),
        (["sample", "--model", "tiny_models:tabular", "--data", "data.npy"], "no posterior to sample"),
    ],
)
def test_errors_are_one_line_without_traceback(workspace, args, message):
    completed = run(*args, cwd=workspace, check=False)
    assert completed.returncode == 1
    assert message in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2(workspace):
    completed = run("traverse", "--data", "data.npy", cwd=workspace, check=False)
    assert completed.returncode == 2 and "--model" in completed.stderr
    assert run("traverse", "--model", "m:x", "--data", "d.npy", "--steps", "0", cwd=workspace, check=False).returncode == 2


def test_debug_shows_the_traceback(workspace):
    completed = run("--debug", "diagnose", "--model", "tiny_models:make", "--data", "missing.npy", cwd=workspace,
                    check=False)
    assert completed.returncode != 0 and "Traceback" in completed.stderr


def test_demo(tmp_path):
    out = run("demo", "--out", str(tmp_path))
    for name in ("digits-vae", "digits-vae-relu-heads", "digits-ae", "wine-vae"):
        assert (tmp_path / f"{name}.html").exists()
        assert f"== {name}" in out.stdout
    for code in ("small-posterior-sd", "collapsed", "nonnegative-mean", "nonnegative-logvar"):
        assert code in out.stdout
    assert (tmp_path / "index.html").exists()
