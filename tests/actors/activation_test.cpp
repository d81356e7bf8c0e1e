#define CAF_SUITE actors_activation

// Virtual activation, passivation and the durable refresh schedule, driven by
// the deterministic test coordinator and a manual clock, with a real RocksDB
// and a scripted WeChat that counts every call.

#include "caf/test/dsl.hpp"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/key_services.hpp"
#include "actors/registry.hpp"
#include "actors/store_actor.hpp"
#include "core/error.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::actors;

namespace {

struct pending_call {
  upstream_call call;
  caf::typed_response_promise<upstream_reply> rp;
};

using answer = std::shared_ptr<std::optional<caf::expected<credential>>>;

constexpr int64_t t0 = 1'700'000'000;

struct fixture : test_coordinator_fixture<> {
  test::temp_dir dir;
  std::shared_ptr<persistence::store> db;
  manual_clock wall{t0};
  std::deque<pending_call> calls;
  /// Keys of every call that reached "WeChat", in order.
  std::vector<std::string> called;
  caf::actor upstream;
  caf::actor store;
  std::unique_ptr<registry> reg;
  std::unique_ptr<key_services> svc;

  fixture() {
    auto opened = persistence::open_rocksdb(dir.path());
    if (!opened)
      CAF_FAIL("cannot open store");
    db = std::move(*opened);
    upstream = sys.spawn([this](caf::event_based_actor* self) -> caf::behavior {
      return {
        [this, self](call_atom, upstream_call& c) -> caf::result<upstream_reply> {
          auto rp = self->make_response_promise<upstream_reply>();
          called.push_back(c.key);
          calls.push_back(pending_call{std::move(c), rp});
          return rp;
        },
        [this](done_atom, upstream_reply& rep) {
          auto c = std::move(calls.front());
          calls.pop_front();
          c.rp.deliver(std::move(rep));
        },
      };
    });
    store = spawn_store_actor(sys, db, false);
    start_registry();
  }

  ~fixture() override {
    stop_registry();
    caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    sched.run();
  }

  registry::options opts() {
    registry::options o;
    o.refresh_margin_s = 180;
    o.refresh_jitter_s = 0; // due = expiry - 180 exactly
    o.idle_timeout = std::chrono::seconds(60);
    o.router.detached_io = false;
    o.router.rate = rate;
    o.router.max_active = max_active;
    return o;
  }

  uint32_t rate = 500;
  size_t max_active = 20000;

  void start_registry() {
    reg = std::make_unique<registry>(sys, upstream, store, db, wall, nullptr, opts());

    svc = std::make_unique<key_services>(sys, *reg);
    sched.run();
  }

  /// A restart: the registry and every actor go, the database stays.
  void stop_registry() {
    if (!reg)
      return;
    reg->shutdown();
    sched.run();
    svc.reset();
    reg.reset();
    sched.run();
  }

  void add_app(const std::string& appid) {
    CAF_REQUIRE(!reg->add_app(app_config{appid, "secret-" + appid, token_api::stable}));
    sched.run();
  }

  /// Stores a token for `appid` as an earlier run of the hub would have.
  void store_token(const std::string& appid, const std::string& value, int64_t expires_at,
                   uint64_t version = 1) {
    CAF_REQUIRE(!db->put(persistence::keys::app_token(appid),
                         persistence::encode(credential{value, wall.now(), expires_at, version})));
  }

  answer ask_token(const std::string& appid) {
    auto res = std::make_shared<std::optional<caf::expected<credential>>>();
    auto e = reg->find(appid);
    CAF_REQUIRE(e != nullptr);
    svc->keys.ask_token(*e, [res](caf::expected<credential> x) { *res = std::move(x); });
    return res;
  }

  void reply_token(const std::string& value, int64_t expires_in = 7200) {
    CAF_REQUIRE(!calls.empty());
    caf::anon_send(upstream, done_atom::value,
                   upstream_reply{200, R"({"access_token":")" + value + R"(","expires_in":)"
                                         + std::to_string(expires_in) + "}"});
    sched.run();
  }

  /// Moves wall time and CAF's timer clock together, one second at a time
  /// (the router checks its schedule once a second).
  void advance(int64_t secs) {
    for (int64_t i = 0; i < secs; ++i) {
      wall.advance(1);
      sched.clock().advance_time(std::chrono::seconds(1));
      sched.run();
    }
  }

  /// Running app actors (a copy: the check macros keep references).
  size_t running_apps() {
    auto n = reg->active_actors();
    return n[0];
  }

  bool active(const std::string& appid) {
    auto e = reg->find(appid);
    return e && static_cast<bool>(e->actor());
  }

  std::vector<std::string> schedule() {
    std::vector<std::string> out;
    db->scan(persistence::keys::schedule_prefix, [&](std::string_view k, std::string_view) {
      out.emplace_back(k);
      return true;
    });
    return out;
  }

  static std::string value_of(const answer& a) {
    if (!a->has_value())
      return "<pending>";
    if (!**a)
      return "<error:" + std::string{to_string(code_of((**a).error()))} + ">";
    return (**a)->value;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(activation_tests, fixture)

CAF_TEST(a key starts on demand and stops after the idle time) {
  add_app("wxapp1");
  reg->finish_startup();
  CAF_CHECK(!active("wxapp1"));
  CAF_CHECK_EQUAL(running_apps(), 0u);
  auto a = ask_token("wxapp1");
  sched.run();
  CAF_CHECK(active("wxapp1"));
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T1");
  CAF_CHECK_EQUAL(value_of(a), "T1");
  caf::weak_actor_ptr first = caf::actor_cast<caf::weak_actor_ptr>(reg->find("wxapp1")->actor());
  // Idle for less than the idle time: still running.
  advance(59);
  CAF_CHECK(active("wxapp1"));
  advance(3);
  CAF_CHECK(!active("wxapp1"));
  // Freed once stopped: no pending timer (its refresh is 2 h away, its idle
  // timeout) keeps the stopped actor in memory.
  CAF_CHECK(first.lock() == nullptr);
  // Nor does a weak reference (its pending timer step through the router
  // carried its address): CAF frees the actor's ~3 KiB block only once the
  // last weak reference goes, and `first` must be the only one left.
  CAF_CHECK_EQUAL(first.get()->weak_refs.load(), 1u);
  CAF_CHECK_EQUAL(running_apps(), 0u);
  // What it published stays served; the refresh is in the durable schedule.
  auto e = reg->find("wxapp1");
  CAF_REQUIRE(e->token.load() != nullptr);
  CAF_CHECK_EQUAL(e->token.load()->value, "T1");
  advance(1); // the router's next check flushes the schedule
  auto due = t0 + 7200 - 180;
  CAF_CHECK_EQUAL(schedule(), std::vector<std::string>{persistence::keys::schedule(due, "wxapp1")});
  // A read of the cached token starts it again without calling WeChat.
  auto b = ask_token("wxapp1");
  sched.run();
  CAF_CHECK_EQUAL(value_of(b), "T1");
  CAF_CHECK_EQUAL(called.size(), 1u);
}

CAF_TEST(requests for a starting key are parked and share one actor) {
  store_token("wxapp1", "S1", t0 + 3600);
  add_app("wxapp1");
  CAF_CHECK(!active("wxapp1"));
  std::vector<answer> answers;
  for (int i = 0; i < 50; ++i)
    answers.push_back(ask_token("wxapp1"));
  sched.run();
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "S1");
  CAF_CHECK_EQUAL(running_apps(), 1u);
  CAF_CHECK(called.empty());
}

CAF_TEST(a request that arrives while the key stops is answered) {
  store_token("wxapp1", "S1", t0 + 3600);
  add_app("wxapp1");
  auto a = ask_token("wxapp1");
  sched.run();
  CAF_CHECK_EQUAL(value_of(a), "S1");
  auto first = reg->find("wxapp1")->actor();
  CAF_REQUIRE(first);
  // Fire the idle timeout, then ask before the router finished stopping it.
  wall.advance(61);
  sched.clock().advance_time(std::chrono::seconds(61));
  auto b = ask_token("wxapp1");
  sched.run();
  CAF_CHECK_EQUAL(value_of(b), "S1");
  CAF_CHECK(called.empty());
  // The router either stopped it and started it again for the request, or
  // the actor refused to stop because the request reached it first.
  CAF_CHECK(active("wxapp1"));
  CAF_CHECK_EQUAL(running_apps(), 1u);
}

CAF_TEST(the schedule wakes keys in due order and survives a restart) {
  store_token("wxapp1", "A1", t0 + 3000);
  store_token("wxapp2", "B1", t0 + 2000);
  store_token("wxapp3", "C1", t0 + 4000);
  // The first start writes every stored key's due time.
  for (auto id : {"wxapp1", "wxapp2", "wxapp3"})
    add_app(id);
  reg->finish_startup();
  CAF_CHECK_EQUAL(schedule().size(), 3u);
  CAF_CHECK_EQUAL(running_apps(), 0u);
  stop_registry();
  // Restart: no actor runs, nothing is fetched until something is due.
  start_registry();
  for (auto id : {"wxapp1", "wxapp2", "wxapp3"})
    add_app(id);
  reg->finish_startup();
  advance(2000 - 180 - 2);
  CAF_CHECK(called.empty());
  CAF_CHECK_EQUAL(running_apps(), 0u);
  advance(4); // wxapp2 due at t0+1820; its actor refreshes on its timer
  CAF_REQUIRE_EQUAL(called, std::vector<std::string>{"wxapp2"});
  reply_token("B2");
  advance(3000 - 2000);
  CAF_REQUIRE_EQUAL(called, (std::vector<std::string>{"wxapp2", "wxapp1"}));
  reply_token("A2");
  advance(1000);
  CAF_REQUIRE_EQUAL(called, (std::vector<std::string>{"wxapp2", "wxapp1", "wxapp3"}));
  reply_token("C2");
  // Each refreshed once; idle again afterwards, with the next due times stored.
  advance(70);
  CAF_CHECK_EQUAL(called.size(), 3u);
  CAF_CHECK_EQUAL(running_apps(), 0u);
  auto sched_now = schedule();
  CAF_REQUIRE_EQUAL(sched_now.size(), 3u);
  int64_t due = 0;
  std::string key;
  CAF_REQUIRE(persistence::keys::parse_schedule(sched_now.front(), due, key));
  CAF_CHECK_EQUAL(key, "wxapp2");
  // Woken at its due time t0+1820, refreshed on the actor's timer a second later.
  CAF_CHECK_EQUAL(due, t0 + 1821 + 7200 - 180);
}

CAF_TEST(overdue keys after a long downtime refresh once each at the bounded rate) {
  rate = 2;
  stop_registry();
  start_registry();
  for (int i = 1; i <= 5; ++i)
    store_token("wxapp" + std::to_string(i), "X" + std::to_string(i), t0 + 1000 + i);
  for (int i = 1; i <= 5; ++i)
    add_app("wxapp" + std::to_string(i));
  reg->finish_startup();
  stop_registry();
  // Down for three hours: every token expired.
  wall.advance(3 * 3600);
  sched.clock().advance_time(std::chrono::hours(3));
  start_registry();
  for (int i = 1; i <= 5; ++i)
    add_app("wxapp" + std::to_string(i));
  reg->finish_startup();
  sched.run();
  // The first check woke the 2 earliest keys, and they fetch at once (the
  // order within one check is not defined; across checks it is due order).
  auto sorted = [this](size_t from, size_t to) {
    std::vector<std::string> xs(called.begin() + static_cast<ptrdiff_t>(from),
                                called.begin() + static_cast<ptrdiff_t>(std::min(to, called.size())));
    std::sort(xs.begin(), xs.end());
    return xs;
  };
  CAF_CHECK_EQUAL(sorted(0, 2), (std::vector<std::string>{"wxapp1", "wxapp2"}));
  CAF_CHECK_EQUAL(called.size(), 2u);
  while (!calls.empty())
    reply_token("N");
  advance(1);
  CAF_CHECK_EQUAL(called.size(), 4u);
  while (!calls.empty())
    reply_token("N");
  advance(1);
  CAF_CHECK_EQUAL(called.size(), 5u);
  while (!calls.empty())
    reply_token("N");
  // Exactly once each, and a client read is served without another call.
  advance(120);
  CAF_CHECK_EQUAL(called.size(), 5u);
  CAF_CHECK_EQUAL(sorted(2, 4), (std::vector<std::string>{"wxapp3", "wxapp4"}));
  CAF_CHECK_EQUAL(sorted(4, 5), (std::vector<std::string>{"wxapp5"}));
  auto a = ask_token("wxapp3");
  sched.run();
  CAF_CHECK_EQUAL(value_of(a), "N");
  CAF_CHECK_EQUAL(called.size(), 5u);
}

CAF_TEST(running actors stay near max_active) {
  max_active = 100;
  stop_registry();
  start_registry();
  for (int i = 0; i < 150; ++i) {
    auto id = "wxapp" + std::to_string(1000 + i);
    store_token(id, "V" + std::to_string(i), t0 + 7000);
    add_app(id);
  }
  for (int i = 0; i < 150; ++i) {
    auto a = ask_token("wxapp" + std::to_string(1000 + i));
    sched.run();
    CAF_CHECK_EQUAL(value_of(a), "V" + std::to_string(i));
  }
  CAF_CHECK_LESS_OR_EQUAL(running_apps(), 100u);
  CAF_CHECK(called.empty());
  // The oldest went first; the newest still runs.
  CAF_CHECK(!active("wxapp1000"));
  CAF_CHECK(active("wxapp1149"));
}

CAF_TEST_FIXTURE_SCOPE_END()
