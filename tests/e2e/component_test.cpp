#define CAF_SUITE e2e_component

#include "caf/test/dsl.hpp"

#include "net/http_client.hpp"
#include "tests/e2e/hub_env.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/push.hpp"

using namespace wh;
using namespace wh::test;

namespace {

struct fixture {
  hub_env env;
  std::string comp = component_appid;

  fixture() { env.start_hub(component_toml()); }

  std::string events_url() const { return env.hub_url() + "/wechat/component/" + comp + "/events"; }

  /// Has the simulator push an event to the hub; returns the simulator's answer.
  boost::json::object sim_push(const std::string& info_type, const std::string& authorizer = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type
                       + R"(","url":")" + events_url() + "\"";
    if (!authorizer.empty())
      body += R"(,"authorizer_appid":")" + authorizer + "\"";
    body += "}";
    return parse_object(env.sim("POST", "/sim/push", body).body);
  }

  std::string component_token_value() {
    auto res = env.hub("GET", "/client/component_access_token?appid=" + comp);
    if (res.status != 200)
      return "<status " + std::to_string(res.status) + ">";
    return std::string{parse_object(res.body).at("access_token").as_string()};
  }

  std::string authorizer_token(const std::string& aid) {
    auto res = env.hub("GET", "/client/access_token?appid=" + comp + "&authorizer_appid=" + aid);
    if (res.status != 200)
      return "<status " + std::to_string(res.status) + ">";
    return std::string{parse_object(res.body).at("access_token").as_string()};
  }

  /// Posts a push crafted by the test (for rejection and replay cases).
  http_result post_sealed(const wechat::sealed_push& p, const std::string& body_override = {}) {
    auto target = "/wechat/component/" + comp + "/events?timestamp=" + p.timestamp + "&nonce=" + p.nonce
                  + "&encrypt_type=aes&msg_signature=" + p.msg_signature + "&signature=" + p.signature;
    return env.hub("POST", target, body_override.empty() ? p.body : body_override, "text/xml");
  }

  wechat::msg_crypto crypto(const std::string& appid = component_appid) {
    auto c = wechat::msg_crypto::make(component_aes_key, component_token, appid);
    if (!c)
      CAF_FAIL("crypto");
    return std::move(*c);
  }

  wechat::push_event ticket_event(const std::string& ticket) {
    wechat::push_event ev;
    ev.info_type = "component_verify_ticket";
    ev.appid = comp;
    ev.create_time = std::time(nullptr);
    ev.component_verify_ticket = ticket;
    return ev;
  }

  int64_t metric(const std::string& series) {
    auto body = env.hub("GET", "/metrics").body;
    auto pos = body.find(series + " ");
    if (pos == std::string::npos)
      return 0;
    return std::stoll(body.substr(pos + series.size() + 1));
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(component_tests, fixture)

CAF_TEST(full flow push ticket authorize ticket stale revoke with kill -9 between steps) {
  // Before any verify ticket the hub says why it cannot serve, and asked WeChat to push.
  auto early = env.hub("GET", "/client/component_access_token?appid=" + comp);
  CAF_CHECK_EQUAL(early.status, 502u);
  CAF_CHECK_EQUAL(std::string{parse_object(early.body).at("reason").as_string()},
                  "invalid_component_verify_ticket");
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_start_push_ticket", comp), 1);
  // 1. a ticket push gives a component token
  auto pushed = sim_push("component_verify_ticket");
  CAF_CHECK_EQUAL(pushed.at("status").as_int64(), 200);
  CAF_CHECK_EQUAL(std::string{pushed.at("body").as_string()}, "success");
  env.kill_hub();
  env.start_hub(component_toml());
  auto ctoken = component_token_value();
  CAF_CHECK_EQUAL(ctoken.rfind("<status", 0), std::string::npos);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_component_token", comp), 1);
  env.kill_hub();
  env.start_hub(component_toml());
  CAF_CHECK_EQUAL(component_token_value(), ctoken); // persisted: no second call
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_component_token", comp), 1);
  // 2. an authorized event gives an authorizer token
  auto auth = sim_push("authorized", "wxauthorizer0001");
  CAF_CHECK_EQUAL(auth.at("status").as_int64(), 200);
  auto atoken = authorizer_token("wxauthorizer0001");
  CAF_CHECK_EQUAL(atoken.rfind("<status", 0), std::string::npos);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_query_auth", comp), 1);
  env.kill_hub();
  env.start_hub(component_toml());
  CAF_CHECK_EQUAL(authorizer_token("wxauthorizer0001"), atoken);
  // 3. the authorizer gets a ticket
  auto ticket = env.hub("GET", "/client/ticket?appid=" + comp + "&authorizer_appid=wxauthorizer0001&type=jsapi");
  CAF_REQUIRE_EQUAL(ticket.status, 200u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/ticket/getticket", "wxauthorizer0001"), 1);
  // 4. WeChat kills the authorizer token: many stale reports, exactly one refresh,
  // using the refresh token that survived kill -9.
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxauthorizer0001"})");
  std::string fresh;
  for (int i = 0; i < 10; ++i) {
    auto res = env.hub("POST", "/refresh/access_token",
                       R"({"appid":")" + comp + R"(","authorizer_appid":"wxauthorizer0001","access_token":")"
                         + atoken + "\"}");
    CAF_REQUIRE_EQUAL(res.status, 200u);
    auto t = std::string{parse_object(res.body).at("access_token").as_string()};
    if (i == 0)
      fresh = t;
    CAF_CHECK_EQUAL(t, fresh);
  }
  CAF_CHECK_NOT_EQUAL(fresh, atoken);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_authorizer_token", comp), 1);
  auto listed = parse_object(env.hub("GET", "/admin/components/" + comp + "/authorizers").body);
  CAF_CHECK_EQUAL(listed.at("total").as_int64(), 1);
  CAF_CHECK(listed.at("authorizers").as_array()[0].as_object().at("status").as_string() == "active");
  // 5. unauthorized revokes, also across a restart
  auto revoked = sim_push("unauthorized", "wxauthorizer0001");
  CAF_CHECK_EQUAL(revoked.at("status").as_int64(), 200);
  CAF_CHECK_EQUAL(authorizer_token("wxauthorizer0001"), "<status 410>");
  env.kill_hub();
  env.start_hub(component_toml());
  auto gone = env.hub("GET", "/client/access_token?appid=" + comp + "&authorizer_appid=wxauthorizer0001");
  CAF_CHECK_EQUAL(gone.status, 410u);
  CAF_CHECK_EQUAL(std::string{parse_object(gone.body).at("reason").as_string()}, "authorizer_revoked");
  // Re-authorization brings it back.
  sim_push("authorized", "wxauthorizer0001");
  CAF_CHECK_EQUAL(authorizer_token("wxauthorizer0001").rfind("<status", 0), std::string::npos);
  // Secrets never reach the log.
  auto log = env.hub_log();
  CAF_CHECK(log.find(component_secret) == std::string::npos);
  CAF_CHECK(log.find(ctoken) == std::string::npos);
  CAF_CHECK(log.find(fresh) == std::string::npos);
}

CAF_TEST(component stale reports are compare and set) {
  sim_push("component_verify_ticket");
  auto ctoken = component_token_value();
  auto old = env.hub("POST", "/client/refresh_component_access_token",
                     R"({"appid":")" + comp + R"(","access_token":"OLD"})");
  CAF_REQUIRE_EQUAL(old.status, 200u);
  CAF_CHECK_EQUAL(std::string{parse_object(old.body).at("access_token").as_string()}, ctoken);
  // A brand-new token reported stale is kept (no refresh within a minute).
  auto same = env.hub("POST", "/client/refresh_component_access_token",
                      R"({"appid":")" + comp + R"(","access_token":")" + ctoken + "\"}");
  CAF_CHECK_EQUAL(std::string{parse_object(same.body).at("access_token").as_string()}, ctoken);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_component_token", comp), 1);
  auto unknown = env.hub("GET", "/client/component_access_token?appid=wxe2e");
  CAF_CHECK_EQUAL(unknown.status, 404u);
}

CAF_TEST(bad pushes are rejected and store nothing) {
  auto good = wechat::seal_push(crypto(), ticket_event("ticket@@@forged"));
  // wrong signature
  auto forged = good;
  forged.msg_signature = std::string(40, '0');
  CAF_CHECK_EQUAL(post_sealed(forged).status, 401u);
  // missing signature
  auto missing = good;
  missing.msg_signature.clear();
  CAF_CHECK_EQUAL(post_sealed(missing).status, 401u);
  // wrong trailing appid (encrypted for another platform with the same key)
  auto other = crypto("wxsomeoneelse00001");
  auto ev = ticket_event("ticket@@@x");
  ev.appid = "wxsomeoneelse00001";
  auto wrong_appid = wechat::seal_push(other, ev);
  CAF_CHECK_EQUAL(post_sealed(wrong_appid).status, 400u);
  // correctly signed garbage: truncated base64 and bad padding
  auto c = crypto();
  for (std::string enc : {std::string{"AAAA"}, wechat::base64_encode(std::string(64, '\x41')),
                          good.body.substr(0, 10)}) {
    wechat::sealed_push p = good;
    p.body = "<xml><AppId><![CDATA[" + comp + "]]></AppId><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>";
    p.msg_signature = c.signature(p.timestamp, p.nonce, enc);
    auto res = post_sealed(p);
    CAF_CHECK_EQUAL(res.status, 400u);
    CAF_CHECK_EQUAL(std::string{parse_object(res.body).at("reason").as_string()}, "invalid_push");
  }
  // not XML at all, and random bytes
  CAF_CHECK_EQUAL(post_sealed(good, "not xml").status, 400u);
  CAF_CHECK_EQUAL(post_sealed(good, std::string("\x00\xff\xfe\x01", 4)).status, 400u);
  // oversized
  CAF_CHECK_EQUAL(post_sealed(good, std::string(200 * 1024, '<')).status, 413u);
  // too old a timestamp (signed correctly)
  auto stale = wechat::seal_push(c, ticket_event("ticket@@@old"), std::to_string(std::time(nullptr) - 3600));
  auto res = post_sealed(stale);
  CAF_CHECK_EQUAL(res.status, 401u);
  CAF_CHECK_EQUAL(std::string{parse_object(res.body).at("reason").as_string()}, "push_timestamp_out_of_window");
  // Nothing was stored: still no verify ticket.
  auto token = env.hub("GET", "/client/component_access_token?appid=" + comp);
  CAF_CHECK_EQUAL(token.status, 502u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_component_token", comp), 0);
  // Unknown component
  CAF_CHECK_EQUAL(env.hub("POST", "/wechat/component/wxnope/events", good.body, "text/xml").status, 404u);
}

CAF_TEST(a replayed push is not applied twice) {
  auto p = wechat::seal_push(crypto(), ticket_event("ticket@@@replayed"));
  auto first = post_sealed(p);
  CAF_CHECK_EQUAL(first.status, 200u);
  CAF_CHECK_EQUAL(first.body, "success");
  auto second = post_sealed(p);
  CAF_CHECK_EQUAL(second.status, 200u);
  CAF_CHECK_EQUAL(second.body, "success");
  CAF_CHECK_EQUAL(metric("wechat_hub_pushes_total{component=\"" + comp + "\",result=\"applied\"}"), 1);
  CAF_CHECK_EQUAL(metric("wechat_hub_pushes_total{component=\"" + comp + "\",result=\"duplicate\"}"), 1);
}

CAF_TEST(admin import list and delete) {
  sim_push("component_verify_ticket");
  sim_push("authorized", "wxauthorizer0002");
  CAF_CHECK_EQUAL(authorizer_token("wxauthorizer0002").rfind("<status", 0), std::string::npos);
  // Importing a wrong refresh token for a known account: WeChat answers 61023.
  auto put = env.hub("PUT", "/admin/components/" + comp + "/authorizers/wxauthorizer0002",
                     R"({"refresh_token":"refreshtoken@@@wrong"})");
  CAF_CHECK_EQUAL(put.status, 200u);
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxauthorizer0002"})");
  auto stale = env.hub("POST", "/refresh/access_token",
                       R"({"appid":")" + comp + R"(","authorizer_appid":"wxauthorizer0002","access_token":"x"})");
  CAF_CHECK_EQUAL(stale.status, 200u); // "x" is not the current token: CAS answers from memory
  auto bulk = env.hub("POST", "/admin/components/" + comp + "/authorizers",
                      R"({"authorizers":[{"authorizer_appid":"wxbulk1","refresh_token":"r1"},)"
                      R"({"authorizer_appid":"wxbulk2","refresh_token":"r2"}]})");
  CAF_CHECK_EQUAL(bulk.status, 200u);
  CAF_CHECK_EQUAL(bulk.body, R"({"imported":2})");
  auto bad = env.hub("POST", "/admin/components/" + comp + "/authorizers",
                     R"({"authorizers":[{"authorizer_appid":"x y"}]})");
  CAF_CHECK_EQUAL(bad.status, 400u);
  auto list = parse_object(env.hub("GET", "/admin/components/" + comp + "/authorizers?offset=0&limit=2").body);
  CAF_CHECK_EQUAL(list.at("total").as_int64(), 3);
  CAF_CHECK_EQUAL(list.at("authorizers").as_array().size(), 2u);
  auto page = env.hub("GET", "/admin/components/" + comp + "/authorizers").body;
  CAF_CHECK(page.find("\"r1\"") == std::string::npos); // no refresh tokens in the list
  CAF_CHECK(page.find("refreshtoken@@@") == std::string::npos);
  // An account WeChat does not know as authorized: 61003, revoked.
  auto res = env.hub("GET", "/client/access_token?appid=" + comp + "&authorizer_appid=wxbulk1");
  CAF_CHECK_EQUAL(res.status, 410u);
  auto del = env.hub("DELETE", "/admin/components/" + comp + "/authorizers/wxbulk2");
  CAF_CHECK_EQUAL(del.status, 200u);
  CAF_CHECK_EQUAL(authorizer_token("wxbulk2"), "<status 410>");
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/components/" + comp + "/authorizers/wxnobody").status, 404u);
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/components/wxnope/authorizers").status, 404u);
  CAF_CHECK_EQUAL(env.hub("PATCH", "/admin/components/" + comp + "/authorizers/wxbulk1").status, 405u);
}

CAF_TEST(a rejected refresh token marks the authorizer for re-authorization) {
  sim_push("component_verify_ticket");
  sim_push("authorized", "wxauthorizer0004");
  auto token = authorizer_token("wxauthorizer0004");
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/components/" + comp + "/authorizers/wxauthorizer0004",
                          R"({"refresh_token":"refreshtoken@@@wrong"})")
                    .status,
                  200u);
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxauthorizer0004"})");
  auto refresh = [&](const std::string& t) {
    return env.hub("POST", "/refresh/access_token",
                   R"({"appid":")" + comp + R"(","authorizer_appid":"wxauthorizer0004","access_token":")" + t
                     + "\"}");
  };
  // WeChat still lists the authorizer: its refresh token is recovered from
  // api_get_authorizer_list (one walk) and the token served.
  auto res = refresh(token);
  CAF_CHECK_EQUAL(res.status, 200u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_get_authorizer_list", comp), 1);
  auto recovered = std::string{parse_object(res.body).at("access_token").as_string()};
  // The same rejected refresh token again: already looked up, so 409.
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/components/" + comp + "/authorizers/wxauthorizer0004",
                          R"({"refresh_token":"refreshtoken@@@wrong"})")
                    .status,
                  200u);
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxauthorizer0004"})");
  res = refresh(recovered);
  CAF_CHECK_EQUAL(res.status, 409u);
  CAF_CHECK_EQUAL(std::string{parse_object(res.body).at("reason").as_string()}, "needs_reauthorization");
  auto listed = env.hub("GET", "/admin/components/" + comp + "/authorizers").body;
  CAF_CHECK(listed.find("needs_reauthorization") != std::string::npos);
  // A new authorization heals it.
  sim_push("authorized", "wxauthorizer0004");
  CAF_CHECK_EQUAL(authorizer_token("wxauthorizer0004").rfind("<status", 0), std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
