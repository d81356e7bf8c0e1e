#define CAF_SUITE actors_component

// Component tokens, the refresh-loop guard and authorizer recovery on the
// deterministic scheduler: every upstream call is counted and answered by
// the test.

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

struct pending_call {
  upstream_call call;
  caf::typed_response_promise<upstream_reply> rp;
};

using answer = std::shared_ptr<std::optional<caf::expected<credential>>>;

constexpr const char* comp_id = "wxcomp1";

struct fixture : test_coordinator_fixture<> {
  test::temp_dir dir;
  std::shared_ptr<persistence::store> db;
  manual_clock wall;
  std::deque<pending_call> calls;
  /// Every endpoint that reached "WeChat", in order.
  std::vector<std::string> seen;
  caf::actor upstream;
  caf::actor store;
  std::shared_ptr<key_entry> comp_entry;
  key_actor comp;
  std::vector<key_actor> others;

  fixture() {
    auto opened = persistence::open_rocksdb(dir.path());
    if (!opened)
      CAF_FAIL("cannot open store");
    db = std::move(*opened);
    wall.set(1'800'000'000);
    upstream = sys.spawn([this](caf::event_based_actor* self) -> caf::behavior {
      return {
        [this, self](call_atom, upstream_call& c) -> caf::result<upstream_reply> {
          auto rp = self->make_response_promise<upstream_reply>();
          seen.push_back(c.endpoint);
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
  }

  ~fixture() override {
    for (auto& a : others)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    if (comp)
      caf::anon_send_exit(comp, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    sched.run();
  }

  credential cred(std::string value, int64_t ttl = 7200) {
    return credential{std::move(value), wall.now(), wall.now() + ttl, 1};
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

  /// A component with a verify ticket and (optionally) a valid token C1.
  app_params comp_params(bool with_token = true) {
    auto p = base(key_kind::component, comp_id);
    p.app = app_config{comp_id, "comp-secret", token_api::stable};
    p.component_appid = comp_id;
    p.prefix = persistence::keys::component_prefix(comp_id);
    p.verify_ticket = cred("ticket-1", 12 * 3600);
    if (with_token)
      p.token = cred("C1");
    comp_entry = p.entry;
    return p;
  }

  void start_comp(app_params p) {
    comp = spawn_app_actor(sys, std::move(p));
    sched.run();
  }

  template <class... Ts>
  answer ask(key_actor dst, Ts... xs) {
    auto res = std::make_shared<std::optional<caf::expected<credential>>>();
    sys.spawn([dst, res, xs...](caf::event_based_actor* self) {
      self->request(dst, caf::infinite, xs...)
        .then([res](credential& x) { *res = std::move(x); },
              [res](caf::error& err) { *res = std::move(err); });
    });
    return res;
  }

  void reply(const std::string& body) {
    CAF_REQUIRE(!calls.empty());
    caf::anon_send(upstream, done_atom::value, upstream_reply{200, body});
    sched.run();
  }

  void reply_comp_token(const std::string& v) {
    reply(R"({"component_access_token":")" + v + R"(","expires_in":7200})");
  }

  std::string front_endpoint() const { return calls.empty() ? "<none>" : calls.front().call.endpoint; }

  size_t count(const std::string& endpoint) const {
    return static_cast<size_t>(std::count(seen.begin(), seen.end(), endpoint));
  }

  /// A page of the authorizer list: appids wxa<from>..wxa<to-1>.
  static std::string page(int from, int to, int total) {
    boost::json::array list;
    for (int i = from; i < to; ++i) {
      boost::json::object o;
      o["authorizer_appid"] = "wxa" + std::to_string(i);
      o["refresh_token"] = "rt-" + std::to_string(i);
      o["auth_time"] = 1;
      list.push_back(std::move(o));
    }
    boost::json::object out;
    out["total_count"] = total;
    out["list"] = std::move(list);
    return boost::json::serialize(out);
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

CAF_TEST_FIXTURE_SCOPE(component_actor_tests, fixture)

CAF_TEST(a report of a valid component token costs one check per verify window) {
  start_comp(comp_params());
  auto a = ask(comp, stale_atom::value, std::string{"C1"});
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(front_endpoint(), "api_get_authorizer_list");
  CAF_CHECK(calls.front().call.target.find("component_access_token=C1") != std::string::npos);
  auto body = boost::json::parse(calls.front().call.body).as_object();
  CAF_CHECK_EQUAL(body.at("count").as_int64(), 1);
  reply(page(0, 1, 1));
  CAF_CHECK_EQUAL(value_of(a), "C1");
  // Within the verify window: no upstream call.
  auto b = ask(comp, stale_atom::value, std::string{"C1"});
  sched.run();
  CAF_CHECK_EQUAL(value_of(b), "C1");
  CAF_CHECK(calls.empty());
  // After it: one check again.
  advance(61);
  auto c = ask(comp, stale_atom::value, std::string{"C1"});
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply(page(0, 1, 1));
  CAF_CHECK_EQUAL(value_of(c), "C1");
  CAF_CHECK_EQUAL(seen.size(), 2u);
}

CAF_TEST(twenty concurrent reports of a dead component token give one api_component_token call) {
  start_comp(comp_params());
  std::vector<answer> answers;
  for (int i = 0; i < 20; ++i)
    answers.push_back(ask(comp, stale_atom::value, std::string{"C1"}));
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(front_endpoint(), "api_get_authorizer_list");
  reply(R"({"errcode":40001,"errmsg":"invalid credential"})");
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(front_endpoint(), "api_component_token");
  reply_comp_token("C2");
  CAF_CHECK(calls.empty());
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "C2");
  CAF_CHECK_EQUAL(comp_entry->token.load()->value, "C2");
  CAF_CHECK_EQUAL(count("api_component_token"), 1u);
  CAF_CHECK_EQUAL(seen.size(), 2u);
  // A late report of the dead token: compare-and-set, no call.
  auto late = ask(comp, stale_atom::value, std::string{"C1"});
  sched.run();
  CAF_CHECK_EQUAL(value_of(late), "C2");
  CAF_CHECK_EQUAL(seen.size(), 2u);
}

CAF_TEST(the hubs own rejected call refreshes the component once without a check) {
  start_comp(comp_params());
  std::vector<answer> answers;
  for (int i = 0; i < 5; ++i)
    answers.push_back(ask(comp, stale_atom::value, force_atom::value, std::string{"C1"}));
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(front_endpoint(), "api_component_token");
  reply_comp_token("C2");
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "C2");
  // Compare-and-set on the failing value: the old token does nothing more.
  auto again = ask(comp, stale_atom::value, force_atom::value, std::string{"C1"});
  sched.run();
  CAF_CHECK_EQUAL(value_of(again), "C2");
  CAF_CHECK_EQUAL(seen.size(), 1u);
}

CAF_TEST(an authorizer whose call gets 40001 refreshes the component once and retries once) {
  start_comp(comp_params());
  auto p = base(key_kind::authorizer, std::string{comp_id} + "/wxauth1");
  p.app.appid = "wxauth1";
  p.component_appid = comp_id;
  p.component = comp;
  p.prefix = persistence::keys::authorizer_prefix(comp_id, "wxauth1");
  p.refresh_token = credential{"rt-1", wall.now(), std::numeric_limits<int64_t>::max(), 1};
  auto auth = spawn_app_actor(sys, std::move(p));
  others.push_back(auth);
  sched.run();
  auto a = ask(auth, get_atom::value, token_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_authorizer_token");
  CAF_CHECK(calls.front().call.target.find("component_access_token=C1") != std::string::npos);
  reply(R"({"errcode":40001,"errmsg":"invalid credential"})");
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_component_token");
  reply_comp_token("C2");
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_authorizer_token");
  CAF_CHECK(calls.front().call.target.find("component_access_token=C2") != std::string::npos);
  reply(R"({"authorizer_access_token":"A1","expires_in":7200,"authorizer_refresh_token":"rt-1"})");
  CAF_CHECK_EQUAL(value_of(a), "A1");
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"api_authorizer_token", "api_component_token",
                                                  "api_authorizer_token"}));
}

CAF_TEST(a rejected refresh token is recovered from the list once) {
  start_comp(comp_params());
  auto spawn_auth = [&](const std::string& aid) {
    auto p = base(key_kind::authorizer, std::string{comp_id} + "/" + aid);
    p.app.appid = aid;
    p.component_appid = comp_id;
    p.component = comp;
    p.prefix = persistence::keys::authorizer_prefix(comp_id, aid);
    p.refresh_token = credential{"rt-old", wall.now(), std::numeric_limits<int64_t>::max(), 1};
    auto a = spawn_app_actor(sys, std::move(p));
    others.push_back(a);
    sched.run();
    return a;
  };
  // Re-authorized upstream (a new refresh token) while the hub missed it.
  auto auth = spawn_auth("wxa3");
  auto a = ask(auth, get_atom::value, token_atom::value);
  sched.run();
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_authorizer_token");
  reply(R"({"errcode":61023,"errmsg":"invalid refresh_token"})");
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_get_authorizer_list");
  reply(page(0, 5, 5));
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_authorizer_token");
  CAF_CHECK(calls.front().call.body.find("rt-3") != std::string::npos);
  reply(R"({"authorizer_access_token":"A3","expires_in":7200})");
  CAF_CHECK_EQUAL(value_of(a), "A3");
  auto stored = db->get(persistence::keys::refresh_token(persistence::keys::authorizer_prefix(comp_id, "wxa3")));
  CAF_REQUIRE(stored && stored->has_value());
  CAF_CHECK_EQUAL(persistence::decode_credential(**stored)->value, "rt-3");
  // Not listed upstream: needs re-authorization, without another token call
  // (the list is answered from the last walk).
  seen.clear();
  auto gone = spawn_auth("wxa99");
  auto b = ask(gone, get_atom::value, token_atom::value);
  sched.run();
  reply(R"({"errcode":61023,"errmsg":"invalid refresh_token"})");
  CAF_CHECK(calls.empty());
  CAF_CHECK_EQUAL(value_of(b), "<error:needs_reauthorization>");
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"api_authorizer_token"}));
}

CAF_TEST(a loop of ten thousand reports costs two upstream calls and ends in report_loop) {
  auto p = base(key_kind::app, "wxapp1");
  p.app = app_config{"wxapp1", "secret-1", token_api::stable};
  p.prefix = persistence::keys::app_prefix("wxapp1");
  p.token = cred("T1");
  comp = spawn_app_actor(sys, std::move(p));
  sched.run();
  std::vector<std::string> results;
  caf::error last;
  for (int i = 0; i < 10'000; ++i) {
    auto a = ask(comp, stale_atom::value, std::string{"T1"});
    sched.run();
    while (!calls.empty()) {
      if (front_endpoint() == "get_api_domain_ip")
        reply(R"({"errcode":0,"ip_list":["1.1.1.1"]})"); // WeChat's check says valid
      else
        reply(R"({"access_token":"T2","expires_in":7200})");
    }
    CAF_REQUIRE(a->has_value());
    results.push_back(value_of(a));
    if (!**a)
      last = (**a).error();
  }
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"get_api_domain_ip", "stable_token_force"}));
  // The first reports get T1 (verified), the escalation T2, then 429s.
  CAF_CHECK_EQUAL(results[0], "T1");
  CAF_CHECK_EQUAL(results[3], "T1");
  CAF_CHECK_EQUAL(results[4], "T2");
  // Reports of the replaced token get the new one (100 per window: a fleet
  // may hold it), then 429s.
  CAF_CHECK_EQUAL(results[104], "T2");
  CAF_CHECK_EQUAL(results[105], "<error:refresh_loop>");
  CAF_CHECK_EQUAL(results.back(), "<error:refresh_loop>");
  auto refused = std::count(results.begin(), results.end(), "<error:refresh_loop>");
  CAF_CHECK_EQUAL(refused, 10'000 - 105);
  CAF_CHECK_EQUAL(retry_after_of(last), 300u - 0u);
  // After the loop window the key is served normally again.
  advance(301);
  auto fresh = ask(comp, get_atom::value, token_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(value_of(fresh), "T2");
}

CAF_TEST(a loop on the new token within the window is refused without a second escalation) {
  auto p = base(key_kind::app, "wxapp1");
  p.app = app_config{"wxapp1", "secret-1", token_api::classic};
  p.prefix = persistence::keys::app_prefix("wxapp1");
  p.token = cred("T1");
  comp = spawn_app_actor(sys, std::move(p));
  sched.run();
  auto report = [&](const std::string& t) {
    auto a = ask(comp, stale_atom::value, t);
    sched.run();
    while (!calls.empty()) {
      if (front_endpoint() == "get_api_domain_ip")
        reply(R"({"errcode":0,"ip_list":["1.1.1.1"]})");
      else
        reply(R"({"access_token":"T2","expires_in":7200})");
    }
    return value_of(a);
  };
  for (int i = 0; i < 4; ++i)
    CAF_CHECK_EQUAL(report("T1"), "T1");
  CAF_CHECK_EQUAL(report("T1"), "T2"); // escalated: classic token call
  // The client now loops on T2: one check, three tolerated, then refused.
  for (int i = 0; i < 4; ++i)
    CAF_CHECK_EQUAL(report("T2"), "T2");
  for (int i = 0; i < 100; ++i)
    CAF_CHECK_EQUAL(report("T2"), "<error:refresh_loop>");
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"get_api_domain_ip", "token", "get_api_domain_ip"}));
}

CAF_TEST(a component refresh loop escalates to one api_component_token call) {
  start_comp(comp_params());
  std::vector<std::string> results;
  for (int i = 0; i < 1'000; ++i) {
    auto a = ask(comp, stale_atom::value, std::string{"C1"});
    sched.run();
    while (!calls.empty()) {
      if (front_endpoint() == "api_get_authorizer_list")
        reply(page(0, 1, 1));
      else
        reply_comp_token("C2");
    }
    results.push_back(value_of(a));
  }
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"api_get_authorizer_list", "api_component_token"}));
  CAF_CHECK_EQUAL(results.back(), "<error:refresh_loop>");
}

CAF_TEST(authorizer lookups page the list once per walk and are rate limited) {
  start_comp(comp_params());
  std::vector<answer> answers;
  for (int i = 0; i < 10; ++i)
    answers.push_back(ask(comp, import_atom::value, std::string{"wxa1100"}));
  auto unknown = ask(comp, import_atom::value, std::string{"wxnothere"});
  sched.run();
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  auto body = boost::json::parse(calls.front().call.body).as_object();
  CAF_CHECK_EQUAL(body.at("offset").as_int64(), 0);
  CAF_CHECK_EQUAL(body.at("count").as_int64(), 500);
  reply(page(0, 500, 1200));
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(boost::json::parse(calls.front().call.body).as_object().at("offset").as_int64(), 500);
  reply(page(500, 1000, 1200));
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  CAF_CHECK_EQUAL(boost::json::parse(calls.front().call.body).as_object().at("offset").as_int64(), 1000);
  reply(page(1000, 1200, 1200));
  CAF_CHECK(calls.empty());
  for (auto& a : answers)
    CAF_CHECK_EQUAL(value_of(a), "rt-1100");
  CAF_CHECK_EQUAL(value_of(unknown), "<error:unknown_appid>");
  CAF_CHECK_EQUAL(count("api_get_authorizer_list"), 3u);
  // Unknown appids within the recovery interval: answered from the last walk.
  for (int i = 0; i < 50; ++i) {
    auto x = ask(comp, import_atom::value, "wxmissing" + std::to_string(i));
    sched.run();
    CAF_CHECK_EQUAL(value_of(x), "<error:unknown_appid>");
  }
  CAF_CHECK_EQUAL(count("api_get_authorizer_list"), 3u);
  // After it, one new walk.
  advance(61);
  auto later = ask(comp, import_atom::value, std::string{"wxmissing0"});
  sched.run();
  reply(page(0, 1, 1));
  CAF_CHECK_EQUAL(value_of(later), "<error:unknown_appid>");
  CAF_CHECK_EQUAL(count("api_get_authorizer_list"), 4u);
}

CAF_TEST(a failed walk answers lookups for ten seconds) {
  start_comp(comp_params());
  auto a = ask(comp, import_atom::value, std::string{"wxa1"});
  sched.run();
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_get_authorizer_list");
  reply(R"({"errcode":-1,"errmsg":"system error"})");
  CAF_CHECK_EQUAL(value_of(a), "<error:upstream_error>");
  for (int i = 0; i < 20; ++i) {
    auto b = ask(comp, import_atom::value, "wxunknown" + std::to_string(i));
    sched.run();
    CAF_CHECK_EQUAL(value_of(b), "<error:upstream_error>");
  }
  CAF_CHECK_EQUAL(seen.size(), 1u);
  advance(10);
  auto c = ask(comp, import_atom::value, std::string{"wxa1"});
  sched.run();
  reply(page(0, 3, 3));
  CAF_CHECK_EQUAL(value_of(c), "rt-1");
  CAF_CHECK_EQUAL(seen.size(), 2u);
}

CAF_TEST(a used authorization code is recovered from the list and the pending record is durable) {
  start_comp(comp_params());
  auto res = std::make_shared<std::optional<caf::expected<authorization>>>();
  sys.spawn([this, res](caf::event_based_actor* self) {
    self->request(comp, caf::infinite, auth_atom::value, std::string{"code-1"}, std::string{"wxa7"},
                  int64_t{1'800'000'000})
      .then([res](authorization& a) { *res = std::move(a); },
            [res](caf::error& err) { *res = std::move(err); });
  });
  sched.run();
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_query_auth");
  // Durable before api_query_auth left the hub.
  auto pending_key = persistence::keys::component_prefix(comp_id) + "pending_auth/wxa7";
  auto rec = db->get(pending_key);
  CAF_REQUIRE(rec && rec->has_value());
  CAF_CHECK(rec->value().find("code-1") != std::string::npos);
  reply(R"({"errcode":61009,"errmsg":"code is invalid"})");
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_get_authorizer_list");
  reply(page(0, 10, 10));
  CAF_REQUIRE(res->has_value());
  CAF_REQUIRE(static_cast<bool>(**res));
  CAF_CHECK_EQUAL((**res)->authorizer_appid, "wxa7");
  CAF_CHECK_EQUAL((**res)->refresh_token.value, "rt-7");
  CAF_CHECK((**res)->access_token.value.empty());
  auto gone = db->get(pending_key);
  CAF_CHECK(gone && !gone->has_value());
  auto stored = db->get(persistence::keys::refresh_token(persistence::keys::authorizer_prefix(comp_id, "wxa7")));
  CAF_REQUIRE(stored && stored->has_value());
  CAF_CHECK_EQUAL(persistence::decode_credential(**stored)->value, "rt-7");
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"api_query_auth", "api_get_authorizer_list"}));
}

CAF_TEST(reconciliation walks the list on its interval and hands it over) {
  auto p = comp_params();
  p.reconcile_interval_s = 1800; // twice within the token's lifetime
  auto got = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  auto runs = std::make_shared<int>(0);
  p.on_reconcile = [got, runs](std::vector<std::pair<std::string, std::string>> xs) {
    *got = std::move(xs);
    ++*runs;
  };
  start_comp(std::move(p));
  advance(1799);
  CAF_CHECK(calls.empty());
  advance(1);
  CAF_REQUIRE_EQUAL(front_endpoint(), "api_get_authorizer_list");
  reply(page(0, 3, 3));
  CAF_CHECK_EQUAL(*runs, 1);
  CAF_CHECK_EQUAL(got->size(), 3u);
  advance(1800);
  CAF_REQUIRE_EQUAL(calls.size(), 1u);
  reply(page(0, 2, 2));
  CAF_CHECK_EQUAL(*runs, 2);
  CAF_CHECK_EQUAL(got->size(), 2u);
}

// Fencing (issue 15): a node whose lease lapsed never applies an
// authorization on its own; the push fails and WeChat retries it.
CAF_TEST(a lapsed lease refuses an authorization and stores nothing) {
  start_comp(comp_params());
  auto alive = std::make_shared<bool>(false);
  auto p = base(key_kind::authorizer, std::string{comp_id} + "/wxauth9");
  p.app.appid = "wxauth9";
  p.component_appid = comp_id;
  p.component = comp;
  p.prefix = persistence::keys::authorizer_prefix(comp_id, "wxauth9");
  p.may_act = [alive] { return *alive; };
  auto auth = spawn_app_actor(sys, std::move(p));
  others.push_back(auth);
  sched.run();
  authorization a{"wxauth9", cred("A9"), credential{"rt-9", wall.now(), std::numeric_limits<int64_t>::max(), 1}};
  auto apply = [&] {
    auto res = std::make_shared<std::optional<caf::error>>();
    sys.spawn([auth, a, res](caf::event_based_actor* self) {
      self->request(auth, caf::infinite, auth_atom::value, a)
        .then([res](done_atom) { *res = caf::error{}; }, [res](caf::error& err) { *res = std::move(err); });
    });
    sched.run();
    return res;
  };
  auto refused = apply();
  CAF_REQUIRE(refused->has_value());
  CAF_CHECK_EQUAL(code_of(**refused), ec::cluster_unavailable);
  auto rt_key = persistence::keys::refresh_token(persistence::keys::authorizer_prefix(comp_id, "wxauth9"));
  auto stored = db->get(rt_key);
  CAF_REQUIRE(stored);
  CAF_CHECK(!stored->has_value());
  CAF_CHECK(calls.empty());
  *alive = true;
  auto applied = apply();
  CAF_REQUIRE(applied->has_value());
  CAF_CHECK(!**applied);
  stored = db->get(rt_key);
  CAF_REQUIRE(stored);
  CAF_CHECK(stored->has_value());
}

CAF_TEST_FIXTURE_SCOPE_END()
