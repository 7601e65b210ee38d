#!/usr/bin/env bash
# Cost against grid size, message volume and threads, from wse_sample_wafer: wall time of
# the run and resident memory (RSS) for an idle-heavy workload (allreduce: most PEs wait most
# of the time) and a dense one (one 7-point stencil SpMV: every PE works at once).
# Usage: bash bench/scaling.sh [path to wse_sample_wafer] [largest: full|512]
# Prints a markdown table (docs/performance.md has a run). Takes minutes for the full fabric.
set -euo pipefail
bin=${1:-build/default/samples/wse_sample_wafer}
largest=${2:-full}
sizes=("64 64" "128 128" "256 256" "512 512")
[ "$largest" = full ] && sizes+=("757 996")

row() {  # workload w h n threads mode
  local out
  out=$("$bin" "$1" "$2" "$3" "$4" "$5" "$6" 2>/dev/null)
  local run rss per cycles
  run=$(sed -n 's/.*run \([0-9.]*\) s.*/\1/p' <<<"$out")
  rss=$(sed -n 's/.*resident \([0-9]*\) MiB.*/\1/p' <<<"$out")
  per=$(sed -n 's/.*MiB); \([0-9]*\) bytes per PE.*/\1/p' <<<"$out")
  cycles=$(sed -n 's/.*cycles: \([0-9]*\) =.*/\1/p' <<<"$out")
  grep -q "check: every" <<<"$out" || { echo "| $1 | $2x$3 | $4 | $5 | $6 | FAILED | | | |"; return; }
  echo "| $1 | $2x$3 | $4 | $5 | $6 | $run | $rss | $per | ${cycles:--} |"
}

echo "| workload | grid | n | threads | mode | run (s) | RSS (MiB) | bytes/PE | cycles |"
echo "|---|---|---|---|---|---|---|---|---|"
for s in "${sizes[@]}"; do
  set -- $s
  row allreduce "$1" "$2" 16 2 functional
  row allreduce "$1" "$2" 16 2 timed
  row stencil "$1" "$2" 16 2 functional
done
for n in 1 64 256; do row allreduce 256 256 "$n" 2 functional; done
for n in 4 64; do row stencil 256 256 "$n" 2 functional; done
for t in 1 2; do
  row allreduce 512 512 16 "$t" functional
  row stencil 512 512 16 "$t" functional
done
