"""What the command line makes of unusual --data files and of models and numbers at the edges of
what numpy and the library take: one line naming the flag, never an internal error."""

from __future__ import annotations

import errno
import io
import json
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import torch

from latentsweep._checks import INT64_MAX
from latentsweep._extension import _C
from latentsweep.metrics._inputs import MAX_BINS
from test_cli import assert_one_line_error, invoke, run, workspace  # noqa: F401  (workspace: the fixture)

BFLOAT16_MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn

    class BFloat16VAE(nn.Module):
        latent_dim = 3

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body, self.out = nn.Linear(16, 6), nn.Linear(3, 16)
            self.bfloat16()

        def encoder(self, x):
            h = self.body(x)
            return h[:, :3], h[:, 3:] - 2.0

        def decoder(self, z):
            return torch.sigmoid(self.out(z)).view(-1, 1, 4, 4)
    """
)


# ---- bug 1: a bfloat16 model's codes --------------------------------------------------------
def test_a_bfloat16_models_codes_and_statistics_are_written_as_float32(workspace, tmp_path):
    """numpy has no bfloat16: codes.numpy() failed ("Got unsupported ScalarType BFloat16") after
    sample had made --out, and traverse failed the same way writing traversal.npz."""
    (tmp_path / "bf16_model.py").write_text(BFLOAT16_MODEL)
    model = f"{tmp_path / 'bf16_model.py'}:BFloat16VAE"
    invoke("sample", "--model", model, "--data", "data.npy", "-n", "5", "--out", str(tmp_path / "s"), cwd=workspace)
    codes = np.load(tmp_path / "s" / "codes.npy")
    assert codes.dtype == np.float32 and codes.shape == (20, 3)
    widened = torch.from_numpy(codes)
    assert torch.equal(widened.bfloat16().float(), widened)  # the model's bfloat16 codes, exactly
    invoke("traverse", "--model", model, "--data", "data.npy", "--steps", "3", "--anchors", "2", "--no-progress",
           "--out", str(tmp_path / "t"), cwd=workspace)
    with np.load(tmp_path / "t" / "traversal.npz") as saved:
        assert {saved[name].dtype for name in ("values", "effect", "dim_effect", "sensitivity")} == {np.dtype(np.float32)}
    assert "bfloat16" in invoke("sample", "--help", cwd=workspace).stdout  # (said in its help)


def test_sample_leaves_no_empty_out_folder_when_it_fails(workspace, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    out = tmp_path / "never"
    completed = invoke("sample", "--model", "tiny_models:make", "--weights", "tiny.pt", "--out", str(out),
                       cwd=workspace, check=False)
    assert_one_line_error(completed, "No space left on device")
    assert not out.exists()


# ---- bug 2: tensors without plain values ----------------------------------------------------
def _unusual_tensors() -> dict:
    with warnings.catch_warnings():  # (torch's remarks on nested and quantized tensors)
        warnings.simplefilter("ignore")
        return {
            "sparse-huge": (torch.sparse_coo_tensor(torch.tensor([[0], [0]]), torch.tensor([1.0]), (10**9, 10**6)),
                            "holds a sparse_coo tensor [1000000000, 1000000] float32: made dense, it needs"),
            "meta": (torch.empty(20, 16, device="meta"),
                     "holds a tensor [20, 16] float32 on the meta device, which has a shape but no values"),
            "nested": (torch.nested.nested_tensor([torch.ones(2, 16), torch.ones(3, 16)]),
                       "holds a nested tensor (2 tensors, float32); expected one tensor [N, ...]"),
            "quantized": (torch.quantize_per_tensor(torch.ones(40, 16), 0.1, 0, torch.qint8),
                          "holds a quantized tensor [40, 16] qint8; save tensor.dequantize() instead"),
        }


@pytest.mark.parametrize("kind", ["sparse-huge", "meta", "nested", "quantized"])
@pytest.mark.parametrize("in_dict", [False, True])
def test_tensors_without_plain_values_are_refused_naming_data(workspace, tmp_path, kind, in_dict):
    """Internal errors before: an allocation of 4e15 bytes (to_dense unchecked), "Tensor.item()
    cannot be called on meta tensors", "NestedTensorImpl doesn't support sizes", "Creation of
    quantized tensor requires quantized dtype"."""
    tensor, words = _unusual_tensors()[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"x": tensor, "labels": torch.arange(3)} if in_dict else tensor, tmp_path / "inputs.pt")
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                       str(tmp_path / "inputs.pt"), cwd=workspace, check=False)
    line = assert_one_line_error(completed, f"latentsweep: error: --data: '{tmp_path / 'inputs.pt'}' {words}")
    assert "debug" not in line and "RuntimeError" not in line, line


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_small_sparse_data_is_still_made_dense(workspace, tmp_path, layout):
    data = torch.from_numpy(np.load(workspace / "data.npy"))
    with warnings.catch_warnings():  # (torch's "Sparse CSR tensor support is in beta state")
        warnings.simplefilter("ignore")
        torch.save(data.to_sparse() if layout == "coo" else data.to_sparse_csr(), tmp_path / "sparse.pt")
    dense = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy", "--json",
                   cwd=workspace)
    sparse = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                    str(tmp_path / "sparse.pt"), "--json", cwd=workspace)
    assert json.loads(sparse.stdout) == json.loads(dense.stdout)


@pytest.mark.parametrize("layout, reason", [("coo", "size is inconsistent with indices"),
                                            ("csr", "col_indices < ncols")])
def test_sparse_data_with_indices_out_of_range_is_refused(workspace, tmp_path, layout, reason):
    """torch.load does not check sparse tensors' indices by default: a COO index out of range
    was dropped without a word, a CSR one crashed the process (a segmentation fault) when made
    dense. In a subprocess, so that a crash fails the test only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if layout == "coo":
            bad = torch.sparse_coo_tensor(torch.tensor([[100], [0]]), torch.tensor([1.0]), (40, 16),
                                          check_invariants=False)
        else:
            bad = torch.sparse_csr_tensor(torch.tensor([0] + [1] * 40), torch.tensor([1000]), torch.tensor([1.0]),
                                          (40, 16), check_invariants=False)
        torch.save(bad, tmp_path / "bad.pt")
    completed = run("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                    str(tmp_path / "bad.pt"), cwd=workspace, check=False)
    assert_one_line_error(completed, f"--data: cannot read '{tmp_path / 'bad.pt'}' as a torch file", reason)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="long double is a double here")
def test_data_that_fails_to_convert_is_still_named(workspace, tmp_path):
    """Conversions that no check foresaw (torch has no long double) are said as --data's."""
    np.save(tmp_path / "long.npy", np.ones((40, 16), dtype=np.longdouble))
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                       str(tmp_path / "long.npy"), cwd=workspace, check=False)
    assert_one_line_error(completed, f"--data: '{tmp_path / 'long.npy'}' holds an array [40, 16] float",
                          "which cannot be read as inputs")


# ---- bug 3: a single number in .npy/.npz ----------------------------------------------------
@pytest.mark.parametrize("name", ["one.npy", "one.npz", "one.pt"])
def test_a_single_number_is_refused_from_every_kind_of_file(workspace, tmp_path, name):
    """np.ascontiguousarray made a 0-d array [1]: the encoder was blamed ("mat1 and mat2 shapes
    cannot be multiplied") for a .npy or .npz holding one number; a .pt was refused."""
    path = tmp_path / name
    {"one.npy": lambda: np.save(path, np.float32(3)), "one.npz": lambda: np.savez(path, x=np.float32(3)),
     "one.pt": lambda: torch.save(torch.tensor(3.0), path)}[name]()
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", str(path),
                       cwd=workspace, check=False)
    line = assert_one_line_error(completed, f"--data: '{path}' holds a single number; expected inputs [N, ...]")
    assert "encoder" not in line, line


# ---- bug 4: only the chosen entry of an .npz is read ----------------------------------------
def _npz_with_entries_not_to_read(path, data: np.ndarray) -> None:
    """An .npz with ``x`` beside an object array (refused without unpickling) and an entry whose
    header claims 4e15 bytes (reading it would try to allocate them)."""
    np.savez(path, x=data, meta=np.array([{"source": "camera"}], dtype=object))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = io.BytesIO()
    npy.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("huge.npy", npy.getvalue())


def test_only_the_chosen_entry_of_an_npz_is_read(workspace, tmp_path):
    data = np.load(workspace / "data.npy")
    path = tmp_path / "mixed.npz"
    _npz_with_entries_not_to_read(path, data)
    expected = json.loads(invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data",
                                 "data.npy", "--json", cwd=workspace).stdout)
    for key in (("--key", "x"), ()):  # chosen, or found by its name
        completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", str(path),
                           *key, "--json", cwd=workspace)
        assert json.loads(completed.stdout) == expected
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", str(path),
                       "--key", "meta", cwd=workspace, check=False)
    assert_one_line_error(completed, f"--data: cannot read '{path}'", "Object arrays cannot be loaded")
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", str(path),
                       "--key", "y", cwd=workspace, check=False)
    assert_one_line_error(completed, f"--data: '{path}' has no entry 'y' (it has: x, meta, huge)", code=2)



@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_a_key_for_a_file_of_one_unnamed_array_is_a_usage_error(workspace, suffix):
    """--key on an .npy (or a .pt of one tensor) said "has no entry 'x' (it has: )"."""
    data = np.load(workspace / "data.npy")
    path = workspace / f"one{suffix}"
    np.save(path, data) if suffix == ".npy" else torch.save(torch.from_numpy(data), path)
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", path.name,
                       "--key", "x", cwd=workspace, check=False)
    assert_one_line_error(completed, f"--data: '{path.name}' holds one unnamed array; --key picks an entry of an "
                          ".npz, .safetensors or .pt dict: leave it out", code=2)

# ---- bug 5: integers beyond the library's limit are the flag's usage errors -----------------
TOO_LARGE = str(INT64_MAX + 1)


@pytest.mark.parametrize(
    "command, flag, value, limit",
    [
        ("diagnose", "--batch-size", "100000000000000000000000", INT64_MAX),
        ("traverse", "--batch-size", TOO_LARGE, INT64_MAX),
        ("traverse", "--steps", TOO_LARGE, INT64_MAX),
        ("traverse", "--anchors", TOO_LARGE, INT64_MAX),
        ("traverse", "--sweep-batch-size", TOO_LARGE, INT64_MAX),
        ("report", "--max-directions", TOO_LARGE, INT64_MAX),
        ("report", "--clusters", TOO_LARGE, INT64_MAX),
        # (the sampling ops' own limits: prior draws' rows, the latent size)
        ("sample", "-n", TOO_LARGE, int(_C.MAX_ROW_COUNTER)),
        ("sample", "--latent-dim", TOO_LARGE, int(_C.MAX_LATENT_SIZE)),
        ("metrics", "--batch-size", TOO_LARGE, INT64_MAX),
        ("metrics", "--num-train", TOO_LARGE, INT64_MAX),
        ("metrics", "--bins", str(MAX_BINS + 1), MAX_BINS),
    ],
)
def test_integers_beyond_the_librarys_limit_are_usage_errors_naming_the_flag(workspace, tmp_path, command, flag,
                                                                             value, limit):
    """They were said after the work had begun, in the library's words ("encode: batch_size must
    be <= ..."), exit 1."""
    out = tmp_path / "o"
    completed = invoke(command, "--model", "tiny_models:make", "--data", "data.npy", flag, value,
                       *(() if command in ("diagnose", "metrics") else ("--out", str(out))), cwd=workspace, check=False)
    shown = "-n/--num-samples" if flag == "-n" else flag
    assert_one_line_error(completed, f"latentsweep: error: {command}: argument {shown}: must be <= {limit}, got {value}",
                          code=2)
    assert not out.exists()


def test_the_largest_batch_size_the_library_takes_is_taken(workspace):
    completed = invoke("diagnose", "--model", "tiny_models:make", "--weights", "tiny.pt", "--data", "data.npy",
                       "--batch-size", str(INT64_MAX), "--json", cwd=workspace)
    assert json.loads(completed.stdout)["num_inputs"] == 40


@pytest.mark.parametrize("flag", ["--bins", "--batch-size"])
def test_metrics_bins_and_batch_size_below_one_are_usage_errors(workspace, flag):
    completed = invoke("metrics", flag, "0", cwd=workspace, check=False)
    assert_one_line_error(completed, f"metrics: argument {flag}: must be >= 1, got 0", code=2)


def test_only_the_chosen_entry_of_a_safetensors_file_is_read(tmp_path, monkeypatch):
    """load_file read every tensor of the file, whatever --key chose."""
    import safetensors
    from safetensors.torch import save_file

    from latentsweep.cli.loading import load_array

    save_file({"x": torch.arange(6.0).view(3, 2), "other": torch.zeros(1000, 1000)}, str(tmp_path / "d.safetensors"))
    real, read = safetensors.safe_open, []

    class Recording:
        def __init__(self, *args, **kwargs):
            self.opened = real(*args, **kwargs)

        def __enter__(self):
            self.opened.__enter__()
            return self

        def __exit__(self, *exc):
            return self.opened.__exit__(*exc)

        def keys(self):
            return self.opened.keys()

        def get_tensor(self, name):
            read.append(name)
            return self.opened.get_tensor(name)

    monkeypatch.setattr(safetensors, "safe_open", Recording)
    assert load_array(str(tmp_path / "d.safetensors")).tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert load_array(str(tmp_path / "d.safetensors"), key="other").shape == (1000, 1000)
    assert read == ["x", "other"]


# ---- weights that load_state_dict would turn into garbage, or fail on in its internals -------
def _weights_of_another_kind(state: dict) -> dict:
    with warnings.catch_warnings():  # (torch's remarks on nested tensors)
        warnings.simplefilter("ignore")
        return {
            "int64": ({k: v.to(torch.int64) for k, v in state.items()}, "holds int64 values where the model has float32"),
            "bool": ({k: v.to(torch.bool) for k, v in state.items()}, "holds bool values where the model has float32"),
            "complex": ({k: v.to(torch.complex64) for k, v in state.items()}, "they would be the real parts"),
            "sparse": ({k: v.to_sparse() for k, v in state.items()}, "is a sparse_coo tensor"),
            "meta": ({k: v.to("meta") for k, v in state.items()}, "is on the meta device"),
            "nested": ({k: torch.nested.nested_tensor([v.flatten()]) for k, v in state.items()}, "is a nested tensor"),
        }


@pytest.mark.parametrize("kind", ["int64", "bool", "complex", "sparse", "meta", "nested"])
def test_weights_that_are_not_floating_point_dense_tensors_are_refused(workspace, tmp_path, kind):
    """Integer, bool and complex weights were copied into the model without a word (truncated
    numbers, 0/1, the real parts: complex only with torch's warning), and the others failed with
    torch's internals ("copy_() between dense and sparse Tensors is not implemented", "Internal
    error: NestedTensorImpl doesn't support sizes. Please file an issue")."""
    state = torch.load(workspace / "tiny.pt", weights_only=True)
    weights, words = _weights_of_another_kind(state)[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(weights, tmp_path / "weights.pt")
    completed = invoke("sample", "--model", "tiny_models:make", "--weights", str(tmp_path / "weights.pt"),
                       "--out", str(tmp_path / "out"), cwd=workspace, check=False)
    assert_one_line_error(completed, f"--weights '{tmp_path / 'weights.pt'}': ", words)
    assert not (tmp_path / "out").exists()


def test_weights_of_other_floating_dtypes_still_load(workspace, tmp_path):
    state = torch.load(workspace / "tiny.pt", weights_only=True)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        torch.save({k: v.to(dtype) for k, v in state.items()}, tmp_path / "weights.pt")
        invoke("sample", "--model", "tiny_models:make", "--weights", str(tmp_path / "weights.pt"), "-n", "2",
               "--out", str(tmp_path / str(dtype)), cwd=workspace)


# ---- --model specs ---------------------------------------------------------------------------
def test_a_model_attribute_that_raises_and_a_folder_named_like_a_file_are_named(workspace, tmp_path):
    """A module __getattr__ that raised gave "latentsweep: error: RuntimeError: boom (run with
    --debug ...)", naming no option; a folder named model.py was "no such file"."""
    (tmp_path / "lazy.py").write_text("def __getattr__(name):\n    raise RuntimeError('boom')\n")
    completed = invoke("sample", "--model", f"{tmp_path / 'lazy.py'}:model", "--out", str(tmp_path / "o"),
                       cwd=workspace, check=False)
    assert_one_line_error(completed, "--model: getting 'model' from ", "raised RuntimeError: boom")
    (tmp_path / "folder.py").mkdir()
    completed = invoke("sample", "--model", f"{tmp_path / 'folder.py'}:model", "--out", str(tmp_path / "o"),
                       cwd=workspace, check=False)
    assert_one_line_error(completed, f"--model: '{tmp_path / 'folder.py'}' is a folder, not a file")
