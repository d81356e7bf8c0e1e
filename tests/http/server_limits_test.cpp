// The front end under exhausted resources and hostile pacing: out of file
// descriptors, many connections from one peer, a trickled request on a
// kept-alive connection, a large body for the import route only.
#define CAF_SUITE http_server_limits

#include "caf/test/dsl.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/fd_limit.hpp"
#include "http/render.hpp"
#include "http/server.hpp"
#include "tests/support/raw_client.hpp"
#include "tests/support/temp_dir.hpp"

using namespace std::chrono_literals;
using namespace wh;
using namespace wh::http;
using clk = std::chrono::steady_clock;
using namespace wh::test;

namespace {

std::string get_request(const std::string& path = "/") {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
}

struct fixture {
  server_options opts;
  std::unique_ptr<server> srv;

  fixture() {
    opts.threads = 1;
    opts.request_timeout = 2s;
    opts.idle_timeout = 20s;
  }

  uint16_t start() {
    srv = std::make_unique<server>(
      opts,
      [](request&& req, responder respond) {
        response res;
        res.body = std::to_string(req.body.size());
        respond(std::move(res));
      },
      [](const caf::error& err) {
        response res;
        res.status = status_of(err);
        res.body = detail_of(err);
        return res;
      });
    if (auto err = srv->start())
      CAF_FAIL("server start failed");
    return srv->port();
  }

  ~fixture() {
    if (srv)
      srv->stop(0ms);
  }
};

/// CPU seconds this process has used.
double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

size_t count_lines(const std::string& path, const std::string& needle) {
  size_t n = 0;
  if (auto* f = std::fopen(path.c_str(), "r")) {
    char line[4096];
    while (std::fgets(line, sizeof(line), f) != nullptr)
      n += std::strstr(line, needle.c_str()) != nullptr ? 1 : 0;
    std::fclose(f);
  }
  return n;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(server_limits_tests, fixture)

CAF_TEST(out of file descriptors the accept loop backs off and logs with a count) {
#ifdef WH_UBSAN
  CAF_MESSAGE("skipped under UBSan: its vptr check calls pipe(), which fails while this test "
              "holds every descriptor, and reports a false 'invalid vptr'");
  return;
#endif
  opts.max_connections = 10'000;
  auto port = start();
  test::temp_dir dir;
  auto log_path = dir / "stderr.log";
  // Capture the server's log lines (it writes to stderr).
  std::fflush(stderr);
  int saved_stderr = ::dup(2);
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(log_fd, 2);
  ::close(log_fd);
  std::vector<int> clients;
  for (int i = 0; i < 40; ++i)
    clients.push_back(make_socket());
  // Now exhaust the descriptor table: lower the soft limit and fill every
  // free slot below it, so each accept fails with EMFILE.
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  int highest = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
    highest = std::max(highest, std::stoi(e.path().filename().string()));
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(highest + 1);
  ::setrlimit(RLIMIT_NOFILE, &low);
  std::vector<int> fillers;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY)) >= 0;)
    fillers.push_back(fd);
  // The connections complete in the kernel's backlog; the server cannot take them.
  for (int fd : clients)
    connect_to(fd, port);
  auto cpu_before = cpu_seconds();
  std::this_thread::sleep_for(1500ms);
  auto cpu_used = cpu_seconds() - cpu_before;
  // Free the descriptors: the server must serve again within 2 s.
  for (int fd : fillers)
    ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &saved);
  auto freed = clk::now();
  send_all(clients[0], get_request());
  auto status = read_status(clients[0], 3s);
  auto waited = clk::now() - freed;
  std::fflush(stderr);
  ::dup2(saved_stderr, 2);
  ::close(saved_stderr);
  auto lines = count_lines(log_path, "accept failed");
  CAF_MESSAGE("CPU while out of descriptors: " << cpu_used << " s; log lines: " << lines
                                               << "; served again after "
                                               << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                                               << " ms");
  CAF_CHECK_LESS(cpu_used, 0.3);
  CAF_CHECK_GREATER_OR_EQUAL(lines, 1u);
  CAF_CHECK_LESS_OR_EQUAL(lines, 2u);
  CAF_CHECK_EQUAL(status, 200u);
  CAF_CHECK_LESS(waited, 2s);
  // Every connection that waited in the backlog is served.
  for (size_t i = 1; i < clients.size(); ++i) {
    send_all(clients[i], get_request());
    CAF_CHECK_EQUAL(read_status(clients[i], 3s), 200u);
  }
  for (int fd : clients)
    ::close(fd);
}

CAF_TEST(the per-peer cap refuses one address beyond it and no other) {
  opts.max_connections_per_peer = 2;
  auto port = start();
  std::vector<int> mine;
  for (int i = 0; i < 3; ++i) {
    mine.push_back(make_socket());
    connect_to(mine.back(), port);
    std::this_thread::sleep_for(50ms); // accepted in this order
  }
  for (int i = 0; i < 2; ++i) {
    send_all(mine[static_cast<size_t>(i)], get_request());
    CAF_CHECK_EQUAL(read_status(mine[static_cast<size_t>(i)], 3s), 200u);
  }
  send_all(mine[2], get_request());
  CAF_CHECK_EQUAL(read_status(mine[2], 3s), 0u);
  // Another peer address is not affected.
  int other = make_socket("127.0.0.2");
  connect_to(other, port);
  send_all(other, get_request());
  CAF_CHECK_EQUAL(read_status(other, 3s), 200u);
  ::close(other);
  // A closed connection frees its slot.
  ::close(mine[0]);
  unsigned status = 0;
  for (auto until = clk::now() + 2s; status != 200 && clk::now() < until;) {
    int fd = make_socket();
    connect_to(fd, port);
    send_all(fd, get_request());
    status = read_status(fd, 1s);
    ::close(fd);
  }
  CAF_CHECK_EQUAL(status, 200u);
  ::close(mine[1]);
  ::close(mine[2]);
}

CAF_TEST(a trickled request on a kept-alive connection is cut at the request deadline) {
  opts.request_timeout = 1s;
  opts.idle_timeout = 20s;
  auto port = start();
  int fd = make_socket();
  connect_to(fd, port);
  send_all(fd, get_request());
  CAF_REQUIRE_EQUAL(read_status(fd, 3s), 200u);
  // Idle (no byte yet) longer than the request deadline: still open.
  std::this_thread::sleep_for(1500ms);
  send_all(fd, get_request());
  CAF_REQUIRE_EQUAL(read_status(fd, 3s), 200u);
  // Now one byte per second: the connection must close about 1 s after the
  // first byte, not after the 20 s idle timeout.
  auto req = get_request() + std::string(64, ' ');
  auto first = clk::now();
  bool closed = false;
  for (size_t i = 0; i < req.size() && !closed && clk::now() - first < 8s; ++i) {
    if (::send(fd, &req[i], 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) > 0) {
      char c;
      closed = ::recv(fd, &c, 1, 0) <= 0;
    }
  }
  auto held = clk::now() - first;
  CAF_MESSAGE("trickled request held for "
              << std::chrono::duration_cast<std::chrono::milliseconds>(held).count() << " ms");
  CAF_CHECK(closed);
  CAF_CHECK_LESS(held, 3s);
  ::close(fd);
}

CAF_TEST(the import route has its own body limit) {
  opts.max_body_bytes = 64 * 1024;
  opts.body_limit_for = [](std::string_view method, std::string_view target) -> uint32_t {
    return is_import_route(method, target) ? 1024 * 1024 : 64 * 1024;
  };
  auto port = start();
  std::string body(200 * 1024, 'x');
  auto post = [&](const std::string& path) {
    int fd = make_socket();
    connect_to(fd, port);
    send_all(fd, "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size())
                   + "\r\n\r\n" + body);
    auto status = read_status(fd, 3s);
    ::close(fd);
    return status;
  };
  CAF_CHECK_EQUAL(post("/admin/components/wxcomp/authorizers"), 200u);
  CAF_CHECK_EQUAL(post("/admin/components/wxcomp/authorizers/wxa"), 413u);
  CAF_CHECK_EQUAL(post("/client/access_token"), 413u);
}

CAF_TEST_FIXTURE_SCOPE_END()

