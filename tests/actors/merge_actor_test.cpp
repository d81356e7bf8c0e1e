#define CAF_SUITE actors_merge_running

// A running key actor handed another node's copy of its state
// (`(sync_atom, key_state)`, what registry::adopt sends it) merges it by
// meaning: on the deterministic scheduler, with a real RocksDB and every
// upstream call answered by the test.

#include "caf/test/dsl.hpp"

#include <deque>
#include <memory>

#include "actors/app_actor.hpp"
#include "actors/store_actor.hpp"
#include "core/error.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::actors;

namespace {

constexpr const char* comp_id = "wxcomp1";
constexpr const char* auth_id = "wxauth1";
constexpr int64_t t0 = 1'800'000'000;
constexpr int64_t never = std::numeric_limits<int64_t>::max();

struct pending_call {
  upstream_call call;
  caf::typed_response_promise<upstream_reply> rp;
};

using answer = std::shared_ptr<std::optional<caf::expected<credential>>>;

struct fixture : test_coordinator_fixture<> {
  test::temp_dir dir;
  std::shared_ptr<persistence::store> db;
  manual_clock wall;
  std::deque<pending_call> calls;
  caf::actor upstream;
  caf::actor store;
  /// Stands in for the cluster node: counts the replications asked for.
  caf::actor node;
  std::shared_ptr<int> replicated = std::make_shared<int>(0);
  key_actor comp;
  key_actor auth;
  std::string pre = persistence::keys::authorizer_prefix(comp_id, auth_id);

  fixture() {
    auto opened = persistence::open_rocksdb(dir.path());
    if (!opened)
      CAF_FAIL("cannot open store");
    db = std::move(*opened);
    wall.set(t0);
    upstream = sys.spawn([this](caf::event_based_actor* self) -> caf::behavior {
      return {
        [this, self](call_atom, upstream_call& c) -> caf::result<upstream_reply> {
          auto rp = self->make_response_promise<upstream_reply>();
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
    auto n = replicated;
    node = sys.spawn([n](caf::event_based_actor*) -> caf::behavior {
      return {[n](repl_atom, const std::string&, const std::string&) { ++*n; }};
    });
    auto p = base(key_kind::component, comp_id);
    p.app = app_config{comp_id, "comp-secret", token_api::stable};
    p.component_appid = comp_id;
    p.prefix = persistence::keys::component_prefix(comp_id);
    p.verify_ticket = credential{"ticket-1", t0, t0 + 43200, 1};
    p.token = credential{"C1", t0, t0 + 20000, 1};
    comp = spawn_app_actor(sys, std::move(p));
    sched.run();
  }

  ~fixture() override {
    for (auto a : {caf::actor_cast<caf::actor>(auth), caf::actor_cast<caf::actor>(comp), upstream, store, node})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  app_params base(key_kind k, std::string key) {
    app_params p;
    p.kind = k;
    p.upstream = upstream;
    p.store = store;
    auto e = std::make_shared<key_entry>();
    e->key = std::move(key);
    e->kind = k;
    p.entry = e;
    p.clock = &wall;
    p.refresh_margin_s = 180;
    p.refresh_jitter_s = 0;
    p.seed = 7;
    return p;
  }

  /// The authorizer, running as owner with refresh token RT1 (authorized
  /// an hour ago), a valid token A1 obtained just now, and state version 100.
  app_params auth_params() {
    auto p = base(key_kind::authorizer, std::string{comp_id} + "/" + auth_id);
    p.app.appid = auth_id;
    p.component_appid = comp_id;
    p.component = comp;
    p.prefix = pre;
    p.cluster = node;
    p.refresh_token = credential{"RT1", t0 - 3600, never, 1};
    p.authorized_at = t0 - 3600;
    p.token = credential{"A1", t0, t0 + 7200, 3};
    p.seq = 100;
    return p;
  }

  /// Stores what `p` restores (a running actor's state is durable).
  void start_auth(app_params p) {
    std::vector<persistence::batch_entry> batch;
    if (p.refresh_token)
      batch.emplace_back(pre + "refresh_token", persistence::encode(*p.refresh_token));
    if (p.token)
      batch.emplace_back(pre + "access_token", persistence::encode(*p.token));
    if (p.authorized_at > 0)
      batch.emplace_back(pre + "authorized_at", std::to_string(p.authorized_at));
    if (p.status == authorizer_status::needs_reauthorization)
      batch.emplace_back(pre + "status", persistence::encode_status("needs_reauthorization", p.status_at));
    batch.emplace_back(pre + "seq", std::to_string(p.seq));
    CAF_REQUIRE(!db->write(batch));
    auth = spawn_app_actor(sys, std::move(p));
    sched.run();
  }

  /// Another node's copy of the authorizer (fields as pairs).
  key_state copy(uint64_t seq, std::vector<std::pair<std::string, std::string>> fields) {
    key_state s;
    s.key = std::string{comp_id} + "/" + auth_id;
    s.kind = static_cast<uint8_t>(key_kind::authorizer);
    s.seq = seq;
    for (auto& [f, v] : fields) {
      s.fields.push_back(f);
      s.fields.push_back(v);
    }
    s.fields.push_back("seq");
    s.fields.push_back(std::to_string(seq));
    return s;
  }

  void deliver(const key_state& s) {
    caf::anon_send(auth, sync_atom::value, s);
    sched.run();
  }

  std::optional<std::string> stored(const std::string& field) {
    auto raw = db->get(pre + field);
    if (!raw || !raw->has_value())
      return std::nullopt;
    return **raw;
  }

  std::string stored_value(const std::string& field) {
    auto raw = stored(field);
    if (!raw)
      return "<none>";
    auto x = persistence::decode_credential(*raw);
    return x ? x->value : "<corrupt>";
  }

  uint64_t stored_seq() {
    auto raw = stored("seq");
    return raw ? std::stoull(*raw) : 0;
  }

  answer ask_token() {
    auto res = std::make_shared<std::optional<caf::expected<credential>>>();
    auto dst = auth;
    sys.spawn([dst, res](caf::event_based_actor* self) {
      self->request(dst, caf::infinite, get_atom::value, token_atom::value)
        .then([res](credential& x) { *res = std::move(x); },
              [res](caf::error& err) { *res = std::move(err); });
    });
    sched.run();
    return res;
  }

  void reply(const std::string& body) {
    CAF_REQUIRE(!calls.empty());
    caf::anon_send(upstream, done_atom::value, upstream_reply{200, body});
    sched.run();
  }

  void advance(int64_t secs) {
    wall.advance(secs);
    sched.clock().advance_time(std::chrono::seconds(secs));
    sched.run();
  }
};

std::string value_of(const answer& a) {
  if (!a->has_value())
    return "<pending>";
  if (!**a)
    return "<error:" + std::string{to_string(code_of((**a).error()))} + ">";
  return (**a)->value;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(merge_running_tests, fixture)

CAF_TEST(a running owner keeps the newer refresh token of an older copy and refreshes with it) {
  start_auth(auth_params());
  // The copy of the node that took the key over while this one was cut
  // off: a lower version, an older access token, but the refresh token of
  // a re-authorization (pushed at t0 - 60).
  deliver(copy(50, {{"refresh_token", persistence::encode(credential{"RT2", t0 - 59, never, 1})},
                    {"authorized_at", std::to_string(t0 - 60)},
                    {"access_token", persistence::encode(credential{"A-other", t0 - 59, t0 + 7141, 2})}}));
  CAF_CHECK_EQUAL(stored_value("refresh_token"), "RT2");
  CAF_CHECK_EQUAL(stored("authorized_at").value_or("<none>"), std::to_string(t0 - 60));
  CAF_CHECK_GREATER(stored_seq(), 100u);
  CAF_CHECK_EQUAL(*replicated, 1); // the merged state replicates
  // A1 was obtained under the older authorization: the re-authorized
  // copy's token replaces it.
  CAF_CHECK_EQUAL(value_of(ask_token()), "A-other");
  CAF_CHECK(calls.empty());
  // The proactive refresh presents RT2.
  advance(7200 - 180);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.endpoint, "api_authorizer_token");
  CAF_CHECK(calls.front().call.body.find("RT2") != std::string::npos);
  CAF_CHECK(calls.front().call.body.find("RT1") == std::string::npos);
  reply(R"({"authorizer_access_token":"A2","expires_in":7200,"authorizer_refresh_token":"RT2"})");
  CAF_CHECK_EQUAL(value_of(ask_token()), "A2");
}

CAF_TEST(needs_reauthorization ends when another copy brings a newer refresh token) {
  auto p = auth_params();
  p.token.reset();
  p.status = authorizer_status::needs_reauthorization;
  p.status_at = t0 - 10;
  start_auth(std::move(p));
  CAF_CHECK_EQUAL(value_of(ask_token()), "<error:needs_reauthorization>");
  CAF_CHECK(calls.empty());
  deliver(copy(90, {{"refresh_token", persistence::encode(credential{"RT2", t0 - 30, never, 1})},
                    {"authorized_at", std::to_string(t0 - 31)}}));
  CAF_CHECK(!stored("status"));
  CAF_CHECK_EQUAL(stored_value("refresh_token"), "RT2");
  auto a = ask_token();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK(calls.front().call.body.find("RT2") != std::string::npos);
  reply(R"({"authorizer_access_token":"A2","expires_in":7200})");
  CAF_CHECK_EQUAL(value_of(a), "A2");
  // A copy with the rejected refresh token does not bring the status back.
  deliver(copy(95, {{"refresh_token", persistence::encode(credential{"RT1", t0 - 3600, never, 1})},
                    {"status", persistence::encode_status("needs_reauthorization", t0 - 10)}}));
  CAF_CHECK(!stored("status"));
  CAF_CHECK_EQUAL(value_of(ask_token()), "A2");
}

CAF_TEST(a revocation applies by its push time against the authorization of the running owner) {
  start_auth(auth_params());
  // Revoked before the authorization this owner holds: ignored, and the
  // owner replicates its own state (the other copy is behind).
  deliver(copy(200, {{"status", persistence::encode_status("revoked", t0 - 7200)}}));
  CAF_CHECK(!stored("status"));
  CAF_CHECK_EQUAL(stored_value("refresh_token"), "RT1");
  CAF_CHECK_EQUAL(value_of(ask_token()), "A1");
  CAF_CHECK_EQUAL(*replicated, 1);
  CAF_CHECK_GREATER(stored_seq(), 200u);
  // Revoked after it: tokens and refresh token go.
  deliver(copy(300, {{"status", persistence::encode_status("revoked", t0 - 5)}}));
  CAF_REQUIRE(stored("status"));
  CAF_CHECK_EQUAL(*persistence::decode_status(*stored("status")), "revoked");
  CAF_CHECK_EQUAL(stored_value("refresh_token"), "<none>");
  CAF_CHECK_EQUAL(stored_value("access_token"), "<none>");
  auto revoked_answer = ask_token();
  CAF_MESSAGE("answer after the revocation: " << value_of(revoked_answer) << ", calls: " << calls.size());
  CAF_CHECK_EQUAL(value_of(revoked_answer), "<error:authorizer_revoked>");
  CAF_CHECK(calls.empty());
}

CAF_TEST(an identical copy changes nothing and replicates nothing) {
  start_auth(auth_params());
  deliver(copy(100, {{"refresh_token", persistence::encode(credential{"RT1", t0 - 3600, never, 1})},
                     {"authorized_at", std::to_string(t0 - 3600)},
                     {"access_token", persistence::encode(credential{"A1", t0, t0 + 7200, 3})}}));
  CAF_CHECK_EQUAL(*replicated, 0);
  CAF_CHECK_EQUAL(stored_seq(), 100u); // nothing written
  // An older token from a copy with a higher version does not replace A1.
  deliver(copy(500, {{"refresh_token", persistence::encode(credential{"RT1", t0 - 3600, never, 1})},
                     {"authorized_at", std::to_string(t0 - 3600)},
                     {"access_token", persistence::encode(credential{"A0", t0 - 3000, t0 + 4200, 2})}}));
  CAF_CHECK_EQUAL(value_of(ask_token()), "A1");
  CAF_CHECK_EQUAL(*replicated, 1); // ... and the other copy learns A1
  CAF_CHECK_GREATER(stored_seq(), 500u);
}

CAF_TEST_FIXTURE_SCOPE_END()
