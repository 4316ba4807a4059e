# libev ships no pkg-config file on Debian: find ev.h and libev by hand.
find_path(LIBEV_INCLUDE_DIR ev.h)
find_library(LIBEV_LIBRARY NAMES ev)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libev DEFAULT_MSG LIBEV_LIBRARY LIBEV_INCLUDE_DIR)
if(Libev_FOUND AND NOT TARGET Libev::ev)
  add_library(Libev::ev UNKNOWN IMPORTED)
  set_target_properties(Libev::ev PROPERTIES
    IMPORTED_LOCATION ${LIBEV_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${LIBEV_INCLUDE_DIR})
endif()
