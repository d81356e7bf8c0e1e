#define CAF_SUITE e2e_hub_lifecycle

#include "caf/test/dsl.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

/// Sends raw bytes on a fresh connection and returns whatever comes back
/// until the hub closes the connection.
std::string raw_exchange(uint16_t port, const std::string& bytes, bool half_close = true) {
  asio::io_context ioc;
  tcp::socket sock{ioc};
  sock.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), port});
  asio::write(sock, asio::buffer(bytes));
  if (half_close)
    sock.shutdown(tcp::socket::shutdown_send);
  std::string out;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    auto n = sock.read_some(asio::buffer(buf), ec);
    if (ec)
      break;
    out.append(buf, n);
  }
  return out;
}

std::string token_of(hub_env& env, const std::string& appid) {
  auto res = env.hub("GET", "/client/access_token?appid=" + appid);
  if (res.status != 200)
    return "<status " + std::to_string(res.status) + ">";
  return std::string{parse_object(res.body).at("access_token").as_string()};
}

} // namespace

CAF_TEST(two hundred concurrent cold reads make one upstream call) {
  hub_env env;
  env.start_hub();
  std::mutex mtx;
  std::condition_variable cv;
  std::set<std::string> tokens;
  int done = 0;
  int ok = 0;
  for (int i = 0; i < 200; ++i) {
    net::request req;
    req.url = env.hub_url() + "/client/access_token?appid=wxe2e";
    req.timeout = std::chrono::seconds(20);
    env.client.async_send(std::move(req), [&](caf::expected<net::response> res) {
      std::lock_guard<std::mutex> guard{mtx};
      if (res && res->status == 200) {
        ++ok;
        tokens.insert(std::string{parse_object(res->body).at("access_token").as_string()});
      }
      ++done;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait_for(guard, std::chrono::seconds(60), [&] { return done == 200; });
  }
  CAF_CHECK_EQUAL(done, 200);
  CAF_CHECK_EQUAL(ok, 200);
  CAF_CHECK_EQUAL(tokens.size(), 1u);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
}

CAF_TEST(kill -9 and restart serves the same token with zero upstream calls) {
  hub_env env;
  env.start_hub();
  auto token = token_of(env, "wxe2e");
  auto classic = token_of(env, "wxother");
  auto ticket = parse_object(env.hub("GET", "/client/ticket?appid=wxe2e&type=jsapi").body);
  env.sim("POST", "/sim/reset");
  env.kill_hub();
  env.start_hub();
  CAF_CHECK_EQUAL(token_of(env, "wxe2e"), token);
  CAF_CHECK_EQUAL(token_of(env, "wxother"), classic);
  auto ticket2 = parse_object(env.hub("GET", "/client/ticket?appid=wxe2e&type=jsapi").body);
  CAF_CHECK_EQUAL(ticket2.at("ticket").as_string(), ticket.at("ticket").as_string());
  CAF_CHECK_EQUAL(ticket2.at("timestamp").as_int64(), ticket.at("timestamp").as_int64());
  CAF_CHECK_EQUAL(parse_object(env.sim("GET", "/sim/stats").body).at("total").as_int64(), 0);
}

CAF_TEST(sigterm drains and exits 0 within 10 s) {
  hub_env env;
  env.start_hub();
  CAF_CHECK_EQUAL(env.hub("GET", "/healthz").status, 200u); // leaves a keep-alive connection open
  auto start = std::chrono::steady_clock::now();
  CAF_CHECK_EQUAL(env.stop_hub(std::chrono::seconds(10)), 0);
  CAF_CHECK_LESS(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  CAF_CHECK(env.hub_log().find("stopped") != std::string::npos);
}

CAF_TEST(malformed input never crashes or hangs the hub) {
  hub_env env;
  env.start_hub();
  auto garbage = raw_exchange(env.hub_port, std::string("\x16\x03\x01\x02\x00\xff\xfe garbage\r\n\r\n", 22));
  CAF_CHECK(garbage.rfind("HTTP/1.1 400", 0) == 0);
  auto bad_line = raw_exchange(env.hub_port, "GET /client/access_token?appid=wxe2e HTTP/9.9\r\n\r\n");
  CAF_CHECK(bad_line.rfind("HTTP/1.1 400", 0) == 0 || bad_line.empty());
  // Half-sent request: the hub's request deadline (2 s here) closes it.
  auto start = std::chrono::steady_clock::now();
  auto half = raw_exchange(env.hub_port,
                           "POST /refresh/access_token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"appid\"",
                           false);
  CAF_CHECK_LESS(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  CAF_CHECK(half.find("200 OK") == std::string::npos);
  // A huge header is refused, not buffered.
  auto huge = raw_exchange(env.hub_port, "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a')
                                           + "\r\n\r\n");
  CAF_CHECK(huge.rfind("HTTP/1.1 431", 0) == 0);
  // Pipelined requests on one connection are answered in order.
  auto piped = raw_exchange(env.hub_port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                          "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto first = piped.find("HTTP/1.1 200");
  auto second = piped.find("HTTP/1.1 404");
  CAF_CHECK(first != std::string::npos && second != std::string::npos && first < second);
  // Random bytes.
  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < 8192; ++i) {
    x = x * 1103515245 + 12345;
    noise += static_cast<char>(x >> 16);
  }
  raw_exchange(env.hub_port, noise);
  // Still alive and serving.
  CAF_CHECK_EQUAL(env.hub("GET", "/healthz").status, 200u);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxe2e").status, 200u);
}

CAF_TEST(invalid configs exit non-zero naming file and key) {
  temp_dir dir;
  auto check = [&](const std::string& text, const std::string& expect) {
    write_file(dir / "bad.toml", text);
    auto p = process::spawn({bin("wechat-hub"), "--config", dir / "bad.toml"}, dir / "out.log");
    int code = 0;
    CAF_REQUIRE(p.wait_for(std::chrono::seconds(10), code));
    CAF_CHECK_EQUAL(code, 2);
    auto out = read_file(dir / "out.log");
    CAF_CHECK(out.find(expect) != std::string::npos);
    std::remove((dir / "out.log").c_str());
  };
  check("[hub]\nlisten = 5\n", dir / "bad.toml" + ": hub.listen: expected a string");
  check("[[app]]\nappid = \"a\"\nsecret = \"x\"\n[[app]]\nappid = \"a\"\nsecret = \"y\"\n",
        "app[1].appid: duplicate appid");
  check("[[app]]\nappid = \"a\"\n", "app[0].secret: missing required key");
  auto p = process::spawn({bin("wechat-hub"), "--config", dir / "missing.toml"}, dir / "out.log");
  int code = 0;
  CAF_REQUIRE(p.wait_for(std::chrono::seconds(10), code));
  CAF_CHECK_EQUAL(code, 2);
  CAF_CHECK(read_file(dir / "out.log").find("missing.toml: cannot read file") != std::string::npos);
}
