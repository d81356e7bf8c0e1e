// Requests that arrive together, split, or with bodies: the session parses
// what is buffered without another read, and reads on only when it must.
#define CAF_SUITE http_server_parse

#include "caf/test/dsl.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/render.hpp"
#include "http/server.hpp"
#include "tests/support/raw_client.hpp"

using namespace std::chrono_literals;
using namespace wh;
using namespace wh::http;
using namespace wh::test;

namespace {

struct fixture {
  std::unique_ptr<server> srv;

  fixture() {
    server_options opts;
    opts.threads = 2;
    opts.request_timeout = 2s;
    srv = std::make_unique<server>(
      opts,
      [](request&& req, responder respond) {
        response res;
        res.body = "[" + req.method + " " + req.target + " " + req.body + "]";
        respond(std::move(res));
      },
      [](const caf::error& err) {
        response res;
        res.status = status_of(err);
        res.body = detail_of(err);
        return res;
      });
    CAF_REQUIRE(!srv->start());
  }

  ~fixture() { srv->stop(0ms); }

  /// Everything the server sends on `fd` until `expect` appears or 3 s pass.
  static std::string read_until(int fd, const std::string& expect) {
    std::string buf;
    auto until = std::chrono::steady_clock::now() + 3s;
    while (buf.find(expect) == std::string::npos && std::chrono::steady_clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0)
        continue;
      char chunk[4096];
      auto n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0)
        break;
      buf.append(chunk, static_cast<size_t>(n));
    }
    return buf;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(server_parse_tests, fixture)

CAF_TEST(pipelined requests with and without bodies in one segment are answered in order) {
  int fd = make_socket();
  connect_to(fd, srv->port());
  send_all(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
               "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
  auto got = read_until(fd, "[GET /c ]");
  auto a = got.find("[GET /a ]");
  auto b = got.find("[POST /b hello]");
  auto c = got.find("[GET /c ]");
  CAF_CHECK(a != std::string::npos);
  CAF_CHECK(b != std::string::npos);
  CAF_CHECK(c != std::string::npos);
  CAF_CHECK(a < b && b < c);
  ::close(fd);
}

CAF_TEST(a request split inside its header and its body is answered once whole) {
  int fd = make_socket();
  connect_to(fd, srv->port());
  // A first request, so the second one goes through the kept-alive path.
  send_all(fd, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
  CAF_CHECK(read_until(fd, "[GET /first ]").find("[GET /first ]") != std::string::npos);
  send_all(fd, "POST /split HTTP/1.1\r\nHo");
  std::this_thread::sleep_for(50ms); // the server sees an incomplete header
  send_all(fd, "st: x\r\nContent-Length: 6\r\n\r\nabc");
  std::this_thread::sleep_for(50ms); // ... and then an incomplete body
  send_all(fd, "def");
  auto got = read_until(fd, "[POST /split abcdef]");
  CAF_CHECK(got.find("[POST /split abcdef]") != std::string::npos);
  ::close(fd);
}

CAF_TEST(a malformed request that arrived whole is answered 400) {
  int fd = make_socket();
  connect_to(fd, srv->port());
  send_all(fd, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
  CAF_CHECK(read_until(fd, "[GET /first ]").find("[GET /first ]") != std::string::npos);
  send_all(fd, "GET /x HTTP/1.1\r\nHost x\r\n\r\n");
  auto got = read_until(fd, "HTTP/1.1 400");
  CAF_CHECK(got.find("HTTP/1.1 400") != std::string::npos);
  ::close(fd);
}

CAF_TEST_FIXTURE_SCOPE_END()
