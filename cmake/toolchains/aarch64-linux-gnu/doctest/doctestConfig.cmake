# doctest for a cross build (see ../../aarch64-linux-gnu.cmake): the build machine's
# header-only doctest, reached through <build>/cross-include/doctest -> WSE_CROSS_DOCTEST_DIR
# (default /usr/include/doctest), so the cross compiler never sees /usr/include itself.
set(WSE_CROSS_DOCTEST_DIR /usr/include/doctest CACHE PATH "directory holding doctest.h")
if(NOT EXISTS ${WSE_CROSS_DOCTEST_DIR}/doctest.h)
  set(doctest_FOUND FALSE)
  set(doctest_NOT_FOUND_MESSAGE "no doctest.h in ${WSE_CROSS_DOCTEST_DIR} (apt-get install doctest-dev)")
  return()
endif()
if(NOT TARGET doctest::doctest)
  set(_wse_cross_include ${CMAKE_BINARY_DIR}/cross-include)
  file(MAKE_DIRECTORY ${_wse_cross_include})
  file(CREATE_LINK ${WSE_CROSS_DOCTEST_DIR} ${_wse_cross_include}/doctest SYMBOLIC)
  add_library(doctest::doctest INTERFACE IMPORTED)
  set_target_properties(doctest::doctest PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${_wse_cross_include})
  unset(_wse_cross_include)
endif()
set(doctest_FOUND TRUE)
