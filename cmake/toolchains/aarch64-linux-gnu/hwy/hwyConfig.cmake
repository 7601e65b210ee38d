# Highway for a cross build (see ../../aarch64-linux-gnu.cmake): the build machine's headers,
# reached through <build>/cross-include/hwy -> WSE_CROSS_HWY_DIR (default /usr/include/hwy).
# Header-only, so no libhwy for aarch64 is needed: the emulator's SIMD engine is built for
# Highway's static target (NEON for -march=armv8-a+crypto) with static dispatch, the way the
# single-header edition builds it (WSE_SIMD_STATIC_DISPATCH selects that in
# wse/emu/simd_dsd.hpp). Dynamic dispatch would need libhwy (hwy::GetChosenTarget,
# hwy::SupportedTargets) built for aarch64.
set(WSE_CROSS_HWY_DIR /usr/include/hwy CACHE PATH "directory holding highway.h")
if(NOT EXISTS ${WSE_CROSS_HWY_DIR}/highway.h)
  set(hwy_FOUND FALSE)
  set(hwy_NOT_FOUND_MESSAGE "no highway.h in ${WSE_CROSS_HWY_DIR} (apt-get install libhwy-dev)")
  return()
endif()
file(STRINGS ${WSE_CROSS_HWY_DIR}/highway.h _wse_hwy_version REGEX "^#define HWY_(MAJOR|MINOR|PATCH) ")
string(REGEX REPLACE ".*HWY_MAJOR ([0-9]+).*HWY_MINOR ([0-9]+).*HWY_PATCH ([0-9]+).*" "\\1.\\2.\\3" hwy_VERSION "${_wse_hwy_version}")
unset(_wse_hwy_version)
if(NOT TARGET hwy::hwy)
  set(_wse_cross_include ${CMAKE_BINARY_DIR}/cross-include)
  file(MAKE_DIRECTORY ${_wse_cross_include})
  file(CREATE_LINK ${WSE_CROSS_HWY_DIR} ${_wse_cross_include}/hwy SYMBOLIC)
  add_library(hwy::hwy INTERFACE IMPORTED)
  set_target_properties(hwy::hwy PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${_wse_cross_include}
                                            INTERFACE_COMPILE_DEFINITIONS WSE_SIMD_STATIC_DISPATCH=1)
  unset(_wse_cross_include)
endif()
set(hwy_FOUND TRUE)
