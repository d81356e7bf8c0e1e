#define CAF_SUITE net_http_client

#include "caf/test/dsl.hpp"

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "core/error.hpp"
#include "net/http_client.hpp"
#include "tests/net/test_server.hpp"

using namespace wh;
using wh::test::with_opt;
using namespace std::chrono_literals;

namespace {


std::string reason(const caf::error& err) {
  return to_string(code_of(err));
}

test::reply route(const test::seen_request& req) {
  test::reply out;
  auto path = req.target.substr(0, req.target.find('?'));
  if (path == "/echo") {
    out.body = req.method + "|" + req.target + "|" + req.header("content-type") + "|"
               + req.header("host") + "|" + req.header("user-agent") + "|" + req.header("x-extra")
               + "|" + req.body;
    out.content_type = "text/plain";
  } else if (path == "/hang") {
    out.act = test::reply::action::hang;
  } else if (path == "/drop") {
    out.act = test::reply::action::drop;
  } else if (path == "/close") {
    out.body = "closing";
    out.act = test::reply::action::respond_then_close;
  } else if (path == "/big") {
    out.body = std::string(4096, 'x');
  } else if (path == "/status") {
    out.status = 503;
    out.body = "<html>busy</html>";
    out.content_type = "text/html";
  } else {
    out.body = "ok";
  }
  return out;
}

struct fixture {
  fixture() : server(route) {
  }

  net::request get(std::string path) {
    net::request req;
    req.url = server.base_url() + path;
    req.timeout = 5s;
    return req;
  }

  test::test_server server;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(net_http_client_tests, fixture)

CAF_TEST(GET round trip) {
  net::http_client client;
  auto req = get("/echo?a=1&b=x%20y");
  req.headers.emplace_back("X-Extra", "42");
  auto res = client.send(req);
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->status, 200u);
  CAF_CHECK_EQUAL(res->content_type, "text/plain");
  CAF_CHECK_EQUAL(res->body, "GET|/echo?a=1&b=x%20y||127.0.0.1:" + std::to_string(server.port())
                               + "|wechat-hub/0.1|42|");
  bool has_length = false;
  for (auto& [name, value] : res->headers)
    if (name == "Content-Length")
      has_length = true;
  CAF_CHECK(has_length);
}

CAF_TEST(POST round trip) {
  net::http_client client{with_opt([](net::client_options& o) { o.user_agent = "ua-test"; })};
  auto req = get("/echo");
  req.method = "POST";
  req.body = R"({"k":"v"})";
  req.content_type = "application/json";
  auto res = client.send(req);
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->body, "POST|/echo|application/json|127.0.0.1:" + std::to_string(server.port())
                               + "|ua-test||{\"k\":\"v\"}");
}

CAF_TEST(non-2xx statuses are responses not errors) {
  net::http_client client;
  auto res = client.send(get("/status"));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->status, 503u);
  CAF_CHECK_EQUAL(res->content_type, "text/html");
}

CAF_TEST(keep-alive connections are reused) {
  net::http_client client;
  for (int i = 0; i < 5; ++i) {
    auto res = client.send(get("/ok"));
    CAF_REQUIRE(res);
  }
  CAF_CHECK_EQUAL(server.connections(), 1u);
  CAF_CHECK_EQUAL(server.requests(), 5u);
}

CAF_TEST(idle pool is bounded per host) {
  net::http_client client{with_opt([](net::client_options& o) { o.max_idle_per_host = 0; })};
  for (int i = 0; i < 3; ++i)
    CAF_REQUIRE(client.send(get("/ok")));
  CAF_CHECK_EQUAL(server.connections(), 3u);
}

CAF_TEST(idle pooled connections expire) {
  net::http_client client{with_opt([](net::client_options& o) { o.idle_timeout = 1s; })};
  auto start = std::chrono::steady_clock::now();
  CAF_REQUIRE(client.send(get("/ok")));
  // The client closes the idle connection after idle_timeout; the server
  // sees the close (an event, not a sleep).
  CAF_REQUIRE(server.wait_closed(1, 10s));
  CAF_CHECK(std::chrono::steady_clock::now() - start >= 900ms);
  CAF_REQUIRE(client.send(get("/ok")));
  CAF_CHECK_EQUAL(server.connections(), 2u);
}

CAF_TEST(a server that never answers times out within the deadline) {
  net::http_client client;
  auto req = get("/hang?access_token=TOPSECRET");
  req.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto res = client.send(req);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(reason(res.error()), "timeout");
  CAF_CHECK(elapsed >= 290ms);
  CAF_CHECK(elapsed < 3s);
  auto detail = detail_of(res.error());
  CAF_MESSAGE("timeout detail: " << detail);
  CAF_CHECK(detail.find("127.0.0.1") != std::string::npos);
  CAF_CHECK(detail.find("/hang") != std::string::npos);
  CAF_CHECK(detail.find("TOPSECRET") == std::string::npos);
  CAF_CHECK(detail.find("access_token") == std::string::npos);
}

CAF_TEST(connection refused is a transport failure without the query) {
  net::http_client client;
  net::request req;
  req.url = "http://127.0.0.1:" + std::to_string(test::unused_port())
            + "/cgi-bin/token?appid=wx1&secret=VERYSECRET";
  req.method = "POST";
  req.body = "BODYSECRET";
  auto res = client.send(req);
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(reason(res.error()), "transport_failure");
  auto detail = detail_of(res.error());
  CAF_MESSAGE("refused detail: " << detail);
  CAF_CHECK(detail.find("/cgi-bin/token") != std::string::npos);
  CAF_CHECK(detail.find("VERYSECRET") == std::string::npos);
  CAF_CHECK(detail.find("BODYSECRET") == std::string::npos);
  CAF_CHECK(detail.find("appid") == std::string::npos);
}

CAF_TEST(a dropped request is a transport failure) {
  net::http_client client;
  auto res = client.send(get("/drop?secret=S3"));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(reason(res.error()), "transport_failure");
  CAF_CHECK(detail_of(res.error()).find("S3") == std::string::npos);
}

CAF_TEST(a pooled connection closed by the server is retried for idempotent requests) {
  net::http_client client;
  // The server answers with keep-alive and then closes: the client pools a
  // dead connection every time.
  auto first = client.send(get("/close"));
  CAF_REQUIRE(first);
  CAF_CHECK_EQUAL(server.connections(), 1u);
  auto second = client.send(get("/close"));
  CAF_REQUIRE(second);
  CAF_CHECK_EQUAL(second->body, "closing");
  CAF_CHECK_EQUAL(server.connections(), 2u);
  CAF_CHECK_EQUAL(server.requests(), 2u);
  // Not idempotent: the stale connection's failure surfaces, no retry.
  auto req = get("/close");
  req.method = "POST";
  req.idempotent = false;
  auto third = client.send(req);
  CAF_REQUIRE(!third);
  CAF_CHECK_EQUAL(reason(third.error()), "transport_failure");
  CAF_CHECK_EQUAL(server.connections(), 2u);
}

CAF_TEST(bodies over the limit fail) {
  net::http_client client{with_opt([](net::client_options& o) { o.max_body_bytes = 1024; })};
  auto res = client.send(get("/big?token=XYZ"));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(reason(res.error()), "transport_failure");
  CAF_CHECK(detail_of(res.error()).find("exceeds") != std::string::npos);
  CAF_CHECK(detail_of(res.error()).find("XYZ") == std::string::npos);
  // Within the limit it works.
  net::http_client roomy{with_opt([](net::client_options& o) { o.max_body_bytes = 4096; })};
  auto ok = roomy.send(get("/big"));
  CAF_REQUIRE(ok);
  CAF_CHECK_EQUAL(ok->body.size(), 4096u);
}

CAF_TEST(invalid URLs fail on an io thread) {
  net::http_client client;
  std::promise<std::pair<bool, std::thread::id>> prom;
  net::request req;
  req.url = "ftp://example.com/x";
  client.async_send(req, [&](caf::expected<net::response> res) {
    prom.set_value({static_cast<bool>(res), std::this_thread::get_id()});
  });
  auto [ok, tid] = prom.get_future().get();
  CAF_CHECK(!ok);
  CAF_CHECK(tid != std::this_thread::get_id());
  req.url = "not a url";
  CAF_CHECK(!client.send(req));
}

CAF_TEST(concurrent requests complete exactly once) {
  constexpr int n = 200;
  std::vector<std::atomic<int>> calls(n);
  std::atomic<int> ok{0};
  std::mutex mtx;
  std::condition_variable cv;
  int completed = 0;
  auto main_thread = std::this_thread::get_id();
  std::atomic<bool> on_main{false};
  {
    net::http_client client{with_opt([](net::client_options& o) { o.io_threads = 2; })};
    for (int i = 0; i < n; ++i) {
      auto req = get(i % 10 == 0 ? "/echo" : "/ok");
      client.async_send(req, [&, i](caf::expected<net::response> res) {
        if (std::this_thread::get_id() == main_thread)
          on_main = true;
        if (res && res->status == 200)
          ++ok;
        ++calls[i];
        std::lock_guard guard{mtx};
        ++completed;
        cv.notify_all();
      });
    }
    std::unique_lock guard{mtx};
    cv.wait(guard, [&] { return completed == n; });
  } // client destroyed: no late second invocation may happen
  CAF_CHECK_EQUAL(ok.load(), n);
  CAF_CHECK(!on_main.load());
  int wrong = 0;
  for (auto& c : calls)
    if (c.load() != 1)
      ++wrong;
  CAF_CHECK_EQUAL(wrong, 0);
  CAF_CHECK_EQUAL(server.requests(), static_cast<size_t>(n));
}

CAF_TEST(shutdown completes pending requests with shutting_down) {
  net::http_client client;
  std::promise<caf::expected<net::response>> prom;
  auto req = get("/hang");
  req.timeout = 60s;
  client.async_send(req, [&](caf::expected<net::response> res) { prom.set_value(std::move(res)); });
  // Wait until the server has the request, so the exchange is mid-read.
  auto fut = prom.get_future();
  while (server.requests() == 0)
    std::this_thread::yield();
  client.shutdown();
  auto res = fut.get();
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(reason(res.error()), "shutting_down");
  auto late = client.send(get("/ok"));
  CAF_REQUIRE(!late);
  CAF_CHECK_EQUAL(reason(late.error()), "shutting_down");
}

CAF_TEST_FIXTURE_SCOPE_END()
