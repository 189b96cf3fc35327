"""Popular VAE code layouts, as small random stand-ins, through the Python API as a researcher
uses it after reading the README: encode, diagnose, traverse (in memory) and explain.

1. AntixK's PyTorch-VAE ``VanillaVAE``: ``encode(x) -> [mu, log_var]`` (a list), ``decode(z)``
   with ``decoder_input`` and ``.view(-1, C, 2, 2)``, ``forward -> [recons, x, mu, log_var]``;
2. Pyro's VAE tutorial: ``Encoder(x) -> (z_loc, z_scale)`` with ``z_scale = exp(...)``, an SD;
3. a Lightning-bolts-style VAE: ``encoder`` body, ``fc_mu``/``fc_var`` heads, no ``encode``;
4. a disentanglement-style VAE: ``encoder(x) -> [B, 2D]`` (mean and log-variance concatenated,
   split by ``torch.chunk``) and a decoder returning Bernoulli logits;
5. a VQ-VAE-like model whose encoder returns ``[B, C, H, W]`` pre-quantisation features.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import latentsweep as ls

# explain() kept small: two anchors, five steps, no GIFs, coarse pictures.
FAST = dict(anchors=2, steps=5, gifs=False, dpi=30, progress=False)
STEPS = 5


class VanillaVAE(nn.Module):
    """AntixK's VanillaVAE shrunk to 16 x 16 inputs: three stride-2 convs to a 2 x 2 body."""

    def __init__(self, in_channels=3, latent_dim=6, hidden_dims=(8, 16, 16)):
        super().__init__()
        modules, c = [], in_channels
        for h in hidden_dims:
            modules.append(nn.Sequential(nn.Conv2d(c, h, 3, stride=2, padding=1), nn.BatchNorm2d(h), nn.LeakyReLU()))
            c = h
        self.encoder = nn.Sequential(*modules)
        self.fc_mu = nn.Linear(c * 4, latent_dim)
        self.fc_var = nn.Linear(c * 4, latent_dim)
        self.decoder_input = nn.Linear(latent_dim, c * 4)
        self.channels = c
        rev = hidden_dims[::-1]
        self.decoder = nn.Sequential(*[
            nn.Sequential(nn.ConvTranspose2d(rev[i], rev[i + 1], 3, stride=2, padding=1, output_padding=1),
                          nn.BatchNorm2d(rev[i + 1]), nn.LeakyReLU())
            for i in range(len(rev) - 1)])
        self.final_layer = nn.Sequential(
            nn.ConvTranspose2d(rev[-1], rev[-1], 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(rev[-1]), nn.LeakyReLU(), nn.Conv2d(rev[-1], in_channels, 3, padding=1), nn.Tanh())

    def encode(self, input):
        result = torch.flatten(self.encoder(input), start_dim=1)
        return [self.fc_mu(result), self.fc_var(result)]

    def decode(self, z):
        result = self.decoder_input(z).view(-1, self.channels, 2, 2)
        return self.final_layer(self.decoder(result))

    def forward(self, input):
        mu, log_var = self.encode(input)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return [self.decode(z), input, mu, log_var]


class PyroEncoder(nn.Module):
    def __init__(self, z_dim=4, hidden_dim=32):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden_dim)
        self.fc21, self.fc22 = nn.Linear(hidden_dim, z_dim), nn.Linear(hidden_dim, z_dim)
        with torch.no_grad():
            # as a trained encoder's: means spread over the prior's range, SDs well below 1
            self.fc21.weight.mul_(20.0)
            self.fc22.bias.fill_(-2.0)

    def forward(self, x):
        hidden = nn.functional.softplus(self.fc1(x.reshape(-1, 64)))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))  # (z_loc, z_scale): an SD


class PyroDecoder(nn.Module):
    def __init__(self, z_dim=4, hidden_dim=32):
        super().__init__()
        self.fc1, self.fc21 = nn.Linear(z_dim, hidden_dim), nn.Linear(hidden_dim, 64)

    def forward(self, z):
        return torch.sigmoid(self.fc21(nn.functional.softplus(self.fc1(z))))


class BoltsVAE(nn.Module):
    """pl_bolts' VAE: an encoder body to features, fc_mu / fc_var heads, a decoder; no encode()."""

    def __init__(self, enc_out_dim=32, latent_dim=5):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.Conv2d(8, enc_out_dim, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc_mu = nn.Linear(enc_out_dim, latent_dim)
        self.fc_var = nn.Linear(enc_out_dim, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 8 * 4 * 4), nn.Unflatten(1, (8, 4, 4)),
                                     nn.Upsample(scale_factor=4), nn.Conv2d(8, 3, 3, padding=1))


class ChunkedVAE(nn.Module):
    """encoder(x) -> [B, 2D]: mean and log-variance in one tensor; decoder(z) -> Bernoulli logits."""

    def __init__(self, latent_dim=5):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, 64),
                                     nn.Unflatten(1, (1, 8, 8)))


class VQVAE(nn.Module):
    """The encoder gives [B, 4, 4, 4] continuous features before quantisation."""

    def __init__(self, c=4):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, c, 1))
        self.codebook = nn.Embedding(8, c)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(c, 8, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(8, 3, 3, padding=1))


def _seeded(model_class, *args):
    torch.manual_seed(0)
    return model_class(*args)


def _workflow(encoder, decoder, data, tmp_path, **options):
    """encode, diagnose, traverse two anchors in the recommended mode, explain: the README's lines."""
    posterior = ls.encode(encoder, data, progress=False)
    diagnosis = ls.diagnose(posterior)
    result = ls.traverse(decoder, posterior[:2], steps=STEPS, progress=False, **diagnosis.traversal_options(),
                         **options)
    path = ls.explain(encoder, decoder, data, out=tmp_path / "explained", **FAST, **options)
    assert path.is_file() and path.stat().st_size > 0
    return posterior, diagnosis, result


# 1. AntixK's PyTorch-VAE

def test_antixk_vanilla_vae_through_encode_and_decode(tmp_path):
    vae = _seeded(VanillaVAE)
    vae.train()  # as left by a training loop: encode and traverse run it in eval mode, then restore
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    posterior, diagnosis, result = _workflow(vae.encode, vae.decode, x, tmp_path)
    assert vae.training and all(m.training for m in vae.modules())
    vae.eval()
    with torch.no_grad():
        mu, log_var = vae.encode(x)
        # the list's second element is the log-variance; forward()[2:] reads the same
        assert torch.equal(posterior.mu, mu) and torch.equal(posterior.logvar, log_var)
        assert torch.equal(ls.encode(lambda x: vae(x)[2:], x, progress=False).logvar, log_var)
        # decode's .view(-1, C, 2, 2) gets flat [B, D] codes and gives Tanh images
        assert result.outputs.shape == (2, len(result.dims), STEPS, 3, 16, 16)
        assert float(result.outputs.abs().max()) <= 1
        row = ls.traversal_codes(result.anchors, result.dims, result.values, start=0, count=STEPS)
        torch.testing.assert_close(result.outputs[0, 0], vae.decode(row))
    assert diagnosis.is_variational and diagnosis.latent_dim == 6


def test_antixk_whole_model_is_refused_naming_its_four_outputs():
    """forward() returns [recons, input, mu, log_var]: refused, not read as codes."""
    vae = _seeded(VanillaVAE)
    with pytest.raises(TypeError, match=r"list of 4 items \(Tensor, Tensor, Tensor, Tensor\) for batch 0.*"
                                        r"\[recons, input, mu, log_var\].*pass its encode method, vae\.encode\)$"):
        ls.encode(vae, torch.rand(4, 3, 16, 16), progress=False)


def test_antixk_body_as_encoder_with_decode_fails_naming_the_codes_shape():
    """vae.encoder is the conv body: its [B, 16, 2, 2] features are plain structured codes, which
    decode's decoder_input cannot take; the error's note names the codes' shape."""
    vae = _seeded(VanillaVAE)
    body = ls.encode(vae.encoder, torch.rand(4, 3, 16, 16), progress=False)
    assert not body.is_variational and body.latent_shape == (16, 2, 2)
    with pytest.raises(RuntimeError) as raised:
        ls.traverse(vae.decode, body[:2], steps=3, progress=False)
    assert any("given codes [2, 16, 2, 2]" in note for note in getattr(raised.value, "__notes__", []))


# 2. Pyro's VAE tutorial

def test_pyro_scale_in_a_tuple_is_flagged_as_an_sd_read_as_a_log_variance():
    """(z_loc, z_scale) is read as (mu, logvar), as the README says; the diagnosis must then
    point at the SD, first."""
    encoder = _seeded(PyroEncoder)
    x = torch.rand(32, 64)
    posterior = ls.encode(encoder, x, progress=False)
    with torch.no_grad():
        assert torch.equal(posterior.logvar, encoder(x)[1])  # the SD itself, read as a log-variance
    diagnosis = ls.diagnose(posterior)
    assert diagnosis.flag("nonnegative-logvar").dims == [0, 1, 2, 3]
    first = diagnosis.findings()[0]
    assert first.headline == "Check what the encoder returns as the log-variance"
    assert "an SD or a variance" in first.text and '{"mu": mu, "sigma": sd}' in first.text


@pytest.mark.parametrize("wrap", ["dict", "normal"])
def test_pyro_scale_named_as_an_sd_gives_the_right_log_variance(tmp_path, wrap):
    encoder, decoder = _seeded(PyroEncoder), _seeded(PyroDecoder)
    x = torch.rand(32, 64)
    if wrap == "dict":
        def named(x):
            loc, scale = encoder(x)
            return {"mu": loc, "sigma": scale}
    else:
        def named(x):
            return torch.distributions.Normal(*encoder(x))
    posterior, diagnosis, result = _workflow(named, decoder, x, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(posterior.logvar, 2 * torch.log(encoder(x)[1]))
    assert diagnosis.flag("nonnegative-logvar") is None
    assert result.outputs.shape[-1] == 64 and 0 <= float(result.outputs.min()) and float(result.outputs.max()) <= 1


# 3. Lightning-bolts-style VAE

def test_bolts_vae_through_a_lambda_on_its_body_and_heads(tmp_path):
    vae = _seeded(BoltsVAE)
    x = torch.rand(16, 3, 16, 16)
    running_mean = vae.encoder[1].running_mean.clone()
    encoder = lambda x: (vae.fc_mu(h := vae.encoder(x)), vae.fc_var(h))  # noqa: E731 (as the user writes it)
    posterior, diagnosis, result = _workflow(encoder, vae.decoder, x, tmp_path)
    # the lambda's modules were found and ran in eval mode: batch norm kept its statistics
    assert torch.equal(vae.encoder[1].running_mean, running_mean)
    vae.eval()
    with torch.no_grad():
        h = vae.encoder(x)
        assert torch.equal(posterior.mu, vae.fc_mu(h)) and torch.equal(posterior.logvar, vae.fc_var(h))
    assert result.outputs.shape == (2, len(result.dims), STEPS, 3, 16, 16)
    assert diagnosis.is_variational and diagnosis.latent_dim == 5


def _decoder_notes_on_plain_codes(vae, inputs):
    """The codes ``encode(vae.encoder)`` reads (plain ones) and the notes of the error the decoder
    raises on two of them, on one line."""
    codes = ls.encode(vae.encoder, inputs, progress=False)
    with pytest.raises(RuntimeError) as raised:
        ls.traverse(vae.decoder, codes[:2], steps=3, progress=False)
    return codes, " ".join(getattr(raised.value, "__notes__", []))


def test_bolts_body_alone_fails_on_the_decoder_naming_the_likely_cause():
    body, notes = _decoder_notes_on_plain_codes(_seeded(BoltsVAE), torch.rand(4, 3, 16, 16))
    assert not body.is_variational and body.mu.shape == (4, 32)
    assert "given codes [2, 32]" in notes
    # (the note said "a decoder that takes structured codes ...": the wrong cause for a Linear decoder)
    assert "the decoder's first Linear takes 5 inputs, but the codes have 32: is the encoder the network's body " \
           "without its mean and log-variance heads (vae.encode rather than vae.encoder)?" in notes
    assert "structured" not in notes


# 4. Disentanglement-style: [B, 2D] chunked, Bernoulli logits

def test_chunked_encoder_split_by_the_user_with_sigmoid_outputs(tmp_path):
    vae = _seeded(ChunkedVAE)
    x = torch.rand(16, 1, 8, 8)
    encoder = lambda x: torch.chunk(vae.encoder(x), 2, dim=1)  # noqa: E731
    posterior, diagnosis, result = _workflow(encoder, vae.decoder, x, tmp_path, output_transform="sigmoid")
    with torch.no_grad():
        mu, logvar = torch.chunk(vae.encoder(x), 2, dim=1)
    assert torch.equal(posterior.mu, mu) and torch.equal(posterior.logvar, logvar)
    assert "sigmoid" in result.output_space
    assert 0 <= float(result.outputs.min()) and float(result.outputs.max()) <= 1


def test_chunked_encoder_unsplit_fails_on_the_decoder_naming_the_likely_cause():
    """The [B, 2D] tensor alone reads as 2D plain codes; the decoder, which takes D, fails on the
    anchors and the note names the one tensor holding both as the likely cause."""
    codes, notes = _decoder_notes_on_plain_codes(_seeded(ChunkedVAE), torch.rand(8, 1, 8, 8))
    assert not codes.is_variational and codes.mu.shape == (8, 10)
    assert "given codes [2, 10]" in notes
    assert "the decoder's first Linear takes 5 inputs and the codes have 10 = 2 x 5: an encoder that returns its " \
           "mean and log-variance in one tensor" in notes and "torch.chunk(h, 2, dim=1)" in notes


# 5. VQ-VAE-like pre-quantisation features

def test_vq_vae_features_are_structured_plain_codes(tmp_path):
    vae = _seeded(VQVAE)
    x = torch.rand(16, 3, 8, 8)
    posterior, diagnosis, result = _workflow(vae.encoder, vae.decoder, x, tmp_path)
    assert not posterior.is_variational and posterior.latent_shape == (4, 4, 4)
    assert diagnosis.recommended_mode == "empirical"
    assert result.outputs.shape == (2, 64, STEPS, 3, 8, 8)
    by_channel = ls.traverse(vae.decoder, posterior[:2], directions=ls.channel_directions((4, 4, 4)),
                             mode="empirical", reference=posterior, steps=STEPS, progress=False)
    assert by_channel.outputs.shape == (2, 4, STEPS, 3, 8, 8)
    vae.eval()
    with torch.no_grad():
        # the flat codes reach the decoder in their [4, 4, 4] shape: the anchors decode to the reconstructions
        torch.testing.assert_close(result.anchor_outputs, vae.decoder(vae.encoder(x[:2])))


def test_explain_warns_of_logits_measured_as_images(tmp_path):
    """A Bernoulli decoder's logits (-20 .. 20 here) were measured and drawn as if they were the
    [0, 1] inputs' scale, without a word; with output_transform='sigmoid', or outputs in the
    inputs' range, nothing is said."""
    import warnings

    vae = _seeded(ChunkedVAE)
    x = torch.rand(16, 1, 8, 8)
    encoder = lambda x: torch.chunk(vae.encoder(x), 2, dim=1)  # noqa: E731
    logits = lambda z: 40 * torch.sigmoid(vae.decoder(z)) - 20  # noqa: E731  (far outside [0, 1])
    with pytest.warns(UserWarning, match=r"explain: the inputs lie in \[0, 1\], but the decoder's output at the "
                                         r"first input reaches .* pass output_transform='sigmoid'"):
        ls.explain(encoder, logits, x, out=tmp_path / "a", **FAST)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*inputs lie in")
        ls.explain(encoder, logits, x, out=tmp_path / "b", output_transform="sigmoid", **FAST)
        ls.explain(encoder, lambda z: torch.sigmoid(vae.decoder(z)), x, out=tmp_path / "c", **FAST)
        ls.explain(encoder, logits, x * 2 - 1, out=tmp_path / "d", **FAST)  # (inputs not in [0, 1])
        hot = torch.zeros(1, 1, 8, 8)
        hot[..., 0, 0] = 1e6  # a far outlier above, not a logit
        ls.explain(encoder, lambda z: torch.sigmoid(vae.decoder(z)) + hot, x, out=tmp_path / "e", **FAST)


def test_explain_warns_of_a_decoder_body_whose_outputs_are_not_the_inputs_size(tmp_path):
    """explain(vae.encoder, vae.decoder, x) on AntixK's bodies: the decoder body stops before
    final_layer, and its [8, 8, 8] hidden features were measured and drawn as the report, without
    a word; the methods (or image_shape=, saying the sizes are meant) say nothing."""
    import warnings

    vae = _seeded(VanillaVAE)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    with pytest.warns(UserWarning, match=r"explain: the decoder's output at the first input holds 512 values \(shape "
                                         r"\(8, 8, 8\)\), but each input holds 768 \(shape \(3, 16, 16\)\).*"
                                         r"\(vae\.decode rather than vae\.decoder\)"):
        ls.explain(vae.encoder, vae.decoder, x, out=tmp_path / "a", **FAST)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*input holds")
        ls.explain(vae.encode, vae.decode, x, out=tmp_path / "b", **FAST)
        ls.explain(vae.encoder, vae.decoder, x, out=tmp_path / "c", image_shape=(16, 32), **FAST)
        # flat outputs of the inputs' size are the inputs' pictures, not another size
        ls.explain(vae.encode, lambda z: vae.decode(z).flatten(1), x, out=tmp_path / "d", **FAST)
