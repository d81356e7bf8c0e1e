#define CAF_SUITE http_audit

#include "caf/test/dsl.hpp"

#include "http/audit.hpp"

using wh::http::normalise_path;

CAF_TEST(audited paths are decoded and free of dot segments) {
  CAF_CHECK_EQUAL(normalise_path("/admin/apps"), "/admin/apps");
  CAF_CHECK_EQUAL(normalise_path("/%61dmin/apps?x=1"), "/admin/apps");
  CAF_CHECK_EQUAL(normalise_path("/admin/x/../apps/wxnew"), "/admin/apps/wxnew");
  CAF_CHECK_EQUAL(normalise_path("/admin/./apps//wx1"), "/admin/apps/wx1");
  CAF_CHECK_EQUAL(normalise_path("/../../admin"), "/admin");
  CAF_CHECK_EQUAL(normalise_path("/"), "/");
  CAF_CHECK_EQUAL(normalise_path("/admin/" + std::string(2000, 'a')).size(), 512u);
  CAF_CHECK_EQUAL(normalise_path("not a target").rfind("(malformed)", 0), 0u);
}
