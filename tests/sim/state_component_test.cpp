#define CAF_SUITE sim_state_component

#include "caf/test/dsl.hpp"

#include "core/clock.hpp"
#include "sim/state.hpp"
#include "tests/sim/sim_test_util.hpp"

using namespace wh;
using namespace wh::sim;
using namespace wh::sim::test;

namespace {

struct fixture {
  manual_clock clk{1'700'000'000};
  state st{clk, limits{}, {{"wxapp", "s"}}, {{"wxcomp", "csecret", "ctoken", test_aes_key}}};

  std::string ticket() {
    std::string error;
    auto ev = st.make_push("wxcomp", "component_verify_ticket", "", "http://127.0.0.1:1/x", error);
    CAF_REQUIRE(ev);
    CAF_CHECK_EQUAL(ev->info_type, "component_verify_ticket");
    CAF_CHECK_EQUAL(ev->token, "ctoken");
    return ev->verify_ticket;
  }

  std::string ctoken() {
    auto a = st.component_token("wxcomp", "csecret", ticket());
    CAF_REQUIRE_EQUAL(code(a), 0);
    return str(a, "component_access_token");
  }

  push_event authorize(const std::string& authorizer, const char* type = "authorized") {
    std::string error;
    auto ev = st.make_push("wxcomp", type, authorizer, "http://127.0.0.1:1/x", error);
    CAF_REQUIRE(ev);
    return *ev;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(sim_state_component_tests, fixture)

CAF_TEST(verify ticket and component token) {
  auto t = ticket();
  CAF_CHECK(t.starts_with("ticket@@@"));
  // Unknown and stale tickets both read as expired (61005), as on WeChat.
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", "bogus")), 61005);
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", "")), 61005);
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "wrong", t)), 40125);
  CAF_CHECK_EQUAL(code(st.component_token("nope", "csecret", t)), 61011);
  auto a = st.component_token("wxcomp", "csecret", t);
  CAF_CHECK_EQUAL(num(a, "expires_in"), 7200);
  auto c1 = str(a, "component_access_token");
  // Each call issues a new token; the old one keeps working for 300 s.
  auto c2 = str(st.component_token("wxcomp", "csecret", t), "component_access_token");
  CAF_CHECK_NOT_EQUAL(c1, c2);
  CAF_CHECK_EQUAL(code(st.create_preauthcode(c1, "wxcomp")), 0);
  clk.advance(300);
  CAF_CHECK_EQUAL(code(st.create_preauthcode(c1, "wxcomp")), 42001);
  CAF_CHECK_EQUAL(code(st.create_preauthcode(c2, "wxcomp")), 0);
  // Component tokens are not business tokens.
  CAF_CHECK_EQUAL(code(st.get_ticket(c2, "jsapi")), 40001);
  // Tickets live 12 h, also after newer ones were pushed.
  auto t2 = ticket();
  clk.advance(12 * 3600 - 301);
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", t)), 0);
  clk.advance(1);
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", t)), 61005);
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", t2)), 0);
}

CAF_TEST(periodic pushes cover every registered url with a fresh ticket) {
  // No URL registered: nothing to push.
  CAF_CHECK(st.verify_ticket_pushes().empty());
  CAF_REQUIRE(st.register_push("wxcomp", "http://127.0.0.1:9/wechat/component/wxcomp/events"));
  auto first = st.verify_ticket_pushes();
  CAF_REQUIRE_EQUAL(first.size(), 1u);
  CAF_CHECK_EQUAL(first[0].info_type, "component_verify_ticket");
  CAF_CHECK_EQUAL(first[0].url, "http://127.0.0.1:9/wechat/component/wxcomp/events");
  CAF_CHECK_EQUAL(first[0].create_time, clk.now());
  clk.advance(600);
  auto second = st.verify_ticket_pushes();
  CAF_REQUIRE_EQUAL(second.size(), 1u);
  CAF_CHECK_EQUAL(second[0].create_time, clk.now());
  CAF_CHECK_NOT_EQUAL(first[0].verify_ticket, second[0].verify_ticket);
  CAF_CHECK_EQUAL(str(*st.describe("wxcomp"), "verify_ticket"), second[0].verify_ticket);
  // A hub that missed the newest push keeps using the previous ticket.
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", first[0].verify_ticket)), 0);
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", second[0].verify_ticket)), 0);
}

CAF_TEST(bulk authorizers are authorized and refreshable) {
  std::vector<std::pair<std::string, std::string>> made;
  std::string error;
  CAF_REQUIRE(st.create_authorizers("wxcomp", 3, "wxa", made, error));
  CAF_REQUIRE_EQUAL(made.size(), 3u);
  CAF_CHECK_EQUAL(made[0].first, "wxa000000001");
  CAF_CHECK_EQUAL(made[2].first, "wxa000000003");
  CAF_CHECK(made[0].second.starts_with("refreshtoken@@@"));
  CAF_CHECK_NOT_EQUAL(made[0].second, made[1].second);
  auto c = ctoken();
  auto r = st.authorizer_token(c, "wxcomp", made[1].first, made[1].second);
  CAF_REQUIRE_EQUAL(code(r), 0);
  CAF_CHECK_EQUAL(str(r, "authorizer_refresh_token"), made[1].second);
  CAF_CHECK_EQUAL(st.check_token(str(r, "authorizer_access_token")).owner, "wxa000000002");
  CAF_CHECK_EQUAL(num(st.authorizer_list(c, "wxcomp", 0, 100), "total_count"), 3);
  // Repeating (or growing) a batch keeps existing refresh tokens.
  std::vector<std::pair<std::string, std::string>> again;
  CAF_REQUIRE(st.create_authorizers("wxcomp", 4, "wxa", again, error));
  CAF_REQUIRE_EQUAL(again.size(), 4u);
  CAF_CHECK_EQUAL(again[1].second, made[1].second);
  CAF_CHECK_EQUAL(again[3].first, "wxa000000004");
  // A revoked authorizer comes back with a new refresh token.
  authorize("wxa000000001", "unauthorized");
  again.clear();
  CAF_REQUIRE(st.create_authorizers("wxcomp", 1, "wxa", again, error));
  CAF_CHECK_NOT_EQUAL(again[0].second, made[0].second);
  CAF_CHECK_EQUAL(code(st.authorizer_token(c, "wxcomp", "wxa000000001", again[0].second)), 0);
  // The longest prefix still gives a 32-character appid.
  again.clear();
  CAF_REQUIRE(st.create_authorizers("wxcomp", 1, std::string(23, 'p'), again, error));
  CAF_CHECK_EQUAL(again[0].first.size(), 32u);
}

CAF_TEST(bulk authorizers reject bad input without side effects) {
  std::vector<std::pair<std::string, std::string>> made;
  std::string error;
  CAF_CHECK(!st.create_authorizers("wxcomp", 0, "wxa", made, error));
  CAF_CHECK(!st.create_authorizers("wxcomp", max_bulk_authorizers + 1, "wxa", made, error));
  CAF_CHECK(!st.create_authorizers("wxcomp", 1, "", made, error));
  CAF_CHECK(!st.create_authorizers("wxcomp", 1, std::string(24, 'p'), made, error));
  CAF_CHECK(!st.create_authorizers("wxcomp", 1, "wx-a", made, error));
  CAF_CHECK(!st.create_authorizers("nope", 1, "wxa", made, error));
  CAF_CHECK_EQUAL(error, "unknown component_appid");
  // An app named like a member of the batch refuses the whole batch.
  state st2{clk, limits{}, {{"wxa000000002", "s"}}, {{"wxcomp", "csecret", "ctoken", test_aes_key}}};
  CAF_CHECK(!st2.create_authorizers("wxcomp", 5, "wxa", made, error));
  CAF_CHECK(!st2.describe("wxa000000001"));
  CAF_CHECK(st2.create_authorizers("wxcomp", 1, "wxa", made, error));
  CAF_CHECK(made.size() == 1u);
}

CAF_TEST(bulk authorizers scale to large batches) {
  std::vector<std::pair<std::string, std::string>> made;
  std::string error;
  // The maximum (1,000,000, for scripts/bench-authorizers) is refused + 1;
  // 200,000 in one batch keeps the suite fast.
  CAF_CHECK(!st.create_authorizers("wxcomp", max_bulk_authorizers + 1, "wxa", made, error));
  CAF_CHECK_EQUAL(error, "count must be 1..1000000");
  CAF_REQUIRE(st.create_authorizers("wxcomp", 200'000, "wxa", made, error));
  CAF_REQUIRE_EQUAL(made.size(), 200'000u);
  CAF_CHECK_EQUAL(made.back().first, "wxa000200000");
  auto c = ctoken();
  CAF_CHECK_EQUAL(code(st.authorizer_token(c, "wxcomp", made.back().first, made.back().second)), 0);
  CAF_CHECK_EQUAL(num(st.authorizer_list(c, "wxcomp", 0, 1), "total_count"), 200'000);
}

CAF_TEST(start push ticket wants a push url) {
  std::optional<push_event> push;
  CAF_CHECK_EQUAL(code(st.start_push_ticket("wxcomp", "wrong", push)), 40125);
  CAF_CHECK_EQUAL(code(st.start_push_ticket("wxcomp", "csecret", push)), 0);
  CAF_CHECK(!push);
  CAF_REQUIRE(st.register_push("wxcomp", "http://127.0.0.1:9/wechat/component/wxcomp/events"));
  CAF_CHECK_EQUAL(code(st.start_push_ticket("wxcomp", "csecret", push)), 0);
  CAF_REQUIRE(push);
  CAF_CHECK_EQUAL(push->url, "http://127.0.0.1:9/wechat/component/wxcomp/events");
  CAF_CHECK_EQUAL(code(st.component_token("wxcomp", "csecret", push->verify_ticket)), 0);
  CAF_CHECK(!st.register_push("nope", "http://x/"));
  std::string error;
  CAF_CHECK(!st.make_push("nope", "component_verify_ticket", "", "", error));
  CAF_CHECK(!st.make_push("wxcomp", "bogus", "", "", error));
  CAF_CHECK(!st.make_push("wxcomp", "authorized", "", "", error));
}

CAF_TEST(authorization flow) {
  auto c = ctoken();
  auto pre = st.create_preauthcode(c, "wxcomp");
  CAF_CHECK_EQUAL(num(pre, "expires_in"), 600);
  CAF_CHECK(!str(pre, "pre_auth_code").empty());
  CAF_CHECK_EQUAL(code(st.create_preauthcode(c, "other")), 61011);
  CAF_CHECK_EQUAL(code(st.create_preauthcode("", "wxcomp")), 41001);
  auto ev = authorize("wxauth1");
  CAF_CHECK_EQUAL(ev.code_expired_time, clk.now() + 600);
  CAF_CHECK(!ev.pre_auth_code.empty());
  auto q = st.query_auth(c, "wxcomp", ev.authorization_code);
  CAF_REQUIRE_EQUAL(code(q), 0);
  auto& info = q.at("authorization_info").as_object();
  CAF_CHECK_EQUAL(str(info, "authorizer_appid"), "wxauth1");
  CAF_CHECK_EQUAL(num(info, "expires_in"), 7200);
  CAF_CHECK(info.at("func_info").as_array().size() > 0);
  auto at1 = str(info, "authorizer_access_token");
  auto refresh = str(info, "authorizer_refresh_token");
  CAF_CHECK(!refresh.empty());
  // Codes are single use.
  CAF_CHECK_EQUAL(code(st.query_auth(c, "wxcomp", ev.authorization_code)), 61009);
  CAF_CHECK_EQUAL(code(st.query_auth(c, "wxcomp", "bogus")), 61009);
  // Authorizer tokens work for business APIs.
  CAF_CHECK_EQUAL(code(st.get_ticket(at1, "jsapi")), 0);
  CAF_CHECK_EQUAL(st.check_token(at1).owner, "wxauth1");
  // Refresh: same refresh token, new access token, old one in grace.
  auto r = st.authorizer_token(c, "wxcomp", "wxauth1", refresh);
  CAF_REQUIRE_EQUAL(code(r), 0);
  CAF_CHECK_EQUAL(str(r, "authorizer_refresh_token"), refresh);
  auto at2 = str(r, "authorizer_access_token");
  CAF_CHECK_NOT_EQUAL(at1, at2);
  CAF_CHECK_EQUAL(st.check_token(at1).errcode, 0);
  clk.advance(300);
  CAF_CHECK_EQUAL(st.check_token(at1).errcode, 42001);
  CAF_CHECK_EQUAL(code(st.authorizer_token(c, "wxcomp", "wxauth1", "wrong")), 61023);
  CAF_CHECK_EQUAL(code(st.authorizer_token(c, "wxcomp", "nobody", refresh)), 61003);
  // List.
  authorize("wxauth2");
  auto list = st.authorizer_list(c, "wxcomp", 0, 100);
  CAF_CHECK_EQUAL(num(list, "total_count"), 2);
  auto& items = list.at("list").as_array();
  CAF_REQUIRE_EQUAL(items.size(), 2u);
  CAF_CHECK_EQUAL(str(items[0].as_object(), "authorizer_appid"), "wxauth1");
  CAF_CHECK_EQUAL(str(items[0].as_object(), "refresh_token"), refresh);
  CAF_CHECK_EQUAL(st.authorizer_list(c, "wxcomp", 1, 1).at("list").as_array().size(), 1u);
  // Revocation: 61003 afterwards, tokens dead, gone from the list.
  authorize("wxauth1", "unauthorized");
  CAF_CHECK_EQUAL(code(st.authorizer_token(c, "wxcomp", "wxauth1", refresh)), 61003);
  CAF_CHECK_EQUAL(st.check_token(at2).errcode, 40001);
  CAF_CHECK_EQUAL(num(st.authorizer_list(c, "wxcomp", 0, 100), "total_count"), 1);
  // Re-authorization issues a new refresh token.
  auto ev2 = authorize("wxauth1");
  auto q2 = st.query_auth(c, "wxcomp", ev2.authorization_code);
  auto refresh2 = str(q2.at("authorization_info").as_object(), "authorizer_refresh_token");
  CAF_CHECK_NOT_EQUAL(refresh2, refresh);
  CAF_CHECK_EQUAL(code(st.authorizer_token(c, "wxcomp", "wxauth1", refresh)), 61023);
  CAF_CHECK_EQUAL(code(st.authorizer_token(c, "wxcomp", "wxauth1", refresh2)), 0);
  // An update keeps the refresh token.
  auto ev3 = authorize("wxauth1", "updateauthorized");
  auto q3 = st.query_auth(c, "wxcomp", ev3.authorization_code);
  CAF_CHECK_EQUAL(str(q3.at("authorization_info").as_object(), "authorizer_refresh_token"),
                  refresh2);
}

CAF_TEST(authorization codes expire) {
  auto c = ctoken();
  auto ev = authorize("wxauth1");
  clk.advance(600);
  CAF_CHECK_EQUAL(code(st.query_auth(c, "wxcomp", ev.authorization_code)), 61010);
}

CAF_TEST(invalidate covers authorizers and components) {
  auto c = ctoken();
  auto ev = authorize("wxauth1");
  auto q = st.query_auth(c, "wxcomp", ev.authorization_code);
  auto at = str(q.at("authorization_info").as_object(), "authorizer_access_token");
  CAF_REQUIRE(st.invalidate("wxauth1"));
  CAF_CHECK_EQUAL(st.check_token(at).errcode, 40001);
  CAF_CHECK_EQUAL(code(st.create_preauthcode(c, "wxcomp")), 0);
  CAF_REQUIRE(st.invalidate("wxcomp"));
  CAF_CHECK_EQUAL(code(st.create_preauthcode(c, "wxcomp")), 40001);
  auto desc = st.describe("wxauth1");
  CAF_REQUIRE(desc);
  CAF_CHECK_EQUAL(str(*desc, "kind"), "authorizer");
  CAF_CHECK_EQUAL(str(*st.describe("wxcomp"), "kind"), "component");
}

CAF_TEST_FIXTURE_SCOPE_END()
