# Cross build of wse (emulator and test suite) for aarch64 Linux with Debian's
# g++-aarch64-linux-gnu; ctest runs the binaries under qemu-aarch64 (qemu-user).
#
#   cmake -S . -B build/aarch64 -G Ninja --toolchain cmake/toolchains/aarch64-linux-gnu.cmake
#   cmake --build build/aarch64 && ctest --test-dir build/aarch64 -R '^test_'
#
# doctest and Highway are header-only for what wse uses, and Debian installs them for the
# build machine under /usr/include. The cross compiler does not search /usr/include (x86 system
# headers live there), so two small package shims (next to this file) make doctest::doctest and
# hwy::hwy point at include directories in the build tree that hold only a link to
# /usr/include/doctest and /usr/include/hwy. With hwy found, wse builds the emulator with
# WSE_HAVE_HIGHWAY and Highway's static target for -march=armv8-a+crypto is NEON.
# tools/check-cross.sh drives all of this.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CXX_FLAGS_INIT "-march=armv8-a+crypto")

# Libraries and headers only from the aarch64 tree; programs from the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and add_test with a target as COMMAND) runs the binaries through qemu-user.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)

# Header-only packages of the build machine, through the shims.
set(doctest_DIR ${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu/doctest CACHE PATH "doctest shim for the cross build")
set(hwy_DIR ${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu/hwy CACHE PATH "Highway shim for the cross build")
