# Runs one libFuzzer target for a bounded time over a scratch copy of its seed
# corpus, so the checked-in corpus is never modified by a test run.
#   cmake -DFUZZER=<exe> -DCORPUS=<seed dir> -DWORK_DIR=<scratch dir>
#         -DSECONDS=<n> [-DDICT=<file>] -P run_fuzzer.cmake
# Fails (non-zero exit) when the fuzzer finds a crash, leak, timeout or sanitizer
# report; the reproducer is written to ${WORK_DIR}/crash-* (or leak-*, timeout-*).
foreach(var FUZZER CORPUS WORK_DIR SECONDS)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_fuzzer.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK_DIR}/corpus)
file(MAKE_DIRECTORY ${WORK_DIR}/corpus)
file(GLOB seeds ${CORPUS}/*)
file(COPY ${seeds} DESTINATION ${WORK_DIR}/corpus)

set(args -max_total_time=${SECONDS} -print_final_stats=1 -artifact_prefix=${WORK_DIR}/)
if(DICT)
  list(APPEND args -dict=${DICT})
endif()
message(STATUS "Running: ${FUZZER} ${args} ${WORK_DIR}/corpus")
execute_process(COMMAND ${FUZZER} ${args} ${WORK_DIR}/corpus RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${rc}); reproducer in ${WORK_DIR}/")
endif()
