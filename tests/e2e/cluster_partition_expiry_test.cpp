#define CAF_SUITE e2e_cluster_partition_expiry

// A partition that lasts past the tokens' expiry (wechat-sim hands out
// 35 s tokens, the hubs refresh 30 s ahead of expiry): the node cut off
// from etcd and its peers makes no upstream call at all, and the majority
// refreshes every key, its own and the cut-off node's, once per refresh
// interval, never twice.

#include "caf/test/dsl.hpp"

#include <map>
#include <thread>

#include "tests/e2e/cluster_env.hpp"
#include "tests/e2e/partition_env.hpp"

using namespace wh;
using namespace wh::test;
using namespace std::chrono_literals;

namespace {

constexpr int lifetime_s = 35;
constexpr int margin_s = 30;
/// How often a key's (classic) token is refreshed: a new token each time.
constexpr int interval_s = lifetime_s - margin_s;

std::vector<cluster_app> apps() {
  std::vector<cluster_app> out;
  for (int i = 1; i <= 6; ++i)
    out.push_back(cluster_app{"wxexp0000000000" + std::to_string(i), "exp-secret-" + std::to_string(i), true});
  return out;
}

/// Upstream calls per app so far, at the simulator.
std::map<std::string, int64_t> calls_by_app(cluster_env& e) {
  std::map<std::string, int64_t> out;
  for (auto& a : e.opts.apps)
    out[a.appid] = e.sim_calls(a.token_path(), a.appid);
  return out;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(e2e_cluster_partition_expiry_tests, partition_env)

CAF_TEST(the side without quorum makes no refresh and the majority refreshes each key once per interval) {
  cluster_options o;
  o.apps = apps();
  o.sim_args = {"--token-lifetime", std::to_string(lifetime_s)};
  o.hub_extra = "refresh_margin_s = " + std::to_string(margin_s) + "\nrefresh_jitter_s = 0";
  if (!up(std::move(o)))
    return;
  auto& e = *env;
  for (auto& a : e.opts.apps)
    WH_REQUIRE_WHY(!is_error(e.token(0, a.appid)), a.appid << ": " << e.token(0, a.appid) << "\n" << e.log_tails());
  auto cut = e.index_of(e.owner_of(e.opts.apps.front().appid, 0));
  WH_REQUIRE_WHY(cut < e.nodes.size(), "no owner");
  std::size_t owned_by_cut = 0;
  for (auto& a : e.opts.apps)
    owned_by_cut += e.owner_of(a.appid, 0) == e.nodes[cut].id;
  CAF_MESSAGE("cutting off " << e.nodes[cut].id << ", the owner of " << owned_by_cut << " of "
                             << e.opts.apps.size() << " keys, for " << lifetime_s + 1 << " s");
  auto cut_calls = e.metric(cut, "wechat_upstream_calls_total");
  auto before = calls_by_app(e);
  auto started = std::chrono::steady_clock::now();
  partition(cut);
  // Past the expiry of every token the cut-off node held.
  std::this_thread::sleep_for(std::chrono::seconds(lifetime_s + 1));
  auto after = calls_by_app(e);
  auto cut_after = e.metric(cut, "wechat_upstream_calls_total");
  auto phase_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count();
  heal();
  CAF_MESSAGE("the cut-off node's upstream calls: " << cut_calls << " -> " << cut_after);
  CAF_CHECK_EQUAL(cut_after, cut_calls);
  // Each key: at most one call per refresh interval (a refresh made on
  // both sides, or twice by two owners, would exceed it), and the majority
  // kept every key fresh, the cut-off node's keys too.
  auto most = phase_s / interval_s + 1;
  for (auto& a : e.opts.apps) {
    auto n = after[a.appid] - before[a.appid];
    CAF_MESSAGE(a.appid << ": " << n << " call(s) in " << phase_s << " s (owner before: "
                        << e.owner_of(a.appid, cut) << ")");
    WH_CHECK_WHY(n <= most, a.appid << ": " << n << " calls, at most " << most << " expected");
    WH_CHECK_WHY(n >= phase_s / interval_s - 2,
                 a.appid << ": only " << n << " calls: the majority stopped refreshing it");
  }
  // After the heal every node serves every key again.
  std::string why;
  WH_CHECK_WHY(e.wait_ready(e.all(), 15s, &why), why << "\n" << e.log_tails());
  for (auto& a : e.opts.apps)
    for (auto i : e.all())
      WH_CHECK_WHY(eventually(5s, [&] { return !is_error(e.token(i, a.appid)); }),
                   e.nodes[i].id << ": " << a.appid << ": " << e.token(i, a.appid));
}

CAF_TEST_FIXTURE_SCOPE_END()
