# The Debian package (scripts/package): the three binaries, a conffile, a
# systemd unit, maintainer scripts and the alert rules. Only the `hub`
# install component goes into the .deb (the client library has its own).

include(GNUInstallDirs)

set(_wh_deploy "${PROJECT_SOURCE_DIR}/deploy")
foreach(_t wechat-hub wechat-sim wechat)
  if(TARGET ${_t})
    install(TARGETS ${_t} RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT hub)
  endif()
endforeach()
install(FILES "${_wh_deploy}/hub.toml" DESTINATION /etc/wechat-hub
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT hub)
install(FILES "${_wh_deploy}/systemd/wechat-hub.service" DESTINATION /lib/systemd/system COMPONENT hub)
install(FILES "${PROJECT_SOURCE_DIR}/README.md" "${PROJECT_SOURCE_DIR}/configs/example.toml"
  DESTINATION "${CMAKE_INSTALL_DATADIR}/doc/wechat-hub" COMPONENT hub)
# The alert rules (issue 12, item 2) ship when present; OPTIONAL checks at
# package time, so a file added after configuring is not missed.
install(FILES "${_wh_deploy}/prometheus/wechat-hub-rules.yml"
  DESTINATION "${CMAKE_INSTALL_DATADIR}/wechat-hub" COMPONENT hub OPTIONAL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME wechat-hub)
set(CPACK_PACKAGE_VENDOR "WeChat Hub")
set(CPACK_PACKAGE_CONTACT "WeChat Hub maintainers <wechat-hub@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "access-token hub for the WeChat API")
set(CPACK_PACKAGE_DESCRIPTION
  "Keeps WeChat access tokens, tickets and third-party platform tokens fresh and serves them to other services.")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL hub)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_DEBIAN_HUB_PACKAGE_NAME wechat-hub)
set(CPACK_DEBIAN_HUB_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
# conffiles plus the maintainer scripts (user, unit registration, purge).
set(CPACK_DEBIAN_HUB_PACKAGE_CONTROL_EXTRA
  "${_wh_deploy}/debian/conffiles;${_wh_deploy}/debian/postinst;${_wh_deploy}/debian/prerm;${_wh_deploy}/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
