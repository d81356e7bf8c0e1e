#define CAF_SUITE e2e_quota

// GET /admin/quota and POST /admin/clear_quota against wechat-sim.

#include "caf/test/dsl.hpp"

#include <ctime>

#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

struct fixture {
  hub_env env;

  fixture() { env.start_hub(component_toml()); }

  boost::json::object quota(const std::string& appid) {
    auto res = env.hub("GET", "/admin/quota?appid=" + appid);
    CAF_CHECK_EQUAL(res.status, 200u);
    return parse_object(res.body);
  }

  int64_t calls(const boost::json::object& q, const std::string& endpoint) {
    auto& c = q.at("calls").as_object();
    auto n = c.if_contains(endpoint);
    return n ? n->as_int64() : 0;
  }

  std::string token() {
    auto res = env.hub("GET", "/client/access_token?appid=wxe2e");
    if (res.status != 200)
      return "<status " + std::to_string(res.status) + ">";
    return std::string{parse_object(res.body).at("access_token").as_string()};
  }

  /// Reports `value` as failing after WeChat really invalidated it (the hub
  /// checks a reported token before it replaces it).
  http_result report_stale(const std::string& value) {
    env.sim("POST", "/sim/invalidate", R"({"appid":"wxe2e"})");
    return env.hub("POST", "/refresh/access_token", R"({"appid":"wxe2e","access_token":")" + value + "\"}");
  }

  double metric(const std::string& series) {
    auto body = env.hub("GET", "/metrics").body;
    auto pos = body.find("\n" + series + " ");
    if (pos == std::string::npos)
      return -1;
    return std::stod(body.substr(pos + series.size() + 2));
  }
};

std::string beijing_today() {
  std::time_t t = std::time(nullptr) + 8 * 3600;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(quota_tests, fixture)

CAF_TEST(quota counts the own calls of the hub per endpoint and the last 45009) {
  auto t = token();
  CAF_REQUIRE_EQUAL(t.rfind("<status", 0), std::string::npos);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/ticket?type=jsapi&appid=wxe2e").status, 200u);
  auto q = quota("wxe2e");
  CAF_CHECK_EQUAL(std::string{q.at("day").as_string()}, beijing_today());
  CAF_CHECK_EQUAL(calls(q, "stable_token"), env.sim_calls("/cgi-bin/stable_token", "wxe2e"));
  CAF_CHECK_EQUAL(calls(q, "stable_token"), 1);
  CAF_CHECK_EQUAL(calls(q, "getticket"), 1);
  CAF_CHECK_EQUAL(q.at("total").as_int64(), 2);
  CAF_CHECK(q.at("last_45009").is_null());
  CAF_CHECK(q.at("last_45011").is_null());
  CAF_CHECK_EQUAL(q.at("daily_quota_exhausted").as_bool(), false);
  CAF_CHECK_EQUAL(q.at("clear_quota").as_object().at("used_this_month").as_int64(), 0);
  // Nothing leaks: no token, no secret.
  auto raw = env.hub("GET", "/admin/quota?appid=wxe2e").body;
  CAF_CHECK_EQUAL(raw.find(t), std::string::npos);
  CAF_CHECK_EQUAL(raw.find("e2e-secret-value"), std::string::npos);
  // A minute quota (45011), then the daily quota (45009) on the next refreshes.
  env.sim("POST", "/sim/fault", R"({"path":"/cgi-bin/stable_token","kind":"errcode","errcode":45011})");
  CAF_CHECK_EQUAL(report_stale(t).status, 503u);
  q = quota("wxe2e");
  CAF_REQUIRE(q.at("last_45011").is_object());
  CAF_CHECK_EQUAL(std::string{q.at("last_45011").as_object().at("endpoint").as_string()}, "stable_token");
  CAF_CHECK_EQUAL(calls(q, "stable_token"), 2);
  // The component's own calls are its own.
  auto cq = quota(component_appid);
  CAF_CHECK_EQUAL(calls(cq, "stable_token"), 0);
  CAF_CHECK(!cq.contains("clear_quota"));
  // Unknown keys and bad requests.
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/quota?appid=wxnothere").status, 404u);
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/quota").status, 400u);
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/quota?appid=bad%20id").status, 400u);
  CAF_CHECK_EQUAL(env.hub("POST", "/admin/quota?appid=wxe2e", "{}").status, 405u);
}

CAF_TEST(clear_quota resets a 45009 within the monthly limit of WeChat) {
  auto t = token();
  CAF_REQUIRE_EQUAL(t.rfind("<status", 0), std::string::npos);
  // WeChat's daily quota is spent: an operator's forced refresh gets 45009
  // and the app pauses; the current token stays valid (clear_quota needs it).
  CAF_REQUIRE_EQUAL(env.sim("POST", "/sim/quota", R"({"appid":"wxe2e","remaining":0})").status, 200u);
  auto refused = env.hub("POST", "/admin/refresh", R"({"appid":"wxe2e"})");
  CAF_CHECK_EQUAL(refused.status, 503u);
  CAF_CHECK(refused.body.find("quota_exhausted") != std::string::npos);
  auto q = quota("wxe2e");
  CAF_REQUIRE(q.at("last_45009").is_object());
  CAF_CHECK_EQUAL(std::string{q.at("last_45009").as_object().at("endpoint").as_string()}, "stable_token_force");
  CAF_CHECK_EQUAL(q.at("daily_quota_exhausted").as_bool(), true);
  CAF_CHECK_EQUAL(metric(R"(wechat_hub_daily_quota_exhausted{appid="wxe2e",endpoint="stable_token_force"})"), 1);
  auto before = env.sim_calls("/cgi-bin/stable_token", "wxe2e");
  CAF_CHECK_EQUAL(env.hub("POST", "/admin/refresh", R"({"appid":"wxe2e"})").status, 503u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), before); // paused: no call
  CAF_CHECK_EQUAL(token(), t); // still served
  // Only official accounts the hub holds the secret of; sane input only.
  CAF_CHECK_EQUAL(env.hub("POST", "/admin/clear_quota", R"({"appid":")" + std::string{component_appid} + "\"}").status,
                  400u);
  CAF_CHECK_EQUAL(env.hub("POST", "/admin/clear_quota", R"({"appid":"wxnothere"})").status, 404u);
  CAF_CHECK_EQUAL(env.hub("POST", "/admin/clear_quota", R"({})").status, 400u);
  CAF_CHECK_EQUAL(env.hub("POST", "/admin/clear_quota", "not json").status, 400u);
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/clear_quota?appid=wxe2e").status, 405u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/clear_quota", "wxe2e"), 0);
  // The reset.
  auto cleared = env.hub("POST", "/admin/clear_quota", R"({"appid":"wxe2e"})");
  CAF_CHECK_EQUAL(cleared.status, 200u);
  auto obj = parse_object(cleared.body);
  CAF_CHECK_EQUAL(std::string{obj.at("status").as_string()}, "cleared");
  CAF_CHECK_EQUAL(obj.at("clear_quota_used_this_month").as_int64(), 1);
  CAF_CHECK_EQUAL(obj.at("pause_lifted").as_bool(), true);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/clear_quota", "wxe2e"), 1);
  q = quota("wxe2e");
  CAF_CHECK_EQUAL(q.at("daily_quota_exhausted").as_bool(), false);
  CAF_CHECK_EQUAL(calls(q, "clear_quota"), 1);
  CAF_CHECK_EQUAL(metric(R"(wechat_hub_daily_quota_exhausted{appid="wxe2e",endpoint="stable_token_force"})"), 0);
  // The pause is lifted: a token WeChat invalidated is replaced at once.
  CAF_CHECK_EQUAL(report_stale(t).status, 200u);
  CAF_CHECK_GREATER(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), before);
  // WeChat refusing the reset gives the reset back to the budget.
  env.sim("POST", "/sim/fault", R"({"path":"/cgi-bin/clear_quota","kind":"errcode","errcode":48006})");
  auto failed = env.hub("POST", "/admin/clear_quota", R"({"appid":"wxe2e"})");
  CAF_CHECK_EQUAL(failed.status, 502u);
  CAF_CHECK(failed.body.find(R"("errcode":48006)") != std::string::npos);
  CAF_CHECK_EQUAL(quota("wxe2e").at("clear_quota").as_object().at("used_this_month").as_int64(), 1);
  // 10 per month: nine more, then the hub refuses without calling WeChat.
  for (int i = 2; i <= 10; ++i)
    CAF_CHECK_EQUAL(env.hub("POST", "/admin/clear_quota", R"({"appid":"wxe2e"})").status, 200u);
  auto sim_clears = env.sim_calls("/cgi-bin/clear_quota", "wxe2e");
  CAF_CHECK_EQUAL(sim_clears, 11); // 10 resets and the refused one
  auto over = env.hub("POST", "/admin/clear_quota", R"({"appid":"wxe2e"})");
  CAF_CHECK_EQUAL(over.status, 429u);
  CAF_CHECK_EQUAL(std::string{parse_object(over.body).at("reason").as_string()}, "clear_quota_budget_exhausted");
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/clear_quota", "wxe2e"), sim_clears);
  // The budget survives a restart.
  env.kill_hub();
  env.start_hub(component_toml());
  CAF_CHECK_EQUAL(env.hub("POST", "/admin/clear_quota", R"({"appid":"wxe2e"})").status, 429u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/clear_quota", "wxe2e"), sim_clears);
  CAF_CHECK_EQUAL(quota("wxe2e").at("clear_quota").as_object().at("used_this_month").as_int64(), 10);
  // Every attempt is audited.
  auto audit = read_file(env.dir / "data/audit.log");
  CAF_CHECK(audit.find(R"("action":"POST","target":"/admin/clear_quota","status":200)") != std::string::npos);
  CAF_CHECK(audit.find(R"("action":"POST","target":"/admin/clear_quota","status":429)") != std::string::npos);
  CAF_CHECK(audit.find(R"("action":"POST","target":"/admin/clear_quota","status":502)") != std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
