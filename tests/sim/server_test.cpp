#define CAF_SUITE sim_server

#include "caf/test/dsl.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

#include "core/clock.hpp"
#include "sim/server.hpp"
#include "sim/service.hpp"
#include "tests/sim/sim_test_util.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/push.hpp"

using namespace wh;
using namespace wh::sim;
using namespace wh::sim::test;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

using response = http::response<http::string_body>;

/// A tiny blocking keep-alive client: one connection, many requests.
struct client {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;

  explicit client(uint16_t port) {
    stream.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), port});
    stream.expires_after(std::chrono::seconds{10});
  }

  void send(http::verb verb, const std::string& target, const std::string& body = {}) {
    beast::error_code ec;
    send(verb, target, body, ec);
    if (ec)
      throw beast::system_error{ec};
  }

  void send(http::verb verb, const std::string& target, const std::string& body,
            beast::error_code& ec) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req, ec);
  }

  response receive() {
    response res;
    http::read(stream, buffer, res);
    return res;
  }

  response call(http::verb verb, const std::string& target, const std::string& body = {}) {
    send(verb, target, body);
    return receive();
  }

  boost::json::object json(http::verb verb, const std::string& target,
                           const std::string& body = {}) {
    auto res = call(verb, target, body);
    CAF_REQUIRE_EQUAL(res.result_int(), 200u);
    return boost::json::parse(res.body()).as_object();
  }
};

/// Accepts `n` connections, answers each request "success" and hands the
/// requests over through a promise.
struct push_receiver {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  std::promise<http::request<http::string_body>> got;
  std::thread thread;

  uint16_t port() const { return acceptor.local_endpoint().port(); }

  void start() {
    thread = std::thread([this] {
      try {
        tcp::socket sock{ioc};
        acceptor.accept(sock);
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::read(sock, buf, req);
        response res{http::status::ok, 11};
        res.body() = "success";
        res.prepare_payload();
        http::write(sock, res);
        got.set_value(std::move(req));
      } catch (...) {
        got.set_exception(std::current_exception());
      }
    });
  }

  ~push_receiver() {
    if (thread.joinable())
      thread.join();
  }
};

/// Accepts connections until destroyed, answers each request "success" and
/// records the requests; waiters block on a condition variable.
struct push_collector {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<http::request<http::string_body>> got;
  std::atomic<bool> stopping{false};
  std::thread thread{[this] { run(); }};

  uint16_t port() const { return acceptor.local_endpoint().port(); }

  void run() {
    while (!stopping) {
      try {
        tcp::socket sock{ioc};
        acceptor.accept(sock);
        if (stopping)
          return;
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::read(sock, buf, req);
        response res{http::status::ok, 11};
        res.body() = "success";
        res.prepare_payload();
        http::write(sock, res);
        std::lock_guard guard{mtx};
        got.push_back(std::move(req));
        cv.notify_all();
      } catch (...) {
        // A broken connection is the pusher's problem, not the receiver's.
      }
    }
  }

  /// Waits until `n` requests arrived; false after a generous timeout.
  bool wait_for(std::size_t n) {
    std::unique_lock guard{mtx};
    return cv.wait_for(guard, std::chrono::seconds{30}, [&] { return got.size() >= n; });
  }

  ~push_collector() {
    stopping = true;
    // Wake the blocking accept with a throwaway connection.
    try {
      asio::io_context wake_ioc;
      tcp::socket wake{wake_ioc};
      wake.connect(acceptor.local_endpoint());
    } catch (...) {
    }
    thread.join();
  }
};

service_options make_options() {
  service_options opts;
  opts.apps = {{"wx1", "s1"}};
  opts.components = {{"wxcomp", "csecret", "ctoken", test_aes_key}};
  return opts;
}

struct fixture {
  system_clock clk;
  service svc{clk, make_options()};
  server srv{svc, server_options{"127.0.0.1", 0, 1, false, false}};
  uint16_t port = 0;
  std::thread io;

  fixture() {
    std::string error;
    port = srv.start(error);
    CAF_REQUIRE_NOT_EQUAL(port, 0u);
    io = std::thread([this] { srv.run(); });
  }

  ~fixture() {
    srv.stop();
    io.join();
  }
};

std::map<std::string, std::string> query_of(std::string_view target) {
  std::map<std::string, std::string> out;
  auto u = boost::urls::parse_origin_form(target);
  if (u)
    for (auto p : u->params())
      out[p.key] = p.value;
  return out;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(sim_server_tests, fixture)

CAF_TEST(keep alive connection serves many requests) {
  client c{port};
  auto a = c.json(http::verb::get, "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1");
  auto token = str(a, "access_token");
  CAF_REQUIRE(!token.empty());
  for (int i = 0; i < 50; ++i) {
    auto t = c.json(http::verb::get, "/cgi-bin/ticket/getticket?access_token=" + token + "&type=jsapi");
    CAF_CHECK_EQUAL(code(t), 0);
  }
  auto stats = c.json(http::verb::get, "/sim/stats");
  CAF_CHECK_EQUAL(num(stats, "total"), 51);
  auto res = c.call(http::verb::get, "/nowhere");
  CAF_CHECK_EQUAL(res.result_int(), 404u);
  CAF_CHECK_EQUAL(code(boost::json::parse(res.body()).as_object()), -1);
  // Still usable after a 404.
  CAF_CHECK_EQUAL(code(c.json(http::verb::get, "/sim/time")), 0);
}

CAF_TEST(drop fault closes the connection) {
  client c{port};
  c.json(http::verb::post, "/sim/fault", R"({"path":"/cgi-bin/token","kind":"drop"})");
  c.send(http::verb::get, "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1");
  response res;
  beast::error_code ec;
  http::read(c.stream, c.buffer, res, ec);
  CAF_CHECK(ec);
  client c2{port};
  auto a = c2.json(http::verb::get, "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1");
  CAF_CHECK(!str(a, "access_token").empty());
}

CAF_TEST(latency fault does not block other connections) {
  client ctl{port};
  ctl.json(http::verb::post, "/sim/fault",
           R"({"path":"/cgi-bin/token","kind":"latency","latency_ms":400})");
  client slow{port};
  auto start = std::chrono::steady_clock::now();
  slow.send(http::verb::get, "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1");
  // The single I/O thread must still answer others while the timer runs.
  CAF_CHECK_EQUAL(code(ctl.json(http::verb::get, "/sim/time")), 0);
  auto fast = std::chrono::steady_clock::now() - start;
  auto res = slow.receive();
  auto total = std::chrono::steady_clock::now() - start;
  CAF_CHECK_EQUAL(res.result_int(), 200u);
  CAF_CHECK(fast < std::chrono::milliseconds{400});
  CAF_CHECK(total >= std::chrono::milliseconds{400});
}

CAF_TEST(oversized and malformed requests) {
  client c{port};
  // The server answers 413 and closes before the body is fully sent, so the
  // write may fail with a broken pipe; the answer is still readable.
  beast::error_code ec;
  c.send(http::verb::post, "/cgi-bin/stable_token", std::string(2 * 1024 * 1024, 'x'), ec);
  auto res = c.receive();
  CAF_CHECK_EQUAL(res.result_int(), 413u);
  client c2{port};
  asio::write(c2.stream.socket(), asio::buffer(std::string{"GARBAGE / HTTP/9.9\r\n\r\n"}));
  response bad;
  http::read(c2.stream, c2.buffer, bad, ec);
  CAF_CHECK(ec || bad.result_int() == 400u);
  // The server is still alive.
  client c3{port};
  CAF_CHECK_EQUAL(code(c3.json(http::verb::get, "/sim/time")), 0);
}

CAF_TEST(sim push delivers an encrypted event) {
  push_receiver rx;
  rx.start();
  client c{port};
  auto url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/wechat/component/wxcomp/events";
  auto res = c.json(http::verb::post, "/sim/push",
                    R"({"component_appid":"wxcomp","info_type":"component_verify_ticket","url":")"
                      + url + R"("})");
  CAF_CHECK_EQUAL(num(res, "status"), 200);
  CAF_CHECK_EQUAL(str(res, "body"), "success");
  auto ticket = str(res, "ticket");
  CAF_REQUIRE(!ticket.empty());
  auto req = rx.got.get_future().get();
  CAF_CHECK_EQUAL(req.method(), http::verb::post);
  auto q = query_of(req.target());
  CAF_CHECK_EQUAL(q["encrypt_type"], "aes");
  auto crypto = wechat::msg_crypto::make(test_aes_key, "ctoken", "wxcomp");
  CAF_REQUIRE(crypto);
  auto ev = wechat::open_push(*crypto, req.body(), q["timestamp"], q["nonce"], q["msg_signature"]);
  CAF_REQUIRE(ev);
  CAF_CHECK_EQUAL(ev->component_verify_ticket, ticket);
}

CAF_TEST(push to a dead url reports status zero) {
  client c{port};
  // Port 1 on loopback refuses connections.
  auto res = c.json(http::verb::post, "/sim/push",
                    R"({"component_appid":"wxcomp","url":"http://127.0.0.1:1/x"})");
  CAF_CHECK_EQUAL(num(res, "status"), 0);
  CAF_CHECK(!str(res, "error").empty());
  CAF_CHECK(!str(res, "ticket").empty());
}

CAF_TEST(start push ticket pushes to the registered url) {
  push_receiver rx;
  rx.start();
  client c{port};
  auto url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/wechat/component/wxcomp/events";
  c.json(http::verb::post, "/sim/register_push",
         R"({"component_appid":"wxcomp","url":")" + url + R"("})");
  auto a = c.json(http::verb::post, "/cgi-bin/component/api_start_push_ticket",
                  R"({"component_appid":"wxcomp","component_secret":"csecret"})");
  CAF_CHECK_EQUAL(code(a), 0);
  auto req = rx.got.get_future().get();
  auto q = query_of(req.target());
  auto crypto = wechat::msg_crypto::make(test_aes_key, "ctoken", "wxcomp");
  auto ev = wechat::open_push(*crypto, req.body(), q["timestamp"], q["nonce"], q["msg_signature"]);
  CAF_REQUIRE(ev);
  auto tok = c.json(http::verb::post, "/cgi-bin/component/api_component_token",
                    R"({"component_appid":"wxcomp","component_appsecret":"csecret","component_verify_ticket":")"
                      + ev->component_verify_ticket + R"("})");
  CAF_CHECK(!str(tok, "component_access_token").empty());
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST(periodic pusher delivers fresh verify tickets on start and every interval) {
  push_collector rx;
  system_clock clk;
  auto opts = make_options();
  auto url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/wechat/component/wxcomp/events";
  opts.push_urls = {{"wxcomp", url}};
  service svc{clk, opts};
  server_options srv_opts{"127.0.0.1", 0, 1, false, false};
  srv_opts.push_interval_s = 1;
  srv_opts.push_on_start = true;
  server srv{svc, srv_opts};
  std::string error;
  auto port = srv.start(error);
  CAF_REQUIRE_NOT_EQUAL(port, 0u);
  std::thread io{[&] { srv.run(); }};
  // One push at start plus at least two ticks.
  bool arrived = rx.wait_for(3);
  srv.stop();
  io.join();
  CAF_REQUIRE(arrived);
  auto crypto = wechat::msg_crypto::make(test_aes_key, "ctoken", "wxcomp");
  CAF_REQUIRE(crypto);
  std::set<std::string> tickets;
  std::vector<http::request<http::string_body>> got;
  {
    std::lock_guard guard{rx.mtx};
    got = rx.got;
  }
  for (auto& req : got) {
    CAF_CHECK_EQUAL(req.target().substr(0, 32), "/wechat/component/wxcomp/events?");
    auto q = query_of(req.target());
    auto ev = wechat::open_push(*crypto, req.body(), q["timestamp"], q["nonce"],
                                q["msg_signature"]);
    CAF_REQUIRE(ev);
    CAF_CHECK_EQUAL(ev->info_type, "component_verify_ticket");
    tickets.insert(ev->component_verify_ticket);
    // Every pushed ticket buys a component token.
    auto tok = svc.sim().component_token("wxcomp", "csecret", ev->component_verify_ticket);
    CAF_CHECK_EQUAL(code(tok), 0);
  }
  CAF_CHECK_EQUAL(tickets.size(), got.size());
}

CAF_TEST(pusher stays quiet when switched off) {
  push_collector rx;
  system_clock clk;
  auto opts = make_options();
  auto url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/x";
  opts.push_urls = {{"wxcomp", url}};
  service svc{clk, opts};
  server_options srv_opts{"127.0.0.1", 0, 1, false, false};
  srv_opts.push_interval_s = 0;
  srv_opts.push_on_start = false;
  server srv{svc, srv_opts};
  std::string error;
  auto port = srv.start(error);
  CAF_REQUIRE_NOT_EQUAL(port, 0u);
  std::thread io{[&] { srv.run(); }};
  // A start push would have connected before this request was even read,
  // and the collector serves connections in order, so once the explicit
  // push is confirmed it would already be recorded.
  client c{port};
  auto res = c.json(http::verb::post, "/sim/push", R"({"component_appid":"wxcomp"})");
  CAF_CHECK_EQUAL(num(res, "status"), 200);
  srv.stop();
  io.join();
  std::lock_guard guard{rx.mtx};
  CAF_CHECK_EQUAL(rx.got.size(), 1u);
}
