// Pushes replayed, or delivered late, after a restart: the replay cache and
// the per-subject CreateTime order are durable (issue 14, item 2).
#define CAF_SUITE e2e_push_replay

#include "caf/test/dsl.hpp"

#include "tests/e2e/hub_env.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/push.hpp"

using namespace wh;
using namespace wh::test;

namespace {

struct fixture {
  hub_env env;
  std::string comp = component_appid;
  int nonce = 0;

  fixture() { env.start_hub(component_toml()); }

  void restart() {
    env.kill_hub();
    env.start_hub(component_toml());
  }

  std::string events_url() const { return env.hub_url() + "/wechat/component/" + comp + "/events"; }

  boost::json::object sim_push(const std::string& info_type, const std::string& authorizer = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type
                       + R"(","url":")" + events_url() + "\"";
    if (!authorizer.empty())
      body += R"(,"authorizer_appid":")" + authorizer + "\"";
    body += "}";
    auto res = parse_object(env.sim("POST", "/sim/push", body).body);
    CAF_REQUIRE_EQUAL(res.at("status").as_int64(), 200);
    return res;
  }

  int64_t sim_now() { return parse_object(env.sim("GET", "/sim/time").body).at("now").as_int64(); }

  /// A push as WeChat would have sent it at `created` (timestamp = CreateTime).
  wechat::sealed_push craft(wechat::push_event ev, int64_t created) {
    auto c = wechat::msg_crypto::make(component_aes_key, component_token, comp);
    if (!c)
      CAF_FAIL("crypto");
    ev.appid = comp;
    ev.create_time = created;
    return wechat::seal_push(*c, ev, std::to_string(created), "nonce" + std::to_string(++nonce));
  }

  http_result post(const wechat::sealed_push& p) {
    auto target = "/wechat/component/" + comp + "/events?timestamp=" + p.timestamp + "&nonce=" + p.nonce
                  + "&encrypt_type=aes&msg_signature=" + p.msg_signature + "&signature=" + p.signature;
    return env.hub("POST", target, p.body, "text/xml");
  }

  unsigned authorizer_status(const std::string& aid) {
    return env.hub("GET", "/client/access_token?appid=" + comp + "&authorizer_appid=" + aid).status;
  }

  int64_t metric(const std::string& result) {
    auto series = "wechat_hub_pushes_total{component=\"" + comp + "\",result=\"" + result + "\"}";
    auto body = env.hub("GET", "/metrics").body;
    auto pos = body.find(series + " ");
    return pos == std::string::npos ? 0 : std::stoll(body.substr(pos + series.size() + 1));
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(push_replay_tests, fixture)

CAF_TEST(a replayed or older unauthorized push cannot revoke a re-authorized authorizer after a restart) {
  sim_push("component_verify_ticket");
  auto t0 = sim_now();
  sim_push("authorized", "wxauthorizer0031");
  CAF_REQUIRE_EQUAL(authorizer_status("wxauthorizer0031"), 200u);
  // WeChat revokes it (this push is what an attacker captures)...
  wechat::push_event unauth;
  unauth.info_type = "unauthorized";
  unauth.authorizer_appid = "wxauthorizer0031";
  auto captured = craft(unauth, t0 + 5);
  CAF_REQUIRE_EQUAL(post(captured).body, "success");
  CAF_CHECK_EQUAL(authorizer_status("wxauthorizer0031"), 410u);
  // ...and the account authorizes the platform again, later.
  env.sim("POST", "/sim/advance", R"({"seconds":10})");
  sim_push("authorized", "wxauthorizer0031");
  CAF_REQUIRE_EQUAL(authorizer_status("wxauthorizer0031"), 200u);
  restart();
  // The captured push, replayed: acknowledged, not applied.
  auto replayed = post(captured);
  CAF_CHECK_EQUAL(replayed.status, 200u);
  CAF_CHECK_EQUAL(replayed.body, "success");
  CAF_CHECK_EQUAL(metric("duplicate"), 1);
  CAF_CHECK_EQUAL(authorizer_status("wxauthorizer0031"), 200u);
  // A never-seen unauthorized event older than the re-authorization: ignored.
  auto late = post(craft(unauth, t0 + 7));
  CAF_CHECK_EQUAL(late.status, 200u);
  CAF_CHECK_EQUAL(late.body, "success");
  CAF_CHECK_EQUAL(metric("outdated"), 1);
  CAF_CHECK_EQUAL(authorizer_status("wxauthorizer0031"), 200u);
  // A newer one still revokes.
  CAF_CHECK_EQUAL(post(craft(unauth, sim_now() + 1)).body, "success");
  CAF_CHECK_EQUAL(authorizer_status("wxauthorizer0031"), 410u);
}

CAF_TEST(a replayed or older verify ticket never replaces the stored one after a restart) {
  auto now = sim_now();
  auto first = sim_push("component_verify_ticket");
  // A ticket push an attacker captures...
  wechat::push_event ev;
  ev.info_type = "component_verify_ticket";
  ev.component_verify_ticket = std::string{first.at("ticket").as_string()};
  auto captured = craft(ev, now + 5);
  CAF_REQUIRE_EQUAL(post(captured).body, "success");
  CAF_CHECK_EQUAL(metric("applied"), 2);
  // ...and the next one, ten seconds later.
  env.sim("POST", "/sim/advance", R"({"seconds":10})");
  sim_push("component_verify_ticket");
  restart();
  CAF_CHECK_EQUAL(post(captured).body, "success");
  CAF_CHECK_EQUAL(metric("duplicate"), 1);
  // A never-seen ticket push from before the stored one, carrying a ticket
  // WeChat does not honour: acknowledged, and the stored ticket stays.
  ev.component_verify_ticket = "ticket@@@from-before";
  auto res = post(craft(ev, now + 7));
  CAF_CHECK_EQUAL(res.status, 200u);
  CAF_CHECK_EQUAL(res.body, "success");
  CAF_CHECK_EQUAL(metric("outdated"), 1);
  CAF_CHECK_EQUAL(metric("applied"), 0);
  // The component token is obtained with the stored ticket: WeChat accepts it.
  auto refreshed = env.hub("POST", "/admin/refresh", "{\"appid\":\"" + comp + "\"}");
  CAF_CHECK_EQUAL(refreshed.status, 200u);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/component_access_token?appid=" + comp).status, 200u);
}

CAF_TEST_FIXTURE_SCOPE_END()
