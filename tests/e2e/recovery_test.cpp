#define CAF_SUITE e2e_recovery

// Authorizer recovery from api_get_authorizer_list against wechat-sim:
// unknown authorizers, periodic reconciliation, and a crash while
// api_query_auth was in flight.

#include "caf/test/dsl.hpp"

#include <thread>

#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

constexpr const char* list_path = "/cgi-bin/component/api_get_authorizer_list";
constexpr const char* query_path = "/cgi-bin/component/api_query_auth";

struct fixture {
  hub_env env;
  std::string comp = component_appid;

  std::string events_url() const { return env.hub_url() + "/wechat/component/" + comp + "/events"; }

  boost::json::object sim_push(const std::string& info_type, const std::string& authorizer = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type
                       + R"(","url":")" + events_url() + "\"";
    if (!authorizer.empty())
      body += R"(,"authorizer_appid":")" + authorizer + "\"";
    body += "}";
    return parse_object(env.sim("POST", "/sim/push", body).body);
  }

  /// Authorizers WeChat has but the hub was never told about.
  void sim_authorizers(int n, const std::string& prefix) {
    auto res = env.sim("POST", "/sim/authorizers",
                       R"({"component_appid":")" + comp + R"(","count":)" + std::to_string(n)
                         + R"(,"prefix":")" + prefix + "\"}");
    CAF_REQUIRE_EQUAL(res.status, 200u);
  }

  http_result authorizer_token(const std::string& aid) {
    return env.hub("GET", "/client/access_token?appid=" + comp + "&authorizer_appid=" + aid);
  }

  std::string metrics_line(const std::string& series) {
    auto body = env.hub("GET", "/metrics").body;
    auto pos = body.find(series + " ");
    if (pos == std::string::npos)
      return {};
    return body.substr(pos + series.size() + 1, body.find('\n', pos) - pos - series.size() - 1);
  }

  /// Polls `pred` for up to `secs` (real processes: their timers are real).
  template <class Pred>
  bool eventually(Pred pred, int secs = 10) {
    for (int i = 0; i < secs * 20; ++i) {
      if (pred())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
  }
};

/// The `reason` of an error body (a copy: CAF's check macros keep references).
std::string reason_of(const std::string& body) {
  auto o = parse_object(body);
  auto r = o.if_contains("reason");
  return r && r->is_string() ? std::string{r->as_string()} : std::string{"<none>"};
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(recovery_tests, fixture)

CAF_TEST(an unknown authorizer is recovered from the list and unknown ones are rate limited) {
  env.start_hub(component_toml());
  sim_push("component_verify_ticket");
  sim_authorizers(700, "wxrec"); // two pages of 500
  auto res = authorizer_token("wxrec000000650");
  CAF_CHECK_EQUAL(res.status, 200u);
  CAF_CHECK(parse_object(res.body).contains("access_token"));
  CAF_CHECK_EQUAL(env.sim_calls(list_path, comp), 2);
  // Not listed upstream: 404 unknown_authorizer, answered from the last walk.
  for (int i = 0; i < 20; ++i) {
    auto miss = authorizer_token("wxnothere" + std::to_string(i));
    CAF_CHECK_EQUAL(miss.status, 404u);
    CAF_CHECK_EQUAL(reason_of(miss.body), "unknown_authorizer");
  }
  // Another listed one is served from the same walk too.
  CAF_CHECK_EQUAL(authorizer_token("wxrec000000003").status, 200u);
  CAF_MESSAGE("recovery of 2 authorizers and 20 unknown lookups: " << env.sim_calls(list_path, comp)
                                                                   << " api_get_authorizer_list calls");
  CAF_CHECK_EQUAL(env.sim_calls(list_path, comp), 2);
  // Imported durably: served after a restart without another walk.
  env.kill_hub();
  env.start_hub(component_toml());
  CAF_CHECK_EQUAL(authorizer_token("wxrec000000650").status, 200u);
  CAF_CHECK_EQUAL(env.sim_calls(list_path, comp), 2);
}

CAF_TEST(reconciliation imports missing authorizers and reports absent ones without deleting) {
  env.start_hub(component_toml() + "reconcile_interval_s = 2\n");
  sim_push("component_verify_ticket");
  sim_authorizers(3, "wxrcn");
  // One the hub holds but WeChat does not list.
  auto put = env.hub("PUT", "/admin/components/" + comp + "/authorizers/wxghost0000001",
                     R"({"refresh_token":"refreshtoken@@@ghost"})");
  CAF_REQUIRE_EQUAL(put.status, 200u);
  auto series = "wechat_hub_authorizers{component=\"" + comp + "\",status=\"active\"}";
  CAF_CHECK(eventually([&] { return metrics_line(series) == "4"; }));
  CAF_CHECK(eventually([&] {
    return metrics_line("wechat_hub_authorizers_absent_upstream{component=\"" + comp + "\"}") == "1";
  }));
  CAF_CHECK(env.hub_log().find("not listed by WeChat (kept; e.g. wxghost0000001)") != std::string::npos);
  auto walks = env.sim_calls(list_path, comp);
  // Imported authorizers are served without another lookup.
  CAF_CHECK_EQUAL(authorizer_token("wxrcn000000002").status, 200u);
  CAF_CHECK_LESS_OR_EQUAL(env.sim_calls(list_path, comp) - walks, 1); // at most the next period's walk
  // The absent one is kept.
  auto listing = env.hub("GET", "/admin/components/" + comp + "/authorizers");
  CAF_CHECK(listing.body.find("wxghost0000001") != std::string::npos);
}

CAF_TEST(a crash during api_query_auth does not lose the authorizer) {
  env.start_hub(component_toml());
  sim_push("component_verify_ticket");
  CAF_REQUIRE_EQUAL(env.hub("GET", "/client/component_access_token?appid=" + comp).status, 200u);
  // api_query_auth takes 1.5 s; the hub dies in the middle of it. WeChat
  // spends the single-use code anyway.
  env.sim("POST", "/sim/fault",
          R"({"path":"/cgi-bin/component/api_query_auth","kind":"latency","latency_ms":1500,"times":1})");
  std::thread pusher([this] { sim_push("authorized", "wxcrash0000001"); });
  CAF_CHECK(eventually([&] { return env.sim_calls(query_path, comp) == 1; }, 5));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  env.kill_hub();
  pusher.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(1600)); // the code is spent now
  env.start_hub(component_toml());
  // The pending authorization is recovered at start (the admin listing does
  // not trigger a lookup of its own).
  CAF_CHECK(eventually([&] {
    return env.hub("GET", "/admin/components/" + comp + "/authorizers").body.find("wxcrash0000001")
           != std::string::npos;
  }));
  CAF_CHECK(env.hub_log().find("an authorization was in flight when the hub stopped") != std::string::npos);
  // WeChat retries the push with the same (spent) code.
  auto replay = parse_object(env.sim("POST", "/sim/repush",
                                     R"({"component_appid":")" + comp + R"(","url":")" + events_url()
                                       + "\"}")
                               .body);
  CAF_CHECK_EQUAL(replay.at("status").as_int64(), 200);
  CAF_CHECK_EQUAL(replay.at("body").as_string(), "success");
  auto res = authorizer_token("wxcrash0000001");
  CAF_CHECK_EQUAL(res.status, 200u);
  CAF_CHECK(parse_object(res.body).contains("access_token"));
  CAF_MESSAGE("crash during api_query_auth: " << env.sim_calls(query_path, comp) << " api_query_auth, "
                                              << env.sim_calls(list_path, comp)
                                              << " api_get_authorizer_list calls");
  CAF_CHECK_EQUAL(env.sim_calls(query_path, comp), 2);
  CAF_CHECK_LESS_OR_EQUAL(env.sim_calls(list_path, comp), 2);
  CAF_CHECK(env.hub_log().find("refusing") == std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
