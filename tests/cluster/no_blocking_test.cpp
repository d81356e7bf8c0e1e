#define CAF_SUITE cluster_no_blocking

// RocksDB is never touched on a CAF scheduler thread that serves other
// actors: the node actor's reads and writes (starting a key's actor,
// reading a state to replicate, adopting a peer's state) and
// runtime_definitions::put_component's reload run on detached threads.
//
// A real threaded actor system and a real RocksDB; the store is wrapped to
// record the name of every thread that calls it. CAF 0.17.6 names its
// scheduler workers "caf.multiplexer" and detached actors' threads "caf.actor".

#include "caf/test/unit_test.hpp"

#include <pthread.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "caf/all.hpp"

#include "actors/key_services.hpp"
#include "actors/registry.hpp"
#include "actors/store_actor.hpp"
#include "cluster/node.hpp"
#include "cluster/state_io.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace std::chrono_literals;

namespace {

/// The real store, recording calls made on a scheduler worker.
class thread_watch final : public persistence::store {
public:
  explicit thread_watch(std::shared_ptr<persistence::store> db) : db_(std::move(db)) {}

  caf::expected<std::optional<std::string>> get(std::string_view key) override {
    note("get", key);
    return db_->get(key);
  }

  caf::error write(const std::vector<persistence::batch_entry>& batch) override {
    note("write", batch.empty() ? std::string_view{} : std::string_view{batch.front().first});
    return db_->write(batch);
  }

  caf::error scan(std::string_view prefix,
                  const std::function<bool(std::string_view, std::string_view)>& fn) override {
    note("scan", prefix);
    return db_->scan(prefix, fn);
  }

  /// Calls made on a scheduler worker ("op key").
  std::vector<std::string> on_workers() {
    std::lock_guard<std::mutex> guard{mtx_};
    return on_workers_;
  }

  /// Calls made on any thread.
  size_t calls() {
    std::lock_guard<std::mutex> guard{mtx_};
    return calls_;
  }

private:
  void note(const char* op, std::string_view what) {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    std::lock_guard<std::mutex> guard{mtx_};
    ++calls_;
    if (std::string_view{name} == "caf.multiplexer")
      on_workers_.push_back(std::string{op} + " " + std::string{what});
  }

  std::shared_ptr<persistence::store> db_;
  std::mutex mtx_;
  std::vector<std::string> on_workers_;
  size_t calls_ = 0;
};

struct sys_config : caf::actor_system_config {
  sys_config() {
    cluster::add_message_types(*this);
    set("scheduler.max-threads", 2);
  }
};

struct fixture {
  wh::test::temp_dir dir;
  std::shared_ptr<thread_watch> db;
  sys_config cfg;
  caf::actor_system sys{cfg};
  manual_clock wall;
  caf::actor upstream;
  caf::actor store;
  std::unique_ptr<actors::registry> reg;
  std::unique_ptr<actors::key_services> svc;
  std::unique_ptr<cluster::node> node;

  fixture() {
    auto opened = persistence::open_rocksdb(dir.path());
    CAF_REQUIRE(opened);
    db = std::make_shared<thread_watch>(std::move(*opened));
    upstream = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
      return {
        [](call_atom, const actors::upstream_call&) -> actors::upstream_reply {
          return {200, R"({"access_token":"T","expires_in":7200,"component_access_token":"C"})"};
        },
      };
    });
    store = actors::spawn_store_actor(sys, db, /*detached=*/true);
    reg = std::make_unique<actors::registry>(sys, upstream, store, db, wall, nullptr,
                                             actors::registry::options{});

    svc = std::make_unique<actors::key_services>(sys, *reg);
    cluster_config ccfg;
    ccfg.node_id = "n1";
    ccfg.replicas = 2; // owners read every persisted state to replicate it
    cluster::node_options opts{ccfg};
    opts.clock = &wall;
    node = std::make_unique<cluster::node>(
      sys, *reg, store, nullptr, opts, [](const std::string&, uint16_t) -> caf::expected<caf::actor> {
        return caf::make_error(caf::sec::cannot_connect_to_node);
      });
    auto n = node.get();
    reg->enable_cluster({node->actor(), [n](std::string_view k) { return n->owner_node(k); },
                        [n](std::string_view k) { return n->owner_of(k); }});
    for (auto a : {"wxa01", "wxa02", "wxa03"})
      CAF_REQUIRE(!reg->add_app(app_config{a, std::string{"secret-"} + a, token_api::stable}));
    CAF_REQUIRE(!reg->add_component(component_config{"wxc01", "csecret", "tok",
                                                     std::string(43, 'a')}));
  }

  ~fixture() {
    // The node actor and its storage worker use the registry: let them end
    // first (the version request returns once the worker's queue is done).
    ask<std::vector<uint64_t>>(sync_atom::value, cluster::version_atom::value, std::string{"n2"},
                               std::vector<std::string>{});
    caf::scoped_actor self{sys};
    auto n = node->actor();
    node->stop();
    self->wait_for(n);
    reg->shutdown();
    caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  }

  /// Starts the node and waits (at most 10 s) until it publishes a view that
  /// routes keys to itself: the registry reads that view directly, without
  /// a message to the node actor that would order it after the start.
  void start_node() {
    node->start();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!node->owner_node("wxa01") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    CAF_REQUIRE(node->owner_node("wxa01"));
  }

  /// A request to `dst`, answered or failed within 10 s.
  template <class T, class Handle, class... Ts>
  caf::expected<T> ask_of(const Handle& dst, Ts... xs) {
    caf::scoped_actor self{sys};
    caf::expected<T> out = caf::make_error(caf::sec::request_timeout);
    self->request(dst, 10s, xs...)
      .receive([&](T& x) { out = std::move(x); }, [&](caf::error& err) { out = std::move(err); });
    return out;
  }

  /// A request to the node actor.
  template <class T, class... Ts>
  caf::expected<T> ask(Ts... xs) {
    return ask_of<T>(node->actor(), xs...);
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(cluster_no_blocking, fixture)

CAF_TEST(the node actor reads and writes RocksDB on its storage worker only) {
  auto before = db->calls();
  start_node();
  // Starting the key's actor reads its state; its token is persisted and
  // read again for the replicas.
  auto x = ask_of<actors::credential>(reg->router(), get_atom::value, token_atom::value, std::string{"wxa01"});
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->value, "T");
  CAF_CHECK_EQUAL(db->on_workers(), std::vector<std::string>{});
  // A peer's state of an authorizer this node stores but does not run yet.
  actors::key_state s;
  s.key = "wxc01/wxauth1";
  s.kind = static_cast<uint8_t>(actors::key_kind::authorizer);
  s.seq = 7;
  s.fields = {"refresh_token",
              persistence::encode(actors::credential{"R", wall.now(), wall.now() + 86400, 1}), "seq",
              "7"};
  caf::anon_send(node->actor(), repl_atom::value, s);
  // The versions a peer asks for before a handover (answered after the adopt).
  auto seqs = ask<std::vector<uint64_t>>(sync_atom::value, cluster::version_atom::value,
                                         std::string{"n2"},
                                         std::vector<std::string>{"wxc01/wxauth1", "wxa02"});
  CAF_REQUIRE(seqs);
  CAF_REQUIRE_EQUAL(seqs->size(), 2u);
  CAF_CHECK_EQUAL((*seqs)[0], 7u);
  CAF_CHECK_EQUAL((*seqs)[1], 0u); // running here: its owner wants every peer's state
  CAF_CHECK_GREATER(db->calls(), before);
  CAF_CHECK_EQUAL(db->on_workers(), std::vector<std::string>{});
}

CAF_TEST(put_component reloads the component off the scheduler threads) {
  start_node();
  auto before = db->calls();
  std::promise<caf::error> done;
  auto fut = done.get_future();
  svc->defs.put_component(component_config{"wxc02", "csecret2", "tok2", std::string(43, 'b')},
                     [&done](caf::error err) { done.set_value(std::move(err)); });
  CAF_REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  auto err = fut.get();
  CAF_CHECK(!err);
  CAF_CHECK(reg->find("wxc02") != nullptr);
  // The node starts the new component (after its ready message; the answer
  // comes from the storage worker once the activation before it is done).
  auto seqs = ask<std::vector<uint64_t>>(sync_atom::value, cluster::version_atom::value,
                                         std::string{"n2"}, std::vector<std::string>{"wxc02"});
  CAF_CHECK(seqs);
  CAF_CHECK(reg->find("wxc02")->actor() != nullptr);
  CAF_CHECK_GREATER(db->calls(), before);
  CAF_CHECK_EQUAL(db->on_workers(), std::vector<std::string>{});
}

CAF_TEST(import_authorizers activates the imported keys off the scheduler threads) {
  start_node();
  auto before = db->calls();
  std::promise<caf::error> done;
  auto fut = done.get_future();
  // In a cluster the owner's node actor runs import_local; the imported key
  // starts from its stored state (the refresh token just written).
  svc->auths.import_authorizers("wxc01", {{"wxauth9", "R9"}},
                          [&done](caf::error err) { done.set_value(std::move(err)); });
  CAF_REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  auto err = fut.get();
  CAF_CHECK(!err);
  auto e = reg->find("wxc01/wxauth9");
  CAF_REQUIRE(e != nullptr);
  CAF_CHECK(e->actor() != nullptr);
  CAF_CHECK_GREATER(db->calls(), before);
  CAF_MESSAGE("store calls on a scheduler worker: " << caf::deep_to_string(db->on_workers()));
  CAF_CHECK_EQUAL(db->on_workers(), std::vector<std::string>{});
}

CAF_TEST(put_app starts the app off the scheduler threads) {
  start_node();
  auto before = db->calls();
  std::promise<caf::error> done;
  auto fut = done.get_future();
  svc->defs.put_app(app_config{"wxa09", "secret-9", token_api::stable},
               [&done](caf::error err) { done.set_value(std::move(err)); });
  CAF_REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  auto err = fut.get();
  CAF_CHECK(!err);
  auto e = reg->find("wxa09");
  CAF_REQUIRE(e != nullptr);
  CAF_CHECK(e->runtime);
  CAF_CHECK_GREATER(db->calls(), before);
  CAF_MESSAGE("store calls on a scheduler worker: " << caf::deep_to_string(db->on_workers()));
  CAF_CHECK_EQUAL(db->on_workers(), std::vector<std::string>{});
}

CAF_TEST(a relayed remove scans RocksDB off the scheduler threads) {
  // A runtime app with stored state, deleted on a peer: the node actor
  // applies the relayed DELETE on its own (scheduler) thread.
  CAF_REQUIRE(!reg->add_app(app_config{"wxa08", "secret-8", token_api::stable}, true));
  CAF_REQUIRE(!db->write({{persistence::keys::app_prefix("wxa08") + "x", "1"}}));
  start_node();
  auto before = db->calls();
  std::promise<caf::error> done;
  auto fut = done.get_future();
  node->on_relayed_admin([this, &done](std::string, std::string, std::string, std::string) {
    svc->defs.remove("wxa08", [&done](caf::error err) { done.set_value(std::move(err)); });
  });
  caf::anon_send(node->actor(), put_atom::value, std::string{"DELETE"},
                 std::string{"/admin/apps/wxa08"}, std::string{}, std::string{}, true);
  CAF_REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  auto err = fut.get();
  CAF_CHECK(!err);
  CAF_CHECK(reg->find("wxa08") == nullptr);
  auto left = db->get(persistence::keys::app_prefix("wxa08") + "x");
  CAF_REQUIRE(left);
  CAF_CHECK(!*left); // the stored state went with it
  CAF_CHECK_GREATER(db->calls(), before);
  CAF_MESSAGE("store calls on a scheduler worker: " << caf::deep_to_string(db->on_workers()));
  CAF_CHECK_EQUAL(db->on_workers(), std::vector<std::string>{});
}

CAF_TEST_FIXTURE_SCOPE_END()
