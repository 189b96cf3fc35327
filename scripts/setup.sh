#!/usr/bin/env bash
# Sets up a development environment from scratch: a virtual environment in .venv with torch,
# latentsweep's dependencies, and latentsweep itself built against that torch (editable).
#
#   bash scripts/setup.sh
#
# LATENTSWEEP_TORCH chooses the torch requirement (default torch==2.13.0, the CPU wheel these
# machines carry on disk). Re-running is cheap: the venv and the CMake build are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${LATENTSWEEP_VENV:-.venv}
torch_spec=${LATENTSWEEP_TORCH:-torch==2.13.0}

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "$torch_spec"

# Build tools (no build isolation: the extension must be built against the torch above).
"$py" -m pip install --quiet "scikit-build-core>=0.10"
if ! command -v cmake >/dev/null || ! cmake --version | awk 'NR==1 { split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 24)) }'; then
  "$py" -m pip install --quiet "cmake>=3.24"
fi
command -v ninja >/dev/null || "$py" -m pip install --quiet ninja
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_CUDA_COMPILER_LAUNCHER=ccache
fi

"$py" -m pip install --quiet --no-build-isolation -e ".[test]"
"$py" -c "import latentsweep; print('latentsweep', latentsweep.__version__, latentsweep.build_info())"
