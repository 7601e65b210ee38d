#!/usr/bin/env bash
# Builds and runs the flagship demo. Installs missing packages first.
# Usage: bash tools/demo.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target wse_sample_game_of_life
./build/default/samples/wse_sample_game_of_life "${1:-2}"
