"""A sweep started inside a torch.autocast block decodes in the autocast dtype: it resumes in
the same block, bitwise equal to an uninterrupted one, and a resume outside it is refused with
the dtypes and the likely cause named (not only "it differs in: decoder, output_dtype")."""
import pytest
import torch

import latentsweep


class Interrupted(Exception):
    pass


def _decoder():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))


def _interrupted(decoder, out, calls: int) -> None:
    """A sweep into out whose decoder raises after ``calls`` calls (the same module: a hook)."""
    count = [0]

    def hook(module, inputs):
        count[0] += 1
        if count[0] > calls:
            raise Interrupted
    handle = decoder.register_forward_pre_hook(hook)
    try:
        with pytest.raises(Interrupted):
            latentsweep.traverse(decoder, ANCHORS, out=out, **OPTIONS)
    finally:
        handle.remove()


ANCHORS = torch.linspace(-1, 1, 12).reshape(3, 4)
OPTIONS = {"steps": 5, "batch_size": 5}


def test_resumed_in_the_same_autocast_block_equals_an_uninterrupted_sweep(tmp_path):
    decoder = _decoder()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        whole = latentsweep.traverse(decoder, ANCHORS, **OPTIONS)
        _interrupted(decoder, tmp_path / "s.zarr", 3)
        resumed = latentsweep.traverse(decoder, ANCHORS, out=tmp_path / "s.zarr", resume=True, **OPTIONS)
    assert whole.outputs.dtype == torch.bfloat16
    assert torch.equal(torch.as_tensor(resumed.outputs[:]), whole.outputs)
    assert torch.equal(resumed.effect, whole.effect)
    assert torch.equal(resumed.sensitivity, whole.sensitivity)


def test_resumed_outside_the_autocast_block_names_the_dtypes(tmp_path):
    decoder = _decoder()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _interrupted(decoder, tmp_path / "s.zarr", 3)
    with pytest.raises(ValueError, match=r"its outputs were torch\.bfloat16 and this call's are torch\.float32 "
                                         r"\(a sweep decoded under torch\.autocast resumes in the same autocast block\)"):
        latentsweep.traverse(decoder, ANCHORS, out=tmp_path / "s.zarr", resume=True, **OPTIONS)
