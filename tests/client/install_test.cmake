# Installs the client package into a temp prefix and builds + runs
# client/example against it: proves find_package(wechat_hub) works.
# Arguments: BUILD_DIR, EXAMPLE_DIR, WORK_DIR.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --component wechat_hub_client --prefix "${prefix}")
foreach(f include/wechat_hub/client/client.hpp lib/cmake/wechat_hub/wechat_hubConfig.cmake)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S "${EXAMPLE_DIR}" -B "${WORK_DIR}/build" -G Ninja
    -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/wechat_example")
if(NOT last_output MATCHES "0f9de62fce790f9a083d5c99e95740ceb90c27ed")
  message(FATAL_ERROR "unexpected example output: ${last_output}")
endif()
message(STATUS "install test ok: ${last_output}")
