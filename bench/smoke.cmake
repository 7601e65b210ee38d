# ctest bench_smoke: runs `wse_bench --quick` and checks that it exits 0 and that its last
# line is a JSON object holding the seven figures (a number or null each).
#   cmake -DBENCH=<path to wse_bench> -P smoke.cmake
execute_process(COMMAND ${BENCH} --quick OUTPUT_VARIABLE out RESULT_VARIABLE rc)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "wse_bench --quick exited with ${rc}")
endif()
string(STRIP "${out}" out)
string(REGEX REPLACE "^.*\n" "" last "${out}")  # the last line
string(JSON kind ERROR_VARIABLE err TYPE "${last}")
if(err OR NOT kind STREQUAL "OBJECT")
  message(FATAL_ERROR "the last line is not a JSON object: ${last}")
endif()
foreach(key dsd_vs_simd_loop gemm_vs_openblas hops_vs_memcpy threads2_vs_1 timed_pe_cycles_per_s_per_core
            full_wafer_allreduce_s threads_max_vs_1)
  string(JSON type ERROR_VARIABLE err TYPE "${last}" ${key})
  if(err)
    message(FATAL_ERROR "key '${key}' missing from the JSON line: ${last}")
  endif()
  if(NOT type MATCHES "^(NUMBER|NULL)$")
    message(FATAL_ERROR "'${key}' is ${type}, expected a number or null")
  endif()
endforeach()
message("bench_smoke: the last line is a JSON object with all seven figures")
