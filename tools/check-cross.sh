#!/usr/bin/env bash
# Hardware-toolchain checks (issue 6, part 3; docs/targets.md). Installs what is missing, then:
#   freestanding  every kernel-facing header (wse/{core,arch,fabric,pe,collectives,target}/*.hpp
#                 and the layer headers) alone, the
#                 collectives' state machine instantiated for fp32, fp16 and int32, and every kernel in kernels/ instantiated on the
#                 reference bare-metal backend, with arm-none-eabi-g++ for a Cortex-M4,
#                 -ffreestanding -fno-exceptions -fno-rtti; the example port (tests/target/
#                 m4_port.cpp) compiles and needs nothing but libgcc helpers and mem*;
#   qemu          tests/target/demo_kernel.hpp built for bare-metal ARM runs under
#                 qemu-system-arm (semihosting) against a loopback fabric and prints exactly
#                 what the same kernel prints on the emulator (host g++); the libm-free
#                 rounding and fma of pe/elementwise.hpp match glibc (tests/target/semantics_check.cpp);
#                 the backend's self-test (tests/target/target_selftest.cpp) passes on host and ARM;
#   aarch64       the emulator test suite built with aarch64-linux-gnu-g++ -march=armv8-a+crypto
#                 (cmake/toolchains/aarch64-linux-gnu.cmake, build/aarch64) passes under
#                 qemu-aarch64 at WSE_TEST_THREADS=1 and 8, and its SIMD engine runs on NEON.
# Usage: bash tools/check-cross.sh [freestanding] [qemu] [aarch64]    (default: all)
# Logs and artifacts: build/cross/. Exit status: 0 when every check passed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/build/cross
mkdir -p "$out"
groups=("$@")
((${#groups[@]})) || groups=(freestanding qemu aarch64)
want() { local g; for g in "${groups[@]}"; do [[ $g == "$1" ]] && return 0; done; return 1; }

t_start=$SECONDS
bash tools/install-deps.sh gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib libnewlib-arm-none-eabi \
  qemu-system-arm g++-aarch64-linux-gnu qemu-user || { echo "cross: could not install the toolchains"; exit 1; }

passed=0
failed=0
failures=()
# check NAME COMMAND...: runs COMMAND with output in build/cross/NAME.log; prints PASS/FAIL.
check() {
  local name=$1 t0=$SECONDS
  shift
  if "$@" >"$out/$name.log" 2>&1; then
    passed=$((passed + 1))
    printf 'PASS %-24s %4ds  %s\n' "$name" $((SECONDS - t0)) "$(tail -n 1 "$out/$name.log")"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL %-24s %4ds  (log: build/cross/%s.log)\n' "$name" $((SECONDS - t0)) "$name"
    tail -n 30 "$out/$name.log" | sed 's/^/    /'
  fi
}

M4_FLAGS=(-std=c++20 -mcpu=cortex-m4 -mthumb -ffreestanding -fno-exceptions -fno-rtti
          -Wall -Wextra -Wpedantic -Wshadow -Werror -I"$root/include" -I"$root")
ARM_QEMU_FLAGS=(-std=c++20 -O2 -mcpu=cortex-a9 -marm --specs=rdimon.specs -fno-exceptions -fno-rtti
                -Wall -Wextra -Wpedantic -Wshadow -Werror -Wl,-Ttext=0x60010000 -I"$root/include")
HOST_FLAGS=(-std=c++20 -O1 -Wall -Wextra -Wpedantic -Wshadow -Werror -I"$root/include")
qemu_arm() {  # qemu_arm ELF: runs a semihosting program; its exit status is qemu's
  QEMU_AUDIO_DRV=none timeout 60 qemu-system-arm -M vexpress-a9 -nographic \
    -semihosting-config enable=on,target=native -kernel "$1"
}

# ---- freestanding: headers and kernels for a Cortex-M4 ------------------------------------
headers_m4() {
  local h n=0 bad=0
  for h in include/wse/{core,arch,fabric,pe,collectives,target}/*.hpp include/wse/{core,arch,fabric,pe,collectives,kernel,target}.hpp; do
    [[ -f $h ]] || continue
    n=$((n + 1))
    echo "#include <${h#include/}>" | arm-none-eabi-g++ "${M4_FLAGS[@]}" -fsyntax-only -x c++ - || { echo "FAILED: $h"; bad=$((bad + 1)); }
  done
  # The collectives' state machine on the bare-metal backend, every element type tested.
  local tu=$out/collectives_tu.cpp
  {
    echo "#include <wse/target.hpp>"
    echo "#include <cstdint>"
    echo "#include <wse/collectives.hpp>"
    for t in float wse::f16 std::int32_t; do
      echo "template class wse::collectives::Collective<wse::target::Pe<wse::target::LoopbackFabric<>>, $t>;"
    done
  } >"$tu"
  n=$((n + 1))
  arm-none-eabi-g++ "${M4_FLAGS[@]}" -fsyntax-only "$tu" || { echo "FAILED: Collective<target::Pe, T>"; bad=$((bad + 1)); }
  echo "$n kernel-facing headers and instantiations, $bad failed (arm-none-eabi-g++ -mcpu=cortex-m4 -ffreestanding)"
  ((bad == 0))
}
kernels_m4() {
  # Each kernels/*.hpp (and *.cpp) compiles; every `template <class PE> struct Name` in a
  # header is explicitly instantiated on wse::target::Pe, so every task body is compiled.
  local f n=0 k=0 bad=0 ns names name tu=$out/kernel_tu.cpp
  shopt -s nullglob
  for f in kernels/*.hpp kernels/*.cpp kernels/*/*.hpp kernels/*/*.cpp; do
    n=$((n + 1))
    if [[ $f == *.cpp ]]; then
      arm-none-eabi-g++ "${M4_FLAGS[@]}" -fsyntax-only "$f" || { echo "FAILED: $f"; bad=$((bad + 1)); }
      continue
    fi
    ns=$(grep -m1 -oE '^namespace [A-Za-z_0-9:]+ \{' "$f" | awk '{print $2}')
    names=$(grep -oE '^template <(class|typename) PE> struct [A-Za-z_0-9]+' "$f" | awk '{print $NF}')
    {
      echo "#include <wse/target.hpp>"
      echo "#include \"$root/$f\""
      for name in $names; do echo "template struct ${ns:+$ns::}$name<wse::target::Pe<wse::target::LoopbackFabric<>>>;"; done
      # `template <class PE> using Name = Kernel<PE, ...>;` aliases: instantiate what they name.
      grep -oE '^template <(class|typename) PE> using [A-Za-z_0-9]+ = [A-Za-z_0-9]+<PE(, [A-Za-z_0-9:]+)*>;' "$f" |
        sed -E "s/^.* = ([A-Za-z_0-9]+)<PE(.*)>;$/namespace ${ns:-wse_global} { template struct \1<wse::target::Pe<wse::target::LoopbackFabric<>>\2>; }/"
    } >"$tu"
    k=$((k + $(wc -w <<<"$names") + $(grep -cE '^template <(class|typename) PE> using ' "$f" || true)))
    arm-none-eabi-g++ "${M4_FLAGS[@]}" -fsyntax-only "$tu" || { echo "FAILED: $f"; bad=$((bad + 1)); }
  done
  shopt -u nullglob
  echo "$n files in kernels/, $k kernels instantiated on wse::target::Pe, $bad failed"
  ((bad == 0))
}
m4_port() {
  # The example port compiles for soft- and hard-float Cortex-M4 and links against nothing
  # but libgcc's helpers and memcpy/memset: no libm, no heap, no exceptions, no RTTI.
  local abi obj undef
  for abi in soft hard; do
    obj=$out/m4_port_$abi.o
    local extra=()
    [[ $abi == hard ]] && extra=(-mfpu=fpv4-sp-d16 -mfloat-abi=hard)
    arm-none-eabi-g++ "${M4_FLAGS[@]}" "${extra[@]}" -O2 -c tests/target/m4_port.cpp -o "$obj" || return 1
    undef=$(arm-none-eabi-nm -u "$obj" | awk '{print $2}' | grep -vE '^(__aeabi_[a-z0-9]+|__(ctz|clz|popcount)[sd]i2|mem(cpy|set|move))$')
    if [[ -n $undef ]]; then echo "m4_port ($abi float) needs more than libgcc and mem*: $undef"; return 1; fi
    arm-none-eabi-size "$obj"
  done
  echo "example port: text $(arm-none-eabi-size "$out/m4_port_soft.o" | awk 'NR==2{print $1}') bytes (soft float), $(arm-none-eabi-size "$out/m4_port_hard.o" | awk 'NR==2{print $1}') (fpv4 hard float)"
}

# ---- qemu: the demo kernel on bare-metal ARM vs the emulator --------------------------------
semantics() {
  g++ "${HOST_FLAGS[@]}" -O2 tests/target/semantics_check.cpp -o "$out/semantics_check" && "$out/semantics_check" 61 16000000
}
semihosting_exit() {
  # newlib's exit() must end qemu through semihosting, with the program's status.
  printf '#include <cstdlib>\nint main() { std::exit(3); }\n' >"$out/exit3.cpp"
  arm-none-eabi-g++ "${ARM_QEMU_FLAGS[@]}" "$out/exit3.cpp" -o "$out/exit3.elf" || return 1
  qemu_arm "$out/exit3.elf"
  local rc=$?
  echo "exit(3) under qemu-system-arm: status $rc (124 would mean a hang)"
  ((rc == 3))
}
selftest() {
  # The backend's own rules (picker order, blocking, stalls, faults), on the host and on ARM.
  g++ "${HOST_FLAGS[@]}" tests/target/target_selftest.cpp -o "$out/target_selftest" || return 1
  "$out/target_selftest" || return 1
  arm-none-eabi-g++ "${ARM_QEMU_FLAGS[@]}" tests/target/target_selftest.cpp -o "$out/target_selftest.elf" || return 1
  qemu_arm "$out/target_selftest.elf" 2>/dev/null
}
demo_qemu() {
  arm-none-eabi-g++ "${ARM_QEMU_FLAGS[@]}" tests/target/demo_target.cpp -o "$out/demo.elf" || return 1
  g++ "${HOST_FLAGS[@]}" tests/target/demo_emu.cpp -o "$out/demo_emu" -pthread || return 1
  local t0=$SECONDS
  qemu_arm "$out/demo.elf" >"$out/demo_qemu.txt" 2>"$out/demo_qemu.err"
  local rc=$? t_qemu=$((SECONDS - t0))
  grep -v 'audio' "$out/demo_qemu.err"
  "$out/demo_emu" >"$out/demo_emu.txt" || { echo "the emulator run failed"; return 1; }
  ((rc == 0)) || { echo "qemu run failed with status $rc (124: timeout)"; cat "$out/demo_qemu.txt"; return 1; }
  diff -u "$out/demo_emu.txt" "$out/demo_qemu.txt" || { echo "bare-metal ARM and emulator results differ"; return 1; }
  echo "identical: $(wc -l <"$out/demo_qemu.txt") lines (qemu ${t_qemu}s, elf text $(arm-none-eabi-size "$out/demo.elf" | awk 'NR==2{print $1}') bytes)"
}

# ---- aarch64: the emulator test suite under qemu-user ---------------------------------------
A64=$root/build/aarch64
aarch64_build() {
  cmake -S . -B "$A64" -G Ninja --toolchain cmake/toolchains/aarch64-linux-gnu.cmake \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O2 -DWSE_WARNINGS_AS_ERRORS=ON \
    -DWSE_BUILD_SAMPLES=OFF -DWSE_BUILD_BENCH=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON || return 1
  local targets
  # The emulator's suite; the host-only stream layer (plan, store, PyTorch reference) and the
  # executor (45 short emulator runs per training step, minutes under qemu) run natively only.
  targets=$(cd tests && ls test_*.cpp | sed 's/\.cpp$//' | grep -v -E '^test_(plan|store|torch_reference|executor|data_parallel)$')
  # shellcheck disable=SC2086
  cmake --build "$A64" -j 2 --target $targets || return 1
  echo "built for aarch64: $(echo $targets)"
}
aarch64_tests() {
  # ctest runs each test_<module> at WSE_TEST_THREADS=1 and 8 through
  # CMAKE_CROSSCOMPILING_EMULATOR (qemu-aarch64 -L /usr/aarch64-linux-gnu).
  ctest --test-dir "$A64" -R '^test_' -E '^test_(plan|store|torch_reference|executor|data_parallel)(_t[18])?$' -j 2 --timeout 300 --output-on-failure
}
aarch64_simd() {
  # simd_target.cpp compiled with exactly the flags CMake gave tests/test_dsd.cpp (defines,
  # include dirs, -march), from compile_commands.json, then run under qemu-aarch64.
  local name cmd
  cmd=$(python3 - "$A64/compile_commands.json" "$root/tests/target/simd_target.cpp" "$out/simd_target_aarch64" <<'PY'
import json, shlex, sys
db, src, exe = sys.argv[1:]
entry = next(e for e in json.load(open(db)) if e["file"].endswith("tests/test_dsd.cpp"))
args, skip, keep = shlex.split(entry["command"]), False, []
for a in args:
    if skip: skip = False; continue
    if a in ("-o", "-MT", "-MF"): skip = True; continue
    if a in ("-c", "-MD") or a == entry["file"]: continue
    keep.append(a)
print(shlex.join(keep + [src, "-o", exe]))
PY
) || return 1
  echo "$cmd"
  eval "$cmd" || return 1
  name=$(qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/simd_target_aarch64") || return 1
  echo "wse::emu::simd_target() on aarch64: $name"
  [[ $name == NEON ]]
}

if want freestanding; then
  check m4-headers headers_m4
  check m4-kernels kernels_m4
  check m4-port m4_port
fi
if want qemu; then
  check elementwise-vs-glibc semantics
  check qemu-semihosting-exit semihosting_exit
  check target-selftest selftest
  check qemu-demo-vs-emulator demo_qemu
fi
if want aarch64; then
  check aarch64-build aarch64_build
  if [[ ${failures[*]-} == *aarch64-build* ]]; then
    echo "SKIP aarch64-tests, aarch64-simd (build failed)"
    failed=$((failed + 2))
    failures+=(aarch64-tests aarch64-simd)
  else
    check aarch64-tests aarch64_tests
    check aarch64-simd aarch64_simd
  fi
fi

echo "cross: $passed passed, $failed failed ($((SECONDS - t_start))s)${failures[*]:+ -- failed: ${failures[*]}}"
((failed == 0))
