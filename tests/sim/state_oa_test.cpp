#define CAF_SUITE sim_state_oa

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
  limits lim = [] {
    limits l;
    l.daily_quota = 50;
    l.force_limit = 3;
    return l;
  }();
  state st{clk, lim, {{"wx1", "s1"}, {"wx2", "s2"}}, {}};

  std::string classic(const std::string& appid = "wx1", const std::string& secret = "s1") {
    auto a = st.classic_token("client_credential", appid, secret);
    CAF_REQUIRE_EQUAL(code(a), 0);
    return str(a, "access_token");
  }

  answer stable(bool force, const std::string& appid = "wx1") {
    return st.stable_token("client_credential", appid, appid == "wx1" ? "s1" : "s2", force);
  }

  int64_t check(const std::string& token) { return st.check_token(token).errcode; }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(sim_state_oa_tests, fixture)

CAF_TEST(classic token errors) {
  CAF_CHECK_EQUAL(code(st.classic_token("client_credential", "", "s1")), 41002);
  CAF_CHECK_EQUAL(code(st.classic_token("client_credential", "wx1", "")), 41004);
  CAF_CHECK_EQUAL(code(st.classic_token("password", "wx1", "s1")), 40002);
  CAF_CHECK_EQUAL(code(st.classic_token("client_credential", "nope", "s1")), 40013);
  CAF_CHECK_EQUAL(code(st.classic_token("client_credential", "wx1", "s2")), 40125);
  CAF_CHECK_EQUAL(code(st.stable_token("client_credential", "nope", "s1", false)), 40013);
  CAF_CHECK_EQUAL(code(st.stable_token("client_credential", "wx1", "bad", false)), 40125);
}

CAF_TEST(classic rotation keeps the previous token for five minutes) {
  auto t1 = classic();
  CAF_CHECK_GREATER_OR_EQUAL(t1.size(), 64u);
  auto a = st.classic_token("client_credential", "wx1", "s1");
  CAF_CHECK_EQUAL(num(a, "expires_in"), 7200);
  auto t2 = str(a, "access_token");
  CAF_CHECK_NOT_EQUAL(t1, t2);
  CAF_CHECK_EQUAL(check(t1), 0);
  CAF_CHECK_EQUAL(check(t2), 0);
  clk.advance(299);
  CAF_CHECK_EQUAL(check(t1), 0);
  clk.advance(1);
  CAF_CHECK_EQUAL(check(t1), 42001);
  CAF_CHECK_EQUAL(check(t2), 0);
  // A third issue kills the one before the previous at once.
  auto t3 = classic();
  auto t4 = classic();
  CAF_CHECK_EQUAL(check(t2), 40001);
  CAF_CHECK_EQUAL(check(t3), 0);
  CAF_CHECK_EQUAL(check(t4), 0);
  CAF_CHECK_EQUAL(check("garbage"), 40001);
  CAF_CHECK_EQUAL(check(""), 41001);
}

CAF_TEST(classic token expires after its lifetime) {
  auto t = classic();
  clk.advance(7199);
  CAF_CHECK_EQUAL(check(t), 0);
  clk.advance(1);
  CAF_CHECK_EQUAL(check(t), 42001);
  CAF_CHECK_EQUAL(code(st.get_ticket(t, "jsapi")), 42001);
}

CAF_TEST(stable normal mode returns the same token with the remaining lifetime) {
  auto a = stable(false);
  auto t = str(a, "access_token");
  CAF_CHECK_EQUAL(num(a, "expires_in"), 7200);
  clk.advance(1000);
  auto b = stable(false);
  CAF_CHECK_EQUAL(str(b, "access_token"), t);
  CAF_CHECK_EQUAL(num(b, "expires_in"), 6200);
  // Pools are isolated: classic calls never touch the stable token.
  classic();
  classic();
  CAF_CHECK_EQUAL(check(t), 0);
  CAF_CHECK_EQUAL(str(stable(false), "access_token"), t);
  // In the last 5 minutes a new token comes; the old keeps its own expiry.
  clk.advance(6200 - 300);
  auto c = stable(false);
  auto t2 = str(c, "access_token");
  CAF_CHECK_NOT_EQUAL(t2, t);
  CAF_CHECK_EQUAL(num(c, "expires_in"), 7200);
  CAF_CHECK_EQUAL(check(t), 0);
  clk.advance(299);
  CAF_CHECK_EQUAL(check(t), 0);
  clk.advance(1);
  CAF_CHECK_EQUAL(check(t), 42001);
  CAF_CHECK_EQUAL(check(t2), 0);
}

CAF_TEST(stable force mode grace spacing and limit) {
  auto t1 = str(stable(false), "access_token");
  auto f1 = stable(true);
  auto t2 = str(f1, "access_token");
  CAF_CHECK_NOT_EQUAL(t1, t2);
  CAF_CHECK_EQUAL(num(f1, "expires_in"), 7200);
  CAF_CHECK_EQUAL(check(t1), 0); // grace
  // Less than 30 s after the last forced refresh: no refresh.
  clk.advance(29);
  auto f2 = stable(true);
  CAF_CHECK_EQUAL(str(f2, "access_token"), t2);
  CAF_CHECK_EQUAL(num(f2, "expires_in"), 7200 - 29);
  clk.advance(1);
  auto t3 = str(stable(true), "access_token");
  CAF_CHECK_NOT_EQUAL(t3, t2);
  // The earlier grace token (t1) died at once; t2 is in grace now.
  CAF_CHECK_EQUAL(check(t1), 40001);
  CAF_CHECK_EQUAL(check(t2), 0);
  clk.advance(300);
  CAF_CHECK_EQUAL(check(t2), 42001);
  clk.advance(30);
  auto t4 = str(stable(true), "access_token");
  CAF_CHECK_NOT_EQUAL(t4, t3);
  // force_limit = 3 refreshes per day are spent.
  clk.advance(30);
  CAF_CHECK_EQUAL(code(stable(true)), 45009);
  CAF_CHECK_EQUAL(str(stable(false), "access_token"), t4);
  // A new sim-day restores the budget.
  clk.advance(86400);
  CAF_CHECK_EQUAL(code(stable(true)), 0);
}

CAF_TEST(daily quota counts failed calls and resets per day) {
  CAF_REQUIRE(st.set_quota("wx1", 3));
  CAF_CHECK_EQUAL(code(st.classic_token("client_credential", "wx1", "wrong")), 40125);
  classic();
  CAF_CHECK_EQUAL(code(stable(false)), 0);
  CAF_CHECK_EQUAL(code(st.classic_token("client_credential", "wx1", "s1")), 45009);
  CAF_CHECK_EQUAL(code(stable(false)), 45009);
  // Other apps have their own quota.
  CAF_CHECK_EQUAL(code(stable(false, "wx2")), 0);
  CAF_CHECK(!st.set_quota("nope", 1));
  auto tomorrow = (clk.now() / 86400 + 1) * 86400;
  clk.set(tomorrow);
  CAF_CHECK_EQUAL(code(st.classic_token("client_credential", "wx1", "s1")), 0);
  CAF_CHECK_EQUAL(num(*st.describe("wx1"), "quota_remaining"), 49);
}

CAF_TEST(tickets are reused while valid and renewed after expiry) {
  auto t = str(stable(false), "access_token");
  auto a = st.get_ticket(t, "jsapi");
  CAF_CHECK_EQUAL(code(a), 0);
  CAF_CHECK_EQUAL(str(a, "errmsg"), "ok");
  CAF_CHECK_EQUAL(num(a, "expires_in"), 7200);
  auto ticket = str(a, "ticket");
  CAF_CHECK(!ticket.empty());
  auto card = str(st.get_ticket(t, "wx_card"), "ticket");
  CAF_CHECK_NOT_EQUAL(card, ticket);
  // Another valid token of the same app sees the same ticket.
  auto c = classic();
  clk.advance(3600);
  CAF_CHECK_EQUAL(str(st.get_ticket(c, "jsapi"), "ticket"), ticket);
  CAF_CHECK_EQUAL(num(st.get_ticket(c, "jsapi"), "expires_in"), 7200);
  CAF_CHECK_EQUAL(code(st.get_ticket(c, "foo")), 40097);
  CAF_CHECK_EQUAL(code(st.get_ticket("", "jsapi")), 41001);
  CAF_CHECK_EQUAL(code(st.get_ticket("x", "jsapi")), 40001);
  clk.advance(3600);
  auto fresh = classic();
  auto renewed = str(st.get_ticket(fresh, "jsapi"), "ticket");
  CAF_CHECK_NOT_EQUAL(renewed, ticket);
  auto desc = st.describe("wx1");
  CAF_REQUIRE(desc);
  CAF_CHECK_EQUAL(str(desc->at("tickets").as_object(), "jsapi"), renewed);
}

CAF_TEST(invalidate kills every token of an app) {
  auto s = str(stable(false), "access_token");
  auto c1 = classic();
  auto c2 = classic();
  auto other = classic("wx2", "s2");
  CAF_REQUIRE(st.invalidate("wx1"));
  CAF_CHECK_EQUAL(check(s), 40001);
  CAF_CHECK_EQUAL(check(c1), 40001);
  CAF_CHECK_EQUAL(check(c2), 40001);
  CAF_CHECK_EQUAL(check(other), 0);
  CAF_CHECK_EQUAL(code(st.api_domain_ip(s)), 40001);
  // The next normal stable call issues a new token.
  auto s2 = str(stable(false), "access_token");
  CAF_CHECK_NOT_EQUAL(s2, s);
  CAF_CHECK_EQUAL(check(s2), 0);
  CAF_CHECK(!st.invalidate("nope"));
}

CAF_TEST(business endpoints validate tokens) {
  auto t = classic();
  CAF_CHECK_EQUAL(st.check_token(t).owner, "wx1");
  auto ips = st.api_domain_ip(t);
  CAF_CHECK(ips.at("ip_list").as_array().size() > 0);
  auto mat = st.batchget_material(t);
  CAF_CHECK_EQUAL(num(mat, "total_count"), 0);
  CAF_CHECK_EQUAL(code(st.batchget_material("")), 41001);
  media_file f{"a.png", "image/png", "abc"};
  auto up = st.upload_media(t, "image", &f, false, std::nullopt);
  CAF_CHECK_EQUAL(str(up, "type"), "image");
  CAF_CHECK(!str(up, "media_id").empty());
  CAF_CHECK_EQUAL(code(st.upload_media(t, "pdf", &f, false, std::nullopt)), 40004);
  CAF_CHECK_EQUAL(code(st.upload_media(t, "image", nullptr, false, std::nullopt)), 41005);
  CAF_CHECK_EQUAL(code(st.upload_media(t, "video", &f, true, std::nullopt)), 40097);
  auto perm = st.upload_media(t, "video", &f, true, std::string{R"({"title":"x"})"});
  CAF_CHECK_EQUAL(code(perm), 0);
  auto media = st.media();
  CAF_REQUIRE_EQUAL(media.size(), 2u);
  CAF_CHECK_EQUAL(media[0].md5_hex, "900150983cd24fb0d6963f7d28e17f72"); // md5("abc")
  CAF_CHECK_EQUAL(media[0].size, 3u);
  CAF_CHECK_EQUAL(media[0].filename, "a.png");
  CAF_CHECK_EQUAL(media[1].description, R"({"title":"x"})");
}

CAF_TEST(sim clock offset moves with advance) {
  auto t0 = st.now();
  st.advance(100);
  CAF_CHECK_EQUAL(st.now(), t0 + 100);
  clk.advance(5);
  CAF_CHECK_EQUAL(st.now(), t0 + 105);
}

CAF_TEST_FIXTURE_SCOPE_END()
