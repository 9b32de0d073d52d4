# Test registration: every tests/unit/test_*.c is one cmocka program (one ctest each);
# every tests/mpi/test_*.c runs at 1, 2 and 3 ranks; every tests/cli/test_*.sh gets the built
# binary's path. MPI runs oversubscribe and use one OpenBLAS thread per rank.
find_package(cmocka CONFIG QUIET)
if(NOT CMOCKA_INCLUDE_DIR)
  pkg_check_modules(CMOCKA REQUIRED cmocka)
  set(CMOCKA_INCLUDE_DIR ${CMOCKA_INCLUDE_DIRS})
  set(CMOCKA_LIBRARIES ${CMOCKA_LINK_LIBRARIES})
endif()
add_library(dpt_cmocka INTERFACE)
target_include_directories(dpt_cmocka INTERFACE ${CMOCKA_INCLUDE_DIR})
target_link_libraries(dpt_cmocka INTERFACE ${CMOCKA_LIBRARIES})

set(DPT_FIXTURES_DIR "${CMAKE_CURRENT_SOURCE_DIR}/../shared/fixtures/keras" CACHE PATH
    "Keras-written fixture files (tests that need them skip when absent)")
set(DPT_TEST_ENV
    "OPENBLAS_NUM_THREADS=1;OMPI_MCA_pml=ob1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;DPT_SOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR};DPT_FIXTURES_DIR=${DPT_FIXTURES_DIR};DPT_BUILD_DIR=${CMAKE_CURRENT_BINARY_DIR}")
set(DPT_TEST_NPROCS 1 2 3 CACHE STRING "rank counts for tests/mpi")

add_library(dpt_testutil STATIC tests/testutil.c)
target_include_directories(dpt_testutil PUBLIC tests)
target_link_libraries(dpt_testutil PUBLIC dptrain_lib dpt_cmocka)

file(GLOB DPT_UNIT_TESTS CONFIGURE_DEPENDS tests/unit/test_*.c)
foreach(src IN LISTS DPT_UNIT_TESTS)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE dpt_testutil)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  add_test(NAME unit/${name} COMMAND ${name})
  set_tests_properties(unit/${name} PROPERTIES TIMEOUT 300 ENVIRONMENT "${DPT_TEST_ENV}" LABELS unit)
endforeach()

file(GLOB DPT_MPI_TESTS CONFIGURE_DEPENDS tests/mpi/test_*.c)
foreach(src IN LISTS DPT_MPI_TESTS)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE dpt_testutil)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  foreach(np IN LISTS DPT_TEST_NPROCS)
    add_test(NAME mpi/${name}_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                     $<TARGET_FILE:${name}>)
    set_tests_properties(mpi/${name}_np${np} PROPERTIES PROCESSORS ${np} TIMEOUT 120
                         ENVIRONMENT "${DPT_TEST_ENV}" LABELS mpi)
  endforeach()
endforeach()

file(GLOB DPT_CLI_TESTS CONFIGURE_DEPENDS tests/cli/test_*.sh)
foreach(src IN LISTS DPT_CLI_TESTS)
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME cli/${name} COMMAND bash ${src} $<TARGET_FILE:dptrain>)
  set_tests_properties(cli/${name} PROPERTIES TIMEOUT 300 PROCESSORS 2
                       ENVIRONMENT "${DPT_TEST_ENV}" LABELS cli SKIP_RETURN_CODE 77)
endforeach()

# Interop with real Keras: tests/interop/run.sh skips (77) unless a Python with Keras is found
# (DPT_KERAS_PYTHON, or `keras` importable by python3).
add_executable(predict_dump tests/interop/predict_dump.c)
target_link_libraries(predict_dump PRIVATE dptrain_lib)
target_compile_options(predict_dump PRIVATE ${DPT_WARNINGS})
add_test(NAME interop/keras_roundtrip
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/interop/run.sh $<TARGET_FILE:predict_dump>)
set_tests_properties(interop/keras_roundtrip PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                     ENVIRONMENT "${DPT_TEST_ENV}" LABELS interop)
# Every tests/interop/keras_*.py is one more parity test (tests/interop/parity.py's harness).
file(GLOB DPT_INTEROP_TESTS CONFIGURE_DEPENDS tests/interop/keras_*.py)
foreach(src IN LISTS DPT_INTEROP_TESTS)
  get_filename_component(name ${src} NAME_WE)
  if(NOT name STREQUAL "keras_roundtrip")
    add_test(NAME interop/${name}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/interop/run.sh
                     $<TARGET_FILE:predict_dump> ${name}.py)
    set_tests_properties(interop/${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                         ENVIRONMENT "${DPT_TEST_ENV}" LABELS interop)
  endif()
endforeach()

# The rooms' rules: includes point down, MPI only in src/comm (the build's layering check
# programs enforce the calls).
add_test(NAME lint/rooms COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/lint/rooms.sh
                                 ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(lint/rooms PROPERTIES TIMEOUT 60 LABELS unit)

# The Python package's pytest suite (tests/interop/keras_python.py, registered by the glob above)
# trains a dozen small runs and the Fashion-MNIST MLP twice: more time under a loaded CI.
set_tests_properties(interop/keras_python PROPERTIES TIMEOUT 600)
# The Python package installs with pip from a clean copy into a fresh venv (builds the C binary;
# needs PyPI or pip's cache, else skipped).
add_test(NAME interop/python_install COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/interop/python_install.sh)
set_tests_properties(interop/python_install PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
                     ENVIRONMENT "${DPT_TEST_ENV}" LABELS "interop;slow")
