#define CAF_SUITE client_fake_hub

#include "caf/test/dsl.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <boost/json.hpp>

#include "client/client.hpp"
#include "core/clock.hpp"
#include "tests/net/test_server.hpp"

using namespace wh;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

/// How the fake hub (a misbehaving peer, not a mock of our code) answers.
enum class mode { ok, html, http500, drop, hub_error, truncated, hang, wrong_shape };

struct fixture {
  fixture()
    : clk(std::make_shared<manual_clock>(1'700'000'000)),
      hub([this](const test::seen_request& req) { return on_hub(req); }),
      upstream([this](const test::seen_request& req) { return on_upstream(req); }) {
  }

  test::reply on_hub(const test::seen_request& req) {
    std::lock_guard guard{mtx};
    hub_log.push_back(req);
    test::reply out;
    switch (current.load()) {
      case mode::html:
        out.content_type = "text/html";
        out.body = "<html><body>502 Bad Gateway</body></html>";
        return out;
      case mode::http500:
        out.status = 500;
        out.content_type = "text/plain";
        out.body = "Internal Server Error";
        return out;
      case mode::drop:
        out.act = test::reply::action::drop;
        return out;
      case mode::hang:
        out.act = test::reply::action::hang;
        return out;
      case mode::truncated:
        out.body = R"({"access_token":"T)";
        return out;
      case mode::wrong_shape:
        out.body = R"([1,2,3])";
        return out;
      case mode::hub_error:
        out.status = 404;
        out.body = R"({"errcode":null,"message":"appid wxX is not configured","reason":"unknown_appid","http_status":404})";
        return out;
      case mode::ok:
        break;
    }
    ++token_serial;
    std::string prefix = req.target.starts_with("/client/component") || req.target.starts_with("/client/refresh_component")
                           ? "CAT"
                           : "AT";
    json::object body;
    body["access_token"] = prefix + std::to_string(token_serial);
    body["expires_in"] = 7200;
    body["timestamp"] = clk->now();
    out.body = json::serialize(body);
    return out;
  }

  test::reply on_upstream(const test::seen_request& req) {
    test::reply out;
    json::object body;
    int code = 0;
    {
      std::lock_guard guard{mtx};
      upstream_log.push_back(req);
      if (reject_tokens > 0) {
        --reject_tokens;
        code = 40001;
      }
    }
    body["errcode"] = code;
    body["errmsg"] = code == 0 ? "ok" : "invalid credential";
    body["target"] = req.target;
    out.body = json::serialize(body);
    return out;
  }

  std::shared_ptr<client::hub_token_source> source(client::account acc, std::string key = "K1") {
    client::hub_options opts;
    opts.hub_url = hub.base_url() + "/";
    opts.key = std::move(key);
    opts.clock = clk;
    opts.timeout = 2s;
    return std::make_shared<client::hub_token_source>(std::move(acc), std::move(opts));
  }

  client::client_options api_opts() {
    client::client_options opts;
    opts.api_base = upstream.base_url();
    return opts;
  }

  test::seen_request last_hub() {
    std::lock_guard guard{mtx};
    return hub_log.back();
  }

  std::shared_ptr<manual_clock> clk;
  std::mutex mtx;
  std::vector<test::seen_request> hub_log;
  std::vector<test::seen_request> upstream_log;
  std::atomic<mode> current{mode::ok};
  int token_serial = 0;
  int reject_tokens = 0;
  test::test_server hub;
  test::test_server upstream;
};

client::request_options with_body(json::value body) {
  client::request_options opts;
  opts.body = std::move(body);
  return opts;
}

client::request_options with_query(std::string key, std::string value) {
  client::request_options opts;
  opts.query.emplace_back(std::move(key), std::move(value));
  return opts;
}

std::string reason_of(const client::result<client::token>& res) {
  return res ? std::string{"<ok>"} : res.err().reason;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(client_fake_hub_tests, fixture)

CAF_TEST(tokens come from the hub with the bearer key and are cached) {
  auto src = source(client::account::authorizer("wxC", "wxB"));
  auto tok = src->get(client::token_kind::access_token);
  CAF_REQUIRE(tok);
  CAF_CHECK_EQUAL(tok->value, "AT1");
  CAF_CHECK_EQUAL(tok->expires_at, clk->now() + 7200);
  auto req = last_hub();
  CAF_CHECK_EQUAL(req.method, "GET");
  CAF_CHECK_EQUAL(req.target, "/client/access_token?appid=wxC&authorizer_appid=wxB");
  CAF_CHECK_EQUAL(req.header("authorization"), "Bearer K1");
  CAF_REQUIRE(src->get(client::token_kind::access_token));
  CAF_CHECK_EQUAL(hub.requests(), 1u);
  // Near expiry (inside the 60 s margin) the cache asks the hub again.
  clk->advance(7200 - 60);
  auto again = src->get(client::token_kind::access_token);
  CAF_REQUIRE(again);
  CAF_CHECK_EQUAL(again->value, "AT2");
  CAF_CHECK_EQUAL(hub.requests(), 2u);
  // The component token is a separate entry and endpoint.
  auto comp = src->get(client::token_kind::component_access_token);
  CAF_REQUIRE(comp);
  CAF_CHECK_EQUAL(comp->value, "CAT3");
  CAF_CHECK_EQUAL(last_hub().target, "/client/component_access_token?appid=wxC");
}

CAF_TEST(no bearer header without a key) {
  auto src = source(client::account::app("wxA"), "");
  CAF_REQUIRE(src->get(client::token_kind::access_token));
  CAF_CHECK_EQUAL(last_hub().header("authorization"), "");
  CAF_CHECK_EQUAL(last_hub().target, "/client/access_token?appid=wxA");
  auto comp = src->get(client::token_kind::component_access_token);
  CAF_CHECK_EQUAL(reason_of(comp), "unsupported");
}

CAF_TEST(concurrent cache misses are single flight) {
  auto src = source(client::account::app("wxA"));
  constexpr int n = 50;
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::string> values;
  for (int i = 0; i < n; ++i)
    src->async_get(client::token_kind::access_token, [&](client::result<client::token> res) {
      std::lock_guard guard{m};
      values.push_back(res ? res->value : "ERR");
      ++done;
      cv.notify_all();
    });
  std::unique_lock guard{m};
  cv.wait(guard, [&] { return done == n; });
  CAF_CHECK_EQUAL(values, std::vector<std::string>(n, "AT1"));
  CAF_CHECK_EQUAL(hub.requests(), 1u);
}

CAF_TEST(stale reports post the failing token to the hub) {
  auto src = source(client::account::authorizer("wxC", "wxB"));
  CAF_REQUIRE(src->get(client::token_kind::access_token));
  auto fresh = src->report_stale(client::token_kind::access_token, "AT1");
  CAF_REQUIRE(fresh);
  CAF_CHECK_EQUAL(fresh->value, "AT2");
  auto req = last_hub();
  CAF_CHECK_EQUAL(req.method, "POST");
  CAF_CHECK_EQUAL(req.target, "/refresh/access_token");
  auto body = json::parse(req.body);
  CAF_CHECK_EQUAL(body.at("appid").as_string(), "wxC");
  CAF_CHECK_EQUAL(body.at("access_token").as_string(), "AT1");
  CAF_CHECK_EQUAL(body.at("authorizer_appid").as_string(), "wxB");
  auto comp = src->report_stale(client::token_kind::component_access_token, "CATX");
  CAF_REQUIRE(comp);
  CAF_CHECK_EQUAL(last_hub().target, "/client/refresh_component_access_token");
  // The refreshed token is cached.
  auto cached = src->get(client::token_kind::access_token);
  CAF_REQUIRE(cached);
  CAF_CHECK_EQUAL(cached->value, "AT2");
}

CAF_TEST(a misbehaving hub gives clear errors not crashes) {
  auto src = source(client::account::app("wxA"));
  auto check = [&](mode m, const std::string& reason, unsigned status) {
    current = m;
    auto res = src->get(client::token_kind::access_token);
    CAF_REQUIRE(!res);
    CAF_MESSAGE("mode " << static_cast<int>(m) << ": " << res.err().to_string());
    CAF_CHECK_EQUAL(res.err().reason, reason);
    CAF_CHECK_EQUAL(res.err().http_status, status);
    CAF_CHECK(!res.err().errmsg.empty());
  };
  check(mode::html, "bad_hub_response", 200);
  check(mode::http500, "bad_hub_response", 500);
  check(mode::drop, "transport_failure", 0);
  check(mode::truncated, "bad_hub_response", 200);
  check(mode::wrong_shape, "bad_hub_response", 200);
  check(mode::hub_error, "unknown_appid", 404);
  // The failures were not cached: a healthy hub is used right away.
  current = mode::ok;
  auto res = src->get(client::token_kind::access_token);
  CAF_REQUIRE(res);
}

CAF_TEST(a hanging hub times out) {
  client::hub_options opts;
  opts.hub_url = hub.base_url();
  opts.timeout = 300ms;
  client::hub_token_source src{client::account::app("wxA"), opts};
  current = mode::hang;
  auto res = src.get(client::token_kind::access_token);
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "timeout");
}

CAF_TEST(requests carry the token their path needs) {
  client::client api{source(client::account::authorizer("wxC", "wxB")), api_opts()};
  auto res = api.request("POST", "/cgi-bin/component/api_get_authorizer_info",
                         with_body(json::object{{"authorizer_appid", "wxB"}}));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->at("target").as_string(),
                  "/cgi-bin/component/api_get_authorizer_info?component_access_token=CAT1");
  res = api.request("GET", "/cgi-bin/user/get", with_query("next_openid", "a b"));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->at("target").as_string(),
                  "/cgi-bin/user/get?next_openid=a%20b&access_token=AT2");
  // Full URLs are used as they are.
  res = api.request("GET", upstream.base_url() + "/sns/component/x");
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->at("target").as_string(), "/sns/component/x?component_access_token=CAT1");
}

CAF_TEST(a rejected token is refreshed and the call retried exactly once) {
  client::client api{source(client::account::app("wxA")), api_opts()};
  reject_tokens = 1;
  auto res = api.request("GET", "/cgi-bin/x");
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->at("target").as_string(), "/cgi-bin/x?access_token=AT2");
  CAF_CHECK_EQUAL(upstream.requests(), 2u);
  CAF_CHECK_EQUAL(last_hub().target, "/refresh/access_token");
  // When the refreshed token is rejected too, the error surfaces: no loop.
  reject_tokens = 100;
  auto bad = api.request("GET", "/cgi-bin/x");
  CAF_REQUIRE(!bad);
  CAF_CHECK_EQUAL(bad.err().errcode, 40001);
  CAF_CHECK_EQUAL(bad.err().http_status, 200u);
  CAF_CHECK_EQUAL(bad.err().errmsg, "invalid credential");
  CAF_CHECK_EQUAL(upstream.requests(), 4u);
  CAF_CHECK_EQUAL(hub.requests(), 3u);
  CAF_CHECK(bad.err().to_string().find("AT") == std::string::npos);
}

CAF_TEST(hub failures surface through requests) {
  client::client api{source(client::account::app("wxA")), api_opts()};
  current = mode::html;
  auto res = api.request("GET", "/cgi-bin/x");
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "bad_hub_response");
  CAF_CHECK_EQUAL(upstream.requests(), 0u);
}

CAF_TEST(upstream garbage is an error) {
  test::test_server junk{[](const test::seen_request&) {
    test::reply out;
    out.status = 502;
    out.content_type = "text/html";
    out.body = "<html>bad gateway</html>";
    return out;
  }};
  client::client_options opts;
  opts.api_base = junk.base_url();
  client::client api{source(client::account::app("wxA")), opts};
  auto res = api.request("GET", "/cgi-bin/x");
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "http_error");
  CAF_CHECK_EQUAL(res.err().http_status, 502u);
}

CAF_TEST(many concurrent async requests complete once each) {
  client::client api{source(client::account::app("wxA")), api_opts()};
  constexpr int n = 100;
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  int ok = 0;
  for (int i = 0; i < n; ++i)
    api.async_request("GET", "/cgi-bin/x", {}, [&](client::result<json::value> res) {
      std::lock_guard guard{m};
      ++done;
      if (res)
        ++ok;
      cv.notify_all();
    });
  std::unique_lock guard{m};
  cv.wait(guard, [&] { return done == n; });
  CAF_CHECK_EQUAL(ok, n);
  CAF_CHECK_EQUAL(hub.requests(), 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
