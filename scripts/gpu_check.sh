#!/usr/bin/env bash
# The CUDA checks, for a machine with an NVIDIA GPU, nvcc and a CUDA build of torch (CI has no
# GPU, so these run by hand when one is available):
#
#     bash scripts/gpu_check.sh [PYTHON]        # logs in $OUT, default ./gpu-check
#
# builds latentsweep with its CUDA kernels (TORCH_CUDA_ARCH_LIST picks the GPU architectures,
# else torch's own detection), runs the sweep engine's CUDA tests, the sweep benchmark, a profile
# of one GPU sweep (profile-sweep.log: where the engine's time goes), the statistics benchmark,
# the CUDA torchrun test, every test that touches CUDA, the grid ops' benchmark, then the whole suite. Each
# step has a time limit and the whole run a deadline (GPU_CHECK_SECONDS, default 560),
# so a step that hangs leaves the others their time and every log comes back. GPU_CHECK_SKIP names
# steps to leave out (e.g. "bench-core all-tests"), for a lease too short for them all.
# A machine without a network gets the dependencies its torch image lacks as wheels in ./.whl
# (ignored by git), fetched beforehand where there is one:
#     pip download zarr numcodecs donfig google-crc32c --only-binary=:all: --no-deps \
#         --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl
set -uo pipefail
py=${1:-python3}
out=${OUT:-gpu-check}
deadline=${GPU_CHECK_SECONDS:-560}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() {  # step NAME LIMIT COMMAND...: runs COMMAND into $out/NAME.log, within LIMIT and the deadline
  local name=$1 limit=$2 start=$SECONDS left=$((deadline - SECONDS))
  shift 2
  if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then echo "== $name: skipped (GPU_CHECK_SKIP)"; return 0; fi
  ((limit > left)) && limit=$left
  if ((limit < 10)); then echo "== $name: skipped, deadline reached"; return 1; fi
  echo "== $name (limit ${limit} s)"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  tail -n "${TAIL_LINES:-30}" "$out/$name.log"
  return $rc
}

nvidia-smi -L
if [[ -d .whl ]] && ! "$py" -c "import zarr" 2>/dev/null; then  # (only where they are missing)
    "$py" -m pip install -q --no-index --no-deps .whl/*.whl || exit 1
fi
"$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
step build 300 env LATENTSWEEP_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$py" -m pip install --no-build-isolation --no-deps -v -e . || exit 1
"$py" -c "import latentsweep; print(latentsweep.build_info())" || exit 1
# pytest-xdist, where installed, runs the tests in parallel (not a dependency of latentsweep)
workers() { "$py" -c "import xdist" 2>/dev/null && echo "-n $1"; }
# First the quick, serial checks of the sweep engine on CUDA, then the sweep's numbers, then breadth.
step sweep-tests 90 "$py" -m pytest -q -p no:cacheprovider -rfEs -k "cuda or executor" tests/test_sweep.py tests/test_host_copies.py
step bench-sweep 120 "$py" benchmarks/bench_sweep.py --device cuda --repeats 3
TAIL_LINES=0 step profile-sweep 60 "$py" benchmarks/profile_sweep.py --device cuda --trace "$out"
step bench-statistics 60 "$py" benchmarks/bench_statistics.py --device cuda --repeats 7
# CUDA ranks, several times over (GPU_CHECK_TORCHRUN_REPEATS, default 3; ~50 s each on an H100):
# the first version of the CUDA statistics failed this once (2026-11-26, cause not found; the
# final version passed it once on an H200, then twice in a row on an H100).
step torchrun-cuda 160 bash -c 'for i in $(seq "$1"); do "$0" -m pytest -q -p no:cacheprovider tests/test_sweep_distributed.py -k cuda || exit 1; done' \
  "$py" "${GPU_CHECK_TORCHRUN_REPEATS:-3}"
# -v: one line per test as it ends, so a step stopped at its limit still says what passed (the
# H100 run of 2026-11-26 printed every test's dot, then no summary before its limit).
TAIL_LINES=5 step cuda-tests 150 "$py" -m pytest -v -p no:cacheprovider $(workers 8) -rfEs -k "cuda or gpu or graph" tests
[[ -f "$out/cuda-tests.log" ]] && grep -E "(FAILED|ERROR) " "$out/cuda-tests.log" | sort -u | head -30
step bench-core 90 "$py" benchmarks/bench_core.py --device cuda --repeats 5
# One line per test as it ends (-rA would wait for the summary): a suite stopped by the deadline
# still names what failed (the H200 run of 2026-11-26 lost its summary that way).
TAIL_LINES=0 step all-tests 300 "$py" -m pytest -v -p no:cacheprovider $(workers 12) -rfE tests
if [[ -f "$out/all-tests.log" ]]; then
  grep -E "(FAILED|ERROR) " "$out/all-tests.log" | sort -u | head -50
  tail -n 1 "$out/all-tests.log"
fi
# The device machine's tool returns at most 8 files from $OUT (the H100 run of 2026-11-26 lost a
# trace that way): more than that go into one archive.
shopt -s nullglob
files=("$out"/*.log "$out"/*.json)
if ((${#files[@]} > 8)); then
  tar -czf "$out/gpu-check.tar.gz" -C "$out" "${files[@]#"$out"/}" && rm -f "${files[@]}"
  echo "== logs and traces archived in $out/gpu-check.tar.gz"
fi
