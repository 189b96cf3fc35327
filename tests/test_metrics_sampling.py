"""FactorVAE, BetaVAE and evaluate on ground-truth data sets: disentanglement_lib's
expectations (identity representation high, zeros/noise low), reproducibility, warnings and
argument checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from latentsweep import datasets, metrics
from metrics_reference import IdentityData


def zeros(x):
    return torch.zeros(x.shape[0], x.shape[1], dtype=torch.float64)


def test_factor_vae_identity_and_zeros():
    data = IdentityData()
    # disentanglement_lib's test: batch 5, 3000 train, 2000 eval, 2500 variance points.
    args = dict(batch_size=5, num_train=3000, num_eval=2000, num_variance_estimate=2500, progress=False)
    good = metrics.factor_vae_score(lambda x: x, data, **args)
    assert 0.9 <= good["train_accuracy"] <= 1.0 and 0.9 <= good["eval_accuracy"] <= 1.0
    assert good["num_active_dims"] == 5
    votes = good["votes"]
    assert int(votes.sum()) == 3000 and torch.equal(votes.argmax(dim=1), torch.arange(5))  # factor j -> latent j
    bad = metrics.factor_vae_score(zeros, data, **args)
    assert bad["train_accuracy"] == 0.0 and bad["eval_accuracy"] == 0.0 and bad["num_active_dims"] == 0


def test_factor_vae_prunes_collapsed_latents_and_maps_votes_to_latents():
    data = IdentityData(num_factors=3)

    def with_collapsed(x):  # latent 0 nearly constant (SD 0.01 < 0.05), factors on latents 1..3
        collapsed = 0.01 * torch.sin(x.sum(dim=1, keepdim=True))
        return torch.cat([collapsed, x], dim=1)

    result = metrics.factor_vae_score(with_collapsed, data, batch_size=8, num_train=600, num_eval=300,
                                      num_variance_estimate=1000, progress=False)
    assert result["num_active_dims"] == 3
    assert result["votes"][:, 0].sum() == 0  # never votes for the pruned latent
    assert torch.equal(result["votes"].argmax(dim=1), torch.tensor([1, 2, 3]))
    assert result["eval_accuracy"] > 0.95


def test_beta_vae_identity_and_noise():
    data = IdentityData()
    good = metrics.beta_vae_score(lambda x: x, data, batch_size=5, num_train=2000, num_eval=2000, progress=False)
    assert 0.9 <= good["train_accuracy"] <= 1.0 and 0.9 <= good["eval_accuracy"] <= 1.0

    def noise(x):
        return torch.randn(x.shape[0], 4, generator=torch.Generator().manual_seed(int(x.sum())), dtype=torch.float64)

    bad = metrics.beta_vae_score(noise, data, batch_size=5, num_train=1000, num_eval=500, progress=False)
    assert bad["eval_accuracy"] < 0.35  # chance is 0.2


def test_sampling_scores_are_reproducible_and_depend_on_the_seed():
    data = IdentityData(num_factors=3)

    def noisy(x):
        return x + torch.sin(7.0 * x.sum(dim=1, keepdim=True) + x)  # deterministic, imperfect

    args = dict(batch_size=6, num_train=300, num_eval=200, progress=False)
    first = metrics.beta_vae_score(noisy, data, **args)
    assert first == metrics.beta_vae_score(noisy, data, **args)
    assert first != metrics.beta_vae_score(noisy, data, seed=1, **args)
    f1 = metrics.factor_vae_score(noisy, data, num_variance_estimate=500, **args)
    f2 = metrics.factor_vae_score(noisy, data, num_variance_estimate=500, **args)
    assert f1["train_accuracy"] == f2["train_accuracy"] and torch.equal(f1["votes"], f2["votes"])


def test_batching_of_the_encoder_changes_nothing():
    data = IdentityData(num_factors=3)

    def noisy(x):
        return x + torch.sin(7.0 * x.sum(dim=1, keepdim=True) + x)

    args = dict(batch_size=6, num_train=200, num_eval=100, num_variance_estimate=300, progress=False)
    a = metrics.factor_vae_score(noisy, data, encode_batch_size=7, **args)
    b = metrics.factor_vae_score(noisy, data, encode_batch_size=10_000, **args)
    assert torch.equal(a["votes"], b["votes"]) and a["eval_accuracy"] == b["eval_accuracy"]


def test_a_representation_returning_views_of_one_buffer_scores_the_same():
    """Each batch's codes are copied at once, also when they are float64 on the CPU already (no
    conversion copy): a representation may write them into one buffer its next call overwrites."""
    data = IdentityData(num_factors=3)
    buffer = torch.empty(7, 3, dtype=torch.float64)

    def noisy(x):
        return x.double() + torch.sin(7.0 * x.sum(dim=1, keepdim=True) + x).double()

    def into_one_buffer(x):
        return buffer[: x.shape[0]].copy_(noisy(x))

    args = dict(batch_size=6, num_train=200, num_eval=100, num_variance_estimate=300, encode_batch_size=7,
                progress=False)
    a = metrics.factor_vae_score(noisy, data, **args)
    b = metrics.factor_vae_score(into_one_buffer, data, **args)
    assert torch.equal(a["votes"], b["votes"]) and a["eval_accuracy"] == b["eval_accuracy"]


def test_labelled_arrays_with_factors_that_are_not_crossed():
    # Factor 1 is a function of factor 0: every combination FactorVAE would build by
    # overwriting a column does not exist; sample_factors_matching keeps to real rows.
    rng = np.random.default_rng(0)
    f0 = rng.integers(0, 6, 3000)
    f2 = rng.integers(0, 4, 3000)
    labels = np.stack([f0, (f0 * 5) % 7, f2], axis=1)
    observations = labels.astype(np.float32)
    data = datasets.LabelledArrays(observations, labels, factor_names=["a", "b", "c"])
    assert data.factor_sizes == [6, 6, 4] and data.factor_names == ["a", "b", "c"]
    result = metrics.factor_vae_score(lambda x: x, data, batch_size=8, num_train=300, num_eval=200,
                                      num_variance_estimate=500, progress=False)
    assert result["eval_accuracy"] > 0.5
    with pytest.raises(ValueError, match="no observation"):
        data.observations(torch.tensor([[0, 1, 0]]))


def test_evaluate_identity_all_but_dci():
    names = [m for m in metrics.METRICS if m != "dci"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        results = metrics.evaluate(lambda x: x, IdentityData(num_factors=4), metrics=names, num_train=2000,
                                   num_test=1000, sampling_votes=(500, 300), progress=False)
    s = results.scores
    assert s["mig"] > 0.9 and s["irs"] > 0.9 and s["modularity"] > 0.9
    assert s["factor_vae.eval_accuracy"] > 0.9 and s["beta_vae.eval_accuracy"] > 0.9
    assert abs(s["unsupervised.gaussian_total_correlation"]) < 0.05
    assert results.factor_names == ["factor 0", "factor 1", "factor 2", "factor 3"]
    assert results.settings["num_train"] == 2000 and "scikit-learn" in results.versions
    text = str(results)
    assert "mig" in text and "2000 train" in text
    d = results.to_dict()
    assert d["scores"] == s


def test_results_as_json_hold_no_infinity():
    """Linearly dependent codes have an infinite Gaussian total correlation; the results' dict
    (and `latentsweep metrics --json`) wrote it as Python's `Infinity`, which is not JSON."""
    import json

    results = metrics.evaluate(lambda x: torch.cat([x, x[:, :1]], dim=1), IdentityData(num_factors=2),
                               metrics=["unsupervised"], num_train=200, num_test=100, progress=False)
    assert results.scores["unsupervised.gaussian_total_correlation"] == float("inf")
    d = results.to_dict()
    assert d["scores"]["unsupervised.gaussian_total_correlation"] is None
    assert json.loads(json.dumps(d, allow_nan=False))["scores"] == d["scores"]


def test_evaluate_is_bit_identical_for_a_seed():
    def noisy(x):
        return x + torch.sin(5.0 * x.sum(dim=1, keepdim=True) + x)

    # DCI's gradient boosting is seeded too, but slow: its reproducibility is tested with the forest.
    args = dict(metrics=["mig", "sap", "unsupervised", "irs"], num_train=1000, num_test=300, progress=False)
    a = metrics.evaluate(noisy, IdentityData(num_factors=3), seed=4, **args).scores
    b = metrics.evaluate(noisy, IdentityData(num_factors=3), seed=4, **args).scores
    c = metrics.evaluate(noisy, IdentityData(num_factors=3), seed=5, **args).scores
    assert a == b and a != c


def test_evaluate_warns_on_small_samples_and_drops_single_valued_factors():
    data = datasets.LabelledArrays(np.arange(600, dtype=np.float32)[:, None].repeat(2, 1),
                                   np.stack([np.arange(600) % 6, np.zeros(600, dtype=int)], axis=1))
    with pytest.warns(UserWarning) as record:
        results = metrics.evaluate(lambda x: x, data, metrics=["mig"], num_train=500, num_test=100, progress=False)
    messages = " ".join(str(w.message) for w in record)
    assert "below 1000" in messages and "single value" in messages
    assert results.factor_names == ["factor 0"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(metrics=["mig", "nope"]), ValueError, "unknown metric"),
        (dict(metrics=[]), TypeError, "metrics"),
        (dict(num_train=1), ValueError, "num_train"),
        (dict(seed=-3), ValueError, "seed"),
        (dict(sampling_votes=(10,)), ValueError, "sampling_votes"),
        # tuple(5) once failed with "'int' object is not iterable", naming nothing
        (dict(sampling_votes=5), TypeError, r"evaluate: sampling_votes must be None or a \(train, eval\) pair of ints"),
    ],
)
def test_evaluate_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        metrics.evaluate(lambda x: x, IdentityData(), progress=False, **kwargs)


def test_evaluate_rejects_objects_that_are_not_data_sets_and_bad_representations():
    with pytest.raises(TypeError, match="factor_sizes"):
        metrics.evaluate(lambda x: x, object(), progress=False)
    with pytest.raises(TypeError, match="callable"):
        metrics.evaluate("encoder", IdentityData(), progress=False)
    with pytest.raises(ValueError, match="NaN"):
        metrics.evaluate(lambda x: x * float("nan"), IdentityData(), metrics=["mig"], num_train=1000, num_test=10,
                         progress=False)
    with pytest.raises(ValueError, match="codes of shape"):
        metrics.evaluate(lambda x: x[:, 0], IdentityData(), metrics=["mig"], num_train=1000, num_test=10,
                         progress=False)


def _with_constant_factor():
    rng = np.random.default_rng(0)
    lab = np.c_[rng.integers(0, 3, 3000), rng.integers(0, 5, 3000), np.zeros(3000, int)]
    return datasets.LabelledArrays(torch.tensor(lab, dtype=torch.float32), lab), lab


SMALL = dict(num_train=300, num_eval=200, progress=False)


def test_sampling_scores_leave_single_valued_factors_out_of_the_votes():
    """Fixing a factor every row shares fixes nothing: its votes were noise (0.71 for a perfect
    representation); evaluate said it was left out but still voted on it."""
    data, _ = _with_constant_factor()
    with pytest.warns(UserWarning, match=r"factor_vae_score: factors \['factor 2'\] take a single value and are left out"):
        fvae = metrics.factor_vae_score(lambda x: x[:, :2], data, num_variance_estimate=1000, **SMALL)
    assert fvae["eval_accuracy"] == 1.0 and fvae["train_accuracy"] == 1.0
    assert int(fvae["votes"][2].sum()) == 0
    with pytest.warns(UserWarning, match=r"beta_vae_score: factors \['factor 2'\] take a single value"):
        bvae = metrics.beta_vae_score(lambda x: x[:, :2], data, **SMALL)
    assert bvae["eval_accuracy"] == 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics.evaluate(lambda x: x[:, :2], data, metrics=["factor_vae", "beta_vae"], num_train=1000, num_test=500,
                         sampling_votes=(300, 200), progress=False)
    single = [str(w.message) for w in caught if "single value" in str(w.message)]
    assert len(single) == 1 and "evaluate" in single[0], single  # said once, by evaluate
    with pytest.raises(ValueError, match="beta_vae_score: needs at least two factors with two or more values"), \
            pytest.warns(UserWarning, match="single value"):
        metrics.beta_vae_score(lambda x: x, datasets.LabelledArrays(np.zeros((4, 1)), np.array([[0, 1], [0, 2], [0, 1], [0, 2]])))


def test_factor_vae_never_counts_a_zero_variance_latent_as_active():
    """prune_threshold=0 kept a dead latent, whose 0/0 ratio (NaN) won argmin: 0.515, not 1."""
    rng = np.random.default_rng(0)
    lab = np.c_[rng.integers(0, 3, 3000), rng.integers(0, 5, 3000)]
    data = datasets.LabelledArrays(torch.tensor(lab, dtype=torch.float32), lab)
    scores = metrics.factor_vae_score(lambda x: torch.cat([x, 0 * x[:, :1]], 1), data, prune_threshold=0.0,
                                      num_variance_estimate=1000, **SMALL)
    assert scores["eval_accuracy"] == 1.0 and scores["num_active_dims"] == 2


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda d: metrics.factor_vae_score(lambda x: x, d, prune_threshold=None), TypeError,
         "factor_vae_score: prune_threshold must be a number, got NoneType"),
        (lambda d: metrics.factor_vae_score(lambda x: x, d, prune_threshold="a"), TypeError, "prune_threshold must be a number"),
        (lambda d: metrics.factor_vae_score(lambda x: x, d, prune_threshold=-1.0), ValueError, "prune_threshold must be a finite"),
        (lambda d: metrics.beta_vae_score(lambda x: x, d, num_train=1, num_eval=5, progress=False), ValueError,
         "beta_vae_score: the num_train=1 training points all drew factor"),
        (lambda d: metrics.factor_vae_score(lambda x: x.double() * 1e100, d, num_train=5, num_eval=5,
                                            num_variance_estimate=10, progress=False),
         ValueError, r"factor_vae_score: the codes representation returned .* must lie within \+-1e\+30"),
    ],
)
def test_sampling_argument_errors_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call(IdentityData(num_factors=3))


@pytest.mark.parametrize("score", [metrics.factor_vae_score, metrics.beta_vae_score])
@pytest.mark.parametrize("codes, got", [
    # (IdentityData's observations are float64, which a plain function now gets as they are)
    (lambda x: x * 1j, "torch.complex128"),  # the imaginary part was dropped with a cast warning
    (lambda x: (x * 1j).numpy(), "a numpy array of dtype complex128"),
    (lambda x: x > 4, "torch.bool"),  # read as 0/1
])
def test_representations_must_return_real_codes(score, codes, got):
    """The array-level metrics' rule, applied to what the representation returns."""
    with pytest.raises(TypeError, match=rf"{score.__name__}: the codes representation returned for observations "
                                        rf"0\.\.\d+ must hold real numbers, got {got}"):
        score(codes, IdentityData(num_factors=3), num_train=10, num_eval=10, progress=False)


@pytest.mark.parametrize("score", [metrics.factor_vae_score, metrics.beta_vae_score])
def test_a_representation_whose_number_of_latents_changes_is_named(score):
    """Batches of different widths reached torch.cat: "Sizes of tensors must match", naming nothing."""
    calls = []

    def flaky(x):
        calls.append(1)
        return x if len(calls) % 2 else x[:, :2]

    with pytest.raises(ValueError, match=rf"{score.__name__}: representation returned 3 latents for one batch and 2 "
                                         r"for another \(observations 16\.\.31\)"):
        score(flaky, IdentityData(num_factors=3), num_train=100, num_eval=100, encode_batch_size=16, progress=False)
    calls.clear()

    def later(x):  # one width per call, but not the same in every call
        calls.append(1)
        # (its first call, on two observations, measures its memory: 4,096 a call take 96 KiB)
        return x if len(calls) < 3 else x[:, :2]

    with pytest.raises(ValueError, match=rf"{score.__name__}: representation returned 3 latents for one batch and 2"):
        score(later, IdentityData(num_factors=3), num_train=100, num_eval=100, progress=False)
