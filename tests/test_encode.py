"""latentsweep.encode: every encoder-output form, every data form, batching, and bad input."""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import latentsweep as ls

N, IN, D = 103, 5, 3  # N is not a multiple of the batch sizes used below


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(N, IN, generator=torch.Generator().manual_seed(0))


class Heads(torch.nn.Module):
    """A tiny VAE encoder whose output form is chosen by ``form``."""

    def __init__(self, form: str = "tuple"):
        super().__init__()
        torch.manual_seed(1)
        self.mean = torch.nn.Linear(IN, D)
        self.logvar = torch.nn.Linear(IN, D)
        self.form = form

    def forward(self, batch):
        mu, logvar = self.mean(batch), self.logvar(batch)
        sd = torch.exp(0.5 * logvar)
        return {
            "tuple": lambda: (mu, logvar),
            "list": lambda: [mu, logvar],
            "dict_mu_logvar": lambda: {"mu": mu, "logvar": logvar},
            "dict_mean_log_var": lambda: {"mean": mu, "log_var": logvar},
            "dict_capitalised": lambda: {"Mu": mu, "LogVar": logvar, "z": mu + sd},
            "dict_std": lambda: {"loc": mu, "scale": sd},
            "dict_log_std": lambda: {"z_mean": mu, "log_std": 0.5 * logvar},
            "dict_var": lambda: {"mu": mu, "var": sd * sd},
            "namedtuple": lambda: Out(logvar=logvar, mu=mu),
            "normal": lambda: torch.distributions.Normal(mu, sd),
            "independent": lambda: torch.distributions.Independent(torch.distributions.Normal(mu, sd), 1),
            "multivariate_normal": lambda: torch.distributions.MultivariateNormal(mu, scale_tril=torch.diag_embed(sd)),
            "low_rank": lambda: torch.distributions.LowRankMultivariateNormal(mu, torch.zeros(*mu.shape, 2), sd * sd),
            "codes": lambda: mu,
        }[self.form]()


Out = collections.namedtuple("Out", ["logvar", "mu"])  # field order differs from (mu, logvar)


def reference(x: torch.Tensor):
    model = Heads()
    with torch.no_grad():
        return model.mean(x), model.logvar(x)


FORMS = [
    "tuple", "list", "dict_mu_logvar", "dict_mean_log_var", "dict_capitalised", "dict_std",
    "dict_log_std", "dict_var", "namedtuple", "normal", "independent", "multivariate_normal", "low_rank",
]


@pytest.mark.parametrize("form", FORMS)
def test_every_variational_output_form(x, form):
    mu, logvar = reference(x)
    posterior = ls.encode(Heads(form), x, batch_size=16)
    assert isinstance(posterior, ls.Posterior)
    torch.testing.assert_close(posterior.mu, mu)
    torch.testing.assert_close(posterior.logvar, logvar, atol=1e-5, rtol=1e-5)


def test_single_tensor_is_a_plain_autoencoder(x):
    mu, _ = reference(x)
    posterior = ls.encode(Heads("codes"), x, batch_size=16)
    assert posterior.logvar is None and not posterior.is_variational
    torch.testing.assert_close(posterior.mu, mu)


def test_dict_with_only_a_mean_is_a_plain_autoencoder(x):
    posterior = ls.encode(lambda b: {"mu": b[:, :2]}, x)
    assert posterior.logvar is None
    torch.testing.assert_close(posterior.mu, x[:, :2])


@pytest.mark.parametrize(
    "make_data",
    [
        pytest.param(lambda x: x, id="tensor"),
        pytest.param(lambda x: x.numpy().astype(np.float64), id="numpy-float64"),
        pytest.param(lambda x: np.asfortranarray(x.numpy()), id="numpy-fortran"),
        pytest.param(lambda x: DataLoader(TensorDataset(x, torch.zeros(N)), batch_size=10), id="loader-tuples"),
        pytest.param(lambda x: DataLoader([{"x": r, "label": 0} for r in x], batch_size=7), id="loader-dicts"),
        pytest.param(lambda x: TensorDataset(x), id="dataset"),
        pytest.param(lambda x: [x[:50].numpy(), x[50:].numpy()], id="list-of-numpy-batches"),
        pytest.param(lambda x: iter(x.split(9)), id="generator"),
    ],
)
def test_data_forms_give_the_same_posterior(x, make_data):
    mu, logvar = reference(x)
    posterior = ls.encode(Heads(), make_data(x), batch_size=32)
    assert posterior.mu.dtype == torch.float32  # numpy float64 is cast to the encoder's dtype
    torch.testing.assert_close(posterior.mu, mu)
    torch.testing.assert_close(posterior.logvar, logvar)


@pytest.mark.parametrize("batch_size", [1, 10, 64, N, 1000])
def test_batch_boundaries_match_one_big_batch(x, batch_size):
    whole = ls.encode(Heads(), x, batch_size=N)
    batched = ls.encode(Heads(), x, batch_size=batch_size)
    assert batched.mu.shape == (N, D)
    torch.testing.assert_close(batched.mu, whole.mu, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(batched.logvar, whole.logvar, atol=1e-6, rtol=1e-6)


def test_an_encoder_returning_views_of_one_buffer_gives_the_same_posterior(x):
    """Each batch's outputs are copied at once: an encoder may write them into one buffer that
    its next call overwrites (kept as views, every batch read as the last one)."""
    buffer = torch.empty(64, 2 * D)

    def into_one_buffer(batch: torch.Tensor):
        mu, logvar = reference(batch)
        out = buffer[: batch.shape[0]]
        out[:, :D], out[:, D:] = mu, logvar
        return out[:, :D], out[:, D:]

    posterior = ls.encode(into_one_buffer, x, batch_size=10)
    mu, logvar = reference(x)
    torch.testing.assert_close(posterior.mu, mu)
    torch.testing.assert_close(posterior.logvar, logvar)


def test_modules_run_in_eval_mode_and_their_modes_are_restored(x):
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(IN, D), torch.nn.BatchNorm1d(D))
    model.train()
    model[2].eval()  # a deliberately mixed state must survive
    running_mean = model[2].running_mean.clone()
    first = ls.encode(model, x, batch_size=8)
    second = ls.encode(model, x, batch_size=N)
    torch.testing.assert_close(first.mu, second.mu)  # no dropout noise, no batch statistics
    assert [m.training for m in model] == [True, True, False]
    assert torch.equal(model[2].running_mean, running_mean)


def test_result_is_an_ordinary_cpu_tensor(x):
    posterior = ls.encode(Heads(), x, device="cpu")
    assert posterior.mu.device.type == "cpu"
    assert not posterior.mu.is_inference()
    posterior.mu.requires_grad_()  # an inference tensor would refuse this
    posterior.logvar.add_(1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_go_to_the_encoders_device_and_results_come_back(x):
    model = Heads().cuda()
    seen = []
    posterior = ls.encode(lambda b: (seen.append(b.device), model(b))[1], x, device="cuda")
    assert seen[0].type == "cuda" and posterior.mu.device.type == "cpu"
    default = ls.encode(model, x)
    torch.testing.assert_close(default.mu, posterior.mu)


def test_progress_bar_only_when_asked(x, capsys):
    ls.encode(Heads(), x, progress=True)
    assert "encode" in capsys.readouterr().err
    ls.encode(Heads(), x, progress=False)
    ls.encode(Heads(), x)  # stderr is not a terminal under pytest's capture
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": -3}, ValueError, "batch_size"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"progress": "yes"}, TypeError, "progress"),
        ({"device": "nonsense"}, ValueError, "device must be a torch.device"),
        ({"device": 3.5}, TypeError, "device must be a torch.device"),
    ],
)
def test_bad_arguments(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        ls.encode(Heads(), x, **kwargs)


@pytest.mark.parametrize(
    "data, error, match",
    [
        (None, TypeError, "data must be a tensor"),
        ("images.npy", TypeError, "data must be a tensor"),
        ({"x": torch.zeros(3, IN)}, TypeError, "data must be a tensor"),
        (torch.tensor(1.0), ValueError, "leading batch dimension"),
        (torch.zeros(0, IN), ValueError, "empty"),
        ([], ValueError, "empty"),
        (np.array([object()] * 4), TypeError, "numpy array of object"),
        ([[1.0, 2.0]], TypeError, "batch 0 must be"),
        ([{"label": torch.zeros(2)}], TypeError, "dict without an input key"),
        ([()], TypeError, "batch 0 is an empty tuple"),
    ],
)
def test_bad_data(data, error, match):
    with pytest.raises(error, match=match):
        ls.encode(Heads(), data)


def test_encoder_must_be_callable(x):
    with pytest.raises(TypeError, match="encoder must be callable"):
        ls.encode("not a model", x)


@pytest.mark.parametrize(
    "encoder, error, match",
    [
        (lambda b: "codes", TypeError, "returned a str for batch 0"),
        (lambda b: (b,), TypeError, "tuple of 1 items"),
        (lambda b: (b, b, b), TypeError, r"self\(x\)\[1:\], model\)"),
        (lambda b: {"z": b}, TypeError, "keys \\['z'\\]"),
        (lambda b: {"mu": b, "lv": b}, TypeError, "mean but no log-variance"),
        (lambda b: {"mu": b, "log_std": 1.0}, TypeError, "log SD for batch 0 must be a tensor"),
        (lambda b: (b, None), TypeError, "tuple of 2 items"),
        (lambda b: b.long(), TypeError, "must be floating point"),
        (lambda b: b.flatten(), ValueError, r"must be \[B=16, D\]"),
        (lambda b: b[None], ValueError, r"must be \[B=16, D\] \(or \[B=16, \*latent_shape\]\), got shape \(1, 16, 5\)"),
        (lambda b: (b[:, :, None], b), ValueError, r"logvar for batch 0 has shape \(16, 5\), but mu has \(16, 5, 1\)"),
        (lambda b: b[:3], ValueError, "got shape \\(3, 5\\)"),
        (lambda b: (b, b[:, :2]), ValueError, "logvar for batch 0 has shape"),
    ],
)
def test_bad_encoder_outputs(x, encoder, error, match):
    with pytest.raises(error, match=match):
        ls.encode(encoder, x, batch_size=16)


def test_inconsistent_shapes_across_batches(x):
    sizes = iter([3, 3, 4])
    with pytest.raises(ValueError, match="D=4 latents for batch 2 but D=3 for batch 0"):
        ls.encode(lambda b: torch.zeros(b.shape[0], next(sizes)), x, batch_size=40)
    calls = iter([True, False])
    with pytest.raises(ValueError, match="no logvar for batch 1 but a logvar for batch 0"):
        ls.encode(lambda b: (b, b) if next(calls) else b, x, batch_size=60)


@pytest.mark.parametrize("part, value", [("mu", float("nan")), ("logvar", float("inf"))])
def test_nonfinite_outputs_name_the_batch_and_rows(x, part, value):
    def encoder(batch):
        mu, logvar = batch.clone(), batch.clone()
        if torch.equal(batch, x[32:48]):  # the third batch
            (mu if part == "mu" else logvar)[[1, 5], 2] = value
        return mu, logvar

    with pytest.raises(ValueError, match=rf"{part} has NaN/Inf for batch 2, in 2 row\(s\) of the data: 33, 37"):
        ls.encode(encoder, x, batch_size=16)


@pytest.mark.parametrize("correlated", [
    lambda mu: torch.distributions.MultivariateNormal(mu, scale_tril=torch.eye(mu.shape[1]) + torch.tril(
        torch.full((mu.shape[1], mu.shape[1]), 0.5), diagonal=-1)),
    lambda mu: torch.distributions.LowRankMultivariateNormal(mu, torch.ones(*mu.shape, 1), torch.ones_like(mu)),
])
def test_a_multivariate_normal_with_correlated_latents_is_refused_naming_its_marginals(x, correlated):
    """Its diagonal alone would be another posterior than the encoder's; a diagonal one (above)
    is read. (Before, any MultivariateNormal was refused as an unknown output.)"""
    with pytest.raises(ValueError, match=r"^latentsweep\.encode: the encoder returned a \w*MultivariateNormal for batch 0 "
                                         r"whose covariance is not diagonal \(correlated latents\).*"
                                         r"return \{'mu': d\.mean, 'var': d\.variance\}$"):
        ls.encode(lambda b: correlated(b[:, :3]), x)


def test_normal_with_zero_scale_is_reported_as_nonfinite(x):
    encoder = lambda b: torch.distributions.Normal(b, torch.zeros_like(b), validate_args=False)  # noqa: E731
    with pytest.raises(ValueError, match="logvar has NaN/Inf for batch 0"):
        ls.encode(encoder, x)


# --- the Posterior it returns ---------------------------------------------------------------------


def posterior_pair(seed: int = 3) -> ls.Posterior:
    g = torch.Generator().manual_seed(seed)
    return ls.Posterior(torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g))


@pytest.mark.parametrize(
    "index, rows",
    [(slice(2, 5), [2, 3, 4]), (3, [3]), (-1, [9]), ([0, 7], [0, 7]), (np.array([1, 2]), [1, 2]),
     (torch.tensor([5]), [5]), (torch.arange(10) > 6, [7, 8, 9]), ([], []), (range(2), [0, 1]),
     (torch.tensor([1, 2], dtype=torch.uint8), [1, 2]), (np.array([4, 0], dtype=np.uint8), [4, 0])],  # uint8: rows, not a mask
)
def test_a_posterior_indexes_its_inputs(index, rows):
    posterior = posterior_pair()
    picked = posterior[index]
    assert torch.equal(picked.mu, posterior.mu[rows]) and torch.equal(picked.logvar, posterior.logvar[rows])


@pytest.mark.parametrize(
    "index, error",
    [((slice(None), 0), TypeError), ((0, 1), TypeError), ([slice(None), 0], TypeError), (None, TypeError),
     (Ellipsis, TypeError), (True, TypeError), ("0", TypeError), (torch.ones(10, 4, dtype=torch.bool), ValueError),
     ([[0, 1]], ValueError), (np.array([0.7, 1.9]), TypeError), (torch.tensor([1.0]), TypeError),
     (torch.tensor(True), TypeError), (np.array(True), TypeError)],
)
def test_a_posterior_refuses_indices_that_reach_the_latents(index, error):
    """posterior[:, 0] indexed mu[:, 0] and made 10 inputs into one input of 10 latents."""
    with pytest.raises(error, match=r"Posterior\[...\]: .*indexes its inputs \(rows\) only.*posterior.mu\[:, k\]"):
        posterior_pair()[index]


def test_posteriors_compare_their_tensors_exactly():
    posterior = posterior_pair()
    same = ls.Posterior(posterior.mu.clone(), posterior.logvar.clone())
    assert posterior == same and not posterior != same and same in [posterior]
    assert posterior != posterior_pair(seed=4)
    assert posterior != ls.Posterior(posterior.mu)  # no logvar
    assert ls.Posterior(posterior.mu) == ls.Posterior(posterior.mu.clone())
    assert posterior != posterior.to(torch.float64)  # the same values in another dtype
    assert posterior != posterior.mu and posterior != "posterior"
    with pytest.raises(TypeError, match="unhashable"):
        hash(posterior)


@pytest.mark.parametrize("make_loader", [
    lambda ds: DataLoader(ds, batch_size=8, shuffle=True),
    lambda ds: DataLoader(ds, batch_size=8, sampler=torch.utils.data.SubsetRandomSampler(range(len(ds)))),
    lambda ds: DataLoader(ds, batch_sampler=torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(ds), batch_size=8, drop_last=False)),
])
def test_a_loader_that_shuffles_is_refused(x, make_loader):
    """Its codes came back in the loader's random order: row i was not item i of the dataset,
    and labels taken from the dataset no longer matched their codes."""
    loader = make_loader(TensorDataset(x))
    with pytest.raises(ValueError, match="encode: data is a DataLoader that draws in random order"):
        ls.encode(Heads(), loader, progress=False)
    in_order = ls.encode(Heads(), DataLoader(TensorDataset(x), batch_size=8, shuffle=False), progress=False)
    torch.testing.assert_close(in_order.mu, ls.encode(Heads(), x, batch_size=8, progress=False).mu, rtol=0, atol=0)


def test_the_advice_for_a_three_output_encoder_keeps_it_in_eval_mode(x):
    """The advice was a lambda, whose module encode cannot find: dropout and batch norm ran in
    training mode and the batch norm's running statistics were overwritten."""
    import types

    class ThreeOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.drop = torch.nn.BatchNorm1d(x.shape[1]), torch.nn.Dropout(0.5)
            self.head = torch.nn.Linear(x.shape[1], 4)

        def forward(self, inputs):
            mu, logvar = self.head(self.drop(self.norm(inputs))).chunk(2, dim=1)
            return mu + torch.randn_like(mu), mu, logvar

    model = ThreeOutputs().train()
    with pytest.raises(TypeError, match=r"types\.MethodType\(lambda self, x: self\(x\)\[1:\], model\)"):
        ls.encode(model, x, progress=False)
    statistics = model.norm.running_mean.clone()
    advised = types.MethodType(lambda self, x: self(x)[1:], model)
    codes = ls.encode(advised, x, batch_size=7, progress=False)
    assert model.training and torch.equal(model.norm.running_mean, statistics)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(codes.mu, model(x)[1])


def test_a_parameterless_encoder_gets_numpy_data_in_its_dtype_as_it_gets_tensors(x):
    """numpy float64 was cast to torch's default dtype for a callable without parameters
    (tensors were not): a lambda around a float64 module failed, an identity lost digits."""
    model = Heads().double()
    data = x.double().numpy()
    from_numpy = ls.encode(lambda batch: model(batch), data, progress=False)
    from_tensor = ls.encode(lambda batch: model(batch), torch.from_numpy(data), progress=False)
    assert from_numpy.mu.dtype == torch.float64
    assert torch.equal(from_numpy.mu, from_tensor.mu)


def test_a_read_only_memory_map_is_encoded_without_a_warning(x, tmp_path):
    np.save(tmp_path / "x.npy", x.numpy())
    data = np.load(tmp_path / "x.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codes = ls.encode(Heads(), data, progress=False)
    assert torch.equal(codes.mu, ls.encode(Heads(), x, progress=False).mu)


def test_batches_of_different_dtypes_are_refused(x):
    calls = []

    def encoder(batch):
        calls.append(1)
        mu = batch[:, :D] if len(calls) == 1 else batch[:, :D].double()
        return mu, torch.zeros_like(mu)

    with pytest.raises(ValueError, match="returned mu of torch.float64 for batch 1 but of torch.float32 for batch 0"):
        ls.encode(encoder, x, batch_size=50, progress=False)


def test_unbatched_inputs_get_a_hint(x):
    with pytest.raises(ValueError, match="was the batch one unbatched input"):
        ls.encode(lambda b: (b[:D], b[:D]), DataLoader(TensorDataset(x), batch_size=None), progress=False)


def test_an_encoder_returning_a_posterior_gives_its_means_and_log_variances():
    # (the library's own result was refused: "the encoder returned a Posterior")
    torch.manual_seed(0)
    mu, logvar = torch.randn(6, 2, 3), torch.randn(6, 2, 3)
    direct = ls.encode(lambda x: (mu[: len(x)], logvar[: len(x)]), torch.zeros(6, 1), batch_size=4)
    wrapped = ls.encode(lambda x: ls.Posterior(mu[: len(x)], logvar[: len(x)]), torch.zeros(6, 1), batch_size=4)
    assert wrapped.latent_shape == direct.latent_shape == (2, 3)
    assert torch.equal(wrapped.mu, direct.mu) and torch.equal(wrapped.logvar, direct.logvar)


@pytest.mark.parametrize("encoder, data, hint", [
    (torch.nn.Linear(10, 4), torch.zeros(20, 12),
     "; its first Linear takes 10 inputs, but each input holds 12 values: is data what the model was trained on"),
    (torch.nn.Sequential(torch.nn.Linear(64, 4)), torch.zeros(20, 1, 8, 8),
     "; its first Linear takes 64 inputs, each input's 64 values in shape (1, 8, 8): pass them flat (data.flatten(1))"),
    (torch.nn.Conv2d(3, 4, 3), torch.zeros(20, 1, 8, 8), ""),
])
def test_an_encoder_failing_on_the_inputs_shape_gets_a_note_of_what_it_was_given(encoder, data, hint):
    """torch said only "mat1 and mat2 shapes cannot be multiplied (20x12 and 10x4)", naming no
    argument; its error is kept and a note says what the encoder was given."""
    with pytest.raises(RuntimeError) as raised:
        ls.encode(encoder, data, batch_size=16, progress=False)
    shape = ", ".join(map(str, (16, *data.shape[1:])))
    (note,) = raised.value.__notes__
    given = f"latentsweep.encode: the encoder raised this on batch 0 of the data, given inputs [{shape}] float32"
    assert note.startswith(given + hint), note
    assert hint or note == given
