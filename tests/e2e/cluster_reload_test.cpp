#define CAF_SUITE e2e_cluster_reload

#include "caf/test/dsl.hpp"

#include "tests/e2e/cluster_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

cluster_options three_apps() {
  cluster_options o;
  // The simulator knows all three; the nodes start with the first two.
  o.apps = {{"wxcr1", "cr1-secret"}, {"wxcr2", "cr2-secret"}, {"wxcr3", "cr3-secret"}};
  return o;
}

struct fixture {
  cluster_env env{three_apps()};

  /// Every node serves `appid`: the same token from each, or "" (with a check failure).
  std::string same_token_everywhere(const std::string& appid) {
    auto first = env.token(0, appid);
    for (auto i : env.all())
      CAF_CHECK_EQUAL(env.token(i, appid), first);
    return first;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(cluster_reload_tests, fixture)

CAF_TEST(apps added and removed by a reload on every node keep one upstream call per token) {
  auto all_apps = env.opts.apps;
  env.opts.apps.pop_back();
  std::string why;
  env.start_all();
  CAF_REQUIRE(env.wait_ready(env.all(), std::chrono::seconds(20), &why));
  auto t1 = same_token_everywhere("wxcr1");
  CAF_REQUIRE_EQUAL(t1.rfind("<status", 0), std::string::npos);
  CAF_CHECK_EQUAL(env.token(1, "wxcr3").rfind("<status 404", 0), 0u);
  // Added on every node: each serves it, WeChat is asked once.
  env.opts.apps = all_apps;
  for (auto i : env.all())
    CAF_REQUIRE(env.reload_node(i));
  auto t3 = same_token_everywhere("wxcr3");
  CAF_REQUIRE_EQUAL(t3.rfind("<status", 0), std::string::npos);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxcr3"), 1);
  // Removed on every node: 404 everywhere; the others are untouched.
  env.opts.apps = {all_apps[0], all_apps[1]};
  for (auto i : env.all())
    CAF_REQUIRE(env.reload_node(i));
  for (auto i : env.all())
    CAF_CHECK_EQUAL(env.token(i, "wxcr3").rfind("<status 404", 0), 0u);
  CAF_CHECK_EQUAL(same_token_everywhere("wxcr1"), t1);
  // Back again: the stored (replicated) token is served without a new call.
  env.opts.apps = all_apps;
  for (auto i : env.all())
    CAF_REQUIRE(env.reload_node(i));
  CAF_CHECK_EQUAL(same_token_everywhere("wxcr3"), t3);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxcr3"), 1);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxcr1"), 1);
  bool ready = env.wait_ready(env.all(), std::chrono::seconds(10), &why);
  CAF_CHECK(ready);
  if (!ready)
    CAF_MESSAGE(why << env.log_tails());
}

CAF_TEST_FIXTURE_SCOPE_END()
