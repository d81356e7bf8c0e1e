#define CAF_SUITE http_fd_limit

#include "caf/test/dsl.hpp"

#include "core/config.hpp"
#include "http/fd_limit.hpp"

using namespace wh::http;

CAF_TEST(connections stay below the descriptor limit with a reserve) {
  auto b = plan_fd_budget(524'288, 2, 10'000);
  CAF_CHECK_EQUAL(b.max_connections, 10'000u);
  CAF_CHECK(!b.low);
  b = plan_fd_budget(1024, 0, 10'000);
  CAF_CHECK_EQUAL(b.max_connections + b.reserve, 1024u);
  CAF_CHECK_GREATER_OR_EQUAL(b.reserve, 256u);
  CAF_CHECK(!b.low);
  b = plan_fd_budget(256, 0, 10'000);
  CAF_CHECK(b.low);
  CAF_CHECK_EQUAL(b.max_connections, 64u);
  // More cluster peers, more reserve.
  CAF_CHECK_GREATER(plan_fd_budget(4096, 8, 10'000).reserve, plan_fd_budget(4096, 0, 10'000).reserve);
}

CAF_TEST(only the bulk import route is an import route) {
  CAF_CHECK(is_import_route("POST", "/admin/components/wxc/authorizers"));
  CAF_CHECK(is_import_route("POST", "/admin/components/wxc/authorizers?x=1"));
  CAF_CHECK(!is_import_route("PUT", "/admin/components/wxc/authorizers"));
  CAF_CHECK(!is_import_route("POST", "/admin/components/wxc/authorizers/wxa"));
  CAF_CHECK(!is_import_route("POST", "/admin/components//authorizers/x/authorizers"));
  CAF_CHECK(!is_import_route("POST", "/admin/apps/wx1"));
  CAF_CHECK(!is_import_route("POST", "/admin/components/authorizers"));
}


CAF_TEST(the connection and import limits are configurable and validated) {
  auto cfg = wh::parse_config("[hub]\nmax_connections_per_peer = 32\nmax_import_body_bytes = 1048576\n", "t.toml");
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->max_connections_per_peer, 32u);
  CAF_CHECK_EQUAL(cfg->max_import_body_bytes, 1048576u);
  auto defaults = wh::parse_config("", "t.toml");
  CAF_REQUIRE(defaults);
  CAF_CHECK_EQUAL(defaults->max_connections_per_peer, 0u);
  CAF_CHECK_GREATER_OR_EQUAL(defaults->max_import_body_bytes, 2u * 1024 * 1024);
  auto bad = wh::parse_config("[hub]\nmax_import_body_bytes = 10\n", "t.toml");
  CAF_CHECK(!bad);
  auto negative = wh::parse_config("[hub]\nmax_connections_per_peer = -1\n", "t.toml");
  CAF_CHECK(!negative);
}
