#!/usr/bin/env bash
# Installs the Debian 12 packages wse needs to build and test, if any are missing.
# Usage: bash tools/install-deps.sh [extra-package ...]
set -euo pipefail
# python3-torch: the independent PyTorch reference of tests/test_torch_reference.cpp.
packages=(g++ cmake ninja-build libhwy-dev doctest-dev pkgconf python3 libopenblas-dev python3-torch "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "wse: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
