"""What the library warns and notes, as a command-line user reads it: the pictures' warning about
clipped far outliers, the decoder's first-call note, and the metrics' few-points warning."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from test_cli import assert_one_line_error, invoke, stderr_lines  # noqa: F401

MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn

    class FlatVAE(nn.Module):
        # An MLP VAE on 8x8 images whose outputs have one far outlier (a hot pixel) in each.
        latent_dim = 2

        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(64, 4)
            self.dec = nn.Linear(2, 64)

        def encoder(self, x):
            h = self.enc(x.flatten(1))
            return h[:, :2], h[:, 2:] - 2.0

        def decoder(self, z):
            out = torch.sigmoid(self.dec(z)).view(-1, 1, 8, 8).clone()
            out[:, :, 0, 0] = out[:, :, 0, 0] * 1e6
            return out

    def hot_pixel():
        torch.manual_seed(0)
        return FlatVAE()

    class FlatCodesConvDecoder(nn.Module):
        # A conv decoder (it takes [N, 2, 2, 2] codes) behind an encoder that flattens its codes.
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(1, 4, 3, 4, 1)
            self.dec = nn.ConvTranspose2d(2, 1, 4, 4)

        def encoder(self, x):
            h = self.enc(x)
            return h[:, :2].flatten(1), h[:, 2:].flatten(1) - 2.0

        def decoder(self, z):
            return torch.sigmoid(self.dec(z))

    def flat_codes():
        torch.manual_seed(0)
        return FlatCodesConvDecoder()

    class LinearOnImages(nn.Module):
        # a Linear encoder on [N, 1, 8, 8] images without nn.Flatten() before it
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(64, 4)
            self.decoder = nn.Linear(4, 64)

    class BodyAndHeads(nn.Module):
        # AntixK's PyTorch-VAE layout: 'encoder' and 'decoder' are the network's bodies, the
        # methods 'encode' ([mu, log_var]) and 'decode' add the heads.
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
            self.fc_mu, self.fc_var = nn.Linear(16, 2), nn.Linear(16, 2)
            self.decoder_input = nn.Linear(2, 16)
            self.decoder = nn.Sequential(nn.Linear(16, 64), nn.Sigmoid())

        def encode(self, x):
            h = self.encoder(x)
            return [self.fc_mu(h), self.fc_var(h)]

        def decode(self, z):
            return self.decoder(self.decoder_input(z)).view(-1, 1, 8, 8)

    class HiddenBody(BodyAndHeads):
        # the decoder body stops before its output layer (AntixK's final_layer): 32 hidden features
        def __init__(self):
            super().__init__()
            self.decoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
            self.final_layer = nn.Sequential(nn.Linear(32, 64), nn.Sigmoid())

        def decode(self, z):
            return self.final_layer(self.decoder(self.decoder_input(z))).view(-1, 1, 8, 8)

    class Chunked(nn.Module):
        # mu and logvar in one [B, 2D] tensor, a decoder taking D
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
            self.decoder = nn.Sequential(nn.Linear(5, 64), nn.Unflatten(1, (1, 8, 8)))
    """
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli18")
    (folder / "models18.py").write_text(MODELS)
    np.save(folder / "x.npy", np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32))
    return folder


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("latentsweep: warning:")
            and "no --weights" not in line]


def test_report_says_its_pictures_clip_far_outliers_once_in_the_command_lines_words(folder, tmp_path):
    # (each traversal's grid and animation warned: four lines naming plots.traversal_grid and
    # plots.traversal_gif, each advising vmin= and vmax=, which no command takes)
    completed = invoke("report", "--model", "models18.py:hot_pixel", "--data", "x.npy", "--anchors", "2",
                       "--steps", "3", "--out", str(tmp_path), cwd=folder)
    said = warnings_of(completed.stderr)
    assert len(said) == 1, completed.stderr
    assert said[0].startswith("latentsweep: warning: 4 pictures clip far outliers; in the first, ")
    assert "output values lie far outside the others" in said[0]
    assert "vmin" not in said[0] and "plots." not in said[0]
    assert not re.search(r"\.py:\d+: ", completed.stderr), completed.stderr  # (Python's own warning format)


def test_traverse_says_its_pictures_clip_far_outliers_once(folder, tmp_path):
    completed = invoke("traverse", "--model", "models18.py:hot_pixel", "--data", "x.npy", "--anchors", "3",
                       "--steps", "3", "--out", str(tmp_path), cwd=folder)
    said = warnings_of(completed.stderr)
    assert len(said) == 1 and said[0].startswith("latentsweep: warning: 3 pictures clip far outliers;"), said


def test_sample_picture_clips_far_outliers_as_the_librarys_pictures_do(folder, tmp_path):
    # (samples.png spanned the whole range: one hot pixel per sample drew every tile black, unsaid)
    completed = invoke("sample", "--model", "models18.py:hot_pixel", "-n", "4", "--out", str(tmp_path), cwd=folder)
    said = warnings_of(completed.stderr)
    assert len(said) == 1, completed.stderr
    assert said[0].startswith("latentsweep: warning: a picture clips far outliers: 4 of 256 output values"), said


def test_sample_picture_does_not_call_all_its_samples_the_first_few():
    from latentsweep.cli.samples import save_samples_picture

    images = np.random.default_rng(0).random((4, 8, 8))
    figure = save_samples_picture(images, None, per_row=8, row_label=str, title="t")
    assert figure.axes[0].get_xlabel() == "sample"  # (it said "sample (first 4 of 8)" of all 4 samples)
    figure = save_samples_picture(np.concatenate([images] * 5), None, per_row=20, row_label=str, title="t")
    assert figure.axes[0].get_xlabel() == "sample (first 16 of 20)"


@pytest.mark.parametrize("command", ["traverse", "report"])
def test_a_decoder_that_fails_on_flat_codes_says_what_it_was_given_in_the_command_lines_words(
        folder, tmp_path, command):
    completed = invoke(command, "--model", "models18.py:flat_codes", "--data", "x.npy", "--anchors", "2",
                       "--out", str(tmp_path), cwd=folder, check=False)
    line = assert_one_line_error(completed, "conv_transpose2d")
    # the torch message and the note were run together ("... got input of size: [2, 8] the decoder raised")
    assert "]; the decoder raised this on its first call, given codes [" in line, line
    assert "; for a decoder that takes structured codes, pass --latent-shape C,H,W" in line, line
    assert "latent_shape=" not in line and "[A, C, H, W]" not in line, line


def test_metrics_warns_of_few_points_by_the_option(folder):
    completed = invoke("metrics", "--model", "models18.py:hot_pixel", "--data", "x.npy", "--factors", "f.npy",
                       "--metrics", "mig", "--num-train", "50", "--num-test", "20", "--no-progress",
                       cwd=_with_factors(folder))
    said = [line for line in warnings_of(completed.stderr) if "below" in line]
    assert len(said) == 1 and "--num-train 50 is below" in said[0] and "num_train=" not in said[0], completed.stderr


def _with_factors(folder: Path) -> Path:
    np.save(folder / "f.npy", np.arange(12).reshape(12, 1) % 3)
    return folder


ADVICE = "]; for a decoder that takes structured codes, pass --latent-shape C,H,W"


@pytest.mark.parametrize("how", [("-n", "2", "--latent-dim", "8"), ("-n", "2", "--data", "x.npy")])
def test_sample_says_how_a_decoder_that_fails_on_flat_codes_gets_structured_ones(folder, tmp_path, how):
    # (it said only torch's "Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d")
    completed = invoke("sample", "--model", "models18.py:flat_codes", *how, "--out", str(tmp_path), cwd=folder,
                       check=False)
    assert ADVICE in assert_one_line_error(completed, "the decoder, on codes of shape [", "conv_transpose2d")


@pytest.mark.parametrize("command", ["traverse", "report", "sample"])
def test_latent_shape_gives_a_decoder_that_takes_structured_codes_the_flat_encoders_codes(folder, tmp_path, command):
    """A flat-code encoder with a decoder taking [N, C, H, W] (a DCGAN's [N, D, 1, 1]) could not
    be used from the command line: --latent-shape was sample's prior option alone."""
    import latentsweep as ls

    extra = {"traverse": ("--anchors", "2", "--steps", "3", "--mode", "prior"), "report": ("--anchors", "2", "--steps", "3"),
             "sample": ("-n", "2", "--inputs", "2")}[command]
    invoke(command, "--model", "models18.py:flat_codes", "--data", "x.npy", "--latent-shape", "2,2,2", *extra,
           "--out", str(tmp_path / "out"), cwd=folder)
    if command == "traverse":  # the same sweep as Python's with latent_shape=
        import importlib.util

        spec = importlib.util.spec_from_file_location("models18", folder / "models18.py")
        models18 = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(models18)
        model = models18.flat_codes()
        posterior = ls.encode(model.encoder, torch.from_numpy(np.load(folder / "x.npy")), progress=False)
        expected = ls.traverse(model.decoder, posterior[:2], latent_shape=(2, 2, 2), steps=3, progress=False,
                               mode="prior")
        stored = np.load(tmp_path / "out" / "traversal.npz")
        np.testing.assert_allclose(stored["effect"], expected.effect.numpy(), rtol=1e-5, atol=1e-7)
        assert tuple(stored["latent_shape"]) == (2, 2, 2)


@pytest.mark.parametrize("shape, words", [("3,1,1", "--latent-shape 3,1,1 holds 3 latents, but the encoder gives 8"),
                                          ("0,2", "expected comma-separated integers >= 1")])
def test_a_latent_shape_that_does_not_fit_the_codes_is_a_usage_error(folder, tmp_path, shape, words):
    completed = invoke("traverse", "--model", "models18.py:flat_codes", "--data", "x.npy", "--latent-shape", shape,
                       "--out", str(tmp_path), cwd=folder, check=False)
    assert_one_line_error(completed, words, code=2)


def test_traverse_image_shape_check_says_how_a_decoder_gets_structured_codes(folder, tmp_path):
    completed = invoke("traverse", "--model", "models18.py:flat_codes", "--data", "x.npy", "--image-shape", "8,8",
                       "--out", str(tmp_path), cwd=folder, check=False)
    assert_one_line_error(completed, "codes of shape [1, 8]", ADVICE)


OTHER_ENCODER = ("the model's 'encoder' gives plain codes [N, 16], read as an autoencoder's; the model also has "
                 "'encode', which may be the one to use: pass --encoder encode (for a VAE's posterior, mu and logvar)")


def test_a_models_body_taken_for_its_encoder_names_the_method_that_gives_the_posterior(folder):
    """With 'encoder' (the body) and 'encode' (the posterior), the default took the body and read
    its features as an autoencoder's codes, silently."""
    completed = invoke("diagnose", "--model", "models18.py:BodyAndHeads", "--data", "x.npy", cwd=folder)
    assert f"latentsweep: warning: {OTHER_ENCODER}" in warnings_of(completed.stderr), completed.stderr
    completed = invoke("diagnose", "--model", "models18.py:BodyAndHeads", "--data", "x.npy", "--encoder", "encode",
                       cwd=folder)
    assert not [line for line in warnings_of(completed.stderr) if "also has" in line], completed.stderr
    assert "2 latent dims" in completed.stdout


def test_a_models_body_taken_for_its_decoder_that_fails_names_the_method(folder, tmp_path):
    completed = invoke("traverse", "--model", "models18.py:BodyAndHeads", "--data", "x.npy", "--encoder", "encode",
                       "--out", str(tmp_path / "a"), cwd=folder, check=False)
    assert_one_line_error(completed, "the decoder", "; the model also has 'decode', which may be the one to use: "
                                                    "pass --decoder decode")
    invoke("traverse", "--model", "models18.py:BodyAndHeads", "--data", "x.npy", "--encoder", "encode",
           "--decoder", "decode", "--anchors", "2", "--steps", "3", "--out", str(tmp_path / "b"), cwd=folder)
    assert (tmp_path / "b" / "traversal.npz").exists()


def test_report_on_a_decoder_body_that_gives_hidden_features_names_the_decode_method(folder, tmp_path):
    """The default parts of a body-and-method model run end to end (16 body features in, 32 hidden
    features out): the report of hidden features is said to be one, in the command line's words."""
    args = ("--anchors", "2", "--steps", "3")
    completed = invoke("report", "--model", "models18.py:HiddenBody", "--data", "x.npy", *args,
                       "--out", str(tmp_path / "a"), cwd=folder)
    said = [line for line in warnings_of(completed.stderr) if "input holds" in line]
    assert said == ["latentsweep: warning: explain: the decoder's output at the first input holds 32 values (shape (32,)), but "
                    "each input holds 64 (shape (1, 8, 8)), as many as a decoder that reconstructs its inputs gives: if "
                    "the decoder is a network's body without its output layer, pass the model's method that adds it "
                    "(--decoder decode, for a model with a decode method); if the sizes differ by design, ignore this "
                    "(--image-shape for outputs drawn as images says so)"], completed.stderr
    completed = invoke("report", "--model", "models18.py:HiddenBody", "--data", "x.npy", *args, "--encoder", "encode",
                       "--decoder", "decode", "--out", str(tmp_path / "b"), cwd=folder)
    assert not [line for line in warnings_of(completed.stderr) if "input holds" in line], completed.stderr


@pytest.mark.parametrize("data, words", [
    ("x.npy", "; the encoder's first Linear takes 64 inputs, each input's 64 values in shape (1, 8, 8): save --data "
              "flat, one row per input, or put nn.Flatten() before that Linear"),
    ("wide.npy", "; the encoder's first Linear takes 64 inputs, but each input holds 12 values: is --data what the "
                 "model was trained on"),
])
def test_an_encoder_failing_on_the_datas_shape_says_what_its_first_linear_takes(folder, data, words):
    """torch's "mat1 and mat2 shapes cannot be multiplied" named no argument; the library's note
    is said once, without repeating the shape the command already names."""
    np.save(folder / "wide.npy", np.zeros((12, 12), dtype=np.float32))
    completed = invoke("diagnose", "--model", "models18.py:LinearOnImages", "--data", data, cwd=folder, check=False)
    line = assert_one_line_error(completed, "raised RuntimeError: mat1 and mat2 shapes cannot be multiplied", words)
    assert "batch 0" not in line and line.endswith(words if data == "x.npy" else "(the same features, in the same "
                                                                               "columns)?"), line


def test_metrics_say_which_part_of_a_model_with_a_body_and_a_method_they_use(folder):
    np.save(folder / "f3.npy", np.arange(12).reshape(12, 1) % 3)
    completed = invoke("metrics", "--model", "models18.py:BodyAndHeads", "--data", "x.npy", "--factors", "f3.npy",
                       "--metrics", "mig", "--num-train", "8", "--num-test", "4", "--no-progress", cwd=folder,
                       check=False)
    assert ("latentsweep: note: the metrics use the model's 'encoder'; the model also has 'encode', which may be the "
            "one to use: pass --encoder encode") in completed.stderr, completed.stderr


@pytest.mark.parametrize("how", [("--image-shape", "8,8"), ()])  # (the CLI's own first call; the sweep's)
def test_one_tensor_holding_mu_and_logvar_is_named_when_the_decoder_fails(folder, tmp_path, how):
    completed = invoke("traverse", "--model", "models18.py:Chunked", "--data", "x.npy", *how, "--out", str(tmp_path),
                       cwd=folder, check=False)
    line = assert_one_line_error(completed, "the decoder's first Linear takes 5 inputs and the codes have 10 = 2 x 5: "
                                            "an encoder that returns its mean and log-variance in one tensor")
    assert "--latent-shape" not in line, line
