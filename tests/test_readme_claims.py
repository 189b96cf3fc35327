"""The README's prose claims that no other test holds, held here so that the text and the code
cannot drift apart silently: the files it names, the numbers it quotes from the code, where its
functions live, what `encode` reads from an object, and what `latentsweep sample` draws."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from test_cli import invoke

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
# One line per paragraph's worth of text: a quoted phrase may wrap across lines in the README.
FLAT = re.sub(r"\s+", " ", TEXT)


def test_every_file_the_readme_names_exists():
    """Pictures, links, scripts, examples, benchmarks and the layout's source files."""
    linked = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", TEXT)
    paths = re.findall(r"(?<![\w/.])((?:scripts|examples|benchmarks|docs|cpp|python/latentsweep)/[\w./-]*[\w/])", TEXT)
    layout = re.findall(r"`([a-z_]+\.py)`", TEXT.split("## Layout", 1)[1])
    named = linked + paths + [f"python/latentsweep/{name}" for name in layout]
    assert len(named) > 20
    missing = sorted({name for name in named if not (ROOT / name).exists()})
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_the_numbers_the_readme_quotes_are_the_codes():
    from latentsweep import _batching, diagnosis, principal
    from latentsweep.plots import _common

    assert f"up to D = {principal.EXACT_MAX_DIM}" in FLAT
    assert f"Gram matrix of codes of N ≤ {principal.GRAM_MAX_ROWS_PER_LATENT:g} D rows" in FLAT
    assert f"under {diagnosis.ALIGNED_RATIO:.0%} of what the top component carries" in FLAT
    assert f"at most {_common.DEFAULT_MAX_PANELS} rows or panels" in FLAT
    assert f"at most {_common.DEFAULT_MAX_PANELS} steps as columns" in FLAT
    assert _common.MAX_PIXELS == 2**25 and "2^25 pixels per picture" in FLAT
    # Batching: the sizes tried, the start rule, the margin and the trials' shares.
    sizes = ", ".join(map(str, _batching.CPU_BATCH_CANDIDATES)) + f" and {_batching.CPU_MAX_BATCH}"
    assert f"among {sizes}" in FLAT
    assert f"about {_batching.START_CHUNK_SECONDS * 1000:g} ms" in FLAT
    assert f"faster by more than {round((_batching.MOVE_MARGIN - 1) * 100)}%" in FLAT
    assert f"at most {_batching.KEPT_TRIAL_TIME_SHARE:.0%} of the sweep's estimated time" in FLAT
    assert f"held to {_batching.TRIAL_TIME_SHARE:.0%}" in FLAT
    assert f"two or {_batching.TIMED_ROW_SHARE:.1%} of the rows" in FLAT and _batching.TIMED_UNITS == 2
    assert _batching.default_memory_budget(torch.device("cpu")) <= 1 << 30 and "up to 1 GiB on the CPU" in FLAT


def test_the_metrics_defaults_are_the_ones_the_readme_gives():
    """20 histogram bins, 10,000 train / 5,000 test points, batches of 64, gradient boosting."""
    m = ls.metrics
    assert "(20 histogram bins, 10,000 train / 5,000 test points, batches of 64 for FactorVAE/BetaVAE)" in FLAT

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    for function in (m.mig, m.modularity_explicitness, m.irs, m.unsupervised, m.evaluate):
        assert default(function, "bins") == 20, function.__name__
    assert (default(m.evaluate, "num_train"), default(m.evaluate, "num_test")) == (10_000, 5_000)
    for function in (m.factor_vae_score, m.beta_vae_score):
        assert default(function, "batch_size") == 64
        assert (default(function, "num_train"), default(function, "num_eval")) == (10_000, 5_000)
    assert default(m.dci, "estimator") == default(m.evaluate, "dci_estimator") == "gradient_boosting"


def test_the_pictures_live_where_the_readme_says():
    """All but `report` are in latentsweep.plots, and all but direction_grid and cluster_panel
    in latentsweep."""
    section = TEXT.split("## Pictures and reports", 1)[1].split("## While training", 1)[0]
    names = {re.sub(r"^plots\.", "", n) for n in re.findall(r"^\| `([a-z_.]+)\(", section, flags=re.M)}
    assert {"traversal_grid", "direction_grid", "cluster_panel", "report"} <= names
    for name in names - {"report"}:
        assert callable(getattr(ls.plots, name, None)), f"latentsweep.plots has no {name}"
    for name in names - {"direction_grid", "cluster_panel"}:
        assert callable(getattr(ls, name, None)), f"latentsweep has no {name}"
    assert not hasattr(ls.plots, "report")


@dataclasses.dataclass
class _Fields:
    mean: torch.Tensor
    log_var: torch.Tensor


class _Attributes:
    def __init__(self, x):
        self.mu, self.logvar = x * 2, torch.full_like(x, -1.0)


class _Properties:
    def __init__(self, x):
        self._x = x

    @property
    def mu(self):
        return self._x * 2

    @property
    def logvar(self):
        return torch.full_like(self._x, -1.0)

    @property
    def reconstruction(self):  # not one of the posterior's names: never read
        raise AssertionError("a property other than the posterior's was read")


class _CachedProperties:
    def __init__(self, x):
        self._x = x

    @functools.cached_property
    def mean(self):
        return self._x * 2

    @functools.cached_property
    def std(self):
        return torch.full_like(self._x, math.exp(-0.5))


def test_encode_reads_instance_attributes_dataclass_fields_and_properties():
    """Properties were refused (only __dict__ was read) while the README said "attributes"."""
    x = torch.randn(6, 3)
    assert "an object with those names as attributes (instance attributes, dataclass fields or properties)" in FLAT
    for encoder in (_Attributes, lambda x: _Fields(x * 2, torch.full_like(x, -1.0)), _Properties):
        posterior = ls.encode(encoder, x, progress=False)
        assert torch.equal(posterior.mu, x * 2) and torch.equal(posterior.logvar, torch.full_like(x, -1.0))
    posterior = ls.encode(_CachedProperties, x, progress=False)
    assert torch.equal(posterior.mu, x * 2) and torch.allclose(posterior.logvar, torch.full_like(x, -1.0))


FLAT_IMAGE_VAE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class FlatImageVAE(nn.Module):
        # [B, 1, 8, 8] images -> (mu, logvar) [B, 2] -> flat [B, 64] outputs
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.heads = nn.Linear(64, 4)
            self.decoder = nn.Linear(2, 64)

        def encoder(self, x):
            h = self.heads(x.flatten(1))
            return h[:, :2], h[:, 2:] - 3

    def make():
        return FlatImageVAE()
    """
)


@pytest.fixture
def flat_image_model(tmp_path) -> Path:
    """A folder with flat_image_vae.py and images.npy ([6, 1, 8, 8] images)."""
    (tmp_path / "flat_image_vae.py").write_text(FLAT_IMAGE_VAE)
    np.save(tmp_path / "images.npy", np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32))
    return tmp_path


def test_sample_from_the_posterior_draws_flat_outputs_in_the_inputs_image_shape(flat_image_model):
    """"Flat outputs are drawn as images when the inputs are images of that many values": `sample
    --data` drew no samples.png and said the outputs were "drawn as tabular features"."""
    done = invoke("sample", "--model", "flat_image_vae.py:make", "--data", "images.npy", "-n", "3", "--out", "post",
                  cwd=flat_image_model)
    assert (flat_image_model / "post" / "samples.png").exists(), done.stdout + done.stderr
    assert "--image-shape" not in done.stderr


def test_a_report_without_weights_says_so_in_its_title(flat_image_model):
    """"every command says so in a warning (`report` also in the page's title)"."""
    done = invoke("report", "--model", "flat_image_vae.py:make", "--data", "images.npy", "--anchors", "1",
                  "--steps", "3", "--out", "rep", cwd=flat_image_model)
    assert "warning: no --weights" in done.stderr
    title = re.search(r"<title>([^<]*)</title>", (flat_image_model / "rep" / "report.html").read_text(encoding="utf-8"))
    assert title and "no --weights" in title.group(1), title
