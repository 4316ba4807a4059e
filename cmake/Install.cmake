# The library and `make install` (GNUInstallDirs: DESTDIR and
# CMAKE_INSTALL_PREFIX are honoured).
#   lib/libreactord.so, lib/libreactord.a   the runtime, core and embedded scripts
#   include/reactord.h, include/reactor.h   the library API and the thin host interface
#   lib/pkgconfig/reactord.pc              cc host.c $(pkg-config --cflags --libs reactord)
#   bin/reactord, share/man/man1/reactord.1
#   lib/lua/5.4/reactor.so                 where Debian's lua5.4 looks (its cpath) for
#                                          /usr/local, and lib/<multiarch>/lua/5.4 for /usr
# The Lua half (scripts/reactor/) is compiled in: nothing to install for it.
include(GNUInstallDirs)

# The shared library carries Lua's needs (liblua5.4) itself; the static one
# leaves them to the host's link line (reactord.pc's Requires/Libs.private).
add_library(reactord_shared SHARED bindings/module.c)
target_link_libraries(reactord_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,reactor_runtime>"
                      PkgConfig::LUA m dl)
set_target_properties(reactord_shared PROPERTIES OUTPUT_NAME reactord
                      VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
add_library(reactord_static STATIC $<TARGET_OBJECTS:reactor_runtime> $<TARGET_OBJECTS:rd_core>)
set_target_properties(reactord_static PROPERTIES OUTPUT_NAME reactord)

# reactord.pc is written at install time, for the prefix installed to
# (`cmake --install --prefix P` as well as CMAKE_INSTALL_PREFIX)
install(CODE "
  set(RD_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(RD_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(RD_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${CMAKE_SOURCE_DIR}/cmake/reactord.pc.in\" \"${CMAKE_BINARY_DIR}/reactord.pc\" @ONLY)
")
install(TARGETS reactord RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS reactord_shared reactord_static
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS reactor LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/lua/5.4)
install(FILES bindings/reactord.h bindings/reactor.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_BINARY_DIR}/reactord.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES bindings/daemon/reactord.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
