# Builds and runs the consumer project one way. Called by ctest:
#   cmake -DMODE=<find_package|add_subdirectory|fetch_content|pkg_config|single_header>
#         -DSOURCE_DIR=<wse source> -DBUILD_DIR=<wse build> -DWORK_DIR=<scratch> -DCXX=<compiler>
#         -P run.cmake
set(consumer_src ${SOURCE_DIR}/tests/consumers)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${err}")
  endif()
endfunction()

if(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg_config")
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
endif()

if(MODE STREQUAL "pkg_config")
  find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
  set(ENV{PKG_CONFIG_PATH} ${WORK_DIR}/prefix/share/pkgconfig)
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs wse OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config cannot find wse")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(${CXX} ${consumer_src}/main.cpp ${flags} -o ${WORK_DIR}/consumer)
  run(${CXX} -O1 ${consumer_src}/stream_main.cpp ${flags} -o ${WORK_DIR}/consumer_stream)
elseif(MODE STREQUAL "single_header")
  # Nothing but a C++20 compiler and the one header.
  run(${CXX} -std=c++20 -I${SOURCE_DIR}/single_include ${consumer_src}/main.cpp -o ${WORK_DIR}/consumer)
  run(${CXX} -std=c++20 -O1 -I${SOURCE_DIR}/single_include ${consumer_src}/stream_main.cpp -o ${WORK_DIR}/consumer_stream -pthread)
else()
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build -G Ninja -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_CXX_COMPILER=${CXX} -DWSE_CONSUME=${MODE} -DWSE_SOURCE_DIR=${SOURCE_DIR}
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
  file(RENAME ${WORK_DIR}/build/consumer ${WORK_DIR}/consumer)
  if(EXISTS ${WORK_DIR}/build/consumer_stream)
    file(RENAME ${WORK_DIR}/build/consumer_stream ${WORK_DIR}/consumer_stream)
  endif()
endif()
run(${WORK_DIR}/consumer)
if(EXISTS ${WORK_DIR}/consumer_stream)
  run(${WORK_DIR}/consumer_stream)
endif()
