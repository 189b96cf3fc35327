"""The overflow messages of clusters and principal_directions say how large the variances are,
as a number, also past float64's range (clusters said "(inf)")."""

import math
import re

import pytest
import torch

import latentsweep
from latentsweep._checks import unscaled_square_size

NUMBER = r"\((\d\.?\d*e[+-]\d+)\)"


def _codes(dtype, scale):
    return torch.randn(50, 3, dtype=dtype, generator=torch.Generator().manual_seed(0)) * scale


@pytest.mark.parametrize(
    ("call", "fn", "dtype", "scale", "power"),
    [
        (lambda codes: latentsweep.clusters(codes, k=3), "latentsweep.clusters", torch.float64, 1e300, 601),
        (lambda codes: latentsweep.clusters(codes, k=3), "latentsweep.clusters", torch.float32, 1e37, 75),
        (latentsweep.principal_directions, "latentsweep.principal_directions", torch.float64, 1e300, 600),
        (latentsweep.principal_directions, "latentsweep.principal_directions", torch.float32, 1e37, 74),
    ],
)
def test_overflowing_variances_are_said_as_a_finite_number(call, fn, dtype, scale, power):
    with pytest.raises(ValueError) as info:
        call(_codes(dtype, scale))
    message = str(info.value)
    assert message.startswith(f"{fn}: "), message
    assert "codes" in message and "overflow" in message and str(dtype) in message, message
    found = re.search(NUMBER, message)
    assert found, message
    mantissa, exponent = found.group(1).split("e")
    assert math.isfinite(float(mantissa)) and 1 <= float(mantissa) < 10, message
    assert int(exponent) == power, message


@pytest.mark.parametrize(
    ("scaled", "scale", "said"),
    [
        (3.0, 2.0**1000, "3.44e+602"),
        (torch.tensor([[1.0, 4.0]]), torch.tensor([2.0**600, 2.0**2], dtype=torch.float64), "1.72e+361"),
        (9.9996, 1.0, "1e+01"),  # rounded up to the next power of ten, not "10e+00"
        (0.0, 1.0, "0"),
    ],
)
def test_unscaled_square_size(scaled, scale, said):
    assert unscaled_square_size(scaled, scale) == said
