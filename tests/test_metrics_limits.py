"""The metrics' sizes that cannot run, refused before any work, and the settings they record."""

from __future__ import annotations

import pytest
import torch

from latentsweep import _checks, datasets, metrics
from latentsweep.metrics.html_section import metrics_section

HUGE = 10**15


def _crossed(sizes=(3, 4, 5)):
    """Every combination of the factors once, the observations being the factor values (float64)."""
    grid = torch.cartesian_prod(*[torch.arange(k) for k in sizes])
    return datasets.LabelledArrays(grid.to(torch.float64), grid)


class Watched:
    """A data set and a representation that count what they were asked for."""

    def __init__(self, data=None, representation=lambda x: x):
        self.data = data or _crossed()
        self.representation = representation
        self.rendered: list[int] = []
        self.encoded: list[int] = []
        self.factor_sizes = self.data.factor_sizes
        self.sample_factors = self.data.sample_factors

    def observations(self, factors):
        self.rendered.append(factors.shape[0])
        return self.data.observations(factors)

    def encode(self, x):
        self.encoded.append(x.shape[0])
        return self.representation(x)


@pytest.mark.parametrize("score, argument", [
    (metrics.factor_vae_score, "num_train"), (metrics.factor_vae_score, "num_eval"),
    (metrics.factor_vae_score, "num_variance_estimate"),
    (metrics.beta_vae_score, "num_train"), (metrics.beta_vae_score, "num_eval"),
])
def test_sampling_sizes_beyond_memory_are_refused_before_any_work(score, argument):
    # factor_vae_score(num_train=10**15) was accepted and ran (practically) for ever, one vote
    # after another, its progress bar counting to 6.4e16.
    watched = Watched()
    with pytest.raises(ValueError, match=rf"^latentsweep\.metrics\.\w+: .*{argument}={HUGE}.* needs [\d,.]+ GiB, "
                                         rf"more than 50% of this CPU's .*; lower .*{argument}"):
        score(watched.encode, watched, progress=False, **{argument: HUGE})
    assert watched.rendered == [] and watched.encoded == []


@pytest.mark.parametrize("kwargs, argument", [
    (dict(num_train=HUGE), "num_train"), (dict(num_test=HUGE), "num_test"),
    (dict(sampling_votes=(HUGE, 10)), r"sampling_votes\[0\]"), (dict(sampling_votes=(10, HUGE)), r"sampling_votes\[1\]"),
])
def test_evaluate_sizes_beyond_memory_are_refused_by_its_own_names_before_any_work(kwargs, argument):
    # (the array-level metrics ran first, then FactorVAE's votes for ever)
    watched = Watched()
    with pytest.raises(ValueError, match=rf"^latentsweep\.metrics\.evaluate: .*{argument}=.* needs .* GiB.*; lower"):
        metrics.evaluate(watched.encode, watched, metrics=["mig", "factor_vae"], progress=False, **kwargs)
    assert watched.rendered == [] and watched.encoded == []


def test_num_test_is_not_checked_when_no_metric_uses_it():
    watched = Watched()
    results = metrics.evaluate(watched.encode, watched, metrics=["factor_vae"], num_train=1000, num_test=HUGE,
                               sampling_votes=(64, 64), progress=False)
    assert results.settings["num_test"] == HUGE


@pytest.fixture
def one_gib(monkeypatch):
    """A machine of 1 GiB of memory (the limit is half of it)."""
    monkeypatch.setattr(_checks, "_memory_capacity", lambda device: 2**30)


def test_the_codes_latents_count_once_the_first_batch_gives_them(one_gib):
    # 100,000 points of 1,024 latents are 0.8 GB of codes: beyond the lower bound's reach (D >= 1),
    # refused once the first batch says D, not after encoding them all.
    data = datasets.Shapes()
    for call, argument in [
        (lambda r: metrics.evaluate(r, data, metrics=["mig"], num_train=100_000, num_test=10, progress=False),
         "num_train=100000 and num_test=10: holding the factor rows \\(F=5\\) and codes \\(D=1024\\)"),
        (lambda r: metrics.factor_vae_score(r, data, num_variance_estimate=100_000, progress=False),
         "num_variance_estimate=100000: holding the factor rows \\(F=5\\) and codes \\(D=1024\\)"),
        (lambda r: metrics.beta_vae_score(r, data, num_train=100_000, progress=False),
         "num_train=100000 and num_eval=5000: holding the votes' labels and values \\[105000, 1025\\]"),
    ]:
        calls = []
        representation = lambda x: calls.append(x.shape[0]) or x.flatten(1)  # noqa: E731
        with pytest.raises(ValueError, match=f": {argument}.* needs .* GiB"):
            call(representation)
        # the first batch (BetaVAE's: 64 points of 2 x 64 observations), after the call on two observations
        # that measures the representation's memory
        assert sum(calls) <= 2 * 64 * 64 + 2 and calls[0] == 2


def test_evaluate_renders_its_points_a_batch_at_a_time():
    # evaluate rendered all num_train observations at once (4 KB an image: 10^7 Shapes were 40 GB,
    # refused by Shapes as "ask for fewer rows at a time", an argument evaluate does not have).
    watched = Watched()
    small = metrics.evaluate(watched.encode, watched, metrics=["mig"], num_train=1000, num_test=100,
                             batch_size=64, progress=False)
    assert max(watched.rendered) == 64 and max(watched.encoded) == 64
    default = metrics.evaluate(watched.encode, watched, metrics=["mig"], num_train=1000, num_test=100, progress=False)
    assert small.scores == default.scores  # the batching changes no draw
    # FactorVAE's global variances too (num_variance_estimate observations at once)
    watched = Watched()
    metrics.factor_vae_score(watched.encode, watched, num_variance_estimate=1000, num_train=10, num_eval=10,
                             encode_batch_size=64, progress=False)
    assert watched.rendered[:16] == [64] * 15 + [1000 - 15 * 64]


ALWAYS = {"metrics", "num_train", "num_test", "seed", "data"}


@pytest.mark.parametrize("names, recorded", [
    (["sap"], {"batch_size"}),
    (["mig"], {"batch_size", "bins"}),
    (["dci"], {"batch_size", "dci_estimator"}),
    (["beta_vae"], {"sampling_votes", "sampling_batch_size", "sampling_encode_batch_size"}),
    (["factor_vae"], {"sampling_votes", "sampling_batch_size", "sampling_encode_batch_size",
                      "factor_vae_prune_threshold"}),
])
def test_settings_hold_only_what_the_metrics_that_ran_used(names, recorded):
    # bins were recorded and printed when no histogram metric ran, and FactorVAE/BetaVAE's votes
    # when neither ran.
    results = metrics.evaluate(lambda x: x, _crossed(), metrics=names, num_train=1000, num_test=100, bins=7,
                               sampling_votes=(64, 32), dci_estimator="random_forest", progress=False)
    assert set(results.settings) == ALWAYS | recorded
    text, section = str(results), metrics_section(results)
    for shown in (text, section):
        assert "1000 train / 100 test points, seed 0" in shown
        assert ("7 histogram bins" in shown) == ("bins" in recorded)
        assert ("64 train / 32 eval votes" in shown) == ("sampling_votes" in recorded)
        assert ("random_forest" in shown) == ("dci_estimator" in recorded)
    assert results.to_dict()["settings"] == results.settings
