#pragma once

// A three-node hub, a real etcd and wechat-sim, with a cuttable TCP proxy
// (tests/support/tcp_proxy.hpp) on every link that a partition cuts:
// - node i reaches etcd through etcd_px[i] (its `[cluster] etcd`);
// - the other nodes reach node i's CAF endpoint through peer_px[i] (what
//   node i registers in etcd: `[cluster] advertise`).
// partition(k) cuts node k off from etcd and from both peers (its own
// proxy, and its connections through theirs); heal() restores every link.

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "caf/test/dsl.hpp"

#include "tests/e2e/cluster_env.hpp"
#include "tests/support/etcd.hpp"
#include "tests/support/tcp_proxy.hpp"

// CAF 0.17's CAF_REQUIRE aborts the whole binary: these end only the test.
#define WH_CHECK_WHY(cond, msg)                                                                    \
  do {                                                                                             \
    bool wh_ok_ = static_cast<bool>(cond);                                                         \
    if (!wh_ok_)                                                                                   \
      CAF_TEST_PRINT_ERROR(#cond << ": " << msg);                                                  \
    CAF_CHECK(wh_ok_);                                                                             \
  } while (false)

#define WH_REQUIRE_WHY(cond, msg)                                                                  \
  do {                                                                                             \
    bool wh_ok_ = static_cast<bool>(cond);                                                         \
    if (!wh_ok_)                                                                                   \
      CAF_TEST_PRINT_ERROR(#cond << ": " << msg);                                                  \
    CAF_CHECK(wh_ok_);                                                                             \
    if (!wh_ok_)                                                                                   \
      return;                                                                                      \
  } while (false)

namespace wh::test {

/// A client-visible error ("<status N ...>") or nothing.
inline bool is_error(const std::string& token) {
  return token.empty() || token.front() == '<';
}

/// Polls `pred` every 50 ms until it holds or `timeout` passed.
template <class Pred>
bool eventually(std::chrono::milliseconds timeout, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

struct partition_env {
  partition_env();
  ~partition_env();

  /// Starts etcd, the proxies and the three nodes (with `o`'s apps and
  /// component); false when etcd is not installed (test skipped) or does
  /// not start (test failed).
  bool up(cluster_options o);

  /// Cuts node `k` off from etcd and from the other nodes: connections are
  /// reset, or with `drop` held open with nothing passing (a firewall
  /// dropping packets).
  void partition(std::size_t k, bool drop = false);
  /// Restores every link.
  void heal();

  temp_dir etcd_dir;
  etcd_server server;
  std::vector<std::unique_ptr<tcp_proxy>> etcd_px;
  std::vector<std::unique_ptr<tcp_proxy>> peer_px;
  std::unique_ptr<cluster_env> env;
};

} // namespace wh::test
