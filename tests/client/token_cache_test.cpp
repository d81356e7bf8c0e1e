#define CAF_SUITE client_token_cache

#include "caf/test/dsl.hpp"

#include "client/detail/token_cache.hpp"
#include "core/clock.hpp"

using namespace wh;
using namespace std::chrono_literals;
using client::result;
using client::token;

namespace {

/// A fetcher whose fetches the test completes by hand: fully deterministic.
struct fixture {
  fixture()
    : clk(std::make_shared<manual_clock>(1'000'000)), cache(clk, 60s) {
  }

  client::detail::token_cache::fetcher fetcher() {
    return [this](const std::string& stale, client::token_callback done) {
      stales.push_back(stale);
      pending.push_back(std::move(done));
    };
  }

  void complete(const std::string& value, int64_t lifetime = 7200) {
    CAF_REQUIRE(!pending.empty());
    auto done = std::move(pending.front());
    pending.erase(pending.begin());
    done(token{value, clk->now() + lifetime});
  }

  std::function<void(result<token>)> collect() {
    return [this](result<token> res) { got.push_back(res ? res->value : "ERR:" + res.err().reason); };
  }

  std::shared_ptr<manual_clock> clk;
  client::detail::token_cache cache;
  std::vector<std::string> stales;
  std::vector<client::token_callback> pending;
  std::vector<std::string> got;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(client_token_cache_tests, fixture)

CAF_TEST(concurrent misses share one fetch) {
  for (int i = 0; i < 10; ++i)
    cache.get("k", collect(), fetcher());
  CAF_CHECK_EQUAL(pending.size(), 1u);
  CAF_CHECK(got.empty());
  complete("T1");
  CAF_CHECK_EQUAL(got, std::vector<std::string>(10, "T1"));
  // A hit does not fetch.
  cache.get("k", collect(), fetcher());
  CAF_CHECK_EQUAL(stales.size(), 1u);
  CAF_CHECK_EQUAL(got.back(), "T1");
}

CAF_TEST(cache honours expiry with a capped margin) {
  cache.get("k", collect(), fetcher());
  complete("T1", 100); // margin = min(60, 100/2) = 50
  clk->advance(49);
  cache.get("k", collect(), fetcher());
  CAF_CHECK_EQUAL(stales.size(), 1u);
  clk->advance(1);
  cache.get("k", collect(), fetcher());
  CAF_CHECK_EQUAL(stales.size(), 2u);
  complete("T2", 7200);
  CAF_CHECK_EQUAL(got, (std::vector<std::string>{"T1", "T1", "T2"}));
  clk->advance(7200 - 61);
  cache.get("k", collect(), fetcher());
  CAF_CHECK_EQUAL(stales.size(), 2u);
  clk->advance(1);
  cache.get("k", collect(), fetcher());
  CAF_CHECK_EQUAL(stales.size(), 3u);
}

CAF_TEST(stale reports share one refresh) {
  cache.get("k", collect(), fetcher());
  complete("T1");
  for (int i = 0; i < 5; ++i)
    cache.report_stale("k", "T1", collect(), fetcher());
  CAF_CHECK_EQUAL(stales, (std::vector<std::string>{"", "T1"}));
  complete("T2");
  CAF_CHECK_EQUAL(got.size(), 6u);
  CAF_CHECK_EQUAL(got.back(), "T2");
  // Reporting the old token again returns the newer cached one.
  cache.report_stale("k", "T1", collect(), fetcher());
  CAF_CHECK_EQUAL(stales.size(), 2u);
  CAF_CHECK_EQUAL(got.back(), "T2");
}

CAF_TEST(a running get that returns the stale token is followed by a refresh) {
  cache.get("k", collect(), fetcher());
  complete("T1");
  clk->advance(7200); // expired: the next get fetches
  cache.get("k", collect(), fetcher());
  cache.report_stale("k", "T1", collect(), fetcher());
  CAF_CHECK_EQUAL(stales, (std::vector<std::string>{"", ""}));
  complete("T1"); // the hub still had T1
  CAF_CHECK_EQUAL(got, (std::vector<std::string>{"T1", "T1"}));
  CAF_CHECK_EQUAL(stales, (std::vector<std::string>{"", "", "T1"}));
  complete("T2");
  CAF_CHECK_EQUAL(got, (std::vector<std::string>{"T1", "T1", "T2"}));
}

CAF_TEST(a refresh returning the same token is delivered not looped) {
  cache.get("k", collect(), fetcher());
  complete("T1");
  cache.report_stale("k", "T1", collect(), fetcher());
  complete("T1");
  CAF_CHECK_EQUAL(stales.size(), 2u);
  CAF_CHECK(pending.empty());
  CAF_CHECK_EQUAL(got.back(), "T1");
}

CAF_TEST(errors are not cached) {
  cache.get("k", collect(), fetcher());
  cache.get("k", collect(), fetcher());
  auto done = std::move(pending.front());
  pending.clear();
  done(client::make_error("timeout", "hub: slow"));
  CAF_CHECK_EQUAL(got, (std::vector<std::string>{"ERR:timeout", "ERR:timeout"}));
  cache.get("k", collect(), fetcher());
  CAF_CHECK_EQUAL(stales.size(), 2u);
  complete("T1");
  CAF_CHECK_EQUAL(got.back(), "T1");
}

CAF_TEST_FIXTURE_SCOPE_END()
