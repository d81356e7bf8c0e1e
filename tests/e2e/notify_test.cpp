#define CAF_SUITE e2e_notify

#include "caf/test/dsl.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

/// The service manager's side of sd_notify: a unix datagram socket the test owns.
class notify_socket {
public:
  explicit notify_socket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CAF_REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    CAF_REQUIRE_LESS(path.size(), sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    CAF_REQUIRE_EQUAL(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ~notify_socket() { ::close(fd_); }

  /// The next datagram, or "" after `timeout`.
  std::string next(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1)
      return {};
    char buf[4096];
    auto n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string{};
  }

  const std::string& path() const { return path_; }

private:
  std::string path_;
  int fd_ = -1;
};

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
bool listening(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

struct fixture {
  hub_env env;

  /// Starts the hub with NOTIFY_SOCKET = `socket_path`, without waiting for it.
  void spawn_hub(const std::string& socket_path) {
    write_file(env.dir / "hub.toml", "[hub]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"" + (env.dir / "data")
                                       + "\"\n[wechat]\napi_base = \"http://127.0.0.1:"
                                       + std::to_string(env.sim_port) + "\"\n"
                                       + "[[app]]\nappid = \"wxe2e\"\nsecret = \"e2e-secret-value\"\n");
    ::setenv("NOTIFY_SOCKET", socket_path.c_str(), 1);
    env.hub_proc = process::spawn({bin("wechat-hub"), "--config", env.dir / "hub.toml", "--port-file",
                                   env.dir / "hub.port"},
                                  env.dir / "hub.log");
    ::unsetenv("NOTIFY_SOCKET");
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(notify_tests, fixture)

CAF_TEST(ready arrives once the port listens then reloading and stopping) {
  notify_socket sock{env.dir / "notify.sock"};
  spawn_hub(sock.path());
  auto ready = sock.next();
  // At the moment READY=1 arrives the port is bound, written and accepting.
  auto port_text = read_file(env.dir / "hub.port");
  CAF_REQUIRE_NOT_EQUAL(ready.find("READY=1"), std::string::npos);
  CAF_REQUIRE(!port_text.empty());
  auto port = static_cast<uint16_t>(std::stoi(port_text));
  CAF_CHECK(listening(port));
  CAF_CHECK_NOT_EQUAL(ready.find("STATUS=listening on port " + std::to_string(port)), std::string::npos);
  env.hub_port = port;
  CAF_CHECK_EQUAL(env.hub("GET", "/healthz").status, 200u);
  // systemctl reload: RELOADING=1 (with the timestamp systemd 253+ wants), then READY=1.
  env.hub_proc.signal(SIGHUP);
  auto reloading = sock.next();
  CAF_CHECK_NOT_EQUAL(reloading.find("RELOADING=1"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(reloading.find("MONOTONIC_USEC="), std::string::npos);
  CAF_CHECK_NOT_EQUAL(sock.next().find("READY=1"), std::string::npos);
  CAF_CHECK_EQUAL(env.hub("GET", "/healthz").status, 200u);
  // systemctl stop: STOPPING=1 before the drain, then a clean exit.
  env.hub_proc.signal(SIGTERM);
  CAF_CHECK_NOT_EQUAL(sock.next().find("STOPPING=1"), std::string::npos);
  int code = -1;
  CAF_REQUIRE(env.hub_proc.wait_for(std::chrono::seconds(15), code));
  CAF_CHECK_EQUAL(code, 0);
  CAF_CHECK_EQUAL(sock.next(std::chrono::milliseconds(100)), "");
}

CAF_TEST(a hub whose notify socket is gone still serves) {
  spawn_hub(env.dir / "no-such.sock");
  env.hub_port = wait_for_port(env.dir / "hub.port", env.hub_proc);
  CAF_REQUIRE_NOT_EQUAL(env.hub_port, 0u);
  CAF_CHECK_EQUAL(env.hub("GET", "/healthz").status, 200u);
  CAF_CHECK_NOT_EQUAL(env.hub_log().find("sd_notify failed"), std::string::npos);
  CAF_CHECK_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
}

CAF_TEST_FIXTURE_SCOPE_END()
