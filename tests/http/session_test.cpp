#define CAF_SUITE http_session

// The server's session over beast::test::stream: keep-alive, pipelining and
// the limits, without sockets or timers (the ioc is polled until idle).

#include "caf/test/dsl.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/_experimental/test/stream.hpp>

#include "http/render.hpp"
#include "http/session.hpp"

using namespace wh;
using namespace wh::http;
using namespace std::string_literals;

namespace wh::http {

/// The test stream has no socket and no deadline: closing stands for both
/// the half-close and the close of a socket.
template <>
struct stream_ops<beast::test::stream> {
  static void expires_after(beast::test::stream&, std::chrono::steady_clock::duration) {}
  static void shutdown_send(beast::test::stream& s) { s.close(); }
  static void close(beast::test::stream& s) { s.close(); }
  static std::size_t write_now(beast::test::stream& s, asio::const_buffer b, beast::error_code& ec) {
    return s.write_some(b, ec);
  }
  static std::optional<asio::ip::address> remote_address(beast::test::stream&) {
    return asio::ip::make_address("127.0.0.1");
  }
};

} // namespace wh::http

namespace {

struct test_host : session_host {
  int closed = 0;
  void session_closed(const session_base*, const std::optional<asio::ip::address>&) override { ++closed; }
};

struct fixture {
  asio::io_context ioc;
  std::shared_ptr<test_host> host = std::make_shared<test_host>();
  beast::test::stream client{ioc};
  std::vector<request> seen;

  fixture() {
    host->opts.max_body_bytes = 16;
    host->opts.max_header_bytes = 256;
    host->handle = [this](request&& req, responder respond) {
      seen.push_back(req);
      response res;
      res.body = "ok " + req.method + " " + req.target + " " + req.body;
      respond(std::move(res));
    };
    host->render_error = [](const caf::error& err) { return error_response(err); };
    beast::test::stream server{ioc};
    server.connect(client);
    std::make_shared<session<beast::test::stream>>(host, std::nullopt, std::move(server))->run();
  }

  /// Sends `bytes`, runs every ready handler, and returns what came back.
  std::string exchange(const std::string& bytes) {
    if (!bytes.empty())
      asio::write(client, asio::buffer(bytes));
    pump();
    std::string out{client.str()};
    client.clear();
    return out;
  }

  void pump() {
    for (int round = 0; round < 10'000; ++round) {
      ioc.restart();
      if (ioc.poll() == 0)
        return;
    }
    CAF_FAIL("the session keeps running handlers");
  }

  static size_t count(const std::string& haystack, const std::string& needle) {
    size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1))
      ++n;
    return n;
  }
};

const std::string get_a = "GET /a HTTP/1.1\r\nHost: hub\r\n\r\n";
const std::string get_b = "GET /b HTTP/1.1\r\nHost: hub\r\n\r\n";

} // namespace

CAF_TEST_FIXTURE_SCOPE(session_tests, fixture)

CAF_TEST(keep alive serves pipelined and later requests on one connection) {
  auto out = exchange(get_a + get_b);
  CAF_CHECK_EQUAL(count(out, "HTTP/1.1 200 OK"), 2u);
  CAF_CHECK(out.find("ok GET /a") < out.find("ok GET /b"));
  CAF_CHECK_EQUAL(count(out, "Connection: close"), 0u);
  CAF_CHECK_EQUAL(host->closed, 0);
  out = exchange("POST /c HTTP/1.1\r\nHost: hub\r\nContent-Length: 5\r\n\r\nhello");
  CAF_CHECK(out.find("ok POST /c hello") != std::string::npos);
  CAF_CHECK_EQUAL(seen.size(), 3u);
  CAF_CHECK(seen[0].loopback);
  CAF_CHECK_EQUAL(host->closed, 0);
  // The client leaves: the session ends.
  client.close();
  pump();
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST(connection close and http 1.0 end the connection after the answer) {
  auto out = exchange("GET /a HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n" + get_b);
  CAF_CHECK_EQUAL(count(out, "HTTP/1.1 200 OK"), 1u);
  CAF_CHECK(out.find("Connection: close") != std::string::npos);
  CAF_CHECK_EQUAL(seen.size(), 1u); // the pipelined second request is not served
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST(http 1.0 without keep alive closes) {
  auto out = exchange("GET /a HTTP/1.0\r\n\r\n");
  CAF_CHECK(out.find("200 OK") != std::string::npos);
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST(a body over the limit is 413 and closes without reaching the handler) {
  auto out = exchange("POST /x HTTP/1.1\r\nHost: hub\r\nContent-Length: 17\r\n\r\n" + std::string(17, 'b'));
  CAF_CHECK(out.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0);
  CAF_CHECK(out.find("Connection: close") != std::string::npos);
  CAF_CHECK(out.find(R"({"errcode":null,"message":"request body exceeds 16 bytes",)"
                     R"("reason":"body_too_large","http_status":413})")
            != std::string::npos);
  CAF_CHECK(seen.empty());
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST(a chunked body over the limit is 413 too) {
  auto out = exchange("POST /x HTTP/1.1\r\nHost: hub\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "11\r\n" + std::string(17, 'b') + "\r\n0\r\n\r\n");
  CAF_CHECK(out.rfind("HTTP/1.1 413", 0) == 0);
  CAF_CHECK(seen.empty());
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST(a route may raise the body limit) {
  host->opts.body_limit_for = [](std::string_view method, std::string_view target) {
    return method == "POST" && target == "/big" ? 64u : 16u;
  };
  auto out = exchange("POST /big HTTP/1.1\r\nHost: hub\r\nContent-Length: 40\r\n\r\n" + std::string(40, 'b'));
  CAF_CHECK(out.rfind("HTTP/1.1 200 OK", 0) == 0);
  CAF_CHECK_EQUAL(host->closed, 0);
  out = exchange("POST /small HTTP/1.1\r\nHost: hub\r\nContent-Length: 40\r\n\r\n" + std::string(40, 'b'));
  CAF_CHECK(out.rfind("HTTP/1.1 413", 0) == 0);
}

CAF_TEST(headers over the limit are 431 and close) {
  auto out = exchange("GET /a HTTP/1.1\r\nHost: hub\r\nX-Big: " + std::string(300, 'h') + "\r\n\r\n");
  CAF_CHECK(out.rfind("HTTP/1.1 431", 0) == 0);
  CAF_CHECK(out.find(R"("reason":"headers_too_large","http_status":431})") != std::string::npos);
  CAF_CHECK(seen.empty());
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST(a malformed request is 400 and closes) {
  auto out = exchange("GET /a HTTP/9.9\r\n\r\n");
  CAF_CHECK(out.rfind("HTTP/1.1 400", 0) == 0);
  CAF_CHECK(out.find(R"("message":"malformed HTTP request","reason":"invalid_request")") != std::string::npos);
  CAF_CHECK(seen.empty());
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST(draining answers the request in flight and closes) {
  host->draining = true;
  auto out = exchange(get_a);
  CAF_CHECK(out.rfind("HTTP/1.1 200 OK", 0) == 0);
  CAF_CHECK(out.find("Connection: close") != std::string::npos);
  CAF_CHECK_EQUAL(host->closed, 1);
}


CAF_TEST(the cached get path answers in order and declines to the handler) {
  // Answers GETs of /hot itself; declines everything else.
  int hot = 0;
  host->opts.cached_get = [&hot](const cached_get_request& req, std::string& out) {
    if (req.target != "/hot")
      return false;
    ++hot;
    std::string body = "hot " + std::to_string(hot) + " " + std::string{req.authorization};
    out += "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return true;
  };
  // 200 pipelined hot requests in one segment, then a declined one: in
  // order, each once.
  std::string burst;
  for (int i = 0; i < 200; ++i)
    burst += "GET /hot HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer k\r\n\r\n";
  auto out = exchange(burst + get_a);
  CAF_CHECK_EQUAL(hot, 200);
  CAF_CHECK_EQUAL(count(out, "HTTP/1.1 200 OK"), 201u);
  CAF_CHECK(out.find("hot 1 Bearer k") < out.find("hot 200 Bearer k"));
  CAF_CHECK(out.find("hot 200 Bearer k") < out.find("ok GET /a"));
  CAF_REQUIRE_EQUAL(seen.size(), 1u);
  CAF_CHECK_EQUAL(seen[0].target, "/a");
  // Not on the hot path: HTTP/1.0, Connection: close, a body, another method.
  exchange("POST /hot HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\n\r\nhi");
  exchange("GET /hot HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\n\r\nhi");
  CAF_CHECK_EQUAL(hot, 200);
  CAF_CHECK_EQUAL(seen.size(), 3u);
  out = exchange("GET /hot HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n");
  CAF_CHECK_EQUAL(hot, 200);
  CAF_CHECK(out.find("Connection: close") != std::string::npos);
  CAF_CHECK_EQUAL(host->closed, 1);
}

CAF_TEST_FIXTURE_SCOPE_END()
