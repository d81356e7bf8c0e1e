#define CAF_SUITE e2e_routes

// The route table against a real hub: what a path that names no resource,
// a wrong method and an unknown path are answered (status, body, Allow).

#include "caf/test/dsl.hpp"

#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

std::string error_body(unsigned status, const std::string& reason, const std::string& message) {
  return R"({"errcode":null,"message":")" + message + R"(","reason":")" + reason
         + R"(","http_status":)" + std::to_string(status) + "}";
}

} // namespace

CAF_TEST(paths that name no resource are answered before the method is checked) {
  hub_env env;
  env.start_hub(component_toml());
  std::string comp = component_appid;
  auto res = env.hub("PATCH", "/admin/apps/bad!id");
  CAF_CHECK_EQUAL(res.status, 400u);
  CAF_CHECK_EQUAL(res.body, error_body(400, "invalid_request", "malformed appid"));
  res = env.hub("PATCH", "/admin/apps/wxgood");
  CAF_CHECK_EQUAL(res.status, 405u);
  CAF_CHECK_EQUAL(res.header("Allow"), "PUT, DELETE");
  CAF_CHECK_EQUAL(res.body, error_body(405, "method_not_allowed", "this path only accepts PUT, DELETE"));
  res = env.hub("DELETE", "/admin/components/wxunknown0001/authorizers");
  CAF_CHECK_EQUAL(res.status, 404u);
  CAF_CHECK_EQUAL(res.body, error_body(404, "unknown_appid", "component is not configured on this hub"));
  res = env.hub("DELETE", "/admin/components/" + comp + "/authorizers");
  CAF_CHECK_EQUAL(res.status, 405u);
  CAF_CHECK_EQUAL(res.header("Allow"), "GET, POST");
  res = env.hub("POST", "/admin/components/" + comp + "/authorizers/wxauth0001");
  CAF_CHECK_EQUAL(res.status, 405u);
  CAF_CHECK_EQUAL(res.header("Allow"), "PUT, DELETE");
  res = env.hub("PUT", "/admin/components/" + comp + "/authorizers/");
  CAF_CHECK_EQUAL(res.status, 404u);
  CAF_CHECK_EQUAL(res.body, error_body(404, "not_found", "no such path"));
  res = env.hub("PUT", "/admin/components/" + comp + "/authorizers/a%2Fb");
  CAF_CHECK_EQUAL(res.status, 400u);
  CAF_CHECK_EQUAL(res.body, error_body(400, "invalid_request", "malformed authorizer appid"));
  res = env.hub("GET", "/admin/nothing");
  CAF_CHECK_EQUAL(res.status, 404u);
  CAF_CHECK_EQUAL(res.body, error_body(404, "not_found", "no such path"));
  res = env.hub("POST", "/healthz");
  CAF_CHECK_EQUAL(res.status, 405u);
  CAF_CHECK_EQUAL(res.header("Allow"), "GET");
  res = env.hub("GET", "/wechat/component/" + comp + "/events");
  CAF_CHECK_EQUAL(res.status, 405u);
  CAF_CHECK_EQUAL(res.header("Allow"), "POST");
  // Every refusal above is counted under the route label of the table.
  auto metrics = env.hub("GET", "/metrics").body;
  CAF_CHECK(metrics.find(R"(wechat_hub_http_requests_total{route="/admin",status="405"} 3)")
            != std::string::npos);
  CAF_CHECK(metrics.find(R"(wechat_hub_http_requests_total{route="/healthz",status="405"} 1)")
            != std::string::npos);
  CAF_CHECK(metrics.find(R"(wechat_hub_http_requests_total{route="/wechat/component/events",status="405"} 1)")
            != std::string::npos);
}
