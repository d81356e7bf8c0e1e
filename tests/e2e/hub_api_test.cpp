#define CAF_SUITE e2e_hub_api

#include "caf/test/dsl.hpp"

#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

/// Every error answer: JSON with exactly errcode, message, reason, http_status.
void check_error(const http_result& res, unsigned status, const std::string& reason) {
  CAF_CHECK_EQUAL(res.status, status);
  CAF_CHECK_EQUAL(res.content_type, "application/json");
  auto obj = parse_object(res.body);
  CAF_CHECK_EQUAL(obj.size(), 4u);
  CAF_CHECK(obj.contains("errcode"));
  CAF_CHECK(obj.contains("message") && obj.at("message").is_string());
  CAF_CHECK(obj.contains("reason") && obj.at("reason").is_string());
  CAF_CHECK(obj.contains("http_status") && obj.at("http_status").is_int64());
  if (obj.contains("reason") && obj.at("reason").is_string())
    CAF_CHECK_EQUAL(std::string{obj.at("reason").as_string()}, reason);
  if (obj.contains("http_status") && obj.at("http_status").is_int64())
    CAF_CHECK_EQUAL(obj.at("http_status").as_int64(), static_cast<int64_t>(status));
}

struct fixture {
  hub_env env;
  fixture() { env.start_hub(); }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(hub_api_tests, fixture)

CAF_TEST(access token has the elixir_wechat shape and is cached) {
  auto res = env.hub("GET", "/client/access_token?appid=wxe2e");
  CAF_REQUIRE_EQUAL(res.status, 200u);
  CAF_CHECK_EQUAL(res.content_type, "application/json");
  auto obj = parse_object(res.body);
  CAF_CHECK_EQUAL(obj.size(), 3u);
  CAF_REQUIRE(obj.contains("access_token") && obj.at("access_token").is_string());
  CAF_REQUIRE(obj.contains("expires_in") && obj.at("expires_in").is_int64());
  CAF_REQUIRE(obj.contains("timestamp") && obj.at("timestamp").is_int64());
  auto token = std::string{obj.at("access_token").as_string()};
  // Never later than WeChat's own expiry (the sim's lifetime is 7200 s).
  CAF_CHECK_LESS_OR_EQUAL(obj.at("expires_in").as_int64(), 7200);
  CAF_CHECK_GREATER(obj.at("expires_in").as_int64(), 7000);
  auto state = parse_object(env.sim("GET", "/sim/state?appid=wxe2e").body);
  CAF_CHECK_EQUAL(std::string{state.at("stable_token").as_string()}, token);
  for (int i = 0; i < 20; ++i) {
    auto again = parse_object(env.hub("GET", "/client/access_token?appid=wxe2e").body);
    CAF_CHECK_EQUAL(std::string{again.at("access_token").as_string()}, token);
  }
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
}

CAF_TEST(classic apps use cgi-bin token) {
  auto res = env.hub("GET", "/client/access_token?appid=wxother");
  CAF_REQUIRE_EQUAL(res.status, 200u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/token", "wxother"), 1);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxother"), 0);
}

CAF_TEST(tickets of both types) {
  for (std::string type : {"jsapi", "wx_card"}) {
    auto res = env.hub("GET", "/client/ticket?appid=wxe2e&type=" + type);
    CAF_REQUIRE_EQUAL(res.status, 200u);
    auto obj = parse_object(res.body);
    CAF_CHECK_EQUAL(obj.size(), 4u);
    CAF_CHECK_EQUAL(std::string{obj.at("type").as_string()}, type);
    CAF_CHECK(!obj.at("ticket").as_string().empty());
    CAF_CHECK(obj.at("expires_in").is_int64());
    CAF_CHECK(obj.at("timestamp").is_int64());
    auto again = parse_object(env.hub("GET", "/client/ticket?appid=wxe2e&type=" + type).body);
    CAF_CHECK_EQUAL(again.at("ticket").as_string(), obj.at("ticket").as_string());
  }
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/ticket/getticket", "wxe2e"), 2);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
}

CAF_TEST(stale reports are compare and set) {
  auto first = parse_object(env.hub("GET", "/client/access_token?appid=wxe2e").body);
  auto token = std::string{first.at("access_token").as_string()};
  // An unknown old token: answered with the current one, nothing upstream.
  auto res = env.hub("POST", "/refresh/access_token", R"({"appid":"wxe2e","access_token":"OLD"})");
  CAF_REQUIRE_EQUAL(res.status, 200u);
  CAF_CHECK_EQUAL(std::string{parse_object(res.body).at("access_token").as_string()}, token);
  // The current token, still valid at WeChat: verified once, kept (a few
  // times; more is a refresh loop, see e2e_unchanged_clients).
  for (int i = 0; i < 4; ++i) {
    auto same = env.hub("POST", "/refresh/access_token",
                        "appid=wxe2e&access_token=" + token, "application/x-www-form-urlencoded");
    CAF_REQUIRE_EQUAL(same.status, 200u);
    CAF_CHECK_EQUAL(std::string{parse_object(same.body).at("access_token").as_string()}, token);
  }
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/get_api_domain_ip", "wxe2e"), 1);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
}

CAF_TEST(a token WeChat killed is replaced once) {
  auto first = parse_object(env.hub("GET", "/client/access_token?appid=wxe2e").body);
  auto token = std::string{first.at("access_token").as_string()};
  // WeChat kills the token: one report replaces it, with force_refresh (the
  // sim's normal mode would hand back the dead token).
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxe2e"})");
  auto fresh = env.hub("POST", "/refresh/access_token",
                       R"({"appid":"wxe2e","access_token":")" + token + R"("})");
  CAF_REQUIRE_EQUAL(fresh.status, 200u);
  auto fresh_token = std::string{parse_object(fresh.body).at("access_token").as_string()};
  CAF_CHECK_NOT_EQUAL(fresh_token, token);
  // Later reports of the old token cost nothing.
  for (int i = 0; i < 5; ++i) {
    auto late = env.hub("POST", "/refresh/access_token",
                        R"({"appid":"wxe2e","access_token":")" + token + R"("})");
    CAF_CHECK_EQUAL(std::string{parse_object(late.body).at("access_token").as_string()}, fresh_token);
  }
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/get_api_domain_ip", "wxe2e"), 1);
  // The first fetch plus one replacement (the sim's normal mode issues a new
  // token once the old one was killed, so no force_refresh is spent).
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 2);
  auto business = env.sim("POST", "/cgi-bin/material/batchget_material?access_token=" + fresh_token,
                          R"({"type":"image","offset":0,"count":1})");
  CAF_CHECK(!parse_object(business.body).contains("errcode")
            || parse_object(business.body).at("errcode").as_int64() == 0);
}

CAF_TEST(client errors use real statuses and the four key body) {
  check_error(env.hub("GET", "/client/access_token"), 400, "invalid_request");
  check_error(env.hub("GET", "/client/access_token?appid="), 400, "invalid_request");
  check_error(env.hub("GET", "/client/access_token?appid=wx%20bad"), 400, "invalid_request");
  check_error(env.hub("GET", "/client/access_token?appid=wxnope"), 404, "unknown_appid");
  check_error(env.hub("GET", "/client/access_token?appid=wxe2e&authorizer_appid=wxa"), 404,
              "unknown_authorizer");
  check_error(env.hub("GET", "/client/ticket?appid=wxe2e&type=other"), 400, "invalid_request");
  check_error(env.hub("GET", "/client/ticket?appid=wxe2e"), 400, "invalid_request");
  check_error(env.hub("GET", "/no/such/path"), 404, "not_found");
  auto wrong = env.hub("POST", "/client/access_token?appid=wxe2e", "{}");
  check_error(wrong, 405, "method_not_allowed");
  CAF_CHECK_EQUAL(wrong.header("Allow"), "GET");
  check_error(env.hub("GET", "/refresh/access_token"), 405, "method_not_allowed");
  check_error(env.hub("POST", "/refresh/access_token", "{not json"), 400, "invalid_request");
  check_error(env.hub("POST", "/refresh/access_token", "[1,2]"), 400, "invalid_request");
  check_error(env.hub("POST", "/refresh/access_token", R"({"access_token":"x"})"), 400,
              "invalid_request");
  check_error(env.hub("POST", "/refresh/access_token", R"({"appid":7,"access_token":"x"})"), 400,
              "invalid_request");
  check_error(env.hub("POST", "/refresh/access_token", R"({"appid":"wxnope","access_token":"x"})"),
              404, "unknown_appid");
  check_error(env.hub("POST", "/refresh/access_token", std::string(4 * 1024 * 1024, 'x')), 413,
              "body_too_large");
  // Nothing above reached WeChat.
  CAF_CHECK_EQUAL(parse_object(env.sim("GET", "/sim/stats").body).at("total").as_int64(), 0);
}

CAF_TEST(upstream failures map to 502 and 503 with the errcode) {
  env.sim("POST", "/sim/fault",
          R"({"path":"/cgi-bin/stable_token","kind":"errcode","errcode":40125,"times":1})");
  auto bad_secret = env.hub("GET", "/client/access_token?appid=wxe2e");
  check_error(bad_secret, 502, "invalid_credentials");
  CAF_CHECK_EQUAL(parse_object(bad_secret.body).at("errcode").as_int64(), 40125);
  CAF_CHECK(bad_secret.body.find("e2e-secret-value") == std::string::npos);
  env.sim("POST", "/sim/fault",
          R"({"path":"/cgi-bin/token","kind":"errcode","errcode":45009,"times":1})");
  auto quota = env.hub("GET", "/client/access_token?appid=wxother");
  check_error(quota, 503, "quota_exhausted");
  CAF_CHECK_EQUAL(parse_object(quota.body).at("errcode").as_int64(), 45009);
  // 45009 stops calls for that app: a second request does not reach WeChat.
  auto calls = env.sim_calls("/cgi-bin/token", "wxother");
  check_error(env.hub("GET", "/client/access_token?appid=wxother"), 503, "quota_exhausted");
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/token", "wxother"), calls);
}

CAF_TEST(transport failures are 503) {
  hub_env other;
  other.start_hub();
  other.sim("POST", "/sim/fault", R"({"path":"*","kind":"http500","times":1})");
  check_error(other.hub("GET", "/client/access_token?appid=wxe2e"), 503, "upstream_unavailable");
  // A dropped reused keep-alive connection is retried once transparently,
  // so two drops in a row are needed to surface an error.
  other.sim("POST", "/sim/fault", R"({"path":"*","kind":"drop","times":2})");
  check_error(other.hub("GET", "/client/access_token?appid=wxother"), 503, "upstream_unavailable");
  other.sim("POST", "/sim/fault", R"({"path":"*","kind":"html","times":1})");
  check_error(other.hub("GET", "/client/ticket?appid=wxother&type=jsapi"), 503,
              "upstream_unavailable");
  other.sim("POST", "/sim/clear_faults");
  other.sim("POST", "/sim/fault", R"({"path":"*","kind":"latency","latency_ms":3000,"times":1})");
  auto slow = other.hub("GET", "/client/ticket?appid=wxe2e&type=wx_card");
  CAF_CHECK_EQUAL(slow.status, 503u);
  // Once WeChat behaves again, the hub recovers.
  other.sim("POST", "/sim/clear_faults");
  CAF_CHECK_EQUAL(other.hub("GET", "/client/ticket?appid=wxe2e&type=wx_card").status, 200u);
}

CAF_TEST(healthz and metrics) {
  auto health = env.hub("GET", "/healthz");
  CAF_CHECK_EQUAL(health.status, 200u);
  auto token = parse_object(env.hub("GET", "/client/access_token?appid=wxe2e").body);
  env.hub("GET", "/client/access_token?appid=nope");
  auto m = env.hub("GET", "/metrics");
  CAF_REQUIRE_EQUAL(m.status, 200u);
  CAF_CHECK(m.content_type.rfind("text/plain", 0) == 0);
  auto has = [&](const std::string& needle) { return m.body.find(needle) != std::string::npos; };
  CAF_CHECK(has(R"(wechat_hub_http_requests_total{route="/client/access_token",status="200"} 1)"));
  CAF_CHECK(has(R"(wechat_hub_http_requests_total{route="/client/access_token",status="404"} 1)"));
  CAF_CHECK(has(R"(wechat_upstream_calls_total{endpoint="stable_token",errcode="0"} 1)"));
  CAF_CHECK(has(R"(wechat_hub_refreshes_total{kind="access_token",reason="on_demand",result="ok"} 1)"));
  CAF_CHECK(has(R"(wechat_hub_token_age_seconds{appid="wxe2e"})"));
  CAF_CHECK(has(R"(wechat_hub_token_ttl_seconds{appid="wxe2e"})"));
  // Secrets and token values never appear in metrics or logs.
  auto value = std::string{token.at("access_token").as_string()};
  CAF_CHECK(!has(value));
  CAF_CHECK(!has("e2e-secret-value"));
  auto log = env.hub_log();
  CAF_CHECK(log.find(value) == std::string::npos);
  CAF_CHECK(log.find("e2e-secret-value") == std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
