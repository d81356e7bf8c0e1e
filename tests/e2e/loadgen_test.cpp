#define CAF_SUITE e2e_loadgen

#include "caf/test/dsl.hpp"

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/loadgen/response_parser.hpp"
#include "http/auth.hpp"
#include "tests/e2e/hub_env.hpp"

// wh-loadgen (bench/loadgen), the open-loop load generator of scripts/bench:
// its response parser directly, then the binary over loopback against a toy
// server whose answers each test scripts, and against a TLS hub with a key.

using namespace wh;
using namespace wh::test;
using wh::bench::response_parser;

namespace {

// -- a toy HTTP/1.1 server ----------------------------------------------------

/// What the toy server does with request number n (0-based, over all connections).
struct behaviour {
  std::function<unsigned(int64_t)> status = [](int64_t) { return 200u; };
  std::function<int(int64_t)> delay_ms = [](int64_t) { return 0; };
  bool close_each = false;
};

/// Loopback server, one thread per connection, serving a fixed JSON body.
class toy_server {
public:
  explicit toy_server(behaviour b) : b_(std::move(b)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 64) != 0
        || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("toy server cannot listen");
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~toy_server() {
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(fd_);
    std::lock_guard guard{mtx_};
    for (auto c : conns_)
      ::shutdown(c, SHUT_RDWR);
    for (auto& t : workers_)
      t.join();
  }

  uint16_t port() const { return port_; }
  int64_t served() const { return next_.load(); }
  std::string url(const std::string& path = "/t") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

private:
  void accept_loop() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0)
        return;
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::lock_guard guard{mtx_};
      conns_.push_back(c);
      workers_.emplace_back([this, c] { serve(c); });
    }
  }

  void serve(int c) {
    std::string in;
    char buf[4096];
    for (;;) {
      auto end = in.find("\r\n\r\n");
      if (end == std::string::npos) {
        auto n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0)
          break;
        in.append(buf, static_cast<size_t>(n));
        continue;
      }
      in.erase(0, end + 4);
      auto n = next_++;
      if (auto ms = b_.delay_ms(n); ms > 0) // the injected server delay under test
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      auto status = b_.status(n);
      std::string body = R"({"access_token":"toy","expires_in":7200})";
      std::string head = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n"
                         + (b_.close_each ? "Connection: close\r\n" : "")
                         + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
      // Head and body in two writes, so that the client sees split responses too.
      if (::send(c, head.data(), head.size(), MSG_NOSIGNAL) < 0
          || ::send(c, body.data(), body.size(), MSG_NOSIGNAL) < 0 || b_.close_each)
        break;
    }
    ::shutdown(c, SHUT_RDWR);
  }

  behaviour b_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int64_t> next_{0};
  std::thread acceptor_;
  std::mutex mtx_;
  std::vector<int> conns_; // closed by the OS at exit; shut down on destruction
  std::vector<std::thread> workers_;
};

// -- running wh-loadgen ---------------------------------------------------------

struct loadgen_run {
  int code = -1;
  std::string out;
  std::map<std::string, double> figures;
  double operator[](const std::string& name) const {
    auto i = figures.find(name);
    if (i == figures.end())
      CAF_FAIL("wh-loadgen printed no '" << name << "':\n" << out);
    return i->second;
  }
};

loadgen_run loadgen(const temp_dir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), bin("wh-loadgen"));
  auto log = dir / "loadgen.out";
  std::remove(log.c_str());
  auto p = process::spawn(args, log);
  loadgen_run res;
  if (!p.wait_for(std::chrono::seconds(60), res.code))
    CAF_FAIL("wh-loadgen did not finish");
  res.out = read_file(log);
  std::istringstream lines{res.out};
  std::string name;
  double value = 0;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields{line};
    if (fields >> name >> value)
      res.figures[name] = value;
  }
  return res;
}

std::vector<std::string> rate_args(int rate, double duration, double warmup, int connections) {
  return {"--rate",   std::to_string(rate),   "--duration",    std::to_string(duration),
          "--warmup", std::to_string(warmup), "--connections", std::to_string(connections)};
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

} // namespace

// -- the response parser ------------------------------------------------------

CAF_TEST(the parser reads a response fed one byte at a time) {
  std::string resp = "HTTP/1.1 200 OK\r\ncontent-length:  5\r\nX-A: b\r\n\r\nhelloHTTP/1.1";
  response_parser p;
  size_t used = 0;
  size_t total = 0;
  auto st = response_parser::state::need_more;
  while (st == response_parser::state::need_more && total < resp.size()) {
    st = p.feed(std::string_view{resp}.substr(total, 1), used);
    total += used;
  }
  CAF_CHECK(st == response_parser::state::done);
  CAF_CHECK_EQUAL(total, resp.size() - 8); // the next response's bytes are not taken
  CAF_CHECK_EQUAL(p.status(), 200u);
  CAF_CHECK_EQUAL(p.content_length(), 5u);
  CAF_CHECK(p.keep_alive());
  p.reset();
  CAF_CHECK(p.feed("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", used) == response_parser::state::done);
  CAF_CHECK_EQUAL(p.status(), 503u);
}

CAF_TEST(the parser knows when the server closes) {
  response_parser p;
  size_t used = 0;
  CAF_CHECK(p.feed("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok", used)
            == response_parser::state::done);
  CAF_CHECK(!p.keep_alive());
  p.reset();
  CAF_CHECK(p.feed("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", used) == response_parser::state::done);
  CAF_CHECK(!p.keep_alive());
  p.reset();
  CAF_CHECK(p.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", used)
            == response_parser::state::done);
  CAF_CHECK(p.keep_alive());
}

CAF_TEST(the parser rejects what it cannot frame) {
  auto error_of = [](const std::string& text) {
    response_parser p;
    size_t used = 0;
    auto st = p.feed(text, used);
    return st == response_parser::state::error ? p.error() : std::string{"(no error)"};
  };
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                  "Transfer-Encoding responses are not supported (need Content-Length)");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 200 OK\r\n\r\n"), "response without Content-Length");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 204 No Content\r\n\r\n"), "(no error)");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"), "bad Content-Length");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
                  "conflicting Content-Length headers");
  CAF_CHECK_EQUAL(error_of("SSH-2.0-OpenSSH\r\n\r\n"), "bad status line");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 2x0 OK\r\n\r\n"), "bad status code");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"), "bad header line");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 100 Continue\r\n\r\n"), "interim (1xx) responses are not supported");
  CAF_CHECK_EQUAL(error_of("HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a')),
                  "response head larger than 64 KiB");
}

// -- the binary -----------------------------------------------------------------

CAF_TEST(wh-loadgen sends rate times duration requests and records only the measured ones) {
  temp_dir dir;
  toy_server server{behaviour{}};
  auto run = loadgen(dir, rate_args(400, 0.5, 0.25, 4) + std::vector<std::string>{server.url()});
  CAF_REQUIRE_EQUAL(run.code, 0);
  CAF_CHECK_EQUAL(run["target_rate"], 400);
  CAF_CHECK_EQUAL(run["requests"], 200);
  CAF_CHECK_EQUAL(run["completed"], 200);
  CAF_CHECK_EQUAL(run["errors"], 0);
  CAF_CHECK_EQUAL(run["reconnects"], 0);
  CAF_CHECK_EQUAL(server.served(), 300); // 100 warm-up requests went out too
  // Open loop: never faster than asked.
  CAF_CHECK_LESS_OR_EQUAL(run["achieved_rate"], 400 * 1.01);
  CAF_CHECK_GREATER(run["achieved_rate"], 100);
  CAF_CHECK_LESS_OR_EQUAL(run["p50_ms"], run["p90_ms"]);
  CAF_CHECK_LESS_OR_EQUAL(run["p90_ms"], run["p99_ms"]);
  CAF_CHECK_LESS_OR_EQUAL(run["p99_ms"], run["p99.9_ms"]);
  CAF_CHECK_LESS_OR_EQUAL(run["p99.9_ms"], run["max_ms"]);
}

CAF_TEST(a server stall counts for every request due behind it) {
  // One connection at 200/s: request 50 takes 300 ms, so the ~60 requests due
  // meanwhile wait for it. Timed from their intended send times they took
  // up to 300 ms; timed from when they were actually sent (coordinated
  // omission, as closed-loop tools do), only request 50 would be slow.
  temp_dir dir;
  behaviour b;
  b.delay_ms = [](int64_t n) { return n == 50 ? 300 : 0; };
  toy_server server{b};
  auto run = loadgen(dir, rate_args(200, 1, 0, 1) + std::vector<std::string>{server.url()});
  CAF_REQUIRE_EQUAL(run.code, 0);
  CAF_CHECK_EQUAL(run["completed"], 200);
  CAF_CHECK_EQUAL(run["errors"], 0);
  CAF_CHECK_GREATER_OR_EQUAL(run["max_ms"], 300);
  CAF_CHECK_GREATER(run["p90_ms"], 100);
  CAF_CHECK_LESS(run["p50_ms"], run["p90_ms"]);
}

CAF_TEST(with a tick requests go out in batches and their wait counts) {
  // 400/s with a 50 ms tick: about 20 requests per batch, each due up to
  // 50 ms before its batch went out. The wait counts (latency runs from the
  // due time), so the median is about 25 ms against a server that answers at
  // once; without the tick it is well under a millisecond.
  temp_dir dir;
  toy_server server{behaviour{}};
  auto run = loadgen(dir, rate_args(400, 1, 0, 64) + std::vector<std::string>{"--tick", "50000", server.url()});
  CAF_REQUIRE_EQUAL(run.code, 0);
  CAF_CHECK_EQUAL(run["completed"], 400);
  CAF_CHECK_EQUAL(run["errors"], 0);
  CAF_CHECK_GREATER(run["p50_ms"], 10);
  CAF_CHECK_GREATER_OR_EQUAL(run["max_ms"], 40);
  auto plain = loadgen(dir, rate_args(400, 1, 0, 64) + std::vector<std::string>{server.url()});
  CAF_REQUIRE_EQUAL(plain.code, 0);
  CAF_CHECK_LESS(plain["p50_ms"], 10);
}

CAF_TEST(answers other than 200 are errors and not latencies) {
  temp_dir dir;
  behaviour b;
  b.status = [](int64_t n) { return n % 10 == 9 ? 503u : 200u; };
  toy_server server{b};
  auto run = loadgen(dir, rate_args(400, 0.5, 0, 4) + std::vector<std::string>{server.url()});
  CAF_REQUIRE_EQUAL(run.code, 0);
  CAF_CHECK_EQUAL(run["requests"], 200);
  CAF_CHECK_EQUAL(run["completed"], 180);
  CAF_CHECK_EQUAL(run["errors_status"], 20);
  CAF_CHECK_EQUAL(run["errors"], 20);
  CAF_CHECK(run.out.find("20 responses were not 200 (first: 503)") != std::string::npos);
}

CAF_TEST(a connection the server closes is opened again) {
  temp_dir dir;
  behaviour b;
  b.close_each = true;
  toy_server server{b};
  auto run = loadgen(dir, rate_args(200, 0.5, 0, 2) + std::vector<std::string>{server.url()});
  CAF_REQUIRE_EQUAL(run.code, 0);
  CAF_CHECK_EQUAL(run["completed"], 100);
  CAF_CHECK_EQUAL(run["errors"], 0);
  CAF_CHECK_GREATER_OR_EQUAL(run["reconnects"], 100);
  CAF_CHECK_EQUAL(server.served(), 100);
}

CAF_TEST(bad usage and an unreachable server fail clearly) {
  temp_dir dir;
  auto no_rate = loadgen(dir, {"http://127.0.0.1:1/"});
  CAF_CHECK_EQUAL(no_rate.code, 2);
  CAF_CHECK(no_rate.out.find("--rate is required") != std::string::npos);
  auto bad_scheme = loadgen(dir, {"--rate", "10", "ftp://127.0.0.1/"});
  CAF_CHECK_EQUAL(bad_scheme.code, 2);
  uint16_t closed_port = 0;
  {
    toy_server gone{behaviour{}};
    closed_port = gone.port();
  }
  auto refused = loadgen(dir, {"--rate", "10", "--timeout", "2",
                               "http://127.0.0.1:" + std::to_string(closed_port) + "/"});
  CAF_CHECK_EQUAL(refused.code, 1);
  CAF_CHECK(refused.out.find("cannot connect: Connection refused") != std::string::npos);
}

CAF_TEST(https with a client key against the hub) {
  hub_env env;
  auto certs = env.dir / "certs";
  auto made = process::spawn({std::string{WH_TEST_DATA_DIR} + "/../../scripts/dev-certs", certs},
                             env.dir / "certs.log");
  int code = -1;
  CAF_REQUIRE(made.wait_for(std::chrono::seconds(30), code));
  CAF_REQUIRE_EQUAL(code, 0);
  auto key = http::generate_client_key();
  env.start_hub("[hub.tls]\ncert = \"" + certs + "/server.crt\"\nkey = \"" + certs + "/server.key\"\n"
                + "[[client]]\nname = \"bench\"\nkey_sha256 = \"" + http::sha256_hex(key)
                + "\"\nscopes = [\"wxe2e\"]\n");
  auto url = "https://127.0.0.1:" + std::to_string(env.hub_port) + "/client/access_token?appid=wxe2e";
  auto tls = std::vector<std::string>{"--cacert", certs + "/ca.crt"};
  auto good = loadgen(env.dir, rate_args(200, 0.5, 0.2, 4) + tls
                                 + std::vector<std::string>{"--header", "Authorization: Bearer " + key, url});
  CAF_REQUIRE_EQUAL(good.code, 0);
  CAF_CHECK_EQUAL(good["completed"], 100);
  CAF_CHECK_EQUAL(good["errors"], 0);
  auto wrong = loadgen(env.dir, rate_args(200, 0.5, 0, 4) + tls
                                  + std::vector<std::string>{"--header", "Authorization: Bearer nope", url});
  CAF_REQUIRE_EQUAL(wrong.code, 0);
  CAF_CHECK_EQUAL(wrong["completed"], 0);
  CAF_CHECK_EQUAL(wrong["errors_status"], 100);
  CAF_CHECK(wrong.out.find("(first: 401)") != std::string::npos);
  // Without --cacert the dev CA is unknown: the handshake fails and says why.
  auto untrusted = loadgen(env.dir, rate_args(10, 0.1, 0, 1) + std::vector<std::string>{url});
  CAF_CHECK_EQUAL(untrusted.code, 1);
  CAF_CHECK(untrusted.out.find("certificate verify failed") != std::string::npos);
  // One upstream call for all of it: the hub served its cached token.
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
}
