"""The README's "Disentanglement metrics" workflow, as a researcher varies it: representations
written as plain functions or returning the library's own Posterior, and data sets built from
float64 arrays."""

from __future__ import annotations

import pytest
import torch

import latentsweep as ls
from latentsweep import datasets, metrics


def _crossed(sizes=(3, 4, 5)):
    """Every combination of the factors once, the observations being the factor values (float64)."""
    grid = torch.cartesian_prod(*[torch.arange(k) for k in sizes])
    return datasets.LabelledArrays(grid.to(torch.float64), grid)


_ROTATION = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]


@pytest.mark.parametrize("score", [metrics.factor_vae_score, metrics.beta_vae_score])
def test_a_plain_function_gets_float64_observations_as_they_are(score):
    # A parameterless function was handed float32 copies of float64 observations (encode hands
    # them over as they are): rounded, and a float64 matmul inside failed with torch's "expected
    # m1 and m2 to have the same dtype".
    seen = []

    def rotated(x):
        seen.append(x.dtype)
        return x @ _ROTATION

    result = score(rotated, _crossed(), num_train=64, num_eval=64, progress=False)
    assert set(seen) == {torch.float64}
    assert 0.0 <= result["eval_accuracy"] <= 1.0


def test_a_module_still_gets_observations_in_its_parameters_dtype():
    encoder = torch.nn.Linear(3, 3)  # float32 parameters, float64 observations
    result = metrics.factor_vae_score(encoder, _crossed(), num_train=64, num_eval=64, progress=False)
    assert 0.0 <= result["eval_accuracy"] <= 1.0


def test_a_representation_returning_a_posterior_scores_its_means():
    # latentsweep's own Posterior (what ls.encode returns) was refused, in the name of
    # latentsweep.encode: "the encoder returned a Posterior".
    data = _crossed()
    plain = metrics.evaluate(lambda x: x, data, metrics=["mig", "factor_vae", "beta_vae"], num_train=200,
                             num_test=100, sampling_votes=(64, 64), progress=False)
    posterior = metrics.evaluate(lambda x: ls.Posterior(x, torch.zeros_like(x)), data,
                                 metrics=["mig", "factor_vae", "beta_vae"], num_train=200, num_test=100,
                                 sampling_votes=(64, 64), progress=False)
    assert posterior.scores == plain.scores
    assert plain.scores["factor_vae.eval_accuracy"] == 1.0 and plain.scores["beta_vae.eval_accuracy"] == 1.0


@pytest.mark.parametrize("score", [metrics.factor_vae_score, metrics.beta_vae_score])
@pytest.mark.parametrize("output, got", [("codes", "returned a str"), ({"z": 1}, "returned a dict with keys")])
def test_a_wrong_representation_output_is_named_by_the_metric(score, output, got):
    with pytest.raises(TypeError, match=rf"^latentsweep\.metrics\.{score.__name__}: representation {got}") as caught:
        score(lambda x: output, _crossed(), num_train=8, num_eval=8, progress=False)
    assert "latentsweep.encode" not in str(caught.value) and "encoder" not in str(caught.value)


@pytest.mark.parametrize("call", [
    lambda c, f: metrics.mig(c, f),
    lambda c, f: metrics.irs(c, f),
    lambda c, f: metrics.unsupervised(c),
    lambda c, f: metrics.sap(c, f, c, f),
    lambda c, f: metrics.histogram_discretize(c, 20),
])
def test_codes_larger_than_the_memory_are_refused_before_the_float64_copy(call):
    # A broadcast view of 2^40 rows (12 bytes of storage) reached .to(torch.float64): the
    # allocator's RuntimeError ("can't allocate memory: you tried to allocate 26388279066624 bytes").
    n = 2**40
    codes = torch.randn(1, 3).expand(n, 3)
    factors = torch.tensor([[0, 1]]).expand(n, 2)
    with pytest.raises(ValueError, match=r"^latentsweep\.metrics\.\w+: the float64 copy of codes \[N=1099511627776, "
                                         r"D=3\] needs [\d,.]+ GiB, more than this CPU's .*; score fewer points"):
        call(codes, factors)


def test_evaluate_batch_size_bounds_the_sampling_metrics_calls_too():
    # evaluate(batch_size=...) ("observations per representation call") reached the array-level
    # metrics only: FactorVAE and BetaVAE called the representation 4,096 observations at a time.
    data = _crossed()
    calls = []

    def identity(x):
        calls.append(x.shape[0])
        return x

    small = metrics.evaluate(identity, data, metrics=["factor_vae", "beta_vae"], num_train=1000, num_test=100,
                             batch_size=16, sampling_votes=(64, 64), progress=False)
    assert max(calls) == 16
    calls.clear()
    default = metrics.evaluate(identity, data, metrics=["factor_vae", "beta_vae"], num_train=1000, num_test=100,
                               sampling_votes=(64, 64), progress=False)
    assert max(calls) == 4096  # unless asked, the interventions are encoded 4,096 at a time (speed)
    assert small.scores == default.scores  # the batching changes no draw
    assert small.settings["sampling_encode_batch_size"] == 16 and default.settings["sampling_encode_batch_size"] == 4096
    assert "batch_size" not in default.settings  # (the array metrics' batch: none of them ran)


def test_evaluate_names_its_own_argument_when_beta_vae_draws_one_factor():
    # With sampling_votes=(1, 5) BetaVAE's one training point drew one factor, and the error said
    # "the num_train=1 training points ...: raise num_train", while evaluate's num_train was 1000.
    with pytest.raises(ValueError, match=r"^latentsweep\.metrics\.evaluate: BetaVAE's sampling_votes\[0\]=1 training "
                                         r"points all drew one factor; .* raise sampling_votes\[0\]") as caught:
        metrics.evaluate(lambda x: x, _crossed(), metrics=["beta_vae"], num_train=1000, num_test=100,
                         sampling_votes=(1, 5), progress=False)
    assert "num_train" not in str(caught.value)


def test_labelled_arrays_observations_names_a_wrong_type_and_a_wrong_shape():
    # A numpy array of factors (what a user's own labels often are) was a ValueError saying
    # "must be a [n, 2] tensor", and a wrong shape did not say which shape it got.
    data = datasets.LabelledArrays(torch.randn(6, 3), torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1], [0, 0], [1, 1]]))
    fn = r"latentsweep\.datasets\.LabelledArrays\.observations"
    with pytest.raises(TypeError, match=rf"^{fn}: factors must be a torch\.Tensor \[n, 2\], got ndarray$"):
        data.observations(data.labels[:2].numpy())
    with pytest.raises(ValueError, match=rf"^{fn}: factors must be \[n, 2\], got shape \(2, 1\)$"):
        data.observations(data.labels[:2, :1])
    assert data.observations(data.labels[:2]).shape == (2, 3)
