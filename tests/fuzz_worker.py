"""Runs random garbage through latentsweep's public functions; run by test_fuzz.py in a
subprocess, so a crash (segfault, abort) or hang shows up as a bad exit, not a dead pytest.

Each call starts from a valid one and replaces one to three arguments with garbage (wrong
types, shapes, dtypes, devices, NaN, huge or negative numbers, None, ...), so the checks deep
inside each function are reached too. Prints a JSON summary: outcomes per function, and every
exception that is not a ValueError/TypeError (with the call that raised it).

Usage: python fuzz_worker.py SEED ITERATIONS
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import sys

# An address-space cap turns "valid but enormous" requests into a clean allocation error
# instead of the machine swapping or the OOM killer striking.
LIMIT = 8 << 30
resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import latentsweep  # noqa: E402

torch.set_num_threads(2)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]
FLOATS = DTYPES[:4]
SCALARS = [
    None, 0, 1, -1, 2, 3, 7, 2**31, 2**32, 2**34 + 1, 2**47, 2**48, 2**63 - 1, 2**63, 2**64, -2**63, 10**30,
    0.0, 0.5, -0.0, 2.5, -3.0, math.nan, math.inf, -math.inf, 1e308, True, False, "3", "", "prior", b"x",
    [], [0], [1, 0], [[0]], (1, 2), [0.5], ["a"], [None], [2**70], {}, object(), np.int64(3), np.float32(1.0),
    np.array([1, 2]), np.zeros((2, 3)), complex(1, 1), slice(1), Ellipsis, torch.float32, torch.int64, "cpu", "meta",
    torch.device("meta"), "nonsense",
]


class Garbage:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def tensor(self):
        rng = self.rng
        dtype = rng.choice(DTYPES if rng.random() < 0.4 else FLOATS)
        shape = [rng.choice([0, 1, 2, 3, 4, 5]) for _ in range(rng.choice([0, 1, 1, 2, 2, 2, 3, 4]))]
        t = torch.randn(shape, dtype=torch.float64) * rng.choice([1.0, 1e3, 1e30])
        if t.numel() and rng.random() < 0.3:
            t.view(-1)[rng.randrange(t.numel())] = rng.choice([math.nan, math.inf, -math.inf, 1e300])
        t = t.to(dtype) if not dtype.is_complex else t.to(dtype)
        r = rng.random()
        if r < 0.1 and t.dim() >= 2:
            t = t.transpose(0, 1)
        elif r < 0.2 and t.dim() >= 1 and t.shape[-1] == 1:
            t = t.expand(*t.shape[:-1], rng.choice([3, 1000]))
        elif r < 0.25:
            t = t.to("meta")
        elif r < 0.3 and t.dim() >= 1:
            t = t[..., ::2]
        return t

    def value(self):
        return self.tensor() if self.rng.random() < 0.4 else self.rng.choice(SCALARS)


def valid_sample(rng):
    n_rows, dim = rng.randint(0, 4), rng.randint(0, 40)
    dtype = rng.choice(FLOATS)
    return latentsweep.sample, {
        "mu": torch.randn(n_rows, dim).to(dtype),
        "logvar": torch.randn(n_rows, dim).to(dtype),
        "n": rng.randint(0, 4),
        "seed": rng.randint(0, 2**64 - 1),
        "row_offset": rng.randint(0, 100),
        "sample_offset": rng.randint(0, 100),
    }, ("mu", "logvar", "n")


def valid_sample_prior(rng):
    return latentsweep.sample_prior, {
        "n": rng.randint(0, 5),
        "latent_size": rng.randint(0, 40),
        "seed": rng.randint(0, 100),
        "offset": rng.randint(0, 100),
        "dtype": rng.choice(FLOATS),
        "device": rng.choice([None, "cpu"]),
    }, ("n", "latent_size")


def valid_traversal_codes(rng):
    a, d, k, s = rng.randint(1, 3), rng.randint(1, 10), rng.randint(1, 3), rng.randint(1, 4)
    dtype = rng.choice(FLOATS)
    anchors = torch.randn(a, d).to(dtype)
    values = torch.randn(*rng.choice([(s,), (k, s), (a, k, s)])).to(dtype)
    total = a * k * s
    start = rng.randint(0, total)
    count = rng.choice([None, rng.randint(0, total - start)])
    kwargs = {"anchors": anchors, "dims": [rng.randrange(d) for _ in range(k)], "values": values, "start": start, "count": count}
    if count is not None and rng.random() < 0.3:
        kwargs["out"] = torch.empty(count, d, dtype=dtype)
    return latentsweep.traversal_codes, kwargs, ("anchors", "dims", "values")


def valid_traversal_values(rng):
    a, d = rng.randint(1, 3), rng.randint(1, 6)
    dtype = rng.choice(FLOATS)
    return latentsweep.traversal_values, {
        "anchors": torch.randn(a, d).to(dtype),
        "mode": rng.choice(latentsweep.MODES),
        "span": rng.choice([0.5, 2.0, 3.0]),
        "steps": rng.randint(1, 7),
        "dims": rng.choice([None, [rng.randrange(d)]]),
        "logvar": torch.randn(a, d).to(dtype),
        "prior_std": rng.choice([1.0, 0.5]),
        "reference": torch.randn(rng.randint(1, 9), d).to(dtype),
    }, ("anchors",)


MAKERS = [valid_sample, valid_sample_prior, valid_traversal_codes, valid_traversal_values]


def describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor({list(value.shape)}, {value.dtype}, {value.device}, stride={value.stride()})"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def crash():
    """For the harness's own test: a real segfault, as a buggy kernel would cause."""
    import ctypes

    ctypes.string_at(0)


def main(seed: int, iterations: int) -> None:
    if os.environ.get("LATENTSWEEP_FUZZ_CRASH"):
        crash()
    rng = random.Random(seed)
    garbage = Garbage(rng)
    outcomes: dict[str, dict[str, int]] = {}
    unexpected = []
    for _ in range(iterations):
        fn, kwargs, positional = rng.choice(MAKERS)(rng)
        for name in rng.sample(list(kwargs), min(len(kwargs), rng.choice([0, 1, 1, 1, 2, 3]))):
            kwargs[name] = garbage.value()
        if rng.random() < 0.02:
            kwargs["bogus_keyword"] = garbage.value()
        args = [kwargs.pop(p) for p in positional]
        call = f"{fn.__name__}({', '.join(map(describe, args))}, " + ", ".join(f"{k}={describe(v)}" for k, v in kwargs.items()) + ")"
        try:
            fn(*args, **kwargs)
            outcome = "ok"
        except (ValueError, TypeError) as error:
            outcome = type(error).__name__
        except Exception as error:  # noqa: BLE001 - recorded, judged by the test
            outcome = type(error).__name__
            unexpected.append({"call": call, "error": f"{type(error).__name__}: {str(error)[:300]}"})
        outcomes.setdefault(fn.__name__, {}).setdefault(outcome, 0)
        outcomes[fn.__name__][outcome] += 1
    print(json.dumps({"outcomes": outcomes, "unexpected": unexpected}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
