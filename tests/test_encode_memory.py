"""encode keeps a heavy encoder on the CPU within the memory: it measures the encoder's memory an
input (cpu_peak) in a call on two inputs before the first batch, and encodes data it batches
itself in smaller calls (with a warning), or refuses a DataLoader's batches, where batch_size
inputs would take more than half the memory. Before, the encoder got 256 inputs in its first
call: a Stable-Diffusion VAE's encoder at 512 x 512 (~1 GB an image) asked for ~256 GB, and the
kernel killed the process (nothing raised, nothing kept). The machine here is monkeypatched to
8 GiB, and the encoder's temporaries are never written: nothing big is really used."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import latentsweep as ls
import latentsweep._checks as checks
from latentsweep import encoding
from latentsweep.cli.errors import cli_words
from latentsweep.integrations._common import _InputRecorder
from peak_memory import needs_reusing_allocator

pytestmark = needs_reusing_allocator

MiB = 1 << 20
N, FEATURES = 300, 256  # 1 KiB an input: a batch of 256 takes 256 KiB, so the encoder is measured


class Hungry:
    """An encoder taking ``per_input`` bytes of temporaries an input (allocated, never written:
    counted by the allocator, not resident), returning twice the first 3 features; it records
    the batch of each call."""

    def __init__(self, per_input: int = 60 * MiB):
        self.per_input, self.sizes = per_input, []

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        self.sizes.append(inputs.shape[0])
        scratch = torch.empty(inputs.shape[0], self.per_input // 4)
        codes = inputs[:, :3] * 2
        del scratch
        return codes


@pytest.fixture
def machine_of_8_gib(monkeypatch):
    monkeypatch.setattr(checks, "physical_memory", lambda: 8 << 30)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(N, FEATURES, generator=torch.Generator().manual_seed(0))


def no_warnings(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


@pytest.mark.parametrize("kind", ["tensor", "array", "dataset"])
def test_data_encode_batches_itself_goes_in_calls_within_the_memory(machine_of_8_gib, x, kind):
    """60 MiB an input: 256 inputs take 15 GiB; 64 (3.75 GiB) are within half of 8 GiB."""
    data = {"tensor": x, "array": x.numpy(), "dataset": TensorDataset(x)}[kind]
    encoder = Hungry()
    with pytest.warns(checks.ProcessWarning) as said:
        posterior = ls.encode(encoder, data, progress=False)
    assert encoder.sizes == [2, 64, 64, 64, 64, N - 256]  # (the measuring call, then batch 0 in four)
    assert torch.equal(posterior.mu, x[:, :3] * 2)
    (warning,) = said
    text = str(warning.message)
    assert text.startswith("latentsweep.encode: batch_size=256 (the encoder took 60.0 MiB an input on the CPU, "
                           "measured on 2) needs 15.0 GiB, more than 50% of this CPU's 8.0 GiB; encoding 64 inputs a "
                           "call instead (codes that differ at most in their last bits")
    assert text.endswith("; pass batch_size=64 or less to choose the size yourself")
    # the size it names fits: no warning
    encoder = Hungry()
    no_warnings(lambda: ls.encode(encoder, data, batch_size=64, progress=False))
    assert encoder.sizes == [2, 64, 64, 64, 64, N - 256]


def test_the_warning_in_the_command_lines_words(machine_of_8_gib, x):
    """The command line encodes --data as a tensor, in batches of --batch-size."""
    with pytest.warns(checks.ProcessWarning) as said:
        ls.encode(Hungry(), x[:100], progress=False)
    text = cli_words(str(said[0].message))
    assert text.startswith("latentsweep.encode: --batch-size 256 (100 inputs a call: all of --data; the encoder took "
                           "60.0 MiB an input on the CPU, measured on 2) needs 5.9 GiB, more than 50%")
    assert text.endswith("; pass --batch-size 64 or less to choose the size yourself")
    assert "batch_size" not in text


def test_a_dataloaders_batches_that_do_not_fit_are_refused_before_the_encoder_runs_them(machine_of_8_gib, x):
    encoder = Hungry()
    with pytest.raises(ValueError, match=r"^latentsweep\.encode: the DataLoader's batch_size=128 \(the encoder "
                                         r"took 60\.0 MiB an input on the CPU, measured on 2\) needs 7\.5 GiB, more "
                                         r"than 50% of this CPU's 8\.0 GiB; pass a DataLoader of batch_size=64 or "
                                         r"less, or its dataset \(encode batches a Dataset itself, within the "
                                         r"memory\)$"):
        ls.encode(encoder, DataLoader(TensorDataset(x), batch_size=128), progress=False)
    assert encoder.sizes == [2]
    encoder = Hungry()
    no_warnings(lambda: ls.encode(encoder, DataLoader(TensorDataset(x), batch_size=64), progress=False))
    assert encoder.sizes == [2, 64, 64, 64, 64, N - 256]


def test_an_iterables_batch_that_does_not_fit_is_refused_whichever_it_is(machine_of_8_gib, x):
    """The first batch is too small to measure on (2 inputs): the second is measured, refused."""
    encoder = Hungry()
    with pytest.raises(ValueError, match=r"^latentsweep\.encode: batch 1 of the data \(200 inputs; the encoder took "
                                         r"60\.0 MiB an input .* needs 11\.7 GiB, .*; pass batches of 64 inputs or "
                                         r"less, or the data as a tensor, an array or a Dataset"):
        ls.encode(encoder, [x[:2], x[2:202], x[202:]], progress=False)
    assert encoder.sizes == [2, 2]  # batch 0, then the measuring call


def test_small_encoders_are_called_as_before(machine_of_8_gib, x):
    """An MLP on a table's rows (under 64 KiB a batch) is not measured: its calls and codes are
    as they were. On 256 features a batch it is, in one more call of two inputs, whose codes are
    thrown away: the codes are those of its batches bit for bit (a batch split in two would
    change their last bits), and nothing is said."""
    torch.manual_seed(0)
    for features, calls in ((12, [256, N - 256]), (FEATURES, [2, 256, N - 256])):
        mlp = torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, 6))
        sizes = []
        mlp.register_forward_pre_hook(lambda _, args: sizes.append(args[0].shape[0]))
        data = x[:, :features]
        posterior = no_warnings(lambda: ls.encode(mlp, data, progress=False))
        assert sizes == calls
        with torch.no_grad():
            assert torch.equal(posterior.mu, torch.cat([mlp(batch) for batch in data.split(256)]))


def test_the_measuring_call_changes_nothing_the_encoder_computes(monkeypatch, x):
    """It gets copies of the inputs (an encoder may write into them), and the random states are
    restored after it (an encoder that samples z draws as it did without it)."""
    def sampling(inputs):
        inputs.mul_(2)  # in place
        return inputs[:, :3] + torch.randn(inputs.shape[0], 3)

    def codes(measured_from_bytes):
        monkeypatch.setattr(encoding, "MEASURED_FROM_BYTES", measured_from_bytes)
        torch.manual_seed(5)
        return ls.encode(sampling, x.clone(), progress=False).mu

    assert torch.equal(codes(64 << 10), codes(1 << 60))  # (measured, and not)


def test_the_training_integrations_keep_the_inputs_once(x):
    """The integrations' recorder keeps the first inputs the encoder sees, to draw beside the
    anchors: the measuring call's (inputs 0 and 1 again) are left out."""
    recorder = _InputRecorder(lambda inputs: inputs[:, :3], keep=4)
    ls.encode(recorder, x, progress=False)
    assert torch.equal(recorder.inputs(), x[:4])


def test_an_encoder_that_fails_on_two_inputs_runs_as_before(x):
    """One that takes one batch size only (a traced model): the measuring call's error is not
    its own, and the batches run unmeasured."""
    def fixed(inputs):
        if inputs.shape[0] == 2:
            raise RuntimeError("traced for batches of 256 and 44")
        return inputs[:, :3]

    assert torch.equal(no_warnings(lambda: ls.encode(fixed, np.asarray(x), progress=False)).mu, x[:, :3])
