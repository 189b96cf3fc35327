"""Sampling, the grid ops' wrappers and structured latents: what an adversarial pass found
allocated without a check, written as silent infinities, or refused with another library's
message (each case failed before its fix)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import _checks

MIB = 2**20


@pytest.fixture
def small_machine(monkeypatch):
    """The memory checks see a machine of 256 MiB (half of it, 128 MiB, for one array): a call
    refused here is refused before it allocates; one let through allocates at most ~100 MiB."""
    monkeypatch.setattr(_checks, "_memory_capacity", lambda device: 256 * MIB)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_draws_count_their_float32_buffer(small_machine, dtype):
    """float16/bfloat16 draws are computed in a float32 buffer and rounded into the result: 6 bytes
    per value, not the result's 2 (a draw of 40% of the RAM passed, and needed 120% of it)."""
    half = torch.zeros(1, 1024, dtype=dtype)
    n = 24 * 1024  # 48 MiB of draws, 144 MiB with the float32 buffer
    with pytest.raises(ValueError, match=r"latentsweep.sample: the samples \[N=1, n=24576, D=1024\] needs 0.1 GiB"):
        ls.sample(half, half, n)
    with pytest.raises(ValueError, match=r"latentsweep.sample_prior: the samples \[n=24576, D=1024\] needs 0.1 GiB"):
        ls.sample_prior(n, 1024, dtype=dtype)


def test_float32_draws_still_need_only_their_own_bytes(small_machine):
    """float32 draws of the same number of values fit: 96 MiB (and 4 KiB of SD)."""
    assert ls.sample(torch.zeros(1, 1024), torch.zeros(1, 1024), 24 * 1024).shape == (1, 24 * 1024, 1024)
    assert ls.sample_prior(24 * 1024, 1024).shape == (24 * 1024, 1024)


def test_the_mean_and_sd_copies_of_wide_inputs_are_counted(small_machine):
    """sample makes the SD, and a contiguous float32 copy of a broadcast or float16 mean, of N x D
    values whatever n is: n = 0 (an empty result) of an expanded [2**25, 1] mu allocated 256 MiB
    unchecked, and one float16 draw needs 14 bytes per value, not 2."""
    wide = torch.zeros(1, 1).expand(2**25, 1)
    with pytest.raises(ValueError, match=r"sample: the samples \[N=33554432, n=0, D=1\] needs 0.2 GiB.*row_offset="):
        ls.sample(wide, wide, 0)
    half = torch.zeros(2**23, 2, dtype=torch.float16)  # 32 MiB each; 224 MiB to draw once
    with pytest.raises(ValueError, match=r"sample: the samples \[N=8388608, n=1, D=2\] needs 0.2 GiB"):
        ls.sample(half, half, 1)


@pytest.mark.parametrize("dtype, value, entry", [
    (torch.float16, 65504.0, 1.0 + 2**-10),  # a float16 u of norm 1.001 (within its 2**-5)
    (torch.float64, torch.finfo(torch.float64).max, 1.0 + 2**-52),
])
def test_codes_pushed_past_the_largest_value_by_a_longer_than_unit_direction_are_refused(dtype, value, entry):
    """The overflow bound took every |u_d| <= 1; a direction the op accepts as unit can be a
    little longer, and v * u_d rounded to inf, returned without a word."""
    anchors, direction = torch.zeros(1, 1, dtype=dtype), torch.tensor([[entry]], dtype=dtype)
    with pytest.raises(ValueError, match=rf"direction_codes: the codes exceed the largest {dtype}"):
        ls.direction_codes(anchors, direction, torch.tensor([value], dtype=dtype))
    out = torch.empty(1, 1, dtype=dtype)
    with pytest.raises(ValueError, match=r"direction_codes: the codes exceed"):
        ls.direction_codes(anchors, direction, torch.tensor([value], dtype=dtype), out=out)
    # One-hot, the largest value is a code (scanned, and finite).
    assert ls.direction_codes(anchors, torch.ones(1, 1, dtype=dtype), torch.tensor([value], dtype=dtype)).item() == value


@pytest.mark.parametrize("shape", [np.array(6), torch.tensor(6)])
def test_a_zero_dimensional_latent_shape_is_named(shape):
    """A 0-d array passed the type check and failed iterating, in numpy's or torch's words."""
    with pytest.raises(TypeError, match=r"latentsweep.Posterior: latent_shape must be a tuple of ints .*got a 0-D"):
        ls.Posterior(torch.zeros(2, 6), latent_shape=shape)
    with pytest.raises(TypeError, match=r"latentsweep.channel_directions: latent_shape must be a tuple of ints .*got a 0-D"):
        ls.channel_directions(shape)


@pytest.mark.parametrize("shape", [{2: 0, 3: 0}, {2, 3}])
def test_channel_directions_refuse_a_dict_or_a_set_as_the_other_functions_do(shape):
    """A dict or a set iterates (its keys, in no order of axes): channel_directions took {2, 3} for
    (2, 3), or for (3, 2), where Posterior and traverse refuse it."""
    with pytest.raises(TypeError, match=r"latentsweep.channel_directions: latent_shape must be a tuple of ints"):
        ls.channel_directions(shape)


def test_an_array_latent_shape_still_works():
    assert ls.channel_directions(np.array([2, 3])).vectors.shape == (2, 6)
    assert ls.channel_directions(torch.Size([2, 3])).vectors.shape == (2, 6)
    assert ls.Posterior(torch.zeros(2, 6), latent_shape=torch.tensor([2, 3])).latent_shape == (2, 3)


def test_channel_directions_name_a_device_they_cannot_use():
    """device='meta' was refused in the name of latentsweep.Directions, and device='cuda' on a
    torch without CUDA raised torch's AssertionError."""
    with pytest.raises(ValueError, match=r"latentsweep.channel_directions: device='meta' holds no values"):
        ls.channel_directions((2, 3), device="meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"latentsweep.channel_directions: device='cuda' but this torch has no CUDA"):
            ls.channel_directions((2, 3), device="cuda")


def test_flattening_a_broadcast_structured_code_that_does_not_fit_is_refused_before_copying():
    """[N, C, H, W] codes broadcast over channels flatten only as a copy: N x C x H x W values,
    allocated without a check (the allocator's error, or the process killed)."""
    broadcast = torch.zeros(1, 1, 8, 8).expand(2**30, 4, 8, 8)  # 1 TiB flat
    with pytest.raises(ValueError, match=r"latentsweep.Posterior: a flat copy of mu \[N=1073741824, D=256\] needs"):
        ls.Posterior(broadcast)
    with pytest.raises(ValueError, match=r"latentsweep.interpolate: a flat copy of start \[P=1073741824, D=256\] needs"):
        ls.interpolate(lambda z: z.flatten(1), broadcast, broadcast, progress=False)
    small = torch.arange(4.0).reshape(1, 4, 1, 1).expand(3, 4, 2, 2)  # copied: it fits
    assert torch.equal(ls.Posterior(small).mu, small.reshape(3, 16))
    assert ls.Posterior(torch.zeros(1, 4, 2, 2).expand(3, 4, 2, 2)).mu.stride() == (0, 1)  # a view


def test_a_float64_mean_at_the_largest_value_takes_a_small_sd():
    """The largest float64 plus half its ulp is inf in float64, so the reach check took any draw
    from mu = 1.797e308 as an overflow ("logvar there must be below any value"), even sd = 0;
    such draws round to mu, as float16's at 65504 do."""
    largest = torch.finfo(torch.float64).max
    mu = torch.tensor([[largest, -largest]], dtype=torch.float64)
    for logvar in (-100.0, -1000.0, 1340.0):
        z = ls.sample(mu, torch.full((1, 2), logvar, dtype=torch.float64), 500, seed=3)
        assert torch.isfinite(z).all()
    # A sd that can reach half an ulp (2**970) is refused, with the limit that keeps it below.
    with pytest.raises(ValueError, match=r"largest torch.float64 .*row 0, latent 0 .*logvar there must be <= 1340.91, got 1342$"):
        ls.sample(mu, torch.full((1, 2), 1342.0, dtype=torch.float64), 1)


ROWS = torch.arange(20.0).reshape(10, 2)


@pytest.mark.parametrize("index, rows", [
    (torch.tensor([1, 2], dtype=torch.uint64), [1, 2]),  # torch's "gt_cpu" not implemented for 'UInt64'
    (torch.tensor([0, 1, 2, 3], dtype=torch.uint64)[::2], [0, 2]),
    (torch.tensor(5, dtype=torch.uint64), [5]),  # len() of a 0-d tensor
    (np.array(5, dtype=np.uint64), [5]),  # len() of unsized object
    (np.arange(3)[::-1], [2, 1, 0]),  # torch takes no negative strides
    (np.arange(3, dtype=np.uint64)[::-1], [2, 1, 0]),
    (np.array([True, False] * 5)[::-1], [1, 3, 5, 7, 9]),
])
def test_posterior_rows_by_unsigned_and_reversed_arrays(index, rows):
    """Row indices as uint64 tensors, 0-d unsigned arrays and numpy arrays with negative strides
    raised torch's or numpy's errors; they pick rows as their int64 equivalents do."""
    assert ls.Posterior(ROWS)[index] == ls.Posterior(ROWS[rows])


@pytest.mark.parametrize("value, shape", [(2**63, (1,)), (2**64 - 1, ())])
def test_posterior_uint64_tensor_indices_beyond_int64_are_out_of_range(value, shape):
    """As a uint64 numpy array's already were (int64 would wrap them to the last rows)."""
    index = torch.tensor(value, dtype=torch.uint64).reshape(shape)
    with pytest.raises(IndexError, match=rf"latentsweep.Posterior\[...\]: index {value} is out of range"):
        ls.Posterior(ROWS)[index]


def test_the_in_place_prior_draw_refuses_a_tensor_that_requires_grad():
    """sample_prior_ had no autograd kernel: a tensor in a graph was overwritten and the
    gradient through it came out as the draws' garbage, silently."""
    ops = torch.ops.latentsweep
    leaf = torch.ones(2, 3, requires_grad=True)
    inner = leaf * 1
    with pytest.raises(ValueError, match="sample_prior_: self requires grad"):
        ops.sample_prior_(inner, 0, 0)
    (inner * inner).sum().backward()  # the graph is intact: d(x^2)/dx at 1
    assert torch.equal(leaf.grad, torch.full((2, 3), 2.0))
    with torch.no_grad():
        ops.sample_prior_(inner, 0, 0)  # allowed where nothing is recorded
    assert torch.equal(inner, ops.sample_prior(2, 3, 0, 0))


def test_the_in_place_prior_draw_bumps_the_version_of_what_it_overwrites():
    """A graph that saved the tensor notices it was overwritten, as with torch's own in-place ops."""
    leaf = torch.ones(2, 3, requires_grad=True)
    saved = torch.empty(2, 3)
    before = saved._version
    torch.ops.latentsweep.sample_prior_(saved, 0, 0)
    assert saved._version > before
    product = (leaf * saved).sum()  # saves `saved` for the backward
    torch.ops.latentsweep.sample_prior_(saved, 1, 0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        product.backward()


def test_the_in_place_prior_draw_refuses_an_expanded_tensor():
    """It raised torch's "more than one element of the written-to tensor refers to a single
    memory location"."""
    with pytest.raises(ValueError, match="sample_prior_: self has elements that share memory"):
        torch.ops.latentsweep.sample_prior_(torch.empty(1, 8).expand(5, 8), 0, 0)
    with pytest.raises(ValueError, match="share memory"):  # the shape-only (meta) kernel says it too
        torch.ops.latentsweep.sample_prior_(torch.empty(1, 8, device="meta").expand(5, 8), 0, 0)


def test_the_unit_length_message_spells_dtypes_as_torch_does():
    anchors = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"sqrt\(eps\) of torch.float64\)"):
        torch.ops.latentsweep.direction_codes(anchors, torch.tensor([[1.0, 1.0]], dtype=torch.float64),
                                              torch.zeros(1, 1, 1, dtype=torch.float64), 0, None)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_direction_codes_count_their_float32_buffer(small_machine, dtype):
    """float16/bfloat16 direction codes are computed in a float32 buffer of their size, then
    rounded: 6 bytes per value (the check counted 2, and let 40% of the RAM through as 120%)."""
    anchors = torch.zeros(1, 1024, dtype=dtype)
    unit = torch.zeros(1, 1024, dtype=dtype)
    unit[0, 0] = 1
    values = torch.zeros(1, 1, 24 * 1024, dtype=dtype)  # 48 MiB of codes, 144 MiB with the buffer
    with pytest.raises(ValueError, match=r"direction_codes: the codes \[24576, D=1024\] needs 0.1 GiB"):
        ls.direction_codes(anchors, unit, values)
    # Traversal codes are written directly: their own 2 bytes per value.
    assert ls.traversal_codes(anchors, [0], values).shape == (24 * 1024, 1024)


@pytest.mark.parametrize("dtype", [torch.uint16, torch.uint32, torch.uint64])
def test_unsigned_values_are_read_as_numbers(dtype):
    """torch has no min/max for uint16/32/64: the range check raised NotImplementedError
    ("aminmax_cpu" not implemented for 'UInt32')."""
    codes = ls.traversal_codes(torch.zeros(1, 2), [0], torch.tensor([1, 2], dtype=dtype))
    assert codes.tolist() == [[1.0, 0.0], [2.0, 0.0]]
    assert _checks.extremes(torch.tensor([5, 3, 9], dtype=dtype)) == [3, 9]


def test_uint64_extremes_beyond_int64_are_exact():
    big = torch.tensor([2**64 - 1, 2**63, 7], dtype=torch.uint64)
    assert _checks.extremes(big) == [7, 2**64 - 1]
    assert _checks.extremes(big[:2]) == [2**63, 2**64 - 1]
    assert _checks.extremes(big[2:]) == [7, 7]


def test_uint64_dims_beyond_int64_are_named_as_given():
    """dims of 2**63 as uint64 wrapped to int64's most negative number in the message."""
    with pytest.raises(ValueError, match=r"traversal_codes: dims holds 9223372036854775808, beyond int64's range"):
        ls.traversal_codes(torch.zeros(1, 2), torch.tensor([2**63], dtype=torch.uint64), torch.tensor([1.0, 2.0]))
    assert ls.traversal_codes(torch.zeros(1, 2), torch.tensor([1], dtype=torch.uint64),
                              torch.tensor([1.0])).tolist() == [[0.0, 1.0]]


def test_empty_interpolation_endpoints_say_what_is_needed():
    with pytest.raises(ValueError, match=r"P >= 1 and D >= 1, got \(0, 3\) and \(0, 3\)"):
        ls.interpolate(lambda codes: codes, torch.zeros(0, 3), torch.zeros(0, 3), progress=False)


def test_float32_unit_directions_serve_float64_anchors():
    """unit_directions' float32 vectors, cast to float64, have norms off by float32's rounding
    (1.0000000174): refused with the advice to use unit_directions, which the user had. They are
    normalised again in float64 (as traverse does); a direction that is not unit in float32 is
    still refused."""
    directions = ls.unit_directions(torch.randn(3, 5, generator=torch.Generator().manual_seed(0)))
    anchors = torch.randn(2, 5, dtype=torch.float64)
    values = torch.linspace(-1, 1, 3, dtype=torch.float64)
    in_float64 = directions.double() / torch.linalg.vector_norm(directions.double(), dim=1, keepdim=True)
    codes = ls.direction_codes(anchors, directions, values)
    torch.testing.assert_close(codes, ls.direction_codes(anchors, in_float64, values), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="directions must have unit length"):
        ls.direction_codes(anchors, directions * 1.001, values)
    one_ulp_long = torch.zeros(1, 5)
    one_ulp_long[0, 0] = 1 + 2**-23  # unit in float32, 8 float64 tolerances from 1
    assert torch.equal(ls.direction_codes(anchors, one_ulp_long, values),
                       ls.traversal_codes(anchors, [0], values.expand(1, 3)))
    with pytest.raises(ValueError, match="directions must have unit length"):  # a graph's directions: as given
        ls.direction_codes(anchors, one_ulp_long.requires_grad_(), values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_no_draws_copy_nothing(dtype):
    """The raw op made contiguous copies of mu and of exp(logvar / 2) before it looked at n: 64 TiB
    for no draws from an expanded mu of 2**40 rows (a raw allocator error)."""
    mu = torch.zeros(1, 1, dtype=dtype).expand(2**40, 16)
    samples = torch.ops.latentsweep.sample(mu, mu, 0, 0, 0, 0)
    assert samples.shape == (2**40, 0, 16) and samples.dtype == dtype


def test_dims_from_numpy_or_a_single_index_tensor_are_taken_as_an_int_list_is():
    """np.where's indices were refused ("must be a list of ints or a 1-D LongTensor, got ndarray")
    and a 0-d index tensor as "must be 1-D", while an int was taken."""
    anchors = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    decoder = torch.nn.Linear(4, 3)
    expected = ls.traverse(decoder, anchors, dims=[0, 2], steps=3, progress=False)
    for dims in (np.where(np.array([1.0, 0.0, 2.0, 0.0]) > 0)[0], np.array([0, 2], dtype=np.uint8)):
        assert torch.equal(ls.traverse(decoder, anchors, dims=dims, steps=3, progress=False).effect, expected.effect)
    assert ls.traverse(decoder, anchors, dims=torch.tensor(2), steps=3, progress=False).dims.tolist() == [2]
    codes = ls.traversal_codes(anchors, np.array([1, 3]), torch.ones(2, 2, 3))
    assert torch.equal(codes, ls.traversal_codes(anchors, [1, 3], torch.ones(2, 2, 3)))
    with pytest.raises(TypeError, match="dims must be an int, a list of ints, a 1-D integer tensor or NumPy array, "
                                        "got a NumPy array of float64"):
        ls.traverse(decoder, anchors, dims=np.array([0.5]), progress=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_a_few_rows_of_huge_broadcast_anchors_read_only_their_anchors(dtype):
    """traversal_codes and direction_codes of 5 rows made the whole anchors contiguous (cast, for
    direction_codes' float32 path) first: [10^12, 3] broadcast from one row asked the allocator
    for 12 TB. Only the anchors the rows come from are read now."""
    anchors = torch.tensor([0.5, -1.0, 2.0], dtype=dtype).expand(10**12, 3)
    values = torch.linspace(-1, 1, 3, dtype=dtype)
    start = 3 * 10**12 - 5  # anchor 10^12 - 2 from its second step, then the last anchor (3 rows each)
    small = anchors[:2].contiguous()  # the same two anchors: the same codes from row 1
    codes = ls.traversal_codes(anchors, [0], values, start=start, count=5)
    assert torch.equal(codes, ls.traversal_codes(small, [0], values, start=1, count=5))
    directions = torch.tensor([[0.6, 0.8, 0.0]], dtype=dtype)
    along = ls.direction_codes(anchors, directions, values, start=start, count=5)
    assert torch.equal(along, ls.direction_codes(small, directions, values, start=1, count=5))


def test_the_readable_values_check_names_a_numpy_array_as_not_a_tensor():
    """dense_values read value.device first: a NumPy 2 array's is the string 'cpu', and it raised
    AttributeError ('str' object has no attribute 'type')."""
    with pytest.raises(TypeError, match=r"^f: codes must be a torch\.Tensor, got ndarray \(use torch\.as_tensor\)"):
        _checks.dense_values("f", "codes", np.zeros((2, 3)))
