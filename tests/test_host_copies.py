"""HostCopies: device tensors copied to the host in the background, after the work before them."""

from __future__ import annotations

import pytest
import torch

from latentsweep.host_copies import HostCopies


def test_cpu_tensors_and_none_are_taken_as_they_are():
    x = torch.arange(6.0)
    copies = HostCopies({"x": x, "none": None}).result()
    assert copies["x"] is x and copies["none"] is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_arrive_after_the_work_enqueued_before():
    """The copy starts after what the caller's stream had enqueued: a tensor still being written
    by a long chain of kernels arrives with its final values."""
    x = torch.zeros(4096, 4096, device="cuda")
    for _ in range(50):
        x.add_(1.0)  # enqueued, not finished, when the copies start
    values = torch.arange(10, device="cuda")
    copies = HostCopies({"x": x, "values": values, "cpu": torch.ones(2)})
    result = copies.result()
    assert result["x"].device.type == "cpu" and bool((result["x"] == 50.0).all())
    assert torch.equal(result["values"], torch.arange(10)) and torch.equal(result["cpu"], torch.ones(2))
    assert copies.result() is result
