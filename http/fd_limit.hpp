#pragma once

// File descriptors: the process limit, and the share of it the front end may
// spend on client connections.

#include <cstdint>

#include "core/config.hpp"
#include "http/server.hpp"

namespace wh::http {

/// How the descriptor limit is split.
struct fd_budget {
  /// Soft RLIMIT_NOFILE before and after raising it to the hard limit.
  uint64_t soft_before = 0;
  uint64_t limit = 0;
  /// Descriptors kept for everything but client connections: RocksDB's
  /// table files, logs, upstream calls, cluster links, the process itself.
  uint64_t reserve = 0;
  /// Client connections the server accepts at most.
  uint64_t max_connections = 0;
  /// The limit is so low that the reserve had to shrink.
  bool low = false;
};

/// The split of `limit` descriptors for a hub with `cluster_peers` peers;
/// at most `wanted` connections. Pure, for tests.
fd_budget plan_fd_budget(uint64_t limit, std::size_t cluster_peers, uint64_t wanted);

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the split.
fd_budget raise_fd_limit(std::size_t cluster_peers, uint64_t wanted);

/// Applies the hub's connection limits to `opts`: raises the descriptor
/// limit, caps connections below it (logging the effective cap), the
/// per-peer cap, and the body limit of the admin bulk-import route.
void apply_limits(server_options& opts, const hub_config& cfg);

/// Whether `method target` is the bulk import (POST /admin/components/{C}/authorizers).
bool is_import_route(std::string_view method, std::string_view target);

} // namespace wh::http
