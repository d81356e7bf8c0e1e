#include "http/fd_limit.hpp"

#include <algorithm>

#include <sys/resource.h>

#include "core/log.hpp"

namespace wh::http {

namespace {

/// stdio, epoll and eventfds, the listener, the audit log, CAF's own.
constexpr uint64_t process_fds = 64;
/// RocksDB: max_open_files (persistence/rocksdb_store.cpp) plus WAL,
/// MANIFEST, LOG, LOCK and compaction outputs.
constexpr uint64_t rocksdb_fds = 256 + 32;
/// Concurrent upstream HTTPS calls and their keep-alive pool.
constexpr uint64_t upstream_fds = 128;
/// CAF middleman connections per cluster peer (both directions, retries).
constexpr uint64_t fds_per_peer = 8;

} // namespace

fd_budget plan_fd_budget(uint64_t limit, std::size_t cluster_peers, uint64_t wanted) {
  fd_budget b;
  b.limit = limit;
  b.reserve = process_fds + rocksdb_fds + upstream_fds + fds_per_peer * cluster_peers;
  // A tiny limit still serves: connections get a quarter, the rest is kept.
  if (b.reserve > limit - limit / 4) {
    b.low = true;
    b.reserve = limit - limit / 4;
  }
  b.max_connections = std::min(wanted, limit - b.reserve);
  return b;
}

fd_budget raise_fd_limit(std::size_t cluster_peers, uint64_t wanted) {
  rlimit rl{};
  uint64_t soft = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    soft = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
      rlimit raised = rl;
      raised.rlim_cur = rl.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
        rl = raised;
    }
  }
  // RLIM_INFINITY cannot be used as a count; the kernel caps at nr_open anyway.
  uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? uint64_t{1} << 20 : rl.rlim_cur;
  auto b = plan_fd_budget(limit, cluster_peers, wanted);
  b.soft_before = soft;
  return b;
}

bool is_import_route(std::string_view method, std::string_view target) {
  static constexpr std::string_view base = "/admin/components/";
  static constexpr std::string_view tail = "/authorizers";
  if (method != "POST" || target.substr(0, base.size()) != base)
    return false;
  auto path = target.substr(0, target.find('?'));
  auto comp = path.substr(base.size());
  return comp.size() > tail.size() && comp.substr(comp.size() - tail.size()) == tail
         && comp.substr(0, comp.size() - tail.size()).find('/') == std::string_view::npos;
}

void apply_limits(server_options& opts, const hub_config& cfg) {
  auto b = raise_fd_limit(cfg.cluster.peers.size(), opts.max_connections);
  opts.max_connections = b.max_connections;
  opts.max_connections_per_peer = cfg.max_connections_per_peer;
  opts.body_limit_for = [small = cfg.max_body_bytes, large = cfg.max_import_body_bytes](
                          std::string_view method, std::string_view target) {
    return is_import_route(method, target) ? std::max(small, large) : small;
  };
  if (b.low)
    WH_WARN("http", "file descriptor limit " << b.limit << " is low: at most " << b.max_connections
                                             << " connections, " << b.reserve
                                             << " descriptors kept for storage and upstream calls; "
                                                "raise it (LimitNOFILE=, ulimit -n)");
  WH_INFO("http", "accepting at most " << b.max_connections << " connections"
                                       << (cfg.max_connections_per_peer > 0
                                             ? ", " + std::to_string(cfg.max_connections_per_peer)
                                                 + " per peer address"
                                             : std::string{})
                                       << " (file descriptor limit " << b.limit
                                       << (b.limit != b.soft_before
                                             ? " raised from " + std::to_string(b.soft_before)
                                             : std::string{})
                                       << ", " << b.reserve << " reserved)");
}

} // namespace wh::http
