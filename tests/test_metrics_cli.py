"""``latentsweep metrics``, the report's metrics table (Python and ``report --factors``) and the
shipped beta-VAE (the demo's Shapes part runs in test_cli.py::test_demo)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.cli import main
from latentsweep.demo.shapes_vae import ShapesVAE, load_shapes_vae, shapes_vae_weights_path
from metrics_reference import IdentityData


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The console entry point in this process (test_cli.py runs it in subprocesses)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # (a usage error: argparse's exit, status 2)
            code = exit_.code
    completed = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"exit {code}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}")
    return completed


def test_shipped_beta_vae_is_small_loads_and_beats_chance():
    assert shapes_vae_weights_path().is_file()
    assert len(shapes_vae_weights_path().read_bytes()) < 1_000_000
    model = load_shapes_vae()
    assert isinstance(model, ShapesVAE) and not model.training
    data = ls.datasets.Shapes()
    images = data.observations(data.sample_factors(256, torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        mu, logvar = model.encoder(images)
        recon = model.decoder(mu)
    assert mu.shape == logvar.shape == (256, 10) and recon.shape == images.shape
    assert float(((recon - images) ** 2).mean()) < 0.5 * float(((images - images.mean(0)) ** 2).mean())
    results = ls.metrics.evaluate(model.encoder, data, metrics=["mig", "irs"], num_train=1000, num_test=200,
                                  progress=False)
    assert results.scores["mig"] > 0.05 and results.scores["irs"] > 0.4


def test_metrics_command_on_the_shipped_model(tmp_path):
    out = run("metrics", "--metrics", "mig,unsupervised", "--num-train", "1000", "--num-test", "200",
              "--json", str(tmp_path / "m.json"), "--no-progress")
    assert "mig" in out.stdout and "unsupervised.mutual_info" in out.stdout
    saved = json.loads((tmp_path / "m.json").read_text())
    assert set(saved) == {"scores", "settings", "versions", "factor_names", "seconds"}
    assert saved["settings"]["num_train"] == 1000 and saved["factor_names"][0] == "shape"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 5, (1200, 3))
    observations = np.concatenate([factors, rng.standard_normal((1200, 1))], axis=1).astype(np.float32)
    np.save(folder / "x.npy", observations)
    np.save(folder / "y.npy", factors)
    (folder / "identity_model.py").write_text(
        "import torch\n"
        "class Model(torch.nn.Module):\n"
        "    def encoder(self, x):\n        return x[:, :3] + 0.01 * x[:, 3:]\n"
        "    def decoder(self, z):\n        return torch.cat([z, torch.zeros(z.shape[0], 1)], 1)\n"
    )
    return folder


def test_metrics_command_on_labelled_arrays(labelled):
    out = run("metrics", "--model", f"{labelled / 'identity_model.py'}:Model", "--data", str(labelled / "x.npy"),
              "--factors", str(labelled / "y.npy"), "--factor-names", "a,b,c", "--metrics", "mig,irs",
              "--num-train", "1000", "--num-test", "200", "--no-progress")
    mig = float(next(line for line in out.stdout.splitlines() if line.startswith("mig")).split()[-1])
    assert mig > 0.9 and "factors: a, b, c" in out.stdout


@pytest.mark.parametrize(
    "args, line",
    [
        (["--data", "x.npy"], "--data needs --factors: the integer factor values [N, F] of each observation"),
        (["--factors", "y.npy"], "--factors needs --data (without it: the Shapes data set and its factors)"),
        (["--key", "a", "--factors-key", "b"], "--factors-key/--key need --data"),
        (["--weights", "w.pt"], "--weights needs --model (without it: the shipped beta-VAE)"),
        (["--weights-key", "k", "--encoder", "e"], "--weights-key/--encoder need --model"),
        # a malformed --votes, as any other malformed value (an empty one was taken as not given)
        (["--votes", "1,a"], "argument --votes: expected TRAIN,EVAL (two integers), got '1,a'"),
        (["--votes", "0"], "argument --votes: expected TRAIN,EVAL (two integers), got '0'"),
        (["--votes="], "argument --votes: expected TRAIN,EVAL (two integers), got ''"),
    ],
)
def test_metrics_usage_errors_exit_2(labelled, tmp_path, args, line):
    """Options that need another one, and a malformed --votes: exit 2 and argparse's wording, as
    every other command's usage errors (they were exit 1), before any work: the shipped model is
    not loaded, --json's file not tried."""
    args = [str(labelled / a) if a.endswith(".npy") else a for a in args]
    completed = run("metrics", *args, "--json", str(tmp_path / "new" / "m.json"), "--no-progress", check=False)
    assert completed.returncode == 2 and completed.stdout == "", completed.stderr
    assert completed.stderr.startswith(f"latentsweep: error: metrics: {line}"), completed.stderr
    assert completed.stderr.endswith(" (see 'latentsweep metrics --help')\n"), completed.stderr
    assert not (tmp_path / "new").exists()


def test_a_mistyped_metric_is_a_usage_error_said_before_the_model_loads(labelled, tmp_path):
    """It was exit 1, after the model was loaded (and a report's after its work had begun)."""
    for command in (["metrics"], ["report", "--factors", str(labelled / "y.npy"), "--out", str(tmp_path / "r")]):
        completed = run(*command, "--model", "not_a_module_anywhere:make", "--data", str(labelled / "x.npy"),
                        "--metrics", "mig,nope", *(["--factors", str(labelled / "y.npy")] if command == ["metrics"] else []),
                        check=False)
        assert completed.returncode == 2, completed.stderr
        assert f"latentsweep: error: {command[0]}: --metrics: unknown metric(s) ['nope']; choose from" in completed.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "x.npy", "--factors", "missing.npy"], "--factors: no such file"),
        # (the key flag of --factors named, not --data's --key)
        (["--data", "x.npy", "--factors", "two.npz"], "holds several arrays (a, b); choose one with --factors-key"),
        # (a key the file lacks: a value the data cannot take, exit 2)
        (["--data", "x.npy", "--factors", "two.npz", "--factors-key", "c"], "--factors: "),
    ],
)
def test_metrics_command_errors_are_one_line(labelled, args, message):
    np.savez(labelled / "two.npz", a=np.zeros((1200, 3), dtype=np.int64), b=np.zeros((1200, 3), dtype=np.int64))
    code = 2 if "--factors-key" in args else 1
    args = [str(labelled / a) if a.endswith((".npy", ".npz")) else a for a in args]
    completed = run("metrics", *args, "--no-progress", check=False)
    assert completed.returncode == code and message in completed.stderr and "Traceback" not in completed.stderr


def test_report_command_with_factors(labelled, tmp_path):
    run("report", "--model", f"{labelled / 'identity_model.py'}:Model", "--data", str(labelled / "x.npy"),
        "--factors", str(labelled / "y.npy"), "--metrics", "mig,sap", "--num-train", "1000", "--num-test", "200",
        "--out", str(tmp_path))
    page = (tmp_path / "report.html").read_text()
    assert "Disentanglement metrics" in page and "<td>mig</td>" in page and "1000 train / 200 test" in page


def test_report_function_with_metrics_only(tmp_path):
    results = ls.metrics.evaluate(lambda x: x, IdentityData(3), metrics=["mig"], num_train=1000, num_test=100,
                                  progress=False)
    path = ls.report(tmp_path / "m.html", metrics=results, title="<metrics>")
    page = path.read_text()
    assert "Disentanglement metrics" in page and "&lt;metrics&gt;" in page
    with pytest.raises(TypeError, match="MetricResults"):
        ls.report(tmp_path / "bad.html", metrics={"mig": 1.0})


def test_metrics_command_checks_device_and_json_before_the_work_and_names_the_encoder(labelled, tmp_path):
    for device in ("meta", "foo"):
        with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(io.StringIO()) as err:
            main(["metrics", "--device", device])
        assert exit_info.value.code == 2 and "argument --device: expected cpu, cuda" in err.getvalue()
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "afile").write_text("mine")
    unwritable = Path("/proc/latentsweep-test.json")  # a folder that takes no new files
    for target, message in ((tmp_path / "folder.json", "a folder is in the way"),
                            (tmp_path / "afile" / "x.json", "is a file, not a folder"),
                            ("", "--json: the path is empty"), (".", "a folder is in the way"),
                            *(((unwritable, "cannot write it"),) if Path("/proc").is_dir() else ())):
        completed = run("metrics", "--json", str(target), "--no-progress", check=False)
        assert completed.returncode == 1 and message in completed.stderr and completed.stdout == ""
    (labelled / "narrow_model.py").write_text(
        "import torch\n"
        "class Model(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.layer = torch.nn.Linear(9, 2)\n"
        "    def encoder(self, x):\n        return self.layer(x)\n"
    )
    completed = run("metrics", "--model", f"{labelled / 'narrow_model.py'}:Model", "--data", str(labelled / "x.npy"),
                    "--factors", str(labelled / "y.npy"), "--metrics", "mig", "--no-progress", check=False)
    assert completed.returncode == 1 and "the encoder, on the observations, raised RuntimeError" in completed.stderr


def test_a_rare_factor_value_loses_no_score(labelled, tmp_path):
    """A value that only the test split draws for some seeds: explicitness leaves those rows out
    (a warning), and every score is printed and written."""
    factors = np.load(labelled / "y.npy")
    factors[0, 1] = 7
    np.save(tmp_path / "rare.npy", factors)
    warned = []
    for seed in range(8):
        completed = run("metrics", "--model", f"{labelled / 'identity_model.py'}:Model", "--data",
                        str(labelled / "x.npy"), "--factors", str(tmp_path / "rare.npy"), "--metrics",
                        "mig,modularity_explicitness", "--num-train", "200", "--num-test", "200", "--seed", str(seed),
                        "--json", str(tmp_path / f"{seed}.json"), "--no-progress")
        scores = json.loads((tmp_path / f"{seed}.json").read_text())
        assert "mig" in completed.stdout and "explicitness_test" in json.dumps(scores), completed.stdout
        warned += ["absent from the train split" in completed.stderr]
    assert any(warned) and not all(warned)  # some seeds' splits drew the rare row for the test split only


@pytest.mark.parametrize(
    "args, line",
    [
        # (--votes 0,5: now a usage error, test_cli_output_claims.py)
        # (a count the factors cannot take: a usage error, exit 2; it was exit 1, without the command)
        (["--factor-names", "a"], "latentsweep: error: metrics: --factor-names has 1 names for 3 factors (see "
                                  "'latentsweep metrics --help')"),
    ],
)
def test_metrics_errors_name_the_flags_not_the_keywords(labelled, args, line):
    completed = run("metrics", "--model", f"{labelled / 'identity_model.py'}:Model", "--data", str(labelled / "x.npy"),
                    "--factors", str(labelled / "y.npy"), *args, "--no-progress", check=False)
    assert completed.returncode == 2 and completed.stderr.strip().splitlines()[-1] == line, completed.stderr
    assert "metrics.evaluate" not in completed.stderr and "LabelledArrays" not in completed.stderr


@pytest.mark.parametrize("flag, value", [("--num-train", "1"), ("--num-test", "0")])
def test_too_few_metric_points_are_a_usage_error(labelled, flag, value, capsys):
    """The library's limit (metrics.evaluation.MIN_POINTS), said before any work, exit 2 (it was
    found after loading the model and the data, exit 1)."""
    for command in (["metrics"], ["report", "--model", f"{labelled / 'identity_model.py'}:Model", "--data",
                                  str(labelled / "x.npy")]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, flag, value])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip() == (
            f"latentsweep: error: {command[0]}: argument {flag}: must be >= 2, got {value} "
            f"(see 'latentsweep {command[0]} --help')")


@pytest.mark.parametrize("seed", ["-1", str(2**32), "x"])
def test_a_bad_metrics_seed_is_a_usage_error(labelled, seed, capsys):
    for command in (["metrics"], ["report", "--model", f"{labelled / 'identity_model.py'}:Model", "--data",
                                  str(labelled / "x.npy")]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, f"--seed={seed}"])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
            f"latentsweep: error: {command[0]}: argument --seed: ")


def test_the_metrics_json_names_the_data_without_a_memory_address(labelled, tmp_path):
    """evaluate recorded repr(data): "<...LabelledArrays object at 0x7fec...>", another every run."""
    run("metrics", "--model", f"{labelled / 'identity_model.py'}:Model", "--data", str(labelled / "x.npy"),
        "--factors", str(labelled / "y.npy"), "--metrics", "mig", "--num-train", "100", "--num-test", "50",
        "--no-progress", "--json", str(tmp_path / "m.json"))
    import json

    data = json.loads((tmp_path / "m.json").read_text())["settings"]["data"]
    assert data == "LabelledArrays(1200 observations [4], factors ['factor 0', 'factor 1', 'factor 2'] of sizes " \
                   "[5, 5, 5])", data
