#!/usr/bin/env bash
# Builds wse and runs the whole test suite. Installs missing packages first.
# Usage: bash tools/check.sh [default|asan|tsan]   (CMake presets, see CMakePresets.json)
set -euo pipefail
preset=${1:-default}
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset"
