# Shared helpers: the warnings target, one static library per module, and
# test binaries whose CAF suites are each registered as a CTest test.

add_library(wh_warnings INTERFACE)
target_compile_options(wh_warnings INTERFACE -Wall -Wextra -Wpedantic
  -Wno-unused-parameter $<$<BOOL:${WH_WERROR}>:-Werror>)

# wh_add_module(NAME SOURCES ... [DEPS ...] [PUBLIC_DEPS ...])
# DEPS are PRIVATE (what the module's .cpp files use); PUBLIC_DEPS are what
# its headers expose to users. PRIVATE_DEPS is an older spelling of DEPS.
# Static libraries still pass private dependencies on for linking only, so
# a module never re-exports the include paths and definitions of its
# implementation's libraries (OpenSSL, Boost.URL, CAF's I/O, ...).
function(wh_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(wh_${name} STATIC ${ARG_SOURCES})
  target_include_directories(wh_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)
  target_link_libraries(wh_${name} PUBLIC ${ARG_PUBLIC_DEPS}
                        PRIVATE wh_warnings ${ARG_DEPS} ${ARG_PRIVATE_DEPS})
  set_target_properties(wh_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  add_library(wh::${name} ALIAS wh_${name})
endfunction()

# wh_add_test_binary(NAME SOURCES ... DEPS ... SUITES ... [TIMEOUT s])
# Builds one CAF test binary and registers every suite as its own CTest test.
# A suite filter that matches nothing still "passes" in CAF's runner (exit 0,
# "suites:  0"), so that summary line is treated as a failure.
function(wh_add_test_binary name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;SUITES;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${PROJECT_SOURCE_DIR}/tests/test_main.cpp ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} wh_warnings)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(${name} PRIVATE
    WH_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data"
    WH_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}")
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/tests")
  foreach(suite IN LISTS ARG_SUITES)
    add_test(NAME ${suite} COMMAND ${name} -r ${ARG_TIMEOUT} -s "^${suite}$" -v 4)
    set_tests_properties(${suite} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
      FAIL_REGULAR_EXPRESSION "suites:  0")
    if(ARG_LABELS)
      set_tests_properties(${suite} PROPERTIES LABELS "${ARG_LABELS}")
    endif()
  endforeach()
endfunction()
