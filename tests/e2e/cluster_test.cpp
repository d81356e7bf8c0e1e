#define CAF_SUITE e2e_cluster

#include "caf/test/dsl.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/e2e/cluster_env.hpp"

using namespace wh;
using namespace wh::test;
using namespace std::chrono_literals;

// CAF 0.17's CAF_REQUIRE aborts the whole test binary (every later test is
// lost), so these end only the current test: a check that prints why it
// failed, and one that also returns from the test body.
#define WH_CHECK_WHY(cond, msg)                                                                    \
  do {                                                                                             \
    bool wh_ok_ = static_cast<bool>(cond);                                                         \
    if (!wh_ok_)                                                                                   \
      CAF_TEST_PRINT_ERROR(#cond << ": " << msg);                                                  \
    CAF_CHECK(wh_ok_);                                                                             \
  } while (false)

#define WH_REQUIRE_WHY(cond, msg)                                                                  \
  do {                                                                                             \
    bool wh_ok_ = static_cast<bool>(cond);                                                         \
    if (!wh_ok_)                                                                                   \
      CAF_TEST_PRINT_ERROR(#cond << ": " << msg);                                                  \
    CAF_CHECK(wh_ok_);                                                                             \
    if (!wh_ok_)                                                                                   \
      return;                                                                                      \
  } while (false)

namespace {

/// How long a client waits before its one retry after 503 cluster_unavailable.
constexpr auto retry_pause = 300ms;
constexpr auto poll_step = 50ms;

/// Six official accounts; the last one uses the classic token API. Their
/// names spread ownership over all three nodes (the test reads owners from
/// /admin/cluster and does not rely on that, but needs more than one owner).
std::vector<cluster_app> six_apps() {
  std::vector<cluster_app> apps;
  for (int i = 1; i <= 6; ++i)
    apps.push_back(cluster_app{"wxclu0000000000" + std::to_string(i), "clu-secret-" + std::to_string(i), i == 6});
  return apps;
}

/// The string at `path` in `obj`, other values as JSON, "<missing>" if absent.
std::string field(const boost::json::object& obj, std::initializer_list<std::string_view> path) {
  const boost::json::value* cur = nullptr;
  const boost::json::object* o = &obj;
  for (auto key : path) {
    if (!o)
      return "<missing>";
    cur = o->if_contains(key);
    if (!cur)
      return "<missing>";
    o = cur->is_object() ? &cur->as_object() : nullptr;
  }
  if (!cur)
    return "<missing>";
  return cur->is_string() ? std::string{cur->as_string()} : boost::json::serialize(*cur);
}

bool is_error(const std::string& token) {
  return token.empty() || token.front() == '<';
}

/// Polls `pred` every 50 ms until it holds or `timeout` passes.
template <class Pred>
bool eventually(std::chrono::milliseconds timeout, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(poll_step);
  }
}

/// A token read as a client would do it: one retry, after a short pause,
/// when the hub says 503 cluster_unavailable. `attempts` counts requests.
std::string token_with_retry(cluster_env& env, std::size_t i, const std::string& appid, int& attempts,
                             const std::string& authorizer = {}) {
  attempts = 1;
  auto t = env.token(i, appid, authorizer);
  if (t == "<status 503 cluster_unavailable>") {
    std::this_thread::sleep_for(retry_pause);
    attempts = 2;
    t = env.token(i, appid, authorizer);
  }
  return t;
}

/// POST /refresh/access_token (a client's report of a failing token), with
/// the same one retry.
std::string report_stale(cluster_env& env, std::size_t i, const std::string& appid, const std::string& old) {
  auto body = R"({"appid":")" + appid + R"(","access_token":")" + old + "\"}";
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto res = env.node(i, "POST", "/refresh/access_token", body);
    auto obj = parse_object(res.body);
    if (res.status == 200 && obj.contains("access_token") && obj.at("access_token").is_string())
      return std::string{obj.at("access_token").as_string()};
    std::string reason;
    if (auto r = obj.if_contains("reason"); r && r->is_string())
      reason = std::string{r->as_string()};
    if (res.status != 503 || reason != "cluster_unavailable" || attempt == 1)
      return "<status " + std::to_string(res.status) + " " + reason + ">";
    std::this_thread::sleep_for(retry_pause);
  }
  return "<unreachable>";
}

/// The app's current token according to the simulator.
std::string sim_token(cluster_env& env, const cluster_app& app) {
  auto st = parse_object(env.sim("GET", "/sim/state?appid=" + app.appid).body);
  auto field = app.classic ? "classic_token" : "stable_token";
  if (auto v = st.if_contains(field); v && v->is_string())
    return std::string{v->as_string()};
  return {};
}

/// Reads every app from every node; returns appid -> token (node 0's answer)
/// and checks that all nodes agree.
std::map<std::string, std::string> warm_all(cluster_env& env) {
  std::map<std::string, std::string> tokens;
  for (auto& app : env.opts.apps) {
    for (auto i : env.all()) {
      auto t = env.token(i, app.appid);
      CAF_CHECK(!is_error(t));
      if (i == 0)
        tokens[app.appid] = t;
      else
        CAF_CHECK_EQUAL(t, tokens[app.appid]);
    }
  }
  return tokens;
}

/// Whether `which` became ready in time (printing the node logs when not).
bool ready(cluster_env& env, const std::vector<std::size_t>& which, std::chrono::milliseconds timeout) {
  std::string why;
  if (env.wait_ready(which, timeout, &why))
    return true;
  CAF_TEST_PRINT_ERROR("cluster not ready in time: " << why << "\n" << env.log_tails());
  return false;
}

/// Starts every node; false (and why) if the cluster did not come up.
bool started(cluster_env& env) {
  try {
    env.start_all();
    return true;
  } catch (const std::exception& e) {
    CAF_TEST_PRINT_ERROR(e.what());
    return false;
  }
}

} // namespace

CAF_TEST(any node serves any key and owners are spread) {
  cluster_env env{cluster_options{six_apps()}};
  WH_REQUIRE_WHY(started(env), "see above");
  std::set<std::string> owners;
  for (auto& app : env.opts.apps) {
    std::string first;
    for (auto i : env.all()) {
      auto t = env.token(i, app.appid);
      CAF_CHECK(!is_error(t));
      if (i == 0)
        first = t;
      CAF_CHECK_EQUAL(t, first);
    }
    CAF_CHECK_EQUAL(first, sim_token(env, app));
    // Every node names the same owner, first of two replicas.
    auto owner = env.owner_of(app.appid, 0);
    CAF_CHECK(!owner.empty());
    for (auto i : env.all())
      CAF_CHECK_EQUAL(env.owner_of(app.appid, i), owner);
    auto reps = env.replicas_of(app.appid, 1);
    WH_REQUIRE_WHY(reps.size() == 2u, app.appid << " has " << reps.size() << " replicas");
    CAF_CHECK_EQUAL(reps[0], owner);
    CAF_CHECK_NOT_EQUAL(reps[1], owner);
    owners.insert(owner);
    // Only the owner called WeChat, once.
    CAF_CHECK_EQUAL(env.sim_calls(app.token_path(), app.appid), 1);
  }
  CAF_MESSAGE("owners: " << owners.size() << " distinct nodes");
  CAF_CHECK_GREATER(owners.size(), 1u);
  // The shape of /admin/cluster.
  auto info = env.cluster_info(1, env.opts.apps[0].appid);
  CAF_CHECK_EQUAL(field(info, {"node"}), "n2");
  CAF_CHECK_EQUAL(field(info, {"state"}), "ready");
  CAF_CHECK_EQUAL(field(info, {"live"}), R"(["n1","n2","n3"])");
  CAF_CHECK_EQUAL(field(info, {"replicas"}), "2");
  CAF_CHECK_EQUAL(field(info, {"key", "key"}), env.opts.apps[0].appid);
  int64_t owned = 0;
  for (auto i : env.all()) {
    auto o = env.cluster_info(i, env.opts.apps[0].appid);
    if (auto n = o.if_contains("owned_keys"); n && n->is_int64())
      owned += n->as_int64();
  }
  CAF_CHECK_EQUAL(owned, static_cast<int64_t>(env.opts.apps.size()));
  // Every node sees three live nodes; each state change was replicated to
  // the key's second node; reads of keys owned elsewhere were forwarded.
  // Replication is asynchronous: polled.
  double sent = 0;
  double applied = 0;
  double forwarded = 0;
  auto napps = static_cast<double>(env.opts.apps.size());
  eventually(5s, [&] {
    sent = applied = forwarded = 0;
    for (auto i : env.all()) {
      sent += env.metric(i, "wechat_hub_cluster_replication_sent_total");
      applied += env.metric(i, R"(wechat_hub_cluster_replication_applied_total{result="applied"})");
      forwarded += env.metric(i, "wechat_hub_cluster_forwarded_total");
    }
    return sent >= napps && applied >= napps;
  });
  CAF_MESSAGE("replication sent " << sent << ", applied " << applied << ", forwarded " << forwarded);
  CAF_CHECK_GREATER_OR_EQUAL(sent, napps);
  CAF_CHECK_GREATER_OR_EQUAL(applied, napps);
  CAF_CHECK_GREATER(forwarded, 0.0);
  for (auto i : env.all())
    CAF_CHECK_EQUAL(env.metric(i, "wechat_hub_cluster_live_nodes"), 3.0);
}

CAF_TEST(three hundred concurrent cold reads over three nodes make one upstream call per app) {
  cluster_env env{cluster_options{six_apps()}};
  WH_REQUIRE_WHY(started(env), "see above");
  for (auto& app : env.opts.apps)
    WH_REQUIRE_WHY(env.sim_calls(app.token_path(), app.appid) == 0, app.appid << " was fetched before any read");
  net::client_options copts;
  copts.io_threads = 2;
  copts.max_idle_per_host = 128;
  net::http_client client{copts};
  std::mutex mtx;
  std::condition_variable cv;
  std::map<std::string, std::set<std::string>> tokens;
  std::vector<std::string> failures;
  int done = 0;
  int ok = 0;
  constexpr int total = 300;
  auto napps = env.opts.apps.size();
  for (int i = 0; i < total; ++i) {
    auto node = static_cast<std::size_t>(i) % env.nodes.size(); // 100 per node
    auto appid = env.opts.apps[(static_cast<std::size_t>(i) / env.nodes.size()) % napps].appid;
    net::request req;
    req.url = env.nodes[node].url() + "/client/access_token?appid=" + appid;
    req.timeout = std::chrono::seconds(30);
    client.async_send(std::move(req), [&, appid, node](caf::expected<net::response> res) {
      std::lock_guard<std::mutex> guard{mtx};
      if (res && res->status == 200) {
        ++ok;
        tokens[appid].insert(field(parse_object(res->body), {"access_token"}));
      } else if (failures.size() < 10) {
        failures.push_back(env.nodes[node].id + " " + appid + ": "
                           + (res ? std::to_string(res->status) + " " + res->body : std::string{"transport error"}));
      }
      ++done;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait_for(guard, std::chrono::seconds(45), [&] { return done == total; });
  }
  {
    std::lock_guard<std::mutex> guard{mtx};
    for (auto& f : failures)
      CAF_TEST_PRINT_ERROR("failed read: " << f);
    CAF_CHECK_EQUAL(done, total);
    CAF_CHECK_EQUAL(ok, total);
    CAF_CHECK_EQUAL(tokens.size(), napps);
    for (auto& [appid, set] : tokens)
      WH_CHECK_WHY(set.size() == 1u, appid << " got " << set.size() << " different tokens");
  }
  for (auto& app : env.opts.apps)
    WH_CHECK_WHY(env.sim_calls(app.token_path(), app.appid) == 1,
                 app.appid << ": " << env.sim_calls(app.token_path(), app.appid) << " upstream token calls");
  client.shutdown();
}

CAF_TEST(kill -9 of a busy owner fails over without calling WeChat) {
  cluster_env env{cluster_options{six_apps()}};
  WH_REQUIRE_WHY(started(env), "see above");
  // Each key is read once, at its owner only: no other node holds an answer
  // it could have cached, so after the kill only replicated state can spare
  // the upstream call.
  std::map<std::string, std::string> tokens;
  std::map<std::string, int64_t> versions;
  for (auto& app : env.opts.apps) {
    auto owner = env.index_of(env.owner_of(app.appid));
    WH_REQUIRE_WHY(owner < env.nodes.size(), "no owner of " << app.appid);
    tokens[app.appid] = env.token(owner, app.appid);
    CAF_CHECK(!is_error(tokens[app.appid]));
    versions[app.appid] = env.state_version(owner, app.appid);
  }
  auto busy = env.opts.apps[0].appid;
  auto victim_id = env.owner_of(busy);
  auto victim = env.index_of(victim_id);
  WH_REQUIRE_WHY(victim < env.nodes.size(), "no owner of " << busy << " in /admin/cluster");
  auto survivors = env.all_but(victim);
  std::string victim_keys;
  for (auto& app : env.opts.apps)
    if (env.owner_of(app.appid) == victim_id)
      victim_keys += " " + app.appid;
  CAF_MESSAGE("killing " << victim_id << ", the owner of" << victim_keys);
  // Replication is asynchronous: wait until every key's state reached its replica.
  auto applied = [&] {
    double n = 0;
    for (auto i : env.all())
      n += env.metric(i, R"(wechat_hub_cluster_replication_applied_total{result="applied"})");
    return n;
  };
  WH_CHECK_WHY(eventually(5s, [&] { return applied() >= static_cast<double>(env.opts.apps.size()); }),
               "replication_applied_total{result=\"applied\"} summed over nodes: " << applied());
  std::map<std::size_t, double> failovers_before;
  for (auto s : survivors)
    failovers_before[s] = env.metric(s, "wechat_hub_cluster_failovers_total");
  auto calls_before = env.sim_total();
  // The key is busy: a reader keeps asking the survivors for it throughout.
  std::atomic<bool> stop{false};
  std::atomic<int> bg_ok{0};
  std::atomic<int> bg_unavailable{0};
  std::mutex bg_mtx;
  std::vector<std::string> bg_bad;
  const std::string busy_token = tokens[busy];
  std::thread reader{[&] {
    net::http_client c;
    for (std::size_t n = 0; !stop; ++n) {
      auto s = survivors[n % survivors.size()];
      net::request req;
      req.url = env.nodes[s].url() + "/client/access_token?appid=" + busy;
      req.timeout = std::chrono::seconds(10);
      auto res = c.send(std::move(req));
      auto obj = res ? parse_object(res->body) : boost::json::object{};
      auto tok = obj.if_contains("access_token");
      if (res && res->status == 200 && tok && tok->is_string() && tok->as_string() == busy_token) {
        ++bg_ok;
      } else if (res && res->status == 503 && res->body.find("cluster_unavailable") != std::string::npos) {
        ++bg_unavailable;
      } else {
        std::lock_guard<std::mutex> guard{bg_mtx};
        if (bg_bad.size() < 5)
          bg_bad.push_back(res ? std::to_string(res->status) + " " + res->body : std::string{"transport error"});
      }
    }
    c.shutdown();
  }};
  // The reader is under way before the kill, and keeps being served after it.
  WH_CHECK_WHY(eventually(10s, [&] { return bg_ok > 0; }), "no background read succeeded before the kill");
  env.kill_node(victim);
  auto ok_at_kill = bg_ok.load();
  // Every survivor serves every key, the same tokens, with at most one retry.
  for (auto s : survivors) {
    for (auto& app : env.opts.apps) {
      int attempts = 0;
      auto t = token_with_retry(env, s, app.appid, attempts);
      WH_CHECK_WHY(t == tokens[app.appid],
                   env.nodes[s].id << " " << app.appid << ": " << t << " after " << attempts << " attempt(s)");
      CAF_CHECK_LESS_OR_EQUAL(attempts, 2);
    }
  }
  WH_CHECK_WHY(eventually(10s, [&] { return bg_ok > ok_at_kill + 10; }),
               "background reads after the kill: " << bg_ok - ok_at_kill);
  stop = true;
  reader.join();
  CAF_MESSAGE("background reads: " << bg_ok << " ok (" << ok_at_kill << " before the kill), " << bg_unavailable
                                   << " cluster_unavailable");
  for (auto& b : bg_bad)
    CAF_TEST_PRINT_ERROR("unexpected background answer: " << b);
  CAF_CHECK(bg_bad.empty());
  // Zero upstream calls: the replica held the state, and the new owner's
  // state is the replicated one (same version). The new owner takes over
  // once the killed node's etcd lease has expired: until then /admin/state,
  // which asks the owner, has no answer.
  CAF_CHECK_EQUAL(env.sim_total(), calls_before);
  for (auto& app : env.opts.apps)
    for (auto s : survivors)
      WH_CHECK_WHY(eventually(10s, [&] { return env.state_version(s, app.appid) == versions[app.appid]; }),
                   env.nodes[s].id << ": /admin/state version of " << app.appid << " is "
                              << env.state_version(s, app.appid) << ", was " << versions[app.appid]);
  // The survivors drop the killed node from their live list.
  std::string why;
  WH_CHECK_WHY(env.wait_ready(survivors, 10s, &why), why);
  // Some survivor counted a failover.
  CAF_CHECK(eventually(5s, [&] {
    for (auto s : survivors)
      if (env.metric(s, "wechat_hub_cluster_failovers_total") > failovers_before[s])
        return true;
    return false;
  }));
  auto new_owner = env.owner_of(busy, survivors[0]);
  CAF_CHECK(!new_owner.empty());
  CAF_CHECK_NOT_EQUAL(new_owner, victim_id);
  CAF_CHECK_EQUAL(env.owner_of(busy, survivors[1]), new_owner);
  for (auto s : survivors)
    CAF_CHECK_EQUAL(env.metric(s, "wechat_hub_cluster_live_nodes"), 2.0);
  // Still nothing upstream.
  for (auto& app : env.opts.apps)
    CAF_CHECK_EQUAL(env.sim_calls(app.token_path(), app.appid), 1);
}

CAF_TEST(a restarted node catches up and a forced refresh reaches every node) {
  cluster_env env{cluster_options{six_apps()}};
  WH_REQUIRE_WHY(started(env), "see above");
  auto tokens = warm_all(env);
  auto& apps = env.opts.apps;
  auto busy = apps[0];
  auto victim_id = env.owner_of(busy.appid);
  auto victim = env.index_of(victim_id);
  WH_REQUIRE_WHY(victim < env.nodes.size(), "no owner of " << busy.appid << " in /admin/cluster");
  // A second key the victim owns: it changes while the victim is down.
  std::optional<cluster_app> second;
  for (std::size_t k = 1; k < apps.size() && !second; ++k)
    if (env.owner_of(apps[k].appid) == victim_id)
      second = apps[k];
  WH_REQUIRE_WHY(second.has_value(), "no second app owned by " << victim_id);
  auto survivors = env.all_but(victim);
  CAF_MESSAGE("killing " << victim_id << ", the owner of " << busy.appid << " and " << second->appid);
  env.kill_node(victim);
  WH_REQUIRE_WHY(ready(env, survivors, 10s), "survivors");
  int attempts = 0;
  for (auto s : survivors)
    CAF_CHECK_EQUAL(token_with_retry(env, s, busy.appid, attempts), tokens[busy.appid]);
  // While the victim is down, WeChat kills the second app's token and a
  // client reports it: the new owner replaces it.
  env.sim("POST", "/sim/invalidate", R"({"appid":")" + second->appid + "\"}");
  auto second_new = report_stale(env, survivors[0], second->appid, tokens[second->appid]);
  WH_REQUIRE_WHY(!is_error(second_new), "report of " << second->appid << ": " << second_new);
  CAF_CHECK_NOT_EQUAL(second_new, tokens[second->appid]);
  CAF_CHECK_EQUAL(second_new, sim_token(env, *second));
  CAF_CHECK_EQUAL(env.sim_calls(second->token_path(), second->appid), 2);
  int64_t busy_version = -1;
  int64_t second_version = -1;
  for (auto s : survivors) {
    busy_version = std::max(busy_version, env.state_version(s, busy.appid));
    second_version = std::max(second_version, env.state_version(s, second->appid));
  }
  CAF_CHECK_GREATER_OR_EQUAL(busy_version, 0);
  CAF_CHECK_GREATER_OR_EQUAL(second_version, 0);
  auto calls_before = env.sim_total();
  // Restart with the same data_dir: it catches up before it owns anything.
  env.start_node(victim);
  // While it catches up it says so: 503 "joining" (or already 200 "ready").
  auto early = env.healthz(victim);
  WH_CHECK_WHY((early.status == 503 && early.state == "joining") || (early.status == 200 && early.state == "ready"),
               "restarted node's first /healthz: " << early.status << " " << early.body);
  WH_REQUIRE_WHY(ready(env, env.all(), 20s), "after the restart");
  CAF_CHECK_EQUAL(env.owner_of(busy.appid, victim), victim_id);
  CAF_CHECK_EQUAL(env.owner_of(busy.appid, survivors[0]), victim_id);
  for (auto i : env.all()) {
    int n = 0;
    auto t = token_with_retry(env, i, busy.appid, n);
    WH_CHECK_WHY(t == tokens[busy.appid], env.nodes[i].id << " serves " << t << " for " << busy.appid);
  }
  // The second app's newer state was not overwritten by the victim's older
  // copy: its owner and replica serve the new token; a third node may still
  // hold the old one from a cached remote answer.
  auto second_reps = env.replicas_of(second->appid);
  for (auto i : env.all()) {
    int n = 0;
    auto t = token_with_retry(env, i, second->appid, n);
    bool holder = std::find(second_reps.begin(), second_reps.end(), env.nodes[i].id) != second_reps.end();
    if (holder)
      WH_CHECK_WHY(t == second_new, env.nodes[i].id << " (owner/replica) serves " << t << " for "
                                                    << second->appid << ", want " << second_new);
    else
      WH_CHECK_WHY(t == second_new || t == tokens[second->appid],
                   env.nodes[i].id << " serves " << t << " for " << second->appid);
  }
  CAF_CHECK_EQUAL(env.sim_total(), calls_before);
  for (auto i : env.all()) {
    WH_CHECK_WHY(env.state_version(i, busy.appid) >= busy_version,
                 env.nodes[i].id << ": version of " << busy.appid << " "
                                 << env.state_version(i, busy.appid) << " < " << busy_version);
    WH_CHECK_WHY(env.state_version(i, second->appid) >= second_version,
                 env.nodes[i].id << ": version of " << second->appid << " "
                                 << env.state_version(i, second->appid) << " < " << second_version);
  }
  // A forced refresh asked of a node that does not own the key: exactly one
  // upstream call; the owner and its replica serve the new token.
  auto owner_id = env.owner_of(busy.appid);
  auto reps = env.replicas_of(busy.appid);
  std::size_t asked = env.nodes.size();
  for (auto i : env.all())
    if (env.nodes[i].id != owner_id)
      asked = i;
  WH_REQUIRE_WHY(asked < env.nodes.size(), "no node besides the owner " << owner_id);
  auto upstream_before = env.sim_calls(busy.token_path(), busy.appid);
  auto forced = env.node(asked, "POST", "/admin/refresh", R"({"appid":")" + busy.appid + "\"}");
  CAF_CHECK_EQUAL(forced.status, 200u);
  CAF_MESSAGE("POST /admin/refresh on " << env.nodes[asked].id << ": " << forced.status << " " << forced.body);
  CAF_CHECK_EQUAL(env.sim_calls(busy.token_path(), busy.appid), upstream_before + 1);
  auto busy_new = sim_token(env, busy);
  CAF_CHECK_NOT_EQUAL(busy_new, tokens[busy.appid]);
  for (auto i : env.all()) {
    bool holder = std::find(reps.begin(), reps.end(), env.nodes[i].id) != reps.end();
    if (holder) {
      WH_CHECK_WHY(eventually(3s, [&] { return env.token(i, busy.appid) == busy_new; }),
                   env.nodes[i].id << " (owner/replica) still serves " << env.token(i, busy.appid));
      continue;
    }
    // A node that may cache the remote answer: either token; a report of the
    // old one gets the new one, and from then on it serves the new one.
    auto t = env.token(i, busy.appid);
    WH_CHECK_WHY(t == busy_new || t == tokens[busy.appid], env.nodes[i].id << " serves " << t);
    auto reported = report_stale(env, i, busy.appid, tokens[busy.appid]);
    WH_CHECK_WHY(reported == busy_new, env.nodes[i].id << " answers a stale report with " << reported);
    WH_CHECK_WHY(eventually(3s, [&] { return env.token(i, busy.appid) == busy_new; }),
                 env.nodes[i].id << " still serves " << env.token(i, busy.appid) << " after the report");
  }
  // Reports of the replaced token cost nothing upstream.
  CAF_CHECK_EQUAL(env.sim_calls(busy.token_path(), busy.appid), upstream_before + 1);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/get_api_domain_ip", busy.appid), 0);
}

CAF_TEST(component pushes to a non-owner and authorizer reads from a third node) {
  cluster_options o;
  o.apps = {cluster_app{"wxclu0000000001", "clu-secret-1", false}};
  o.component = true;
  cluster_env env{o};
  WH_REQUIRE_WHY(started(env), "see above");
  std::string comp = component_appid;
  std::string aid = "wxauthorizer0001";
  auto comp_owner = env.owner_of(comp);
  WH_REQUIRE_WHY(!comp_owner.empty(), "no owner of " << comp << " in /admin/cluster");
  std::size_t push_node = env.nodes.size();
  for (auto i : env.all())
    if (env.nodes[i].id != comp_owner && push_node == env.nodes.size())
      push_node = i;
  std::size_t read_node = env.nodes.size();
  for (auto i : env.all())
    if (env.nodes[i].id != comp_owner && i != push_node)
      read_node = i;
  WH_REQUIRE_WHY(push_node < env.nodes.size() && read_node < env.nodes.size(), "three distinct nodes needed");
  CAF_MESSAGE("component owner " << comp_owner << ", pushes to " << env.nodes[push_node].id << ", reads from "
                                 << env.nodes[read_node].id << "; authorizer owner "
                                 << env.owner_of(comp + "/" + aid));
  auto push = [&](const std::string& info_type, const std::string& authorizer = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type + R"(","url":")"
                       + env.nodes[push_node].url() + "/wechat/component/" + comp + "/events\"";
    if (!authorizer.empty())
      body += R"(,"authorizer_appid":")" + authorizer + "\"";
    body += "}";
    return parse_object(env.sim("POST", "/sim/push", body).body);
  };
  auto ticket = push("component_verify_ticket");
  CAF_CHECK_EQUAL(field(ticket, {"status"}), "200");
  CAF_CHECK_EQUAL(field(ticket, {"body"}), "success");
  auto auth = push("authorized", aid);
  CAF_CHECK_EQUAL(field(auth, {"status"}), "200");
  CAF_CHECK_EQUAL(field(auth, {"body"}), "success");
  int attempts = 0;
  auto atoken = token_with_retry(env, read_node, comp, attempts, aid);
  WH_REQUIRE_WHY(!is_error(atoken), "authorizer token from " << env.nodes[read_node].id << ": " << atoken);
  CAF_CHECK_EQUAL(attempts, 1);
  // Every node serves the same authorizer and component tokens.
  std::string ctoken;
  for (auto i : env.all()) {
    CAF_CHECK_EQUAL(env.token(i, comp, aid), atoken);
    auto res = env.node(i, "GET", "/client/component_access_token?appid=" + comp);
    CAF_CHECK_EQUAL(res.status, 200u);
    auto t = field(parse_object(res.body), {"access_token"});
    if (ctoken.empty())
      ctoken = t;
    CAF_CHECK_EQUAL(t, ctoken);
  }
  // Exactly one upstream authorizer-token call (query_auth hands it out).
  auto query_auth = env.sim_calls("/cgi-bin/component/api_query_auth", comp);
  auto authorizer_token = env.sim_calls("/cgi-bin/component/api_authorizer_token", comp);
  CAF_MESSAGE("api_query_auth " << query_auth << ", api_authorizer_token " << authorizer_token);
  CAF_CHECK_EQUAL(query_auth, 1);
  CAF_CHECK_EQUAL(query_auth + authorizer_token, 1);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_component_token", comp), 1);
  // Only the owner asked WeChat to start pushing tickets.
  CAF_CHECK_LESS_OR_EQUAL(env.sim_calls("/cgi-bin/component/api_start_push_ticket", comp), 1);
}

CAF_TEST(cluster metrics use the names and labels of the contract) {
  cluster_env env{cluster_options{six_apps()}};
  WH_REQUIRE_WHY(started(env), "see above");
  // Reads through every node: some are forwarded, every key is replicated.
  warm_all(env);
  std::string all_metrics;
  for (auto i : env.all())
    all_metrics += env.node(i, "GET", "/metrics").body;
  for (auto name : {"wechat_hub_cluster_live_nodes", "wechat_hub_cluster_owned_keys",
                    "wechat_hub_cluster_failovers_total", "wechat_hub_cluster_replication_sent_total",
                    "wechat_hub_cluster_replication_applied_total", "wechat_hub_cluster_replication_lag_seconds",
                    "wechat_hub_cluster_forwarded_total"})
    // A sample or at least its HELP line (a counter may have no sample before its first event).
    WH_CHECK_WHY(all_metrics.find(std::string{" "} + name + " ") != std::string::npos
                   || all_metrics.find(std::string{"\n"} + name) != std::string::npos,
                 "no metric " << name);
  WH_CHECK_WHY(all_metrics.find("\nwechat_hub_cluster_replication_applied_total{result=\"applied\"}")
                 != std::string::npos,
               "no replication_applied_total{result=\"applied\"} sample");
  // wechat_hub_cluster_forwarded_total{result}: its samples carry a result label.
  std::vector<std::string> samples;
  for (auto pos = all_metrics.find("\nwechat_hub_cluster_forwarded_total{"); pos != std::string::npos;
       pos = all_metrics.find("\nwechat_hub_cluster_forwarded_total{", pos + 1))
    samples.push_back(all_metrics.substr(pos + 1, all_metrics.find('\n', pos + 1) - pos - 1));
  CAF_CHECK(!samples.empty());
  for (auto& sample : samples)
    WH_CHECK_WHY(sample.find("result=\"") != std::string::npos, "sample without a result label: " << sample);
}
