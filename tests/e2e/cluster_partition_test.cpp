#define CAF_SUITE e2e_cluster_partition

// Network partitions of a three-node hub with a real etcd and wechat-sim,
// made with cuttable TCP proxies (tests/support/tcp_proxy.hpp): every node
// reaches etcd through a proxy of its own, and the other nodes reach its
// CAF endpoint through a proxy it advertises (`[cluster] advertise`).
// Cutting one node off = its etcd proxy, its own peer proxy, and its
// connections through the other nodes' peer proxies.

#include "caf/test/dsl.hpp"

#include <map>
#include <thread>

#include <boost/json.hpp>

#include "tests/e2e/cluster_env.hpp"
#include "tests/e2e/partition_env.hpp"

using namespace wh;
using namespace wh::test;
using namespace std::chrono_literals;

namespace {

const std::string comp = component_appid;
const std::string aid = "wxpartition00001";

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
    ++n;
  return n;
}

struct fixture : partition_env {
  /// A push from wechat-sim to node `i`: the hub's answer status (0 when
  /// the simulator could not deliver it).
  int64_t push(std::size_t i, const std::string& info_type, const std::string& authorizer = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type + R"(","url":")"
                       + env->nodes[i].url() + "/wechat/component/" + comp + "/events\"";
    if (!authorizer.empty())
      body += R"(,"authorizer_appid":")" + authorizer + "\"";
    body += "}";
    return push_status(env->sim("POST", "/sim/push", body));
  }

  /// WeChat's retry of the latest authorization event, to node `i`.
  int64_t repush(std::size_t i) {
    std::string body = R"({"component_appid":")" + comp + R"(","url":")" + env->nodes[i].url()
                       + "/wechat/component/" + comp + "/events\"}";
    return push_status(env->sim("POST", "/sim/repush", body));
  }

  static int64_t push_status(const http_result& res) {
    boost::system::error_code ec;
    auto v = boost::json::parse(res.body, ec);
    if (ec || !v.is_object())
      return 0;
    if (auto s = v.as_object().if_contains("status"); s && s->is_int64())
      return s->as_int64();
    return 0;
  }

  /// Moves the simulator's clock (push CreateTimes) by `secs`.
  void sim_advance(int secs) {
    env->sim("POST", "/sim/advance", R"({"seconds":)" + std::to_string(secs) + "}");
  }

  std::string authorizer_token(std::size_t i) {
    return env->token(i, comp, aid);
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(e2e_cluster_partition_tests, fixture)

CAF_TEST(a re-authorization on either side of a partition leaves the newest refresh token on every node) {
  cluster_options o;
  o.component = true;
  if (!up(std::move(o)))
    return;
  auto& e = *env;
  WH_REQUIRE_WHY(push(0, "component_verify_ticket") == 200, e.log_tails());
  WH_REQUIRE_WHY(push(0, "authorized", aid) == 200, e.log_tails());
  std::string first;
  WH_REQUIRE_WHY(eventually(10s, [&] {
                   first = authorizer_token(1);
                   return !is_error(first);
                 }),
                 "authorizer token: " << first << "\n" << e.log_tails());
  auto key = comp + "/" + aid;
  auto cut = e.index_of(e.owner_of(key, 0));
  WH_REQUIRE_WHY(cut < e.nodes.size(), "no owner of " << key);
  auto majority = e.all_but(cut);
  auto m = majority[0];
  CAF_MESSAGE("cutting off " << e.nodes[cut].id << ", the owner of " << key);
  partition(cut);
  std::string interim;
  WH_REQUIRE_WHY(eventually(10s,
                            [&] {
                              interim = e.owner_of(key, majority[0]);
                              return !interim.empty() && interim != e.nodes[cut].id
                                     && e.owner_of(key, majority[1]) == interim;
                            }),
                 "ownership of " << key << " did not move\n" << e.log_tails());
  // The majority side: the account unauthorizes and authorizes again
  // (WeChat issues a new refresh token, RT2).
  sim_advance(5);
  CAF_CHECK_EQUAL(push(m, "unauthorized", aid), 200);
  sim_advance(5);
  CAF_CHECK_EQUAL(push(m, "authorized", aid), 200);
  std::string second;
  WH_CHECK_WHY(eventually(5s,
                          [&] {
                            second = authorizer_token(majority[1]);
                            return !is_error(second) && second != first;
                          }),
               "after the re-authorization: " << second << "\n" << e.log_tails());
  // The minority side: the same again, pushed to the cut-off node (RT3).
  // It must not apply the authorization on its own: WeChat sees a failure
  // and retries.
  sim_advance(5);
  push(cut, "unauthorized", aid);
  sim_advance(5);
  auto minority = push(cut, "authorized", aid);
  CAF_MESSAGE("the cut-off node answered the authorization push with " << minority);
  CAF_CHECK_NOT_EQUAL(minority, 200);
  // Reconnection: each link the partition cut is logged back within 1 s
  // of the heal.
  std::vector<std::size_t> logged_before;
  for (auto i : e.all())
    logged_before.push_back(count_of(e.node_log(i), "reconnected to node"));
  auto healed_at = std::chrono::steady_clock::now();
  heal();
  auto reconnected = eventually(10s, [&] {
    for (auto i : e.all())
      if (count_of(e.node_log(i), "reconnected to node") < logged_before[i] + (i == cut ? 2 : 1))
        return false;
    return true;
  });
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - healed_at);
  CAF_MESSAGE("links logged back " << took.count() << " ms after the heal");
  WH_CHECK_WHY(reconnected, "no reconnection logged\n" << e.log_tails());
  WH_CHECK_WHY(took < 1000ms, "reconnection took " << took.count() << " ms\n" << e.log_tails());
  std::string why;
  WH_REQUIRE_WHY(e.wait_ready(e.all(), 15s, &why), why << "\n" << e.log_tails());
  // WeChat retries the authorization it could not deliver.
  int64_t retried = 0;
  WH_CHECK_WHY(eventually(10s,
                          [&] {
                            retried = repush(cut);
                            return retried == 200;
                          }),
               "the retried authorization push: " << retried << "\n" << e.log_tails());
  // Every node serves the authorizer, and the same token.
  std::string served;
  WH_CHECK_WHY(eventually(10s,
                          [&] {
                            served = authorizer_token(0);
                            if (is_error(served))
                              return false;
                            for (auto i : e.all())
                              if (authorizer_token(i) != served)
                                return false;
                            return true;
                          }),
               "served: " << served << " " << authorizer_token(1) << " " << authorizer_token(2) << "\n"
                          << e.log_tails());
  // The stored refresh token is the newest one: WeChat rejects the token,
  // and the owner's refresh with the stored refresh token succeeds.
  auto before = e.sim_calls("/cgi-bin/component/api_authorizer_token", comp);
  e.sim("POST", "/sim/invalidate", R"({"appid":")" + aid + "\"}");
  auto res = e.node(majority[1], "POST", "/refresh/access_token",
                    R"({"appid":")" + comp + R"(","authorizer_appid":")" + aid + R"(","access_token":")" + served
                      + "\"}");
  CAF_MESSAGE("refresh after the heal: " << res.status << " " << res.body.substr(0, 200));
  CAF_CHECK_EQUAL(res.status, 200u);
  CAF_CHECK_EQUAL(e.sim_calls("/cgi-bin/component/api_authorizer_token", comp), before + 1);
  std::string fresh;
  WH_CHECK_WHY(eventually(5s,
                          [&] {
                            fresh = authorizer_token(0);
                            if (is_error(fresh) || fresh == served)
                              return false;
                            for (auto i : e.all())
                              if (authorizer_token(i) != fresh)
                                return false;
                            return true;
                          }),
               "after the refresh: " << fresh << "\n" << e.log_tails());
  // 0 authorizers need re-authorization, on any node.
  for (auto i : e.all()) {
    auto st = e.node(i, "GET", "/admin/state?appid=" + comp + "&authorizer_appid=" + aid);
    WH_CHECK_WHY(st.body.find("needs_reauthorization") == std::string::npos,
                 e.nodes[i].id << ": " << st.body.substr(0, 300));
  }
}

CAF_TEST(links a partition dropped every packet of are back and logged within 1 s of the heal) {
  cluster_options o;
  o.apps = {cluster_app{"wxpart0000000001", "part-secret-1", false}};
  if (!up(std::move(o)))
    return;
  auto& e = *env;
  std::size_t cut = 2;
  auto majority = e.all_but(cut);
  std::vector<std::size_t> down_before;
  for (auto i : e.all())
    down_before.push_back(count_of(e.node_log(i), " is down"));
  CAF_MESSAGE("dropping every packet to and from " << e.nodes[cut].id);
  partition(cut, true);
  // The majority's etcd view drops the node once its lease expired; every
  // node notices its links are gone (CAF's heartbeat timeout).
  auto apart = eventually(15s, [&] {
    for (auto i : majority)
      if (e.healthz(i).live.size() != 2)
        return false;
    for (auto i : e.all())
      if (count_of(e.node_log(i), " is down") < down_before[i] + (i == cut ? 2 : 1))
        return false;
    return true;
  });
  WH_REQUIRE_WHY(apart, "the partition was not noticed\n" << e.log_tails());
  std::vector<std::size_t> logged_before;
  for (auto i : e.all())
    logged_before.push_back(count_of(e.node_log(i), "reconnected to node"));
  auto healed_at = std::chrono::steady_clock::now();
  heal();
  auto reconnected = eventually(15s, [&] {
    for (auto i : e.all())
      if (count_of(e.node_log(i), "reconnected to node") < logged_before[i] + (i == cut ? 2 : 1))
        return false;
    return true;
  });
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - healed_at);
  CAF_MESSAGE("links logged back " << took.count() << " ms after the heal");
  WH_CHECK_WHY(reconnected, "no reconnection logged\n" << e.log_tails());
  WH_CHECK_WHY(took < 1000ms, "reconnection took " << took.count() << " ms\n" << e.log_tails());
  std::string why;
  WH_CHECK_WHY(e.wait_ready(e.all(), 15s, &why), why << "\n" << e.log_tails());
}

CAF_TEST_FIXTURE_SCOPE_END()
