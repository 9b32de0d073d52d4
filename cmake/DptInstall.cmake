# Install rules (included by CMakeLists.txt): `cmake --install BUILD [--prefix P]` puts
#   P/lib/libdptrain.a, P/include/dptrain/*.h, P/bin/dptrain, P/share/man/man1/dptrain.1,
#   P/lib/cmake/dptrain/  (find_package(dptrain) -> imported target dptrain::dptrain)
#   P/lib/pkgconfig/dptrain.pc  (pkg-config --cflags --libs dptrain)
# (lib is CMAKE_INSTALL_LIBDIR: lib/x86_64-linux-gnu under /usr on Debian.)
#
# The library links two internal INTERFACE targets, dpt_blas (BLAS::BLAS + the cblas.h directory)
# and dpt_hdf5 (HDF5::HDF5). They are installed into the same export set, so the exported
# dptrain::dptrain keeps linking them as dptrain::dpt_blas / dptrain::dpt_hdf5; the package config
# finds what those refer to (MPI, BLAS, HDF5, jansson, zlib, Threads) with find_dependency first.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(dptrain_lib PROPERTIES EXPORT_NAME dptrain)
set(DPT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dptrain)

install(TARGETS dptrain_lib dpt_blas dpt_hdf5 EXPORT dptrainTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS dptrain RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/dptrain DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/docs/dptrain.1)
  install(FILES docs/dptrain.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()

install(EXPORT dptrainTargets NAMESPACE dptrain:: DESTINATION ${DPT_CMAKE_DIR}
        FILE dptrainTargets.cmake)
configure_package_config_file(cmake/dptrainConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/dptrainConfig.cmake
                              INSTALL_DESTINATION ${DPT_CMAKE_DIR})
# 0.x: minor versions may break the API
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/dptrainConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/dptrainConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/dptrainConfigVersion.cmake
        DESTINATION ${DPT_CMAKE_DIR})

# pkg-config: relative to the .pc file (${pcfiledir}), so `cmake --install --prefix P` works
file(RELATIVE_PATH DPT_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" DPT_PC_TO_PREFIX "${DPT_PC_TO_PREFIX}")
# an ASan + UBSan build (DPT_SANITIZE) needs the sanitizer runtime in whatever links it
set(DPT_PC_SAN_FLAGS "")
if(DPT_SANITIZE)
  set(DPT_PC_SAN_FLAGS " -fsanitize=address,undefined")
endif()
configure_file(cmake/dptrain.pc.in ${CMAKE_CURRENT_BINARY_DIR}/dptrain.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/dptrain.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
