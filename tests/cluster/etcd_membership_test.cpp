#define CAF_SUITE cluster_etcd_membership

#include "caf/test/dsl.hpp"

#include <atomic>
#include <cstdio>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

#include "cluster/etcd_membership.hpp"
#include "cluster/ownership.hpp"
#include "core/log.hpp"
#include "tests/cluster/etcd_env.hpp"
#include "tests/support/process.hpp"

using namespace std::chrono_literals;
using namespace wh;
using cluster::etcd_membership;
using cluster::membership_options;
using steady = std::chrono::steady_clock;

namespace {

membership_options node(std::string id, std::chrono::milliseconds ttl = 1000ms) {
  membership_options o;
  o.node_id = id;
  o.endpoint = "127.0.0.1:71" + std::to_string(id.back() - '0') + "0";
  o.lease_ttl = ttl;
  o.poll_interval = 50ms;
  return o;
}

std::vector<std::string> ids(const std::vector<cluster::etcd_member>& nodes) {
  std::vector<std::string> out;
  for (auto& n : nodes)
    out.push_back(n.node_id);
  return out;
}

long ms_since(steady::time_point t) {
  return static_cast<long>(
    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count());
}

/// Sends this process's stderr (our log) to a file while alive.
struct capture_stderr {
  explicit capture_stderr(const std::string& path) {
    std::fflush(stderr);
    saved = ::dup(2);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~capture_stderr() {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
  }
  int saved = -1;
};

size_t count_lines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

struct fixture : test::etcd_env {};

} // namespace

CAF_TEST_FIXTURE_SCOPE(etcd_membership_tests, fixture)

CAF_TEST(keepalives keep the registration past twice the TTL) {
  if (!up())
    return;
  etcd_membership n1{client(), node("n1")};
  n1.start();
  CAF_REQUIRE(n1.wait_ready(5s));
  auto reg = client().range("/wechat-hub/nodes/n1");
  CAF_REQUIRE(reg && reg->kvs.size() == 1);
  CAF_CHECK_EQUAL(reg->kvs[0].value, "127.0.0.1:7110");
  CAF_CHECK_EQUAL(reg->kvs[0].lease, n1.lease_id());
  auto start = steady::now();
  int samples = 0;
  bool always_alive = true;
  // 2.5 TTLs: without keepalives the key would be gone after one.
  test::eventually(2500ms, [&] {
    ++samples;
    always_alive = always_alive && n1.lease_alive() && !n1.stale();
    return false;
  });
  CAF_CHECK(always_alive);
  CAF_CHECK_GREATER(samples, 20);
  auto still = client().range("/wechat-hub/nodes/n1");
  CAF_REQUIRE(still && still->kvs.size() == 1);
  CAF_CHECK_EQUAL(still->kvs[0].create_revision, reg->kvs[0].create_revision);
  CAF_CHECK_EQUAL(still->kvs[0].lease, reg->kvs[0].lease);
  // The deadline is a TTL ahead of a keepalive sent at most TTL/3 ago.
  auto ahead = std::chrono::duration_cast<std::chrono::milliseconds>(n1.lease_alive_until()
                                                                      - steady::now());
  CAF_MESSAGE("after " << ms_since(start) << " ms the lease is alive for another "
                       << ahead.count() << " ms");
  CAF_CHECK_GREATER(ahead.count(), 0);
  CAF_CHECK_LESS_OR_EQUAL(ahead.count(), 1000);
  // Leaving revokes the lease: the registration goes at once.
  n1.stop();
  auto left = client().range("/wechat-hub/nodes/n1");
  CAF_REQUIRE(left);
  CAF_CHECK(left->kvs.empty());
}

CAF_TEST(a node that stops keeping alive passes its own deadline before etcd drops it) {
  if (!up())
    return;
  etcd_membership observer{client(), node("n2")};
  observer.start();
  CAF_REQUIRE(observer.wait_ready(5s));
  // n1 is "paused" right after registering: its keepalives never go out.
  auto paused_opts = node("n1");
  paused_opts.keepalive_interval = 1h;
  etcd_membership paused{client(), paused_opts};
  paused.start();
  CAF_REQUIRE(paused.wait_ready(5s));
  CAF_REQUIRE(test::eventually(2s, [&] { return observer.live_nodes().size() == 2; }));
  auto rev_with_both = observer.revision();
  auto t0 = steady::now();
  steady::time_point local_passed{};
  steady::time_point etcd_dropped{};
  CAF_REQUIRE(test::eventually(5s, [&] {
    auto now = steady::now();
    if (local_passed == steady::time_point{} && !paused.lease_alive())
      local_passed = now;
    auto kv = client().range("/wechat-hub/nodes/n1");
    if (kv && kv->kvs.empty()) {
      etcd_dropped = now;
      return true;
    }
    return false;
  }));
  CAF_REQUIRE(local_passed != steady::time_point{});
  auto lead = std::chrono::duration_cast<std::chrono::milliseconds>(etcd_dropped - local_passed);
  CAF_MESSAGE("local deadline passed after " << (local_passed - t0).count() / 1000000
                                             << " ms, etcd dropped the key " << lead.count()
                                             << " ms later");
  CAF_CHECK_GREATER_OR_EQUAL(lead.count(), 0);
  CAF_CHECK(paused.lease_alive_until() <= local_passed);
  // The paused node's own view is stale: it must not act as an owner.
  CAF_CHECK(paused.stale());
  // The observer sees n1 leave, at a newer revision.
  CAF_REQUIRE(test::eventually(2s, [&] { return observer.live_nodes().size() == 1; }));
  CAF_CHECK_EQUAL(ids(observer.live_nodes()), std::vector<std::string>{"n2"});
  CAF_CHECK_GREATER(observer.revision(), rev_with_both);
  CAF_CHECK_EQUAL(observer.owner_of("wxanything"), "n2");
}

CAF_TEST(two nodes agree on the live set its revision and every key owner) {
  if (!up())
    return;
  std::mutex mtx;
  std::vector<cluster::membership_view> seen_by_n1;
  etcd_membership n1{client(), node("n1")};
  n1.on_change([&](const cluster::membership_view& v) {
    std::lock_guard guard{mtx};
    seen_by_n1.push_back(v);
  });
  etcd_membership n2{client(), node("n2")};
  n1.start();
  CAF_REQUIRE(n1.wait_ready(5s));
  auto rev_alone = n1.revision();
  n2.start();
  CAF_REQUIRE(n2.wait_ready(5s));
  CAF_REQUIRE(test::eventually(2s, [&] {
    return n1.live_nodes().size() == 2 && n2.live_nodes().size() == 2
           && n1.revision() == n2.revision();
  }));
  // Unrelated writes move etcd's revision but not the membership's.
  CAF_REQUIRE(client().put("/unrelated", "x"));
  auto later = client().range("/unrelated");
  CAF_REQUIRE(later);
  auto rev = n1.revision();
  CAF_CHECK_GREATER(rev, rev_alone);
  CAF_CHECK_LESS(rev, later->revision);
  CAF_CHECK_EQUAL(ids(n1.live_nodes()), (std::vector<std::string>{"n1", "n2"}));
  CAF_CHECK(n1.live_nodes() == n2.live_nodes());
  CAF_CHECK_EQUAL(n2.live_nodes()[1].endpoint, "127.0.0.1:7120");
  // A third party reading etcd at any time finds the same revision for the set.
  auto record = client().range("/wechat-hub/membership");
  CAF_REQUIRE(record && record->kvs.size() == 1);
  CAF_CHECK_EQUAL(record->kvs[0].mod_revision, rev);
  // owner_of is the rendezvous owner over the live ids, the same on both.
  cluster::ownership reference{{"n1", "n2"}};
  std::map<std::string, int> per_node;
  for (int i = 0; i < 100; ++i) {
    auto key = "wxcomp/wxa" + std::to_string(i);
    auto o1 = n1.owner_of(key);
    auto o2 = n2.owner_of(key);
    CAF_CHECK_EQUAL(o1, o2);
    CAF_CHECK_EQUAL(o1, reference.owner(key));
    per_node[o1]++;
  }
  CAF_CHECK_EQUAL(per_node.size(), 2u);
  {
    std::lock_guard guard{mtx};
    CAF_REQUIRE(!seen_by_n1.empty());
    CAF_CHECK_EQUAL(seen_by_n1.back().revision, rev);
    CAF_CHECK_EQUAL(seen_by_n1.back().nodes.size(), 2u);
    CAF_CHECK(!seen_by_n1.back().stale);
  }
  // n2 leaves: n1's view shrinks at a newer revision and n1 owns every key.
  n2.stop();
  CAF_REQUIRE(test::eventually(2s, [&] { return n1.live_nodes().size() == 1; }));
  CAF_CHECK_GREATER(n1.revision(), later->revision);
  for (int i = 0; i < 100; ++i)
    CAF_CHECK_EQUAL(n1.owner_of("wxcomp/wxa" + std::to_string(i)), "n1");
  // The change callback runs after the view is published: wait for it.
  CAF_CHECK(test::eventually(2s, [&] {
    std::lock_guard guard{mtx};
    return !seen_by_n1.empty() && seen_by_n1.back().nodes.size() == 1u;
  }));
}

CAF_TEST(losing etcd makes the view stale after the deadline and it recovers) {
  if (!up())
    return;
  log::set_level(log::level::info);
  etcd_membership n1{client(), node("n1")};
  etcd_membership n2{client(), node("n2")};
  n1.start();
  n2.start();
  CAF_REQUIRE(n1.wait_ready(5s) && n2.wait_ready(5s));
  CAF_REQUIRE(test::eventually(2s, [&] { return n1.live_nodes().size() == 2; }));
  auto before = n1.view();
  CAF_CHECK(!before.stale);
  std::string log_text;
  const std::string recovered_line = std::string{"node n1: membership view is current"} + " again";
  {
    capture_stderr capture{dir() / "outage.log"};
    etcd().stop();
    auto down = steady::now();
    CAF_REQUIRE(test::eventually(3s, [&] { return n1.stale(); }));
    auto stale_after = ms_since(down);
    CAF_MESSAGE("stale " << stale_after << " ms after etcd went down");
    // Not while the last keepalive (<= TTL/3 old) and read (<= 50 ms old)
    // still vouch for the lease, and at the latest one TTL after them.
    CAF_CHECK_GREATER_OR_EQUAL(stale_after, 300);
    CAF_CHECK_LESS_OR_EQUAL(stale_after, 1100);
    // It keeps the last known membership.
    auto during = n1.view();
    CAF_CHECK(during.stale);
    CAF_CHECK(during.nodes == before.nodes);
    CAF_CHECK_EQUAL(during.revision, before.revision);
    CAF_CHECK_EQUAL(n1.owner_of("wx1"), cluster::ownership({"n1", "n2"}).owner("wx1"));
    CAF_CHECK(!n1.lease_alive());
    // Stay down for a while: several failed attempts, each one unlogged.
    test::eventually(1500ms, [] { return false; });
    CAF_REQUIRE(etcd().start());
    CAF_REQUIRE(test::eventually(8s, [&] {
      auto v = n1.view();
      return !v.stale && v.nodes.size() == 2 && n1.lease_alive() && !n2.stale();
    }));
    CAF_MESSAGE("recovered " << ms_since(down) << " ms after etcd went down");
    // The recovery is logged right after the view changes: wait for the line.
    // (Named, not spelled out: a check's text lands in this captured log too.)
    auto logged_recovery = [&] {
      return count_lines(test::read_file(dir() / "outage.log"), recovered_line) >= 1;
    };
    CAF_CHECK(test::eventually(2s, logged_recovery));
  }
  log_text = test::read_file(dir() / "outage.log");
  CAF_MESSAGE("log during the outage:\n" << log_text);
  // Once per state change and node: failing, stale, recovered (not per attempt:
  // about 20 keepalives and 60 reads failed meanwhile).
  CAF_CHECK_LESS_OR_EQUAL(count_lines(log_text, "node n1: lease keepalive failed"), 1u);
  CAF_CHECK_LESS_OR_EQUAL(count_lines(log_text, "node n1: cannot read the live nodes"), 1u);
  CAF_CHECK_EQUAL(count_lines(log_text, "node n1: membership view is stale"), 1u);
  CAF_CHECK_EQUAL(count_lines(log_text, "node n1: membership view is current again"), 1u);
  CAF_CHECK_LESS_OR_EQUAL(count_lines(log_text, "[etcd]"), 14u);
  auto reg = client().range("/wechat-hub/nodes/n1");
  CAF_REQUIRE(reg && reg->kvs.size() == 1);
  CAF_CHECK_EQUAL(reg->kvs[0].lease, n1.lease_id());
}

CAF_TEST(a node whose lease etcd expired registers anew under a new lease) {
  if (!up())
    return;
  etcd_membership n1{client(), node("n1")};
  n1.start();
  CAF_REQUIRE(n1.wait_ready(5s));
  auto old_lease = n1.lease_id();
  auto old_rev = n1.revision();
  auto old_reg = client().range("/wechat-hub/nodes/n1");
  CAF_REQUIRE(old_reg && old_reg->kvs.size() == 1);
  // etcd forgets the lease behind the node's back (as after a long pause).
  CAF_REQUIRE(client().revoke(old_lease));
  // The next keepalive learns it: the node cuts its deadline, takes a new
  // lease and registers again, which is a new membership revision.
  CAF_REQUIRE(test::eventually(3s, [&] {
    auto id = n1.lease_id();
    auto live = n1.live_nodes();
    return id != 0 && id != old_lease && n1.lease_alive() && n1.revision() > old_rev
           && live.size() == 1 && live[0].lease == id;
  }));
  auto reg = client().range("/wechat-hub/nodes/n1");
  CAF_REQUIRE(reg && reg->kvs.size() == 1);
  CAF_CHECK_EQUAL(reg->kvs[0].lease, n1.lease_id());
  CAF_CHECK_GREATER(reg->kvs[0].create_revision, old_reg->kvs[0].create_revision);
  CAF_CHECK_EQUAL(ids(n1.live_nodes()), std::vector<std::string>{"n1"});
}

CAF_TEST_FIXTURE_SCOPE_END()
