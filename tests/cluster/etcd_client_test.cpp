#define CAF_SUITE cluster_etcd_client

#include "caf/test/dsl.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <set>
#include <vector>
#include <string>

#include "cluster/etcd_client.hpp"
#include "core/error.hpp"
#include "net/http_client.hpp"
#include "tests/cluster/etcd_env.hpp"
#include "tests/net/test_server.hpp"

using namespace std::chrono_literals;
using namespace wh;
using cluster::etcd_client;
using cluster::etcd_code_of;

namespace {

struct fixture : test::etcd_env {};

} // namespace

CAF_TEST_FIXTURE_SCOPE(etcd_client_tests, fixture)

CAF_TEST(put range and erase round trip through the JSON gateway) {
  if (!up())
    return;
  auto& c = client();
  // Bytes that base64 and JSON must carry unchanged.
  std::string odd = std::string{"v\0\xff\"\n", 5};
  auto r1 = c.put("/t/a", "1");
  auto r2 = c.put("/t/b", odd);
  auto r3 = c.put("/t/c/deep", "3");
  auto r4 = c.put("/u", "outside");
  CAF_REQUIRE(r1 && r2 && r3 && r4);
  CAF_CHECK_LESS(*r1, *r2);
  auto all = c.range("/t/", etcd_client::prefix_end("/t/"));
  CAF_REQUIRE(all);
  CAF_CHECK_EQUAL(all->revision, *r4);
  CAF_REQUIRE_EQUAL(all->kvs.size(), 3u);
  CAF_CHECK_EQUAL(all->count, 3);
  CAF_CHECK_EQUAL(all->kvs[0].key, "/t/a");
  CAF_CHECK_EQUAL(all->kvs[1].value, odd);
  CAF_CHECK_EQUAL(all->kvs[1].create_revision, *r2);
  CAF_CHECK_EQUAL(all->kvs[1].mod_revision, *r2);
  CAF_CHECK_EQUAL(all->kvs[1].version, 1);
  // A read of the past and a count-only read.
  cluster::etcd_range_options past;
  past.revision = *r1;
  past.count_only = true;
  auto then = c.range("/t/", etcd_client::prefix_end("/t/"), past);
  CAF_REQUIRE(then);
  CAF_CHECK_EQUAL(then->count, 1);
  CAF_CHECK(then->kvs.empty());
  auto gone = c.erase("/t/a");
  CAF_REQUIRE(gone);
  CAF_CHECK_EQUAL(*gone, 1);
  auto none = c.range("/t/a");
  CAF_REQUIRE(none);
  CAF_CHECK(none->kvs.empty());
  CAF_CHECK_EQUAL(none->count, 0);
  CAF_CHECK_EQUAL(etcd_client::prefix_end("/t/"), "/t0");
  CAF_CHECK_EQUAL(etcd_client::prefix_end(std::string{"a\xff", 2}), "b");
}

CAF_TEST(a key put under a lease disappears when the lease is revoked) {
  if (!up())
    return;
  auto& c = client();
  auto lease = c.grant(2s);
  CAF_REQUIRE(lease);
  CAF_CHECK_EQUAL(lease->ttl.count(), 2);
  CAF_REQUIRE(c.put("/leased", "x", lease->id));
  auto kv = c.range("/leased");
  CAF_REQUIRE(kv && kv->kvs.size() == 1);
  CAF_CHECK_EQUAL(kv->kvs[0].lease, lease->id);
  auto ka = c.keepalive(lease->id);
  CAF_REQUIRE(ka);
  CAF_CHECK_EQUAL(ka->count(), 2);
  CAF_REQUIRE(c.revoke(lease->id));
  auto after = c.range("/leased");
  CAF_REQUIRE(after);
  CAF_CHECK(after->kvs.empty());
  // etcd no longer knows the lease: a keepalive says so with TTL 0.
  auto dead = c.keepalive(lease->id);
  CAF_REQUIRE(dead);
  CAF_CHECK_EQUAL(dead->count(), 0);
}

CAF_TEST(fenced acquire gives one holder while its lease lives and the next only after it expired) {
  if (!up())
    return;
  auto& c = client();
  auto a = c.grant(1s);
  auto b = c.grant(5s);
  CAF_REQUIRE(a && b);
  auto first = c.acquire("/owner/wx1", "n1", a->id);
  CAF_REQUIRE(first);
  CAF_CHECK(first->acquired);
  CAF_CHECK_EQUAL(first->holder.lease, a->id);
  auto epoch = first->holder.create_revision;
  CAF_CHECK_GREATER(epoch, 0);
  // A retry by the holder (a lost reply) is still its own acquisition.
  auto again = c.acquire("/owner/wx1", "n1", a->id);
  CAF_REQUIRE(again);
  CAF_CHECK(again->acquired);
  CAF_CHECK_EQUAL(again->holder.create_revision, epoch);
  auto a_renewed = std::chrono::steady_clock::now();
  CAF_REQUIRE(c.keepalive(a->id));
  auto second = c.acquire("/owner/wx1", "n2", b->id);
  CAF_REQUIRE(second);
  CAF_CHECK(!second->acquired);
  CAF_CHECK_EQUAL(second->holder.value, "n1");
  CAF_CHECK_EQUAL(second->holder.lease, a->id);
  // n1 stops renewing: n2 takes over once etcd expired the lease, never before.
  bool took = test::eventually(5s, [&] {
    auto r = c.acquire("/owner/wx1", "n2", b->id);
    return r && r->acquired;
  });
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - a_renewed);
  CAF_REQUIRE(took);
  CAF_MESSAGE("n2 acquired " << waited.count() << " ms after n1's last renewal");
  CAF_CHECK_GREATER_OR_EQUAL(waited.count(), 1000);
  auto now_held = c.range("/owner/wx1");
  CAF_REQUIRE(now_held && now_held->kvs.size() == 1);
  CAF_CHECK_EQUAL(now_held->kvs[0].value, "n2");
  CAF_CHECK_GREATER(now_held->kvs[0].create_revision, epoch);
}

CAF_TEST(of concurrent acquirers exactly one wins and all agree on the holder) {
  if (!up())
    return;
  auto& c = client();
  constexpr int n = 8;
  std::vector<int64_t> leases;
  for (int i = 0; i < n; ++i) {
    auto l = c.grant(5s);
    CAF_REQUIRE(l);
    leases.push_back(l->id);
  }
  std::vector<std::promise<caf::expected<cluster::etcd_acquire>>> done(n);
  for (int i = 0; i < n; ++i)
    c.async_acquire("/owner/contended", "n" + std::to_string(i), leases[i],
                    [&done, i](caf::expected<cluster::etcd_acquire> r) {
                      done[i].set_value(std::move(r));
                    });
  int winners = 0;
  int64_t winner_lease = 0;
  std::set<int64_t> epochs;
  std::set<int64_t> holders;
  for (int i = 0; i < n; ++i) {
    auto r = done[i].get_future().get();
    CAF_REQUIRE(r);
    if (r->acquired) {
      ++winners;
      winner_lease = leases[i];
    }
    epochs.insert(r->holder.create_revision);
    holders.insert(r->holder.lease);
  }
  CAF_CHECK_EQUAL(winners, 1);
  CAF_CHECK_EQUAL(epochs.size(), 1u);
  CAF_REQUIRE_EQUAL(holders.size(), 1u);
  CAF_CHECK_EQUAL(*holders.begin(), winner_lease);
}

CAF_TEST(a txn compares on mod_revision) {
  if (!up())
    return;
  auto& c = client();
  auto rev = c.put("/cas", "v1");
  CAF_REQUIRE(rev);
  using cmp = cluster::etcd_compare;
  auto stale = c.txn({cmp{"/cas", cmp::target::mod_revision, cmp::result::equal, *rev - 1}},
                     {cluster::etcd_op::put("/cas", "lost")}, {cluster::etcd_op::get("/cas")});
  CAF_REQUIRE(stale);
  CAF_CHECK(!stale->succeeded);
  CAF_REQUIRE_EQUAL(stale->ranges.size(), 1u);
  CAF_CHECK_EQUAL(stale->ranges[0].kvs.at(0).value, "v1");
  auto fresh = c.txn({cmp{"/cas", cmp::target::mod_revision, cmp::result::equal, *rev}},
                     {cluster::etcd_op::put("/cas", "v2")}, {});
  CAF_REQUIRE(fresh);
  CAF_CHECK(fresh->succeeded);
  CAF_CHECK_EQUAL(c.range("/cas")->kvs.at(0).value, "v2");
}

CAF_TEST(etcd errors are clear caf errors with the gRPC code) {
  if (!up())
    return;
  auto& c = client();
  auto r = c.revoke(12345);
  CAF_REQUIRE(!r);
  CAF_CHECK_EQUAL(code_of(r.error()), ec::cluster_unavailable);
  CAF_CHECK_EQUAL(etcd_code_of(r.error()), 5);
  auto msg = detail_of(r.error());
  CAF_CHECK(msg.find("requested lease not found") != std::string::npos);
  CAF_CHECK(msg.find("/v3/lease/revoke") != std::string::npos);
  cluster::etcd_range_options future;
  future.revision = 1'000'000;
  auto f = c.range("/x", {}, future);
  CAF_REQUIRE(!f);
  CAF_CHECK_EQUAL(etcd_code_of(f.error()), 11);
  auto p = c.put("/x", "y", 777);
  CAF_REQUIRE(!p);
  CAF_CHECK_EQUAL(etcd_code_of(p.error()), 5);
}

CAF_TEST(unreachable endpoints are skipped and named when all fail) {
  if (!up())
    return;
  auto dead = test::unused_port();
  auto dead_url = "http://127.0.0.1:" + std::to_string(dead);
  etcd_client failover{http(), {{dead_url, etcd().endpoint()}, 500ms}};
  auto ok = failover.put("/fo", "1");
  CAF_CHECK(ok);
  etcd_client none{http(), {{dead_url}, 500ms}};
  auto err = none.range("/fo");
  CAF_REQUIRE(!err);
  CAF_CHECK_EQUAL(code_of(err.error()), ec::cluster_unavailable);
  CAF_CHECK_EQUAL(etcd_code_of(err.error()), -1);
  auto msg = detail_of(err.error());
  CAF_CHECK(msg.find("etcd unreachable") != std::string::npos);
  CAF_CHECK(msg.find(dead_url) != std::string::npos);
  etcd_client empty{http(), {{}, 500ms}};
  CAF_CHECK(!empty.range("/fo"));
  // A member without a leader answers 503: the next endpoint gets the request,
  // and the one that answered is asked first from then on.
  std::atomic<int> leaderless_hits{0};
  test::test_server leaderless{[&](const test::seen_request&) {
    ++leaderless_hits;
    test::reply rep;
    rep.status = 503;
    rep.body = R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})";
    return rep;
  }};
  etcd_client past_503{http(), {{leaderless.base_url(), etcd().endpoint()}, 500ms}};
  auto first = past_503.range("/fo");
  CAF_REQUIRE(first);
  CAF_CHECK_EQUAL(first->kvs.size(), 1u);
  CAF_CHECK_EQUAL(leaderless_hits.load(), 1);
  CAF_CHECK(past_503.range("/fo"));
  CAF_CHECK_EQUAL(leaderless_hits.load(), 1);
  // Only leaderless members: the error names etcd's reason for each.
  etcd_client only_503{http(), {{leaderless.base_url()}, 500ms}};
  auto refused = only_503.range("/fo");
  CAF_REQUIRE(!refused);
  CAF_CHECK(detail_of(refused.error()).find("etcdserver: no leader") != std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()

// -- without etcd ------------------------------------------------------------------

CAF_TEST(malformed replies are errors and not exceptions) {
  std::atomic<int> which{0};
  const char* bodies[] = {
    "not json",
    "[1,2]",
    R"({"header":{"revision":"twelve"}})",
    R"({"header":{"revision":"1"},"kvs":[{"key":"!!notbase64"}]})",
    R"({"header":{"revision":"1"},"kvs":"x"})",
  };
  test::test_server srv{[&](const test::seen_request&) {
    test::reply rep;
    rep.body = bodies[which.load()];
    return rep;
  }};
  net::http_client http;
  etcd_client c{http, {{srv.base_url()}, 1000ms}};
  for (int i = 0; i < 5; ++i) {
    which = i;
    auto r = c.range("/k");
    CAF_REQUIRE(!r);
    CAF_CHECK_EQUAL(code_of(r.error()), ec::cluster_unavailable);
    auto msg = detail_of(r.error());
    CAF_MESSAGE("body " << i << ": " << msg);
    CAF_CHECK(msg.find("malformed reply") != std::string::npos);
    CAF_CHECK(msg.find("unreachable") == std::string::npos);
  }
  // An error body without the gateway's shape still yields a clear error.
  test::test_server teapot{[](const test::seen_request&) {
    test::reply rep;
    rep.status = 418;
    rep.body = "<html>";
    return rep;
  }};
  etcd_client t{http, {{teapot.base_url()}, 1000ms}};
  auto r = t.range("/k");
  CAF_REQUIRE(!r);
  CAF_CHECK(detail_of(r.error()).find("HTTP 418") != std::string::npos);
}

CAF_TEST(a blocking call on an http I/O thread fails instead of deadlocking) {
  test::test_server srv{[](const test::seen_request&) {
    test::reply rep;
    rep.body = R"({"header":{"revision":"7"}})";
    return rep;
  }};
  net::http_client http;
  etcd_client c{http, {{srv.base_url()}, 1000ms}};
  // The outer answer and the nested call's outcome, checked on this thread.
  std::promise<std::pair<int64_t, caf::error>> inner;
  c.async_range("/k", {}, {}, [&](caf::expected<cluster::etcd_range> r) {
    auto nested = c.range("/k");
    inner.set_value({r ? r->revision : -1, nested ? caf::error{} : nested.error()});
  });
  auto [outer_rev, err] = inner.get_future().get();
  CAF_CHECK_EQUAL(outer_rev, 7);
  CAF_CHECK_EQUAL(code_of(err), ec::internal_error);
}
