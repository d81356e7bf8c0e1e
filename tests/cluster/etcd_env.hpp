#pragma once

// A real etcd on loopback for the etcd suites: one per test, in a fresh
// temp directory, with an http_client and an etcd_client pointed at it.

#include <chrono>
#include <memory>
#include <thread>

#include "caf/test/dsl.hpp"

#include "cluster/etcd_client.hpp"
#include "net/http_client.hpp"
#include "tests/support/etcd.hpp"
#include "tests/support/temp_dir.hpp"

namespace wh::test {

/// Polls `pred` every 10 ms until it holds or `timeout` passes. For waits on
/// a real etcd (lease expiry is etcd's own timer), not for actor timing.
template <class Pred>
bool eventually(std::chrono::milliseconds timeout, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

struct etcd_env {
  etcd_env() : server_(dir_ / "data", dir_ / "etcd.log") {
  }

  ~etcd_env() {
    client_.reset();
    http_.shutdown();
  }

  /// Starts etcd on first use; false (after saying why) when etcd is not
  /// installed. Fails the test when it is installed but does not start.
  bool up() {
    if (client_)
      return true;
    if (etcd_server::binary().empty()) {
      CAF_MESSAGE("SKIPPED: the etcd binary is not installed (scripts/setup installs "
                  "etcd-server)");
      return false;
    }
    if (!server_.start()) {
      CAF_FAIL("cannot start etcd: " << server_.error() << "\n" << read_file(dir_ / "etcd.log"));
      return false;
    }
    client_ = std::make_unique<cluster::etcd_client>(
      http_, cluster::etcd_options{{server_.endpoint()}, std::chrono::milliseconds(500)});
    return true;
  }

  etcd_server& etcd() { return server_; }
  net::http_client& http() { return http_; }
  cluster::etcd_client& client() { return *client_; }
  const temp_dir& dir() const { return dir_; }

private:
  static net::client_options two_io_threads() {
    net::client_options opts;
    opts.io_threads = 2;
    return opts;
  }

  temp_dir dir_;
  etcd_server server_;
  net::http_client http_{two_io_threads()};
  std::unique_ptr<cluster::etcd_client> client_;
};

} // namespace wh::test
