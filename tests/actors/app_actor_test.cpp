#define CAF_SUITE actors_app

#include "caf/test/dsl.hpp"

#include <deque>
#include <memory>

#include <boost/json.hpp>

#include "actors/app_actor.hpp"
#include "actors/store_actor.hpp"
#include "core/error.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::actors;

namespace {

/// One call that reached "WeChat"; the test answers it explicitly.
struct pending_call {
  upstream_call call;
  caf::typed_response_promise<upstream_reply> rp;
};

/// The answer a client actor got.
using answer = std::shared_ptr<std::optional<caf::expected<credential>>>;

struct fixture : test_coordinator_fixture<> {
  test::temp_dir dir;
  std::shared_ptr<persistence::store> db;
  manual_clock wall;
  std::deque<pending_call> calls;
  caf::actor upstream;
  caf::actor store;
  std::shared_ptr<key_entry> entry;
  key_actor app;

  fixture() {
    auto opened = persistence::open_rocksdb(dir.path());
    if (!opened)
      CAF_FAIL("cannot open store");
    db = std::move(*opened);
    // Plays WeChat: records every call and lets the test answer it.
    upstream = sys.spawn([this](caf::event_based_actor* self) -> caf::behavior {
      return {
        [this, self](call_atom, upstream_call& c) -> caf::result<upstream_reply> {
          auto rp = self->make_response_promise<upstream_reply>();
          calls.push_back(pending_call{std::move(c), rp});
          return rp;
        },
        // Promises are delivered from inside the actor (its execution context).
        [this](done_atom, upstream_reply& rep) {
          auto c = std::move(calls.front());
          calls.pop_front();
          c.rp.deliver(std::move(rep));
        },
      };
    });
    store = spawn_store_actor(sys, db, false);
  }

  ~fixture() override {
    if (app)
      caf::anon_send_exit(app, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    sched.run();
  }

  app_params params(token_api api = token_api::stable) {
    app_params p;
    p.app = app_config{"wxapp1", "secret-1", api};
    p.prefix = persistence::keys::app_prefix("wxapp1");
    p.upstream = upstream;
    p.store = store;
    entry = std::make_shared<key_entry>();
    entry->key = "wxapp1";
    p.entry = entry;
    p.clock = &wall;
    p.refresh_margin_s = 180;
    p.refresh_jitter_s = 90;
    p.seed = 42;
    return p;
  }

  void start(app_params p) {
    app = spawn_app_actor(sys, std::move(p));
    sched.run();
  }

  template <class... Ts>
  answer ask(Ts... xs) {
    auto res = std::make_shared<std::optional<caf::expected<credential>>>();
    sys.spawn([this, res, xs...](caf::event_based_actor* self) {
      self->request(app, caf::infinite, xs...)
        .then([res](credential& x) { *res = std::move(x); },
              [res](caf::error& err) { *res = std::move(err); });
    });
    return res;
  }

  /// Answers the oldest pending call with `body`.
  void reply(const std::string& body, unsigned status = 200) {
    CAF_REQUIRE(!calls.empty());
    caf::anon_send(upstream, done_atom::value, upstream_reply{status, body});
    sched.run();
  }

  void reply_token(const std::string& value, int64_t expires_in = 7200) {
    reply(R"({"access_token":")" + value + R"(","expires_in":)" + std::to_string(expires_in) + "}");
  }

  /// Moves wall time and CAF's timer clock together.
  void advance(int64_t secs) {
    wall.advance(secs);
    sched.clock().advance_time(std::chrono::seconds(secs));
    sched.run();
  }

  static std::string pub_value(const snapshot_slot& slot) {
    auto x = slot.load();
    return x ? x->value : "<none>";
  }

  static uint64_t pub_version(const snapshot_slot& slot) {
    auto x = slot.load();
    return x ? x->version : 0;
  }

  static int64_t pub_expires_at(const snapshot_slot& slot) {
    auto x = slot.load();
    return x ? x->expires_at : 0;
  }

  std::string stored_token() {
    auto raw = db->get(persistence::keys::app_token("wxapp1"));
    if (!raw || !raw->has_value())
      return "<none>";
    auto x = persistence::decode_credential(**raw);
    return x ? x->value : "<corrupt>";
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

CAF_TEST_FIXTURE_SCOPE(app_actor_tests, fixture)

CAF_TEST(concurrent cold reads cause exactly one upstream call) {
  start(params());
  std::vector<answer> answers;
  for (int i = 0; i < 200; ++i)
    answers.push_back(ask(get_atom::value, token_atom::value));
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.endpoint, "stable_token");
  CAF_CHECK_EQUAL(calls.front().call.target, "/cgi-bin/stable_token");
  auto body = boost::json::parse(calls.front().call.body).as_object();
  CAF_CHECK_EQUAL(body.at("appid").as_string(), "wxapp1");
  CAF_CHECK_EQUAL(body.at("force_refresh").as_bool(), false);
  reply_token("T1");
  CAF_CHECK(calls.empty());
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "T1");
  // Persisted before it was served, and published for the lock-free path.
  CAF_CHECK_EQUAL(stored_token(), "T1");
  CAF_REQUIRE(entry->token.load() != nullptr);
  CAF_CHECK_EQUAL(pub_value(entry->token), "T1");
  CAF_CHECK_EQUAL(pub_expires_at(entry->token), wall.now() + 7200);
  // A warm read calls nothing.
  auto warm = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(value_of(warm), "T1");
  CAF_CHECK(calls.empty());
}

CAF_TEST(classic api uses cgi-bin token) {
  start(params(token_api::classic));
  auto a = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.method, "GET");
  CAF_CHECK_EQUAL(calls.front().call.target,
                  "/cgi-bin/token?grant_type=client_credential&appid=wxapp1&secret=secret-1");
  reply_token("C1");
  CAF_CHECK_EQUAL(value_of(a), "C1");
}

CAF_TEST(proactive refresh happens inside the jitter window) {
  start(params());
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  // Refresh is due between expiry-270 and expiry-180: nothing before.
  advance(7200 - 271);
  CAF_CHECK(calls.empty());
  advance(91);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T2", 7200);
  CAF_CHECK_EQUAL(pub_value(entry->token), "T2");
  CAF_CHECK_EQUAL(stored_token(), "T2");
  CAF_CHECK_EQUAL(pub_version(entry->token), 2u);
}

CAF_TEST(jitter spreads refreshes across apps) {
  // Different seeds must not all pick the same second.
  std::set<int64_t> fire_times;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    auto p = params();
    p.seed = seed;
    p.token = credential{"T" + std::to_string(seed), wall.now(), wall.now() + 7200, 1};
    app = spawn_app_actor(sys, p);
    sched.run();
    int64_t waited = 0;
    while (calls.empty() && waited < 7200) {
      advance(1);
      ++waited;
    }
    CAF_REQUIRE_EQUAL(calls.size(), 1u);
    CAF_CHECK_GREATER_OR_EQUAL(waited, 7200 - 270);
    CAF_CHECK_LESS_OR_EQUAL(waited, 7200 - 180);
    fire_times.insert(waited);
    calls.clear();
    caf::anon_send_exit(app, caf::exit_reason::user_shutdown);
    sched.run();
    wall.advance(-waited);
  }
  app = nullptr;
  CAF_CHECK_GREATER(fire_times.size(), 3u);
}

CAF_TEST(stable refresh that returns the same token is retried in the renewal window) {
  auto p = params();
  p.refresh_margin_s = 600; // too early for stable_token to renew
  p.refresh_jitter_s = 0;
  start(p);
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  advance(7200 - 600);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T1", 600); // same token, remaining lifetime
  CAF_CHECK_EQUAL(pub_version(entry->token), 1u);
  advance(300); // expires_at - 300: still nothing (retry is at expires_at - 290)
  CAF_CHECK(calls.empty());
  advance(10);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T2");
  CAF_CHECK_EQUAL(pub_value(entry->token), "T2");
}

CAF_TEST(stale report of an old token is answered without upstream calls) {
  start(params());
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  std::vector<answer> answers;
  for (int i = 0; i < 50; ++i)
    answers.push_back(ask(stale_atom::value, std::string{"OLD"}));
  sched.run();
  CAF_CHECK(calls.empty());
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "T1");
}

CAF_TEST(stale report of a valid current token verifies once and keeps it) {
  start(params());
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  std::vector<answer> answers;
  for (int i = 0; i < 20; ++i)
    answers.push_back(ask(stale_atom::value, std::string{"T1"}));
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.endpoint, "get_api_domain_ip");
  reply(R"({"ip_list":["1.2.3.4"]})");
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "T1");
  // Within the verification window a confused client costs nothing.
  auto again = ask(stale_atom::value, std::string{"T1"});
  sched.run();
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(again), "T1");
}

CAF_TEST(stale report of a dead current token refreshes exactly once) {
  start(params());
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  std::vector<answer> answers;
  for (int i = 0; i < 100; ++i)
    answers.push_back(ask(stale_atom::value, std::string{"T1"}));
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply(R"({"errcode":40001,"errmsg":"invalid credential"})");
  // The dead token is no longer published while it is replaced.
  CAF_CHECK(entry->token.load() == nullptr);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.endpoint, "stable_token");
  reply_token("T2");
  CAF_CHECK(calls.empty());
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "T2");
  // Late reports of T1 are now stale: answered from memory.
  auto late = ask(stale_atom::value, std::string{"T1"});
  sched.run();
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(late), "T2");
}

CAF_TEST(stable normal mode returning the dead token escalates to one forced refresh) {
  start(params());
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  auto a = ask(stale_atom::value, std::string{"T1"});
  sched.run();
  reply(R"({"errcode":42001,"errmsg":"access_token expired"})");
  reply_token("T1", 3000); // normal mode hands back the same (dead) token
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.endpoint, "stable_token_force");
  auto body = boost::json::parse(calls.front().call.body).as_object();
  CAF_CHECK_EQUAL(body.at("force_refresh").as_bool(), true);
  reply_token("T2");
  CAF_CHECK_EQUAL(value_of(a), "T2");
  // The spent budget is persisted with the token.
  auto raw = db->get(persistence::keys::app_force("wxapp1"));
  CAF_REQUIRE(raw && raw->has_value());
  auto budget = persistence::decode_force_budget(**raw);
  CAF_REQUIRE(budget);
  uint32_t used = budget->used;
  CAF_CHECK_EQUAL(used, 1u);
}

CAF_TEST(force budget refuses forced refreshes closer than 30 s) {
  start(params());
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  auto first = ask(refresh_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.endpoint, "stable_token_force");
  reply_token("T2");
  CAF_CHECK_EQUAL(value_of(first), "T2");
  auto second = ask(refresh_atom::value);
  sched.run();
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(second), "<error:force_refresh_budget_exhausted>");
  advance(31);
  auto third = ask(refresh_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(calls.size(), 1u);
  reply_token("T3");
  CAF_CHECK_EQUAL(value_of(third), "T3");
}

CAF_TEST(force budget allows at most 20 per day) {
  auto p = params();
  p.force_budget = persistence::force_budget_record{beijing_day(wall.now()), 20, 0};
  start(p);
  auto a = ask(refresh_atom::value);
  sched.run();
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(a), "<error:force_refresh_budget_exhausted>");
}

CAF_TEST(tickets use the token and are single flight) {
  start(params());
  std::vector<answer> answers;
  for (int i = 0; i < 30; ++i)
    answers.push_back(ask(get_atom::value, ticket_atom::value, std::string{"jsapi"}));
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u); // first the token
  reply_token("T1");
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.target,
                  "/cgi-bin/ticket/getticket?access_token=T1&type=jsapi");
  reply(R"({"errcode":0,"errmsg":"ok","ticket":"J1","expires_in":7200})");
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "J1");
  CAF_CHECK_EQUAL(pub_value(entry->jsapi), "J1");
  auto bad = ask(get_atom::value, ticket_atom::value, std::string{"nope"});
  sched.run();
  CAF_CHECK_EQUAL(value_of(bad), "<error:invalid_request>");
}

CAF_TEST(getticket 40001 refreshes the token once and retries once) {
  start(params());
  auto a = ask(get_atom::value, ticket_atom::value, std::string{"wx_card"});
  sched.run();
  reply_token("T1");
  reply(R"({"errcode":40001,"errmsg":"invalid credential"})");
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.endpoint, "stable_token");
  reply_token("T2");
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(calls.front().call.target,
                  "/cgi-bin/ticket/getticket?access_token=T2&type=wx_card");
  // Rejected again: returned, not retried in a loop.
  reply(R"({"errcode":40001,"errmsg":"invalid credential"})");
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(a), "<error:upstream_error>");
}

CAF_TEST(daily quota stops calls until the reset) {
  start(params());
  auto a = ask(get_atom::value, token_atom::value);
  sched.run();
  reply(R"({"errcode":45009,"errmsg":"reach max api daily quota limit"})");
  CAF_CHECK_EQUAL(value_of(a), "<error:quota_exhausted>");
  int code = 0;
  CAF_CHECK(wechat_errcode_of((**a).error(), code));
  CAF_CHECK_EQUAL(code, 45009);
  auto b = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(b), "<error:quota_exhausted>");
  // After 00:00 Beijing time calls resume.
  auto t = wall.now();
  auto reset = (beijing_day(t) + 1) * 86400 - 8 * 3600;
  wall.set(reset);
  auto c = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(calls.size(), 1u);
  reply_token("T1");
  CAF_CHECK_EQUAL(value_of(c), "T1");
}

CAF_TEST(system busy backs off and minute quota pauses) {
  start(params());
  auto a = ask(get_atom::value, token_atom::value);
  sched.run();
  reply(R"({"errcode":-1,"errmsg":"system error"})");
  CAF_CHECK_EQUAL(value_of(a), "<error:upstream_unavailable>");
  auto b = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK(calls.empty()); // inside the backoff
  CAF_CHECK_EQUAL(value_of(b), "<error:upstream_unavailable>");
  wall.advance(2);
  auto c = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply(R"({"errcode":45011,"errmsg":"api minute-quota reach limit"})");
  CAF_CHECK_EQUAL(value_of(c), "<error:rate_limited>");
  wall.advance(59);
  ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK(calls.empty());
  wall.advance(1);
  auto d = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T1");
  CAF_CHECK_EQUAL(value_of(d), "T1");
}

CAF_TEST(bad credentials and garbage answers are errors not crashes) {
  start(params());
  auto a = ask(get_atom::value, token_atom::value);
  sched.run();
  reply(R"({"errcode":40125,"errmsg":"invalid appsecret"})");
  CAF_CHECK_EQUAL(value_of(a), "<error:invalid_credentials>");
  wall.advance(61);
  auto b = ask(get_atom::value, token_atom::value);
  sched.run();
  reply("<html>gateway</html>", 502);
  CAF_CHECK_EQUAL(value_of(b), "<error:upstream_unavailable>");
  auto c = ask(get_atom::value, token_atom::value);
  sched.run();
  reply("not json");
  CAF_CHECK_EQUAL(value_of(c), "<error:upstream_unavailable>");
  auto d = ask(get_atom::value, token_atom::value);
  sched.run();
  reply(R"({"access_token":"","expires_in":7200})");
  CAF_CHECK_EQUAL(value_of(d), "<error:upstream_unavailable>");
  auto e = ask(get_atom::value, token_atom::value);
  sched.run();
  reply(R"({"access_token":"T1","expires_in":"soon"})");
  CAF_CHECK_EQUAL(value_of(e), "<error:upstream_unavailable>");
  CAF_CHECK(entry->token.load() == nullptr);
}

CAF_TEST(restored state is served without upstream calls) {
  auto p = params();
  p.token = credential{"SAVED", wall.now() - 100, wall.now() + 5000, 7};
  p.jsapi = credential{"SAVEDJ", wall.now() - 100, wall.now() + 5000, 2};
  start(p);
  auto a = ask(get_atom::value, token_atom::value);
  auto b = ask(get_atom::value, ticket_atom::value, std::string{"jsapi"});
  sched.run();
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(a), "SAVED");
  CAF_CHECK_EQUAL(value_of(b), "SAVEDJ");
  CAF_CHECK_EQUAL(pub_version(entry->token), 7u);
}

CAF_TEST(expired restored state is refetched with a higher version) {
  auto p = params();
  p.token = credential{"OLD", wall.now() - 8000, wall.now() - 800, 7};
  start(p);
  CAF_CHECK(entry->token.load() == nullptr);
  auto a = ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("NEW");
  CAF_CHECK_EQUAL(value_of(a), "NEW");
  CAF_CHECK_EQUAL(pub_version(entry->token), 8u);
}

CAF_TEST(a failed proactive refresh keeps serving and retries) {
  start(params());
  ask(get_atom::value, token_atom::value);
  sched.run();
  reply_token("T1");
  advance(7200 - 180);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply("", 500);
  CAF_CHECK_EQUAL(pub_value(entry->token), "T1"); // still valid, still served
  auto a = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(value_of(a), "T1");
  advance(30);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T2");
  CAF_CHECK_EQUAL(pub_value(entry->token), "T2");
}

// Fencing (issue 15): a node whose cluster lease lapsed must not call WeChat.
CAF_TEST(a lapsed lease stops every upstream call and the held token is still served) {
  auto alive = std::make_shared<bool>(true);
  auto p = params();
  p.may_act = [alive] { return *alive; };
  start(p);
  auto first = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T1");
  CAF_CHECK_EQUAL(value_of(first), "T1");
  *alive = false;
  // The proactive refresh comes due: no call, the valid token stays served.
  advance(7200 - 90);
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(pub_value(entry->token), "T1");
  auto read = ask(get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(value_of(read), "T1");
  // A report of the token cannot make this node verify or refresh it either.
  auto reported = ask(stale_atom::value, std::string{"T1"});
  sched.run();
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(reported), "<error:cluster_unavailable>");
  // The lease is back: the next retry refreshes, once.
  *alive = true;
  advance(120);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply_token("T2");
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(pub_value(entry->token), "T2");
}

CAF_TEST_FIXTURE_SCOPE_END()
