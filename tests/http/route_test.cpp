#define CAF_SUITE http_routes

#include "caf/test/dsl.hpp"

#include <set>

#include "core/error.hpp"
#include "http/api.hpp"
#include "http/route.hpp"

using namespace wh;
using namespace wh::http;

namespace {

route_match find(std::string_view method, std::string_view path) {
  return find_route(hub_api::routes(), method, path);
}

std::string pattern_of(const route_match& m) {
  return m.index == route_match::npos ? "" : std::string{hub_api::routes()[m.index].pattern};
}

} // namespace

CAF_TEST(the route list printed from the table) {
  auto list = describe(hub_api::routes());
  CAF_MESSAGE("routes:\n" << list);
  CAF_CHECK(list.find("GET    /client/access_token  scope=client label=/client/access_token\n")
            != std::string::npos);
  // One line per entry, and no (method, pattern) twice.
  std::set<std::pair<std::string_view, std::string_view>> seen;
  for (auto& r : hub_api::routes()) {
    CAF_CHECK(seen.emplace(r.method, r.pattern).second);
    CAF_CHECK(!r.label.empty());
    CAF_CHECK(r.handler != nullptr);
  }
  CAF_CHECK_EQUAL(static_cast<size_t>(std::count(list.begin(), list.end(), '\n')),
                  hub_api::routes().size());
}

CAF_TEST(lookups find the route and its captures) {
  auto m = find("GET", "/client/access_token");
  CAF_REQUIRE(!m.err);
  CAF_CHECK_EQUAL(pattern_of(m), "/client/access_token");
  m = find("POST", "/wechat/component/wxcomp/events");
  CAF_REQUIRE(!m.err);
  CAF_CHECK_EQUAL(m.args, (path_args{"wxcomp"}));
  m = find("PUT", "/admin/components/wxc/authorizers/wxa");
  CAF_REQUIRE(!m.err);
  CAF_CHECK_EQUAL(m.args, (path_args{"wxc", "wxa"}));
  // A last {name...} takes the rest, slashes included (validated by parsing).
  m = find("DELETE", "/admin/apps/a/b");
  CAF_REQUIRE(!m.err);
  CAF_CHECK_EQUAL(m.args, (path_args{"a/b"}));
  m = find("PUT", "/admin/apps/");
  CAF_REQUIRE(!m.err);
  CAF_CHECK_EQUAL(m.args, (path_args{""}));
  m = find("HEAD", "/healthz");
  CAF_CHECK(!m.err);
}

CAF_TEST(a known path with another method is 405 with the allowed methods) {
  auto m = find("POST", "/client/access_token");
  CAF_CHECK(code_of(m.err) == ec::method_not_allowed);
  CAF_CHECK_EQUAL(pattern_of(m), "/client/access_token");
  auto res = error_response(m.err);
  CAF_CHECK_EQUAL(res.status, 405u);
  CAF_REQUIRE_EQUAL(res.headers.size(), 1u);
  CAF_CHECK_EQUAL(res.headers[0].first, "Allow");
  CAF_CHECK_EQUAL(res.headers[0].second, "GET");
  CAF_CHECK_EQUAL(res.body, R"({"errcode":null,"message":"this path only accepts GET",)"
                            R"("reason":"method_not_allowed","http_status":405})");
  // HEAD is implied by GET and not listed.
  res = error_response(find("POST", "/healthz").err);
  CAF_CHECK_EQUAL(res.headers.at(0).second, "GET");
  res = error_response(find("PATCH", "/admin/apps/wx1").err);
  CAF_CHECK_EQUAL(res.headers.at(0).second, "PUT, DELETE");
  res = error_response(find("DELETE", "/admin/components/wxc/authorizers").err);
  CAF_CHECK_EQUAL(res.headers.at(0).second, "GET, POST");
  res = error_response(find("GET", "/wechat/component/wxc/events").err);
  CAF_CHECK_EQUAL(res.headers.at(0).second, "POST");
}

CAF_TEST(unknown paths are 404) {
  for (auto path : {"/", "/client", "/client/access_token/", "/healthz/x", "/admin",
                    "/admin/components/wxc/tokens", "/wechat/component/wxc/other",
                    "/wechat/component/a/b/events", "/metricsx"}) {
    auto m = find("GET", path);
    CAF_CHECK_EQUAL(m.index, route_match::npos);
    CAF_CHECK(code_of(m.err) == ec::not_found);
    auto res = error_response(m.err);
    CAF_CHECK_EQUAL(res.status, 404u);
    CAF_CHECK_EQUAL(res.body, R"({"errcode":null,"message":"no such path","reason":"not_found","http_status":404})");
  }
}

CAF_TEST(scopes come from the table and unknown paths take their prefix scope) {
  auto scope_of = [](std::string_view method, std::string_view path) {
    auto m = find(method, path);
    return m.index == route_match::npos ? scope_of_unrouted(path) : hub_api::routes()[m.index].need;
  };
  CAF_CHECK(scope_of("GET", "/client/access_token") == scope::client);
  CAF_CHECK(scope_of("POST", "/refresh/access_token") == scope::client);
  CAF_CHECK(scope_of("GET", "/metrics") == scope::client);
  CAF_CHECK(scope_of("POST", "/metrics") == scope::client); // 401 before 405
  CAF_CHECK(scope_of("GET", "/healthz") == scope::open);
  CAF_CHECK(scope_of("POST", "/wechat/component/wxc/events") == scope::open);
  CAF_CHECK(scope_of("GET", "/admin/apps") == scope::admin);
  CAF_CHECK(scope_of("GET", "/admin/nothing") == scope::admin); // 401/403 before 404
  CAF_CHECK(scope_of("GET", "/client/nothing") == scope::client);
  CAF_CHECK(scope_of("GET", "/nothing") == scope::open);
  for (auto& r : hub_api::routes()) {
    // Admin paths that name a resource are checked before the method.
    if (r.pattern.starts_with("/admin/") && r.pattern.find('{') != std::string_view::npos)
      CAF_CHECK(r.check != nullptr);
    if (r.pattern.starts_with("/admin/"))
      CAF_CHECK(r.need == scope::admin && r.label == hub_api::admin_label);
    if (r.pattern.starts_with("/client/") || r.pattern.starts_with("/refresh/"))
      CAF_CHECK(r.need == scope::client && r.label == r.pattern);
  }
}

CAF_TEST(patterns match whole segments) {
  path_args args;
  CAF_CHECK(match_path("/a/{x}/c", "/a/b/c", args));
  CAF_CHECK_EQUAL(args, (path_args{"b"}));
  CAF_CHECK(match_path("/a/{x}/c", "/a//c", args));
  CAF_CHECK_EQUAL(args, (path_args{""}));
  CAF_CHECK(!match_path("/a/{x}/c", "/a/b/c/", args));
  CAF_CHECK(!match_path("/a/{x}/c", "/a/b", args));
  CAF_CHECK(!match_path("/a/b", "/a/bc", args));
  CAF_CHECK(!match_path("/a/b", "a/b", args));
  CAF_CHECK(match_path("/a/{rest...}", "/a/x/y", args));
  CAF_CHECK_EQUAL(args, (path_args{"x/y"}));
  CAF_CHECK(!match_path("/a/{rest...}", "/a", args));
}
