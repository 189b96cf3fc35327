"""Reads TensorBoard event files back with TensorBoard's own reader, for the integration tests."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass
class Events:
    """Everything under one log folder: tag -> [(step, value)] in the order written."""

    scalars: dict[str, list[tuple[int, float]]]
    images: dict[str, list[tuple[int, np.ndarray]]]  # [H, W, 3] uint8
    text: dict[str, list[tuple[int, str]]]

    def last_scalars(self, prefix: str) -> dict[str, float]:
        """The latest value of each scalar under ``prefix/``, keyed without the prefix."""
        return {t[len(prefix) + 1:]: v[-1][1] for t, v in self.scalars.items() if t.startswith(prefix + "/")}


def read_events(logdir) -> Events:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = {t: [(e.step, e.value) for e in accumulator.Scalars(t)] for t in tags["scalars"]}
    images = {
        t: [(e.step, np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB"))) for e in accumulator.Images(t)]
        for t in tags["images"]
    }
    # torch's SummaryWriter.add_text stores the text under "<tag>/text_summary".
    text = {
        t.removesuffix("/text_summary"): [(e.step, e.tensor_proto.string_val[0].decode("utf-8")) for e in accumulator.Tensors(t)]
        for t in tags["tensors"]
        if accumulator.SummaryMetadata(t).plugin_data.plugin_name == "text"
    }
    return Events(scalars, images, text)


def assert_scalars_match(logged: dict, expected) -> None:
    """The scalars the integrations log equal what ``diagnose`` gives on the same data."""
    import pytest

    import latentsweep

    assert logged["active_units"] == expected.num_active
    assert logged["mean_kl"] == pytest.approx(expected.total_kl, rel=1e-6)
    collapsed = expected.flag("collapsed")
    assert logged["collapsed_latents"] == (len(collapsed.dims) if collapsed else 0)
    for d in range(len(expected.kl)):
        assert logged[f"kl/z{d}"] == pytest.approx(float(expected.kl[d]), rel=1e-6, abs=1e-9)
    for code in latentsweep.diagnosis.FLAG_CODES:
        flag = expected.flag(code)
        assert logged[f"flags/{code}"] == (len(flag.dims) if flag else 0)
