"""log_traversals used inside a training loop as users write them: an autocast block, and a
snapshot that fails part-way; the loop must go on as without the call."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("tensorboard")
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from latentsweep.integrations.tensorboard import log_traversals  # noqa: E402
from training_models import TinyVAE, digits  # noqa: E402


@pytest.fixture()
def writer(tmp_path):
    with SummaryWriter(tmp_path) as w:
        yield w


def test_snapshot_inside_autocast_is_the_snapshot_outside_it(writer):
    # Called inside a bfloat16 autocast block, the snapshot ran in bfloat16: its flags and KLs
    # differed from the same model's outside it, and its values were bfloat16 (numpy refuses them).
    torch.manual_seed(0)
    model, data = TinyVAE(), digits(64)
    outside = log_traversals(writer, model.encoder, model.decoder, data, step=0, grid_anchors=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = log_traversals(writer, model.encoder, model.decoder, data, step=0, grid_anchors=0)
        assert torch.is_autocast_enabled("cpu")  # the training's autocast is left on
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert inside.result.values.dtype == torch.float32
    assert inside.scalars == outside.scalars
    assert [f.code for f in inside.diagnosis.flags] == [f.code for f in outside.diagnosis.flags]


def test_failing_decoder_leaves_the_model_training(writer):
    # The decoder's own error reaches the caller, and the loop's state is as before the call.
    model, data = TinyVAE(), digits(64)
    model.train()
    model.encoder.trunk[2].eval()  # a mixed-mode model keeps each submodule's mode
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()

    def decoder(z):
        raise RuntimeError("decoder failed")

    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="decoder failed"):
        log_traversals(writer, model.encoder, decoder, data, step=0, modules=[model])
    assert [m.training for m in model.modules()] == modes
    assert torch.is_grad_enabled()
    assert torch.equal(torch.get_rng_state(), rng)
