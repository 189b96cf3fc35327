"""The metrics call a heavy representation on the CPU within the memory: FactorVAE and BetaVAE
called it on 4,096 observations at a time, evaluate on 256, whatever it took an observation
(an encoder of 10 MB an image at 4,096 a call: 40 GB, and the kernel killed the process). It
is measured once (a call on two observations) and called on fewer, with one warning. The machine
is monkeypatched to 8 GiB; the representation's temporaries are never written."""

from __future__ import annotations

import warnings

import pytest
import torch

import latentsweep._checks as checks
from latentsweep import metrics
from metrics_reference import IdentityData
from peak_memory import needs_reusing_allocator

pytestmark = needs_reusing_allocator

MiB = 1 << 20
FACTORS = 3


class WideData(IdentityData):
    """IdentityData's factors, each observation 256 values (2 KiB: a batch is measured)."""

    def __init__(self):
        super().__init__(num_factors=FACTORS)

    def observations(self, factors):
        return factors.to(torch.float64).repeat(1, 256 // FACTORS + 1)[:, :256]


class Hungry:
    """A representation taking ``per_input`` bytes of temporaries an observation (allocated,
    never written), returning the factors; it records the size of each call."""

    def __init__(self, per_input: int = 60 * MiB):
        self.per_input, self.sizes = per_input, []

    def __call__(self, observations: torch.Tensor) -> torch.Tensor:
        self.sizes.append(observations.shape[0])
        scratch = torch.empty(observations.shape[0], self.per_input // 4)
        del scratch
        return observations[:, :FACTORS]


@pytest.fixture(autouse=True)
def machine_of_8_gib(monkeypatch):
    monkeypatch.setattr(checks, "physical_memory", lambda: 8 << 30)


def _said(call) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if issubclass(w.category, checks.ProcessWarning)]


@pytest.mark.parametrize("score", ["factor_vae_score", "beta_vae_score"])
def test_the_sampled_scores_call_a_heavy_representation_on_fewer_observations(score):
    """60 MiB an observation: 4,096 take 240 GiB; 64 (3.75 GiB) are within half of 8 GiB."""
    hungry = Hungry()
    options = dict(batch_size=8, num_train=300, num_eval=200, seed=3, progress=False)
    if score == "factor_vae_score":
        options["num_variance_estimate"] = 500
    result, said = _said(lambda: getattr(metrics, score)(hungry, WideData(), **options))
    assert hungry.sizes[0] == 2 and max(hungry.sizes[1:]) == 64  # the measuring call, once
    (text,) = said
    assert text.startswith(f"latentsweep.metrics.{score}: encode_batch_size=4096 (the representation took 60.0 MiB "
                           "an observation on the CPU, measured on 2) needs ")
    assert text.endswith("calling it on 64 observations at a time instead (codes that differ at most in their last "
                         "bits, where its arithmetic depends on the batch); pass encode_batch_size=64 or less to "
                         "choose the size yourself")
    light = getattr(metrics, score)(Hungry(per_input=0), WideData(), **options)
    assert {k: v for k, v in result.items() if k != "votes"} == {k: v for k, v in light.items() if k != "votes"}
    # the size it names fits: no warning
    again, said = _said(lambda: getattr(metrics, score)(Hungry(), WideData(), encode_batch_size=64, **options))
    assert not said


def test_evaluate_measures_once_for_its_draws():
    hungry = Hungry()
    _, said = _said(lambda: metrics.evaluate(hungry, WideData(), metrics=["mig"], num_train=300, num_test=300,
                                             progress=False))
    assert len(said) == 1 and said[0].startswith("latentsweep.metrics.evaluate: batch_size=256 (the representation")
    assert "pass batch_size=64 or less" in said[0]
    assert hungry.sizes.count(2) == 1 and max(hungry.sizes) == 64


def test_a_light_representation_keeps_its_calls():
    """A representation of a few bytes an observation is called as before, after one measuring call."""
    light = Hungry(per_input=0)
    _, said = _said(lambda: metrics.factor_vae_score(light, WideData(), batch_size=8, num_train=300, num_eval=200,
                                                     num_variance_estimate=500, progress=False))
    assert not said and light.sizes[:2] == [2, 500]


def test_evaluates_sampled_scores_are_measured_once_and_said_as_evaluates():
    """FactorVAE and BetaVAE inside evaluate said "encode_batch_size=4096", a keyword evaluate does
    not have, and measured the representation once each."""
    hungry = Hungry()
    _, said = _said(lambda: metrics.evaluate(hungry, WideData(), metrics=["factor_vae", "beta_vae"], num_train=300,
                                             num_test=200, sampling_votes=(100, 50), progress=False))
    assert len(said) == 1 and said[0].startswith("latentsweep.metrics.evaluate: batch_size=4096 (the representation")
    assert "pass batch_size=64 or less" in said[0]
    assert hungry.sizes.count(2) == 1 and max(hungry.sizes) == 64
