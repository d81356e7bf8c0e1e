#define CAF_SUITE actors_quota_book

#include "caf/test/dsl.hpp"

#include <filesystem>

#include "actors/quota_book.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::actors;

namespace {

// 2026-11-27 15:59:00 UTC = 23:59:00 Beijing time.
constexpr int64_t before_beijing_midnight = 1795795140;

} // namespace

CAF_TEST(counts reset at Beijing midnight and quota errors are kept) {
  manual_clock clk{before_beijing_midnight};
  quota_book book{clk};
  book.record("wxa", "stable_token", 0);
  book.record("wxa", "stable_token", 45011);
  book.record("wxa", "getticket", 45009);
  book.record("wxb", "token", 0);
  auto v = book.get("wxa");
  CAF_CHECK_EQUAL(v.calls["stable_token"], 2u);
  CAF_CHECK_EQUAL(v.calls["getticket"], 1u);
  CAF_REQUIRE(v.last_45009.has_value());
  CAF_CHECK_EQUAL(v.last_45009->endpoint, "getticket");
  CAF_REQUIRE(v.last_45011.has_value());
  CAF_CHECK_EQUAL(v.last_45011->at, before_beijing_midnight);
  CAF_CHECK(book.exhausted("wxa"));
  CAF_CHECK(!book.exhausted("wxb"));
  // One minute later it is a new Beijing day (16:00 UTC): counts start at
  // zero, the last errors stay visible, the 45009 no longer blocks.
  clk.advance(60);
  v = book.get("wxa");
  CAF_CHECK(v.calls.empty());
  CAF_CHECK(v.last_45009.has_value());
  CAF_CHECK(!book.exhausted("wxa"));
  book.record("wxa", "stable_token", 0);
  CAF_CHECK_EQUAL(book.get("wxa").calls["stable_token"], 1u);
}

CAF_TEST(a clear lifts the exhaustion and the gauge follows) {
  manual_clock clk{before_beijing_midnight - 3600};
  quota_book book{clk};
  metrics m;
  book.export_to(m);
  book.record("wxa", "stable_token", 45009);
  CAF_CHECK(m.render().find("wechat_hub_daily_quota_exhausted{appid=\"wxa\",endpoint=\"stable_token\"} 1\n")
            != std::string::npos);
  clk.advance(10);
  book.cleared("wxa");
  CAF_CHECK(!book.exhausted("wxa"));
  CAF_CHECK(m.render().find("wechat_hub_daily_quota_exhausted{appid=\"wxa\",endpoint=\"stable_token\"} 0\n")
            != std::string::npos);
  // A new 45009 after the reset counts again.
  clk.advance(10);
  book.record("wxa", "stable_token", 45009);
  CAF_CHECK(book.exhausted("wxa"));
}

CAF_TEST(clear_quota budget is monthly and survives a restart) {
  test::temp_dir dir;
  manual_clock clk{before_beijing_midnight};
  auto db = persistence::open_rocksdb(dir.path());
  CAF_REQUIRE(db);
  {
    quota_book book{clk};
    uint32_t used = 0;
    for (uint32_t i = 1; i <= 10; ++i) {
      CAF_CHECK(book.take_clear("wxa", 10, used));
      CAF_CHECK_EQUAL(used, i);
    }
    CAF_CHECK(!book.take_clear("wxa", 10, used));
    book.return_clear("wxa");
    CAF_CHECK_EQUAL(book.clears_used("wxa"), 9u);
    CAF_CHECK(!(*db)->put(quota_book::clear_key("wxa"),
                          quota_book::encode_clears(quota_book::beijing_month(clk.now()), 9)));
    CAF_CHECK(!(*db)->put(quota_book::clear_key("wxbad"), "garbage"));
  }
  quota_book book{clk};
  CAF_CHECK(!book.load(**db));
  CAF_CHECK_EQUAL(book.clears_used("wxa"), 9u);
  CAF_CHECK_EQUAL(book.clears_used("wxbad"), 0u);
  uint32_t used = 0;
  CAF_CHECK(book.take_clear("wxa", 10, used));
  CAF_CHECK(!book.take_clear("wxa", 10, used));
  // 2026-11-30 16:00 UTC is December 1st in Beijing: a new budget.
  CAF_CHECK_EQUAL(quota_book::beijing_month(clk.now()), 202611);
  clk.set(1795795140 + 3 * 86400 + 60);
  CAF_CHECK_EQUAL(quota_book::beijing_month(clk.now()), 202612);
  CAF_CHECK_EQUAL(book.clears_used("wxa"), 0u);
  CAF_CHECK(book.take_clear("wxa", 10, used));
  CAF_CHECK_EQUAL(used, 1u);
}

CAF_TEST(a key counts any number of endpoints and a new day drops them all) {
  // Two endpoints' counts are kept inline, more in the entry's rare part:
  // every one of them is counted and reset alike.
  manual_clock clk{before_beijing_midnight - 60};
  quota_book book{clk};
  const char* endpoints[] = {"api_authorizer_token", "getticket", "stable_token", "clear_quota", "token"};
  for (int round = 1; round <= 3; ++round)
    for (auto* ep : endpoints)
      book.record("wxc/wxa", ep, 0);
  auto v = book.get("wxc/wxa");
  CAF_CHECK_EQUAL(v.calls.size(), 5u);
  for (auto* ep : endpoints)
    CAF_CHECK_EQUAL(v.calls[ep], 3u);
  CAF_CHECK(!v.last_45009 && !v.last_45011);
  clk.advance(120); // a new Beijing day
  CAF_CHECK(book.get("wxc/wxa").calls.empty());
  book.record("wxc/wxa", "clear_quota", 0);
  book.record("wxc/wxa", "token", 0);
  book.record("wxc/wxa", "getticket", 0);
  v = book.get("wxc/wxa");
  CAF_CHECK_EQUAL(v.calls.size(), 3u);
  CAF_CHECK_EQUAL(v.calls["clear_quota"], 1u);
  CAF_CHECK_EQUAL(v.calls["token"], 1u);
  CAF_CHECK_EQUAL(v.calls["getticket"], 1u);
  CAF_CHECK_EQUAL(v.calls["stable_token"], 0u);
}
