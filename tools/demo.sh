#!/usr/bin/env bash
# Builds and runs the flagship demo: wse_sample_gpt_train trains a tiny GPT-Neo (or, with
# "j", GPT-J) on the Gettysburg Address with weight streaming on the emulated fabric (about
# a minute on 2 cores). "life" runs the first demo instead (Conway's Game of Life, one cell per
# PE). Installs missing packages first. Extra arguments go to the sample (see its --help).
# Usage: bash tools/demo.sh [neo|j|life] [sample options...]
set -euo pipefail
cd "$(dirname "$0")/.."
choice=${1:-neo}
[ $# -gt 0 ] && shift
case "$choice" in
  life|neo|j|gpt2|neox) ;;
  *) echo "usage: bash tools/demo.sh [neo|j|life] [sample options...]" >&2; exit 2 ;;
esac
bash tools/install-deps.sh
cmake --preset default >/dev/null
case "$choice" in
  life)
    cmake --build --preset default --target wse_sample_game_of_life
    ./build/default/samples/wse_sample_game_of_life "${1:-2}" ;;
  neo|j|gpt2|neox)
    cmake --build --preset default --target wse_sample_gpt_train
    ./build/default/samples/wse_sample_gpt_train --family "$choice" "$@" ;;
esac
