"""Hostile files and values through every command-line option that reads a file or takes a
number (issue 12 items 6-9 and 12), with each outcome classified:

- ``ok``: exit 0 and every array written is finite;
- ``clear-error``: exit 1 with exactly one ``latentsweep: error: ...`` line;
- ``usage-error``: exit 2 with one ``latentsweep: error: COMMAND: ... (see '... --help')`` line (argparse's);
- ``other-exception``: one line, but for an exception the CLI did not expect (it asks for
  ``--debug``): a message that names nothing the user can act on;
- ``messy-error``: several lines, or no message;
- ``traceback``: an exception escaped ``main()``; ``crash``: killed by a signal; ``hang``;
- ``wrong-result``: exit 0 with NaN/Inf in the arrays written;
- ``executed-pickle``: a pickle in a file was unpickled (it creates a marker file);
- ``shadowed-stdlib``: a user file replaced a standard-library module in ``sys.modules``.

Every case also says what it expects: valid input must give ``ok`` (a clear error for valid
input, like float64 data refused, is ``refused-valid``), invalid input a clear or usage error
(exit 0 for it is ``accepted-invalid``).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from cli_models import tiny_data, tiny_vae_source

WORKER = Path(__file__).with_name("fuzz_cli_worker.py")
ESCAPED = 97  # fuzz_cli_worker.ESCAPED
GOOD = ("ok", "clear-error", "usage-error")
MARKER = "PICKLE_EXECUTED"

MODEL_SOURCE = tiny_vae_source(
    """
    import sys

    def raises():
        raise RuntimeError("the factory failed")

    def returns_none():
        return None

    def exits():
        sys.exit(3)
    """,
    logvar_offset=-2.0,
)


class _Touch:
    """Unpickling this creates MARKER in the current folder: proof that a pickle ran."""

    def __reduce__(self):
        return (open, (MARKER, "w"))


def _safetensors_variants(valid: bytes) -> dict[str, bytes]:
    """Damaged .safetensors files of every kind, from one valid file."""
    length = struct.unpack("<Q", valid[:8])[0]
    header = json.loads(valid[8 : 8 + length])
    data = valid[8 + length :]
    name = next(k for k in header if k != "__metadata__")

    def with_header(change) -> bytes:
        edited = json.loads(json.dumps(header))
        change(edited)
        text = json.dumps(edited).encode()
        return struct.pack("<Q", len(text)) + text + data

    def entry(**fields):
        return lambda h: h[name].update(fields)

    return {
        "empty": b"",
        "three-bytes": b"\x01\x02\x03",
        "length-past-end": struct.pack("<Q", 10**6) + valid[8:],
        "length-2**63": struct.pack("<Q", 2**63) + valid[8:],
        "length-zero": struct.pack("<Q", 0) + valid[8:],
        "header-not-json": struct.pack("<Q", 9) + b"not json{" + data,
        "header-not-utf8": struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc" + data,
        "header-a-list": struct.pack("<Q", 6) + b"[1, 2]" + data,
        "unknown-dtype": with_header(entry(dtype="X99")),
        "offsets-past-end": with_header(entry(data_offsets=[0, 10**9])),
        "offsets-reversed": with_header(entry(data_offsets=[8, 0])),
        "shape-too-large": with_header(entry(shape=[1000, 1000])),
        "negative-shape": with_header(entry(shape=[-1, 16])),
        "metadata-not-a-dict": with_header(lambda h: h.update(__metadata__=5)),
        "entry-not-a-dict": with_header(lambda h: h.update({name: 5})),
        "truncated-data": valid[:-10],
        "pickle-renamed": pickle.dumps({"x": _Touch()}),
        "random-bytes": np.random.default_rng(0).bytes(512),
        "zip-renamed": b"PK\x03\x04" + np.random.default_rng(1).bytes(200),
    }


def _build_workspace(root: Path) -> list[dict]:
    """Writes the files and returns the cases: {name, argv, cwd, expect}."""
    from safetensors.torch import save, save_file

    (root / "tiny.py").write_text(MODEL_SOURCE)
    for stdlib_name in ("json", "random"):  # a user file named like a stdlib module
        (root / "models").mkdir(exist_ok=True)
        (root / "models" / f"{stdlib_name}.py").write_text(MODEL_SOURCE)
    (root / "syntax_error.py").write_text("def make(:\n")
    (root / "raises_on_import.py").write_text("raise ImportError('no such thing')\n")
    (root / "exits_on_import.py").write_text("import sys\nsys.exit(4)\n")
    (root / "garbage.py").write_bytes(b"\x00\xff\xfe binary \x00")
    (root / "folder.py").mkdir(exist_ok=True)

    namespace: dict = {}
    exec(MODEL_SOURCE, namespace)  # noqa: S102  (the model above)
    state = namespace["make"]().state_dict()
    torch.save(state, root / "weights.pt")
    save_file(state, root / "weights.safetensors")
    data = tiny_data()
    np.save(root / "data.npy", data)
    save_file({"x": torch.from_numpy(data)}, root / "data.safetensors")

    cases: list[dict] = []

    def case(name, argv, expect):
        cases.append({"name": name, "argv": [str(a) for a in argv], "cwd": str(root), "expect": expect})

    diagnose = ["diagnose", "--model", "tiny:make", "--weights", "weights.pt"]
    traverse = ["traverse", "--model", "tiny:make", "--weights", "weights.pt", "--anchors", "2", "--steps", "3",
                "--no-progress"]
    sample = ["sample", "--model", "tiny:make", "--weights", "weights.pt", "-n", "4"]

    # --weights: damaged .safetensors, damaged and unusual torch files
    for kind, content in _safetensors_variants(save(state)).items():
        (root / f"w-{kind}.safetensors").write_bytes(content)
        case(f"weights-safetensors-{kind}", ["diagnose", "--model", "tiny:make", "--weights",
                                            f"w-{kind}.safetensors", "--data", "data.npy"], "error")
    valid_pt = (root / "weights.pt").read_bytes()
    torch_files = {
        "random-bytes": np.random.default_rng(2).bytes(300),
        "truncated": valid_pt[: len(valid_pt) // 2],
        "empty": b"",
    }
    for kind, content in torch_files.items():
        (root / f"w-{kind}.pt").write_bytes(content)
    torch_objects = {
        "pickled-object": ({"state_dict": state, "extra": _Touch()}, "error"),
        "a-list": ([t for t in state.values()], "error"),
        "a-tensor": (torch.ones(3), "error"),
        "empty-dict": ({}, "error"),
        "strings": ({"a": "b"}, "error"),
        "wrong-names": ({f"x{i}": t for i, t in enumerate(state.values())}, "error"),
        "wrong-shapes": ({k: torch.ones(2) for k in state}, "error"),
        "unusual-key": ({"ema": state, "step": 1}, "error"),
        "model_state_dict": ({"model_state_dict": state, "epoch": 2}, "ok"),
        "lightning": ({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 1}, "ok"),
    }
    for kind, (value, _) in torch_objects.items():
        torch.save(value, root / f"w-{kind}.pt")
    for kind in [*torch_files, *torch_objects]:
        expect = torch_objects[kind][1] if kind in torch_objects else "error"
        case(f"weights-torch-{kind}", ["diagnose", "--model", "tiny:make", "--weights", f"w-{kind}.pt",
                                       "--data", "data.npy"], expect)
    case("weights-a-folder", ["diagnose", "--model", "tiny:make", "--weights", "models", "--data", "data.npy"], "error")

    # --data: arrays as numpy saves them (valid), and damaged or meaningless ones
    valid_arrays = {
        "float64": data.astype(np.float64),
        "float16": data.astype(np.float16),
        "uint8": (data * 255).astype(np.uint8),
        "big-endian": data.astype(">f8"),
        "fortran-order": np.asfortranarray(data),
        "bool": data > 0.5,
    }
    invalid_arrays = {
        "complex": data.astype(np.complex64),
        "strings": np.array([["a"] * 16] * 4),
        "structured": np.zeros(4, dtype=[("a", "f4"), ("b", "f4")]),
        "scalar": np.array(3.0),
        "empty": np.zeros((0, 16), np.float32),
        "wrong-width": data[:, :7],
        "three-d": data.reshape(40, 4, 4),
        "nan": np.where(data > 0.9, np.nan, data),
        "inf": np.where(data > 0.9, np.inf, data),
    }
    for kind, array in {**valid_arrays, **invalid_arrays}.items():
        np.save(root / f"d-{kind}.npy", array)
    np.save(root / "d-object.npy", np.array([_Touch()], dtype=object), allow_pickle=True)
    (root / "d-truncated.npy").write_bytes((root / "data.npy").read_bytes()[:200])
    lying = bytearray((root / "data.npy").read_bytes())
    lying[lying.index(b"(40, 16)") : lying.index(b"(40, 16)") + 8] = b"(99, 16)"
    (root / "d-lying-header.npy").write_bytes(bytes(lying))
    (root / "d-not-a-zip.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    np.savez(root / "d-several.npz", a=data, b=data)
    np.savez(root / "d-x.npz", x=data, labels=np.arange(40))
    torch.save({"x": torch.from_numpy(data)}, root / "d-x.pt")
    torch.save({"x": _Touch()}, root / "d-pickled.pt")
    for kind in valid_arrays:
        case(f"data-{kind}", [*diagnose, "--data", f"d-{kind}.npy"], "ok")
        case(f"data-{kind}-traverse", [*traverse, "--data", f"d-{kind}.npy", "--out", f"out/data-{kind}"], "ok")
    case("data-float64-report", ["report", "--model", "tiny:make", "--weights", "weights.pt", "--data", "d-float64.npy",
                                 "--anchors", "1", "--steps", "3", "--out", "out/report"], "ok")
    for name in ("d-x.npz", "d-x.pt", "data.safetensors"):
        case(f"data-{name}", [*diagnose, "--data", name], "ok")
    for kind in [*invalid_arrays, "object", "truncated", "lying-header"]:
        case(f"data-{kind}", [*diagnose, "--data", f"d-{kind}.npy"], "error")
    for name in ("d-not-a-zip.npz", "d-several.npz", "d-pickled.pt", "missing.npy", "tiny.py", "models"):
        case(f"data-{name}", [*diagnose, "--data", name], "error")
    case("data-npz-missing-key", [*diagnose, "--data", "d-x.npz", "--key", "nope"], "error")
    for kind, content in list(_safetensors_variants(save({"x": torch.from_numpy(data)})).items())[::2]:
        (root / f"d-{kind}.safetensors").write_bytes(content)
        case(f"data-safetensors-{kind}", [*diagnose, "--data", f"d-{kind}.safetensors"], "error")

    # --model: files and factories of every kind
    for stdlib_name in ("json", "random"):
        case(f"model-named-{stdlib_name}", ["traverse", "--model", f"models/{stdlib_name}.py:make", "--weights",
                                            "weights.pt", "--data", "data.npy", "--anchors", "2", "--steps", "3",
                                            "--store", f"out/{stdlib_name}.zarr", "--no-progress",
                                            "--out", f"out/model-{stdlib_name}"], "ok")
    for spec in ("syntax_error.py:make", "raises_on_import:make", "exits_on_import.py:make", "garbage.py:make",
                 "folder.py:make", "tiny:raises", "tiny:returns_none", "tiny:exits", "tiny:nothing", "tiny",
                 "no_such_module:make", "missing.py:make"):
        case(f"model-{spec}", ["diagnose", "--model", spec, "--data", "data.npy"], "error")

    # numbers and options
    for value in ("nan", "inf", "-5", "0"):
        case(f"sample-prior-std-{value}", [*sample, "--prior-std", value, "--out", f"out/prior-{value}"], "error")
    for value in ("1e200", "1e-200"):
        case(f"diagnose-prior-std-{value}", [*diagnose, "--data", "data.npy", "--prior-std", value], "error")
    case("sample-prior-std-0.5", [*sample, "--prior-std", "0.5", "--out", "out/prior-0.5"], "ok")
    for option, value in (("--sweep-batch-size", "-3"), ("--sweep-batch-size", "0"), ("--steps", "0"),
                          ("--span", "nan"), ("--span", "-1"), ("--dims", "9"), ("--dims", "a"),
                          ("--image-shape", "5,5"), ("--image-shape", "0,16"), ("--device", "banana"),
                          ("--device", "meta"), ("--resume", None), ("--store", "data.npy"),
                          ("--store", "models")):
        extra = [option] if value is None else [option, value]
        case(f"traverse{option}-{value}", [*traverse, "--data", "data.npy", *extra, "--out", "out/bad"], "error")
    if not torch.cuda.is_available():
        case("traverse-device-cuda", [*traverse, "--data", "data.npy", "--device", "cuda"], "error")
    case("sample--out-a-file", [*sample, "--out", "data.npy"], "error")
    # report --directions FILE.npy and --clusters K (issue 8 item 7)
    report = ["report", "--model", "tiny:make", "--weights", "weights.pt", "--data", "data.npy", "--anchors", "1",
              "--steps", "3"]
    directions = {
        "ints-big-endian": (np.array([[1, 0, 0], [0, 2, 1]], dtype=">i4"), "ok"),
        "nan": (np.array([[1.0, np.nan, 0.0]]), "error"),
        "inf": (np.array([[np.inf, 0.0, 0.0]]), "error"),
        "zero-row": (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), "error"),
        "wrong-width": (np.ones((2, 16)), "error"),
        "three-d": (np.ones((2, 3, 1)), "error"),
        "empty": (np.zeros((0, 3)), "error"),
        "strings": (np.array([["a", "b", "c"]]), "error"),
        "complex": (np.ones((1, 3), np.complex64), "error"),
        "scalar": (np.array(1.0), "error"),
    }
    for kind, (array, expect) in directions.items():
        np.save(root / f"u-{kind}.npy", array)
        extra = ["--clusters", "3"] if expect == "ok" else []
        case(f"report-directions-{kind}", [*report, "--directions", f"u-{kind}.npy", *extra, "--out",
                                           f"out/report-directions-{kind}"], expect)
    np.save(root / "u-object.npy", np.array([_Touch()], dtype=object), allow_pickle=True)
    (root / "u-truncated.npy").write_bytes((root / "u-nan.npy").read_bytes()[:90])
    for name in ("u-object.npy", "u-truncated.npy", "missing.npy", "tiny.py", "models"):
        case(f"report-directions-{name}", [*report, "--directions", name, "--out", "out/bad-directions"], "error")
    for value in ("0", "1", "-3", "nan", "40", "1e9"):
        case(f"report-clusters-{value}", [*report, "--clusters", value, "--out", "out/bad-clusters"], "error")
    case("report-directions-clusters-alone", [*report, "--directions", "clusters", "--out", "out/bad-clusters"], "error")
    for option, value in (("--output-activation", "relu"), ("--decoder-output", "nope"), ("--decoder-output", "5")):
        case(f"traverse{option}-{value}", [*traverse, "--data", "data.npy", option, value, "--out", "out/bad"], "error")
    case("sample--output-activation-sigmoid", [*sample, "--output-activation", "sigmoid", "--out", "out/act"], "ok")
    case("diagnose--batch-size-0", [*diagnose, "--data", "data.npy", "--batch-size", "0"], "error")
    for option, value in (("--seed", "-1"), ("--latent-dim", "0"), ("-n", "0"), ("--latent-dim", "5")):
        case(f"sample{option}-{value}", [*sample, option, value, "--out", "out/bad-sample"], "error")
    return cases


def classify(case: dict, outcome: dict, root: Path) -> str:
    """One word for what happened (see the module docstring), judged against what the case
    expects."""
    if outcome["signal"] is not None:
        return "crash"
    if outcome["timeout"]:
        return "hang"
    if (root / MARKER).exists():
        return "executed-pickle"
    if outcome["shadowed"]:
        return "shadowed-stdlib"
    if outcome["code"] == ESCAPED or "Traceback (most recent call last)" in outcome["stderr"]:
        return "traceback"
    if outcome["code"] == 0:
        if not _outputs_finite(case, root):
            return "wrong-result"
        return "ok" if case["expect"] == "ok" else "accepted-invalid"
    lines = [line for line in outcome["stderr"].strip().splitlines()
             if not line.startswith(("latentsweep: warning:", "latentsweep: note:"))]
    if outcome["code"] == 2 and len(lines) == 1 and lines[0].startswith("latentsweep: error: ") \
            and lines[0].endswith("--help')") and "\x1b" not in lines[0]:
        kind = "usage-error"
    elif outcome["code"] == 1 and len(lines) == 1 and lines[0].startswith("latentsweep: error: ") \
            and "\x1b" not in lines[0]:
        kind = "other-exception" if "--debug for the traceback" in lines[0] else "clear-error"
    else:
        return "messy-error"
    return "refused-valid" if case["expect"] == "ok" and kind in GOOD else kind


def _outputs_finite(case: dict, root: Path) -> bool:
    """Every array the case wrote under its --out folder is finite."""
    if "--out" not in case["argv"]:
        return True
    folder = root / case["argv"][case["argv"].index("--out") + 1]
    for path in list(folder.glob("*.npy")) + list(folder.glob("*.npz")):
        loaded = np.load(path)
        arrays = [loaded[k] for k in loaded.files] if isinstance(loaded, np.lib.npyio.NpzFile) else [loaded]
        if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays):
            return False
    return True


def run_cases(cases: list[dict], root: Path, env: dict | None = None) -> dict[str, tuple[str, dict]]:
    cases_file = root / "cases.json"
    cases_file.write_text(json.dumps(cases))
    completed = subprocess.run([sys.executable, str(WORKER), str(cases_file)], capture_output=True, text=True,
                               timeout=1200, cwd=root, env={**os.environ, **(env or {})})
    assert completed.returncode == 0, completed.stderr[-3000:]
    by_name = {case["name"]: case for case in cases}
    results = {}
    for line in completed.stdout.strip().splitlines():
        outcome = json.loads(line)
        results[outcome["name"]] = (classify(by_name[outcome["name"]], outcome, root), outcome)
    assert set(results) == set(by_name)
    return results


def test_hostile_files_and_values_through_every_cli_option(tmp_path):
    cases = _build_workspace(tmp_path)
    results = run_cases(cases, tmp_path)
    counts: dict[str, int] = {}
    for kind, _ in results.values():
        counts[kind] = counts.get(kind, 0) + 1
    bad = {name: (kind, outcome["stderr"].strip()[-300:]) for name, (kind, outcome) in results.items()
           if kind not in GOOD}
    assert not bad, f"{counts}\n" + "\n".join(f"{name}: {kind}: {tail}" for name, (kind, tail) in bad.items())
    # the fuzz reaches both sides: valid files that work, hostile ones that are refused
    assert counts.get("ok", 0) >= 20 and counts.get("clear-error", 0) >= 60 and counts.get("usage-error", 0) >= 10
    assert not (tmp_path / MARKER).exists()


def test_the_harness_sees_crashes_tracebacks_and_each_kind_of_bad_outcome(tmp_path):
    """The classification fails for each outcome it exists to catch."""
    (tmp_path / "tiny.py").write_text(MODEL_SOURCE)
    np.save(tmp_path / "data.npy", np.zeros((4, 16), np.float32))
    cases = [
        {"name": "crash", "argv": ["info"], "cwd": str(tmp_path), "expect": "ok"},
        {"name": "escape", "argv": ["info"], "cwd": str(tmp_path), "expect": "ok"},
        {"name": "valid", "argv": ["info"], "cwd": str(tmp_path), "expect": "ok"},
        {"name": "accepted", "argv": ["info"], "cwd": str(tmp_path), "expect": "error"},
        {"name": "refused", "argv": ["diagnose", "--model", "tiny:make", "--data", "none.npy"], "cwd": str(tmp_path),
         "expect": "ok"},
    ]
    results = run_cases(cases, tmp_path, env={"LATENTSWEEP_FUZZ_CLI_CRASH": "1"})
    assert {name: kind for name, (kind, _) in results.items()} == {
        "crash": "crash", "escape": "traceback", "valid": "ok", "accepted": "accepted-invalid",
        "refused": "refused-valid",
    }
    base = {"signal": None, "timeout": False, "shadowed": [], "stdout": ""}
    out = tmp_path / "out"
    out.mkdir()
    np.save(out / "codes.npy", np.array([np.nan]))
    wrote_nan = {"argv": ["sample", "--out", "out"], "expect": "ok"}
    assert classify(wrote_nan, {**base, "code": 0, "stderr": ""}, tmp_path) == "wrong-result"
    assert classify(wrote_nan, {**base, "code": 1, "stderr": "latentsweep: error: mat1 and mat2 must have the "
                                "same dtype"}, tmp_path) == "refused-valid"
    plain = {"argv": ["info"], "expect": "error"}
    assert classify(plain, {**base, "code": 1, "stderr": "latentsweep: error: OverflowError: x (run with --debug "
                            "for the traceback)"}, tmp_path) == "other-exception"
    assert classify(plain, {**base, "code": 1, "stderr": "a\nb"}, tmp_path) == "messy-error"
    assert classify(plain, {**base, "code": 1, "stderr": "", "timeout": True}, tmp_path) == "hang"
    assert classify(plain, {**base, "code": 0, "stderr": "", "shadowed": ["json"]}, tmp_path) == "shadowed-stdlib"
    (tmp_path / MARKER).touch()
    assert classify(plain, {**base, "code": 1, "stderr": "latentsweep: error: x"}, tmp_path) == "executed-pickle"
