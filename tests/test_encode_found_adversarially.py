"""Getting data and models into the library: what an adversarial pass found encoded wrongly,
silently, or refused with another library's message (each case failed before its fix)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import latentsweep as ls


def identity(batch):
    return batch


def test_an_encoder_wrapped_in_a_lambda_runs_its_modules_in_eval_mode():
    """Only a module or a bound method was put in eval mode: a lambda around the model updated its
    BatchNorm statistics and made the codes depend on the batch size."""
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).train()
    with torch.no_grad():
        model[0].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(41, 4, generator=torch.Generator().manual_seed(0))
    whole = ls.encode(lambda b: model(b), x, batch_size=41, progress=False).mu
    pieces = ls.encode(lambda b: model(b), x, batch_size=8, progress=False).mu  # a last batch of one row
    torch.testing.assert_close(pieces, whole)  # (up to the GEMM's rounding by batch size)
    torch.testing.assert_close(whole, model.eval()(x).detach())
    model.train()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(m.training for m in model.modules())


def test_the_modules_of_a_wrapper_objects_method_are_found():
    class Wrapper:
        def __init__(self):
            self.net = torch.nn.Sequential(torch.nn.Dropout(0.9), torch.nn.Linear(4, 2)).train()

        def encode(self, batch):
            return self.net(batch)

    wrapper = Wrapper()
    x = torch.randn(6, 4)
    codes = ls.encode(wrapper.encode, x, progress=False).mu
    torch.testing.assert_close(codes, wrapper.net[1](x).detach())  # no dropout
    assert wrapper.net.training


def test_an_encoder_in_a_lambda_gets_its_models_dtype():
    """A lambda around a float16 model got float32 data ("mixed dtype")."""
    model = torch.nn.Linear(4, 2).half()
    codes = ls.encode(lambda b: model(b), np.ones((3, 4)), progress=False).mu
    assert codes.dtype == torch.float16


def test_encode_leaves_the_global_random_states_as_it_found_them():
    """An encoder that samples z (the library's own hint for (z, mu, logvar) encoders) and a
    DataLoader drawing its seed moved torch's global random stream."""
    class SamplingVAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 4)

        def forward(self, x):
            h = self.layer(x)
            mu, logvar = h[:, :2], h[:, 2:]
            return mu + torch.randn_like(mu) * (logvar / 2).exp(), mu, logvar

    vae = SamplingVAE()
    loader = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=3)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    ls.encode(types.MethodType(lambda self, b: self(b)[1:], vae), loader, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda ds: DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, num_replicas=1, rank=0)),
         r"draws in random order \(a DistributedSampler with shuffle=True\)"),
        (lambda ds: DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False)),
         r"reads one process's share of the data \(a DistributedSampler with num_replicas=2\)"),
        (lambda ds: DataLoader(ds, batch_size=4, drop_last=True), r"drops its last rows \(drop_last=True\)"),
    ],
    ids=["distributed-shuffled", "distributed-share", "drop-last"],
)
def test_loaders_that_reorder_or_lose_rows_are_refused(make, why):
    """Row i of the codes was silently not item i (a shuffled DistributedSampler), or rows were
    dropped or repeated."""
    dataset = TensorDataset(torch.arange(10.0)[:, None])
    with pytest.raises(ValueError, match=rf"^latentsweep\.encode: data is a DataLoader that {why}: row i of the codes"):
        ls.encode(identity, make(dataset), progress=False)
    ordered = DataLoader(dataset, batch_size=4, sampler=DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=False))
    assert ls.encode(identity, ordered, progress=False).mu.flatten().tolist() == list(range(10))


def test_an_iterable_dataset_of_batches_is_warned_about():
    """Batched again by encode's DataLoader, an IterableDataset that yields batches became one
    input per batch with a structured latent shape, silently."""
    x = torch.randn(40, 4)

    class Batches(IterableDataset):
        def __iter__(self):
            return iter(x.split(10))

    with pytest.warns(UserWarning, match=r"IterableDataset, batched here 4 items at a time, .* pass iter\(dataset\)"):
        ls.encode(identity, Batches(), progress=False)
    assert ls.encode(identity, iter(Batches()), progress=False).mu.shape == (40, 4)


@pytest.mark.parametrize("data", [torch.zeros(0, 1, 2, 2), np.zeros((0, 4), np.float32)])
def test_empty_data_is_said_as_such(data):
    """An empty tensor called the encoder on an empty batch, whose own error came back."""
    with pytest.raises(ValueError, match=r"^latentsweep\.encode: data is empty"):
        ls.encode(lambda b: b.view(b.shape[0], -1), data, progress=False)


def test_big_endian_arrays_are_read_as_their_values():
    data = np.arange(12, dtype=">f4").reshape(3, 4)
    codes = ls.encode(identity, data, progress=False).mu
    assert codes.tolist() == data.astype("<f4").tolist()


def test_explain_reads_big_endian_data_as_encode_does(tmp_path):
    """explain's torch.from_numpy of the data raised on a big-endian array encode had read."""
    decoder = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Unflatten(1, (1, 4, 4)))
    data = np.random.default_rng(0).random((12, 16)).astype(">f4")
    encoder = torch.nn.Linear(16, 4)
    path = ls.explain(lambda x: encoder(x).chunk(2, 1), decoder, data, out=tmp_path / "r.html", anchors=2, steps=3,
                      progress=False)
    assert path.exists()


def test_devices_that_hold_no_values_or_are_absent_are_named():
    with pytest.raises(ValueError, match=r"^latentsweep\.encode: the encoder's parameters are on the meta device"):
        ls.encode(torch.nn.Linear(4, 2).to("meta"), torch.randn(3, 4), progress=False)
    with pytest.raises(ValueError, match=r"^latentsweep\.encode: device='meta' holds no values"):
        ls.encode(identity, torch.randn(3, 4), device="meta", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^latentsweep\.encode: device='cuda' but this torch has no CUDA device"):
            ls.encode(identity, torch.randn(3, 4), device="cuda", progress=False)


def test_data_beyond_the_encoders_dtype_is_named_as_such():
    """1e6 cast to a float16 model's dtype is inf: reported as NaN/Inf codes, blaming the encoder."""
    with pytest.raises(ValueError, match=r"batch 0 of the data \(torch.float32\) holds values beyond the range of the "
                                         r"encoder's torch.float16"):
        ls.encode(torch.nn.Linear(4, 2).half(), torch.full((2, 4), 1e6), progress=False)


def test_uint64_row_indices_beyond_int64_are_out_of_range():
    """They wrapped around to -1: the last row was returned."""
    posterior = ls.Posterior(torch.arange(5.0)[:, None])
    with pytest.raises(IndexError, match=r"index 18446744073709551615 is out of range"):
        posterior[np.array([2**64 - 1], dtype=np.uint64)]
    assert posterior[np.array([3], dtype=np.uint64)].mu.tolist() == [[3.0]]


# ---- what a traversal sweeps over (a fifth pass) ---------------------------------------------


def test_zero_range_traversals_are_warned_about():
    """The sensitivity averages slope / range over the anchors: a traversal whose range rounds
    to 0 counted as 0 (a linear decoder's |W| came out halved), without a word."""
    weights = torch.tensor([[1.0, 2.0], [3.0, -4.0]], dtype=torch.float64)
    anchors = torch.tensor([[0.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0], [-100.0, -100.0]], dtype=torch.float64)  # anchor 1: SD 2e-22
    with pytest.warns(RuntimeWarning, match=r"traverse: some traversals have a range of 0 .*: z0 \(1 of 2\), "
                                            r"z1 \(1 of 2\); their sensitivity counts them as 0"):
        result = ls.traverse(lambda z: z @ weights.T, anchors, mode="posterior", logvar=logvar, steps=5,
                             progress=False)
    assert result.sensitivity.tolist() == [[0.5, 1.5], [1.0, 2.0]]  # as documented: the mean over both anchors
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ranges everywhere: no warning
        ls.traverse(lambda z: z @ weights.T, anchors, steps=5, progress=False)


def test_the_results_values_and_dims_are_its_own():
    """A caller's contiguous [A, K, S] values and int64 dims came back as the result's, changed
    when the caller changed theirs (dims and labels then disagreed)."""
    anchors = torch.randn(3, 4, dtype=torch.float64)
    values = torch.linspace(-1, 1, 5, dtype=torch.float64).repeat(3, 4, 1).contiguous()
    result = ls.traverse(lambda z: 2 * z, anchors, values=values, progress=False)
    values.zero_()
    assert result.values.abs().max() == 1
    dims = torch.tensor([2, 0])
    result = ls.traverse(lambda z: 2 * z, anchors, dims=dims, steps=3, progress=False)
    dims[0] = 3
    assert result.dims.tolist() == [2, 0] and result.labels == ("z2", "z0")


def test_float32_directions_on_float64_anchors_are_unit_length_in_float64():
    anchors = torch.zeros(1, 3, dtype=torch.float64)
    vectors = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [0.3, 0.4, 0.5]])
    result = ls.traverse(lambda z: z, anchors, directions=vectors, steps=3, progress=False)
    assert (result.directions.norm(dim=1) - 1).abs().max() < 1e-15
    ls.direction_codes(anchors, result.directions, result.values)  # the sweep's own directions pass the op's check
    coordinates = torch.einsum("aksd,kd->aks", result.outputs, result.directions)
    torch.testing.assert_close(coordinates, result.values, rtol=0, atol=1e-15)


def test_decoder_outputs_that_are_not_dense_or_hold_none_are_read_by_one_rule():
    anchors = torch.randn(2, 3)
    with pytest.raises(TypeError, match=r"^latentsweep\.traverse: the decoder returned a sparse_coo tensor; it must "
                                        r"return a dense one"):
        ls.traverse(lambda z: z.to_sparse(), anchors, steps=3, progress=False)
    # a dict's "sample" holding None is passed over, as an output object's attribute is
    result = ls.traverse(lambda z: {"sample": None, "recon": 2 * z}, anchors, steps=3, progress=False)
    assert result.outputs.shape == (2, 3, 3, 3)


def test_interpolating_endpoints_that_require_grad_warns_nothing():
    import warnings

    start, end = torch.randn(2, 3, requires_grad=True), torch.randn(2, 3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ls.interpolate(lambda z: z, start, end, steps=4, progress=False)


def test_an_empirical_reference_near_the_largest_float64_is_taken():
    """The quantiles' interpolation formed high - low, which overflowed: the reference was
    refused as having quantiles beyond float64's range, which they were not."""
    anchors = torch.zeros(2, 4, dtype=torch.float64)
    reference = torch.tensor([[-1.7e308] * 4, [1.7e308] * 4], dtype=torch.float64)
    result = ls.traverse(lambda z: z * 1e-300, anchors, mode="empirical", reference=reference, steps=5,
                         progress=False)
    values = result.values[0, 0]
    assert bool(torch.isfinite(values).all()) and values[2] == 0 and values[0] == -values[4]
    torch.testing.assert_close(values[4], torch.tensor(0.9545 * 1.7e308, dtype=torch.float64), rtol=1e-3, atol=0)


def test_a_batch_size_word_other_than_auto_is_named():
    with pytest.raises(ValueError, match=r"^latentsweep\.traverse: batch_size must be an int >= 1 or 'auto', got 'AUTO'"):
        ls.traverse(lambda z: z, torch.zeros(2, 3), batch_size="AUTO", steps=3, progress=False)


@pytest.mark.parametrize("form", ["object", "list", "dict", "nested"])
def test_modules_held_by_a_plain_object_or_container_a_lambda_reads_run_in_eval_mode(form):
    """Only modules the lambda named directly were found: ``lambda z: run.net(z)`` with ``run`` a
    plain object (or ``nets[0]``, ``nets["vae"]``) ran with dropout on (random codes) and left
    BatchNorm's statistics moved."""
    net = torch.nn.Sequential(torch.nn.Dropout(0.9), torch.nn.Linear(4, 2)).train()
    run = types.SimpleNamespace(net=net)
    nets_list, nets_dict = [net], {"vae": net}
    outer = types.SimpleNamespace(inner=types.SimpleNamespace(parts=[net]))
    encoder = {"object": lambda b: run.net(b), "list": lambda b: nets_list[0](b),
               "dict": lambda b: nets_dict["vae"](b), "nested": lambda b: outer.inner.parts[0](b)}[form]
    x = torch.randn(6, 4)
    codes = ls.encode(encoder, x, progress=False).mu
    torch.testing.assert_close(codes, net[1](x).detach())  # no dropout
    assert all(m.training for m in net.modules())


def test_the_search_for_modules_is_bounded_and_skips_python_modules():
    """A lambda reading a large global list or a Python module (torch itself) is not walked
    through."""
    from latentsweep import _modules

    net = torch.nn.Linear(4, 2)
    rows = [object()] * 50_000 + [net]  # past the bound: not found, and quickly
    assert _modules.modules_behind(lambda b: rows[-1](b)) == []
    nested = [list(range(100)) for _ in range(1000)] + [[net]]  # 10^5 values queued: the bound
    assert _modules.modules_behind(lambda b: nested[-1][0](b)) == []
    assert _modules.modules_behind(lambda b: torch.nn.functional.relu(net(b))) == [net]


def test_a_lambda_reading_a_proxy_object_is_not_broken_by_the_search_for_modules():
    """A global whose attribute access raises (a lazy or remote proxy, such as an experiment
    tracker's run object) must not make encode fail while looking for modules."""
    class Proxy:
        def __getattribute__(self, name):
            if name == "__dict__":
                raise RuntimeError("not connected")
            return object.__getattribute__(self, name)

    tracker = Proxy()
    net = torch.nn.Linear(4, 2)
    x = torch.randn(3, 4)

    def encoder(b):
        _ = tracker  # (read, as a logging call would)
        return net(b)

    torch.testing.assert_close(ls.encode(encoder, x, progress=False).mu, net(x).detach())
