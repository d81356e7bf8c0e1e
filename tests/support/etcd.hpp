#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "tests/support/process.hpp"

namespace wh::test {

/// A single-member etcd on loopback, started as a child process with its
/// data in `data_dir`. Raft timing is shortened (heartbeat 50 ms, election
/// 500 ms) so that etcd accepts lease TTLs of 1 s. Stopping and starting
/// again keeps the data directory and the ports (an outage, then recovery).
class etcd_server {
public:
  /// The etcd binary on PATH, or "" when etcd is not installed.
  static std::string binary();

  etcd_server(std::string data_dir, std::string log_path);

  /// Starts etcd and waits until it serves requests; false (with the reason
  /// in `error()`) if it does not come up within `timeout`.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  /// Kills etcd (SIGKILL: an outage, not a shutdown).
  void stop();

  bool running() { return proc_.running(); }

  /// "http://127.0.0.1:<client port>".
  std::string endpoint() const;

  const std::string& error() const { return error_; }

private:
  bool spawn_and_wait(std::chrono::milliseconds timeout);

  std::string data_dir_;
  std::string log_path_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  std::string error_;
  process proc_;
};

} // namespace wh::test
