#include "tests/support/etcd.hpp"

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/http_client.hpp"

namespace wh::test {

namespace {

/// A loopback port that was free a moment ago (bind to 0, read, close).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0
      && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

} // namespace

std::string etcd_server::binary() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs{path ? path : "/usr/bin:/bin"};
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    auto candidate = std::filesystem::path{dir} / "etcd";
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate.string();
  }
  return {};
}

etcd_server::etcd_server(std::string data_dir, std::string log_path)
  : data_dir_(std::move(data_dir)), log_path_(std::move(log_path)) {
}

std::string etcd_server::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(client_port_);
}

bool etcd_server::start(std::chrono::milliseconds timeout) {
  if (client_port_ != 0)
    return spawn_and_wait(timeout); // a restart keeps its ports
  // A port picked now may be taken before etcd binds it: try fresh ones.
  for (int attempt = 0; attempt < 3; ++attempt) {
    client_port_ = free_port();
    peer_port_ = free_port();
    if (client_port_ != 0 && peer_port_ != 0 && client_port_ != peer_port_
        && spawn_and_wait(timeout))
      return true;
  }
  return false;
}

bool etcd_server::spawn_and_wait(std::chrono::milliseconds timeout) {
  auto bin = binary();
  if (bin.empty()) {
    error_ = "etcd is not installed";
    return false;
  }
  auto client = endpoint();
  auto peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  proc_ = process::spawn({bin, "--name", "wh-test", "--data-dir", data_dir_,
                          "--listen-client-urls", client, "--advertise-client-urls", client,
                          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                          "--initial-cluster", "wh-test=" + peer, "--heartbeat-interval", "50",
                          "--election-timeout", "500", "--logger", "zap", "--log-level", "warn",
                          "--log-outputs", "stderr"},
                         log_path_);
  net::http_client http;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int code = 0;
    if (proc_.wait_for(std::chrono::milliseconds(0), code)) {
      error_ = "etcd exited with " + std::to_string(code) + " (log: " + log_path_ + ")";
      return false;
    }
    net::request req;
    req.url = client + "/health";
    req.timeout = std::chrono::milliseconds(500);
    if (auto res = http.send(req); res && res->status == 200
                                   && res->body.find("\"true\"") != std::string::npos)
      return true;
    // Polling a child's readiness; nothing under test is ordered by it.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  proc_.kill_now();
  error_ = "etcd did not become healthy in time (log: " + log_path_ + ")";
  return false;
}

void etcd_server::stop() {
  proc_.kill_now();
}

} // namespace wh::test
