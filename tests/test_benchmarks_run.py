"""The benchmark scripts still run, and BENCHMARKS.md's command lines still parse.

The scripts under benchmarks/ are run by hand and their tables pasted into BENCHMARKS.md, so
nothing else notices when an API change breaks one. Each runs here with ``--smoke`` (every row
and table on tiny sizes, one round) in its own process, and its stdout must still hold the
tables and rows it promises: a script that fails, or silently drops a row, fails its test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if not path.stem.startswith("_"))

# What each script's --smoke stdout must hold: table headers, every row's label, the ratio columns.
EXPECTED = {
    "bench_analysis": [
        "| function | alternative | latentsweep | alternative's time | latentsweep / alternative |",
        "`encode` (tensor)", "`encode` (numpy array)", "`encode` (DataLoader)", "| `diagnose` |",
        "`clusters(k=10)`", "`clusters(labels=...)`", "`Clusters.directions` (with `clusters`)",
        "`principal_directions` | `torch.linalg.svd`", "`principal_directions` | sklearn `PCA`",
        "| function | N | peak growth | float32 mu [N, D] | growth / mu |",
    ],
    "bench_analysis_large_latents": [
        "| function | N | D | k | route now | before | now | before / now | max vector difference |",
        "| `principal_directions` | 20 | 64 | all | Gram N x N |", "| 300 | 64 | all | covariance D x D |",
        "| 300 | 64 | 4 | covariance D x D, top 4 only |", "| 40 | 64 | 4 | Gram N x N, top 4 only |",
        "| `diagnose` | 100 | 32 |", "same axes",
        "| function | N | D | blocks of | a new tensor per block | one buffer per pass | before / now | results |",
        "| `diagnose` | 100 | 32 | 30 rows |", "| `principal_directions(k=16, randomized)` | 100 | 32 | 30 rows |",
        "same bits",
    ],
    "bench_core": [
        "| method | median | output bandwidth | speed-up vs torch idiom |",
        "torch idiom `mu + exp(0.5*lv)*randn`", "`torch.randn` alone", "**`latentsweep.sample`**",
        "`sample_prior_` into a reused buffer", "`out.fill_(1.0)` (bandwidth yardstick)",
        "| method | median | speed-up vs torch idiom |",
        "torch idiom, forward + backward", "**`latentsweep.sample`, forward + backward**",
        "| method | median | bandwidth | speed-up vs torch | share of fill_ bandwidth |",
        "torch repeat + one 4-index assignment", "torch expand + clone + index assignment",
        "torch, into a reused buffer", "**`latentsweep.traversal_codes`**", "`traversal_codes(..., out=buffer)`",
        "torch `anchors + (values - <anchors, u>) u`", "torch `addcmul(..., out=buffer)`",
        "**`latentsweep.direction_codes`**", "`direction_codes(..., out=buffer)`",
        "`out.fill_(1.0)` on the same buffer (the limit)", "vs 4-index", "vs addcmul",
    ],
    "bench_decoder_memory": [
        "| method | batch used | peak memory above the process's | time | points/s |",
        *(f"| {method} | " for method in ("defaults (auto)", "batch_size=64", "batch_size=16")),
    ],
    "bench_statistics": [
        "| statistics of a chunk | time per chunk | outputs read at | vs generic | vs one sum |",
        "fused kernel (`SweepStatistics.update`)", "device-generic path (torch ops)", "yardstick: `outputs.sum()`",
    ],
    "bench_sweep": [
        "| decoder | method | best time | points/s | comparison |",
        *(f"| {decoder} | {row}" for decoder in ("MLP 32-256-784", "deconv 64x64") for row in (
            "decoder alone, buffers reused, best size", "decoder alone, plain loop, best size",
            "**`traverse(keep_outputs=False)`, defaults** (auto chose", "`traverse`, best fixed batch",
            "plain torch: whole grid, one decoder call", "per-dimension Python loop", "per-point loop (timed on")),
        "vs floor", "its speed",
        "| decoder | batch | alone, plain loop | alone, buffers reused | traverse | traverse vs reused | traverse vs plain |",
        "| MLP 32-256-784 | 4 |", "| MLP 32-256-784 | 16 |", "| deconv 64x64 | 4 |", "| deconv 64x64 | 16 |",
        "Peak RSS of statistics-only sweeps",
        "| points | wall time | points/s | batch (auto) | peak RSS | outputs would take |",
    ],
    "bench_sweep_kinds": [
        "| method | best time | points/s | vs floor |", "decoder alone on pre-built codes = **floor**",
        "`traverse`, along the latents", "`traverse(directions=)`, 32 directions",
        "`interpolate`, 64 linear paths", "`interpolate`, 64 slerp paths",
    ],
    "bench_auto_batch": [
        "| round | defaults | chose | trials (kept) | sizes timed (points/s) | fixed 64 |", "| 1 |",
        "| sweep at 64 | best | median |", "| after 8192 |", "| after 64 |",
    ],
    "bench_store_writes": [
        "| batch | chunks | method | best time | vs in memory |", "`traverse` in memory", "`traverse(out='s.zarr')`",
        "every chunk through zarr (before)", "`traverse(out='s.npy')`",
        "user loop: decode batches, assign each to a zarr array",
        "| one traversal, steps | outputs a row | batch | unit (one chunk) | writes | peak RSS growth | growth / unit |",
        "through zarr, unit held (before)", "streamed to the chunk's file",
    ],
    "bench_explain_memory": [
        "| method | peak memory above the process's | time |", "| explain | ",
        "| traverse every latent with its outputs, then report | ", "alternative / explain: memory ",
    ],
    "bench_many_latents": [
        "| K = D | decoder alone | `traverse` in memory | `traverse` into zarr | unit records | `open_sweep` |",
        "| 16 |",
    ],
    "bench_merge": [
        "| units | what | seconds | per unit |", "store: check records + checksums (resume, open)",
        "store: open_sweep (check + read + merge)", "store: resume=True of the finished sweep (check + merge)",
        "store: resume=True, every 100th unit missing", "simulated: ordered in-memory merge",
    ],
    "bench_scaling": [
        "| configuration | seconds | points/s | batch | efficiency vs 1 process |",
        "| 1 process x 2 threads |", "| 2 processes x 1 thread (torchrun, gloo) |",
    ],
    "bench_metrics": [
        "| metric | latentsweep | alternative | speed-up |", "| MIG |", "sklearn MI per pair",
        "SAP (discrete, LinearSVC per pair)", "SAP (continuous)", "Modularity + explicitness", "modularity alone",
        "Unsupervised (4 scores)", "sklearn pairwise MI alone", "| IRS |", "reference numpy",
        "DCI (random_forest option)", "gradient boosting: skipped",
        "MIG + SAP + Modularity/Explicitness + unsupervised together",
        "| what | latentsweep | alternative | speed-up |", "FactorVAE, 4 votes of 64", "one encoder call per vote",
        "FactorVAE, smoke sizes", "BetaVAE, smoke sizes",
    ],
    "bench_training": [
        "| what | median | vs one training epoch |", "one training epoch (plain loop)",
        "`log_traversals` (encode, diagnose, traverse, 2 pictures, TensorBoard)",
        "of which encode + diagnose + traverse", "| one training epoch |",
        "`TraversalCallback` at its end (snapshot, logging)",
    ],
    "profile_sweep": ["## decoder alone:", "## traverse:", "Self CPU time total", "aten::addmm"],
}
NEEDS = {"bench_training": "lightning"}  # optional extras
TIMEOUT_S = {"bench_scaling": 180}  # two runs in fresh processes (one under torchrun), each ended after 60 s


def test_every_script_has_expectations():
    assert sorted(EXPECTED) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_with_smoke(script, tmp_path):
    if script in NEEDS:
        pytest.importorskip(NEEDS[script])
    # its own process group, ended whole past the timeout (bench_scaling's torchrun workers too)
    with subprocess.Popen([sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                          env={**os.environ, "TMPDIR": str(tmp_path)}) as process:  # bench_merge's stores
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_S.get(script, 120))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"{script}.py --smoke ran past {TIMEOUT_S.get(script, 120)} s:\n{stdout}\n{stderr}")
    assert process.returncode == 0, f"{script}.py --smoke failed:\n{stdout[-3000:]}\n{stderr[-6000:]}"
    missing = [text for text in EXPECTED[script] if text not in stdout]
    assert not missing, f"{script}.py --smoke did not print {missing}:\n{stdout}"


def documented_commands() -> list[tuple[str, list[str]]]:
    """(script, arguments) of each `python benchmarks/X.py ...` BENCHMARKS.md quotes: in a code
    span, up to its closing backtick (a span may wrap); in a code block, up to the line's end,
    a comment (#) or prose after the arguments ("(then ...", ", and ...")."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    commands = []
    for match in re.finditer(r"(`?)(?:python )?benchmarks/(\w+)\.py", text):
        rest = text[match.end():]
        if match.group(1):  # a code span
            arguments = rest[: rest.index("`")]
        else:
            arguments = re.split(r"[#(,]", rest.split("\n", 1)[0], maxsplit=1)[0]
        commands.append((match.group(2), shlex.split(arguments)))
    return commands


def load_script(name: str, monkeypatch):
    """The script as a module (not run): its imports resolve as when run from benchmarks/."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_documented_commands_are_found():
    commands = documented_commands()
    assert len(commands) >= 40  # BENCHMARKS.md quotes ~45; a broken extraction finds far fewer
    assert ("bench_sweep", ["--decoders", "deconv", "--skip-rss"]) in commands  # a span that wraps a line
    assert ("bench_statistics", ["--device", "cuda", "--repeats", "7"]) in commands  # before ", and ..."
    assert {script for script, _ in commands} <= set(SCRIPTS)


class UsageError(Exception):
    pass


def raise_usage_error(message: str):
    raise UsageError(message)  # argparse would print it and exit


def test_documented_commands_parse(monkeypatch):
    """Every option BENCHMARKS.md passes to a script still exists (each script's build_parser)."""
    failures = []
    parsers = {}
    for script, arguments in documented_commands():
        if script not in parsers:
            parsers[script] = load_script(script, monkeypatch).build_parser()
            parsers[script].error = raise_usage_error
        try:
            parsers[script].parse_args(arguments)
        except UsageError as error:
            failures.append(f"python benchmarks/{script}.py {shlex.join(arguments)}: {error}")
    assert not failures, "BENCHMARKS.md quotes commands the scripts no longer accept:\n" + "\n".join(failures)
