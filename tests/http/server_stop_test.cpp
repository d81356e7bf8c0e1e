// Stopping the server frees it: nothing the io_context still queued (a
// session waiting for its next request, a pending accept) keeps it alive.
#define CAF_SUITE http_server_stop

#include "caf/test/dsl.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

#include "http/render.hpp"
#include "http/server.hpp"
#include "tests/support/raw_client.hpp"

using namespace std::chrono_literals;
using namespace wh;
using namespace wh::http;
using namespace wh::test;

namespace {

/// A server whose handler holds `sentinel`: the handler lives exactly as
/// long as the server's internals.
std::unique_ptr<server> make_server(const std::shared_ptr<int>& sentinel) {
  server_options opts;
  opts.threads = 2;
  opts.idle_timeout = 30s;
  auto srv = std::make_unique<server>(
    opts,
    [sentinel](request&&, responder respond) {
      response res;
      res.body = "ok";
      respond(std::move(res));
    },
    [](const caf::error& err) {
      response res;
      res.status = status_of(err);
      res.body = detail_of(err);
      return res;
    });
  CAF_REQUIRE(!srv->start());
  return srv;
}

} // namespace

CAF_TEST(a stopped server with idle keep-alive connections is freed) {
  auto sentinel = std::make_shared<int>(0);
  auto srv = make_server(sentinel);
  CAF_CHECK_EQUAL(sentinel.use_count(), 2);
  // Two kept-alive connections, each waiting for its next request, and one
  // connection that never sent anything.
  int a = make_socket();
  int b = make_socket();
  int c = make_socket();
  for (int fd : {a, b})
    connect_to(fd, srv->port());
  connect_to(c, srv->port());
  for (int fd : {a, b}) {
    send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CAF_CHECK_EQUAL(read_status(fd, 3s), 200u);
  }
  srv->stop(0ms);
  srv.reset();
  CAF_CHECK_EQUAL(sentinel.use_count(), 1);
  for (int fd : {a, b, c})
    ::close(fd);
}

CAF_TEST(a server stopped with no connection is freed) {
  auto sentinel = std::make_shared<int>(0);
  make_server(sentinel).reset();
  CAF_CHECK_EQUAL(sentinel.use_count(), 1);
}
