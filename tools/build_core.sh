#!/usr/bin/env bash
# Builds the compiled trajectory core for in-tree development: configures CMake in build/dev and
# copies _core*.so into traction/ (gitignored), so `PYTHONPATH=. python -c "import traction._core"`
# works without installing. `pip install .` builds the same module through scikit-build-core.
#
# Usage: tools/build_core.sh [python]     (default: $PYTHON, else python3 on PATH)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${1:-${PYTHON:-python3}}"
build="$root/build/dev"
generator=()
# Ninja when available, on first configure only (a build folder keeps its generator).
if [[ ! -f "$build/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$py")"
cmake --build "$build" --parallel "${TRACTION_BUILD_JOBS:-2}"
so=("$build"/_core*.so)
cp -f "${so[@]}" "$root/traction/"
echo "built ${so[*]##*/} -> traction/"
