"""The advice in latentsweep's errors, followed as a user would: the advised call must then work
(and give the right result), not fail again or name an argument the function lacks."""

from __future__ import annotations

import inspect
import json
import re
import textwrap

import numpy as np
import pytest
import torch

import latentsweep as ls
from cli_models import tiny_data
from test_cli import MODEL_SOURCE, assert_one_line_error, invoke

# An autoencoder whose decoder has no Linear first layer and no latent_dim attribute (the latent
# size cannot be told), and a spatial one ([B, 2, 4, 4] codes).
MORE_MODELS = textwrap.dedent(
    """
    class SpatialAE(SpatialVAE):
        def encoder(self, x):
            return self.enc(x)[:, :2]

    def spatial_ae():
        torch.manual_seed(0)
        return SpatialAE()
    """
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("advice")
    (folder / "tiny_models.py").write_text(MODEL_SOURCE + MORE_MODELS)
    data = tiny_data()
    np.save(folder / "data.npy", data)
    np.save(folder / "images.npy", np.random.default_rng(1).random((40, 1, 8, 8)).astype(np.float32))
    # a .pt dict with int keys, as torch.save({0: x, 1: y}) writes it
    torch.save({0: torch.from_numpy(data), 1: torch.zeros(40, 2)}, folder / "int_keys.pt")
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(MODEL_SOURCE, "tiny_models.py", "exec"), namespace)  # noqa: S102  (the test's own source)
    trained = namespace["make"]()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.mul_(1.5)  # (other weights than make() builds: the --weights must be used)
    torch.save(trained.state_dict(), folder / "plain.pt")
    torch.save({0: trained.state_dict(), "epoch": 3}, folder / "int_checkpoint.pt")
    return folder


def _advice(text: str, pattern: str) -> str:
    found = re.search(pattern, text)
    assert found, text
    return found[1]


def test_data_key_of_a_dict_with_int_keys(folder):
    """"choose one with --key" for a .pt dict whose keys are ints (listed as 0, 1): --key 0 said
    "has no entry '0' (it has: 0, 1)"."""
    refused = invoke("diagnose", "--model", "tiny_models.py:make", "--data", "int_keys.pt", "--json",
                     cwd=folder, check=False)
    assert_one_line_error(refused, "holds several arrays (0, 1); choose one with --key")
    followed = invoke("diagnose", "--model", "tiny_models.py:make", "--data", "int_keys.pt", "--key", "0", "--json",
                      cwd=folder)
    expected = invoke("diagnose", "--model", "tiny_models.py:make", "--data", "data.npy", "--json", cwd=folder)
    assert json.loads(followed.stdout) == json.loads(expected.stdout)


def test_weights_key_of_a_checkpoint_with_int_keys(folder):
    """"name it with --weights-key (candidates: 0)": --weights-key 0 said "'0' is not in (it has: 0, 'epoch')"."""
    refused = invoke("diagnose", "--model", "tiny_models.py:make", "--data", "data.npy", "--weights",
                     "int_checkpoint.pt", cwd=folder, check=False)
    candidate = _advice(refused.stderr, r"name it with --weights-key \(candidates: (\w+)\)")
    followed = invoke("diagnose", "--model", "tiny_models.py:make", "--data", "data.npy", "--weights",
                      "int_checkpoint.pt", "--weights-key", candidate, "--json", cwd=folder)
    plain = invoke("diagnose", "--model", "tiny_models.py:make", "--data", "data.npy", "--weights", "plain.pt",
                   "--json", cwd=folder)
    assert json.loads(followed.stdout) == json.loads(plain.stdout)  # (those weights, not make()'s)


@pytest.mark.parametrize("model, data, size", [("tabular", "data.npy", ["--latent-dim", "3"]),
                                               ("spatial_ae", "images.npy", ["--latent-shape", "2,4,4"])])
def test_sample_of_an_autoencoder_with_data(folder, model, data, size):
    """``sample --data`` of an autoencoder said "there is no posterior to sample" and no more: it
    says to leave --data out, with the codes' size, and that works."""
    refused = invoke("sample", "--model", f"tiny_models.py:{model}", "--data", data, "-n", "3", "--out", "refused",
                     cwd=folder, check=False)
    advised = _advice(refused.stderr, r"leave --data out to decode samples of the prior \((--latent-\w+ \d+(?:,\d+)*)")
    assert advised.split() == size
    invoke("sample", "--model", f"tiny_models.py:{model}", *advised.split(), "-n", "3", "--out", "followed",
           cwd=folder)
    assert np.load(folder / "followed" / "decoded.npy").shape[0] == 3


def test_sample_advice_when_the_latent_size_cannot_be_told(folder):
    """The advice "(or --data ...)" for a decoder whose latent size cannot be told holds for a VAE
    only (an autoencoder's --data has no posterior): it says so, and its first advice works."""
    refused = invoke("sample", "--model", "tiny_models.py:conv_decoder", "-n", "3", "--out", "refused",
                     cwd=folder, check=False)
    assert "cannot tell the model's latent size: give --latent-dim D" in refused.stderr
    assert "for a VAE, --data" in refused.stderr, refused.stderr
    invoke("sample", "--model", "tiny_models.py:conv_decoder", "--latent-dim", "3", "-n", "3", "--out", "followed",
           cwd=folder)


def _advised_keywords(message: str) -> set[str]:
    """The keyword arguments (``span=``) the advice after the last ';' names."""
    return set(re.findall(r"\b(\w+)=", message.rsplit(";", 1)[-1]))


def test_interpolate_beyond_a_float16_decoder_names_its_own_arguments():
    """interpolate's codes beyond a float16 decoder's range were advised "traverse a smaller range
    (span=, prior_std=)": interpolate takes neither (a TypeError when followed)."""
    decoder = torch.nn.Linear(3, 5).half()
    start, end = torch.full((2, 3), 7e4), torch.full((2, 3), 1e4)
    with pytest.raises(ValueError, match="beyond the largest torch.float16") as refused:
        ls.interpolate(decoder, start, end, steps=3)
    message = str(refused.value)
    assert _advised_keywords(message) <= set(inspect.signature(ls.interpolate).parameters), message
    assert "pass start and end within that range" in message
    result = ls.interpolate(decoder, start.clamp(max=6e4), end, steps=3)  # (followed)
    assert torch.isfinite(result.codes).all()


def test_traverse_from_anchors_beyond_a_float16_decoder():
    """Anchors beyond a float16 decoder's range were advised "traverse a smaller range (span=,
    prior_std=)", which leaves them beyond it: the advice names the anchors."""
    decoder = torch.nn.Linear(3, 5).half()
    anchors = torch.full((2, 3), 7e4)
    with pytest.raises(ValueError, match="beyond the largest torch.float16") as refused:
        ls.traverse(decoder, anchors, steps=3)
    assert "the anchors themselves reach beyond it: pass anchors within that range" in str(refused.value)
    with pytest.raises(ValueError, match="beyond the largest torch.float16"):
        ls.traverse(decoder, anchors, steps=3, span=0.1)  # (why the span was the wrong advice)
    ls.traverse(decoder, anchors.clamp(max=6e4), steps=3)  # (followed)
    # a range that is too wide is still advised as one (span=, prior_std=), and that works
    with pytest.raises(ValueError, match=r"traverse a smaller range \(span=, prior_std=") as wide:
        ls.traverse(decoder, torch.zeros(2, 3), steps=3, prior_std=4e4)
    assert _advised_keywords(str(wide.value)) <= set(inspect.signature(ls.traverse).parameters)
    ls.traverse(decoder, torch.zeros(2, 3), steps=3, prior_std=4e4, span=1.0)


def test_a_store_of_the_other_function(tmp_path):
    """traverse given interpolate's store (and the reverse) was told "call traverse with that
    sweep's arguments to resume it", which no arguments of traverse do: it names the function
    that wrote it, and both ways forward work."""
    decoder = torch.nn.Linear(3, 5)
    start, end = torch.zeros(2, 3), torch.ones(2, 3)
    paths = ls.interpolate(decoder, start, end, steps=3, out=tmp_path / "i.zarr")
    with pytest.raises(ValueError, match="holds a sweep that interpolate wrote, not traverse: call interpolate with "
                                         "that sweep's arguments to resume it, or pass overwrite=True"):
        ls.traverse(decoder, start, steps=3, out=tmp_path / "i.zarr", resume=True)
    again = ls.interpolate(decoder, start, end, steps=3, out=tmp_path / "i.zarr", resume=True)
    assert again.sweep.points_computed == 0 and torch.equal(again.codes, paths.codes)
    ls.traverse(decoder, start, steps=3, out=tmp_path / "i.zarr", overwrite=True)
    assert isinstance(ls.open_sweep(tmp_path / "i.zarr"), ls.TraversalResult)
    with pytest.raises(ValueError, match="holds a sweep that traverse wrote, not interpolate: call traverse"):
        ls.interpolate(decoder, start, end, steps=3, out=tmp_path / "i.zarr")


def test_a_store_of_interpolate_given_to_the_traverse_command(folder):
    """The command line cannot resume Python's interpolate: it says so, and --overwrite works."""
    ls.interpolate(torch.nn.Linear(3, 5), torch.zeros(2, 3), torch.ones(2, 3), steps=3, out=folder / "paths.zarr")
    command = ("traverse", "--model", "tiny_models.py:make", "--data", "data.npy", "--steps", "3", "--anchors", "2",
               "--store", "paths.zarr", "--out", "traversed")
    refused = invoke(*command, "--resume", cwd=folder, check=False)
    assert_one_line_error(refused, "holds a sweep that Python's latentsweep.interpolate wrote, which no command "
                                   "resumes (`latentsweep open PATH` reads it); give another --store, or pass "
                                   "--overwrite to replace it")
    invoke(*command, "--overwrite", cwd=folder)
    invoke(*command, "--resume", cwd=folder)  # (now the command's own sweep)


@pytest.fixture
def small_gif_limit(monkeypatch):
    """A GIF's tiles bounded at 256 KiB (MAX_TILE_BYTES; 256 MiB in use), so that small images
    reach the bound (``latentsweep.plots.traversal_gif`` is the function: the module from sys.modules)."""
    import sys

    import latentsweep.plots  # noqa: F401

    monkeypatch.setattr(sys.modules["latentsweep.plots.traversal_gif"], "MAX_TILE_BYTES", 256 << 10)


def _images(size: int) -> ls.TraversalResult:
    """A traversal of 2 latents, 5 steps, decoded to [1, size, size] images."""
    return ls.traverse(lambda z: z.sum(1)[:, None, None, None].expand(-1, 1, size, size).contiguous(),
                       torch.zeros(1, 2), steps=5, progress=False)


def test_a_gif_of_outputs_drawn_at_their_own_size(small_gif_limit):
    """"pass a smaller tile_size" for tiles that tile_size does not enlarge changed nothing: the
    same error again. It advises what helps."""
    result = _images(128)  # (2 x 5 tiles of 128 x 128 RGB: 480 KiB)
    with pytest.raises(ValueError, match="tile_size only enlarges smaller ones") as refused:
        ls.traversal_gif(result)
    assert "smaller tile_size" not in str(refused.value)
    with pytest.raises(ValueError, match="tile_size=8 makes 2 x 5 tiles of 128 x 128"):
        ls.traversal_gif(result, tile_size=8)  # (why it was the wrong advice)
    ls.traversal_gif(result, max_dims=1)  # (followed)
    # where tile_size enlarges the tiles, a smaller one helps, as advised
    with pytest.raises(ValueError, match="pass a smaller tile_size or max_dims"):
        ls.traversal_gif(_images(16), tile_size=512)
    ls.traversal_gif(_images(16), tile_size=64)


def test_the_report_gif_advice_names_the_report_arguments(small_gif_limit, tmp_path):
    """The report's animated traversal too large was advised "pass a smaller tile_size", which
    report does not take (a TypeError when followed)."""
    result = _images(128)
    with pytest.raises(ValueError, match=r"report: the GIF of anchor 0 makes .*; pass max_dims= \(fewer rows\), "
                                         "or gifs=False") as refused:
        ls.report(tmp_path / "r.html", results=result)
    assert _advised_keywords(str(refused.value)) <= set(inspect.signature(ls.report).parameters)
    ls.report(tmp_path / "r.html", results=result, max_dims=1)
    ls.report(tmp_path / "r.html", results=result, gifs=False)


def test_the_report_command_gif_advice(small_gif_limit, folder):
    """... and the report command takes neither: its advice names its options."""
    command = ("report", "--model", "tiny_models.py:make", "--data", "data.npy", "--mode", "prior", "--anchors", "1",
               "--out", "gif_report")
    refused = invoke(*command, cwd=folder, check=False)
    assert_one_line_error(refused, "pass fewer --dims (or --max-directions) or --steps")
    invoke(*command, "--dims", "0", cwd=folder)


def test_no_weights_warning_for_a_model_without_weights(folder):
    """"no --weights: ... runs with the weights it was built with (random ...)" was said of a model
    that has none (no parameters, no buffers), where no --weights can be given (an empty state
    dict is refused): said only of a model that has weights."""
    (folder / "weightless.py").write_text(
        "import torch\n"
        "class Model(torch.nn.Module):\n"
        "    def encoder(self, x):\n        return x[:, :3]\n"
        "    def decoder(self, z):\n        return torch.cat([z, z], 1)\n"
    )
    quiet = invoke("diagnose", "--model", "weightless.py:Model", "--data", "data.npy", cwd=folder)
    assert "no --weights" not in quiet.stderr, quiet.stderr
    invoke("report", "--model", "weightless.py:Model", "--data", "data.npy", "--steps", "3", "--anchors", "1",
           "--out", "weightless_report", cwd=folder)
    assert "no --weights" not in (folder / "weightless_report" / "report.html").read_text()
    torch.save({}, folder / "empty.pt")  # (what such a model's state dict is: refused as --weights)
    refused = invoke("diagnose", "--model", "weightless.py:Model", "--data", "data.npy", "--weights", "empty.pt",
                     cwd=folder, check=False)
    assert refused.returncode == 1
    warned = invoke("diagnose", "--model", "tiny_models.py:make", "--data", "data.npy", cwd=folder)
    assert "latentsweep: warning: no --weights" in warned.stderr  # (a model with weights still is)
