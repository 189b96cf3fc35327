"""Runs latentsweep calls in a fresh process whose CPU kernels are chosen by
LATENTSWEEP_CPU_CAPABILITY (see cpp/ops/cpu/capability.h): the kernel choice is made once per
process, so the tests compare the paths across processes instead of switching globals.

    python capability_runner.py CALLS.pt RESULTS.pt

CALLS.pt holds a list of (function name, args, kwargs) for ``latentsweep.<function>``;
RESULTS.pt receives {"results": [tensor, ...], "build_info": latentsweep.build_info()}.
"""

from __future__ import annotations

import sys

import torch

import latentsweep

DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def main(calls_path: str, results_path: str) -> None:
    calls = torch.load(calls_path, weights_only=True)
    results = []
    for name, args, kwargs in calls:
        if "dtype" in kwargs:  # dtypes travel as strings (weights_only loading)
            kwargs = {**kwargs, "dtype": DTYPES[kwargs["dtype"]]}
        results.append(getattr(latentsweep, name)(*args, **kwargs))
    torch.save({"results": results, "build_info": latentsweep.build_info()}, results_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
