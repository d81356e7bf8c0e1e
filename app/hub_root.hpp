#pragma once

// The hub's composition root: the one place that knows every module and
// wires them (storage, actor system, cluster, definitions, HTTP front end).

#include <string>

#include "core/config.hpp"

namespace wh {

/// Process-level options that are not part of the TOML config.
struct hub_run_options {
  /// Written with the bound HTTP port once listening (tests use port 0).
  std::string port_file;
  /// The config file SIGHUP re-reads (empty: a reload is refused).
  std::string config_path;
};

/// Assembles and runs a hub in named steps (open storage, make the actor
/// system, start the cluster, load definitions, serve until a signal), then
/// drains and stops. SIGHUP reloads `opts.config_path` (see reload_config).
/// Under systemd (Type=notify) it reports READY once listening, RELOADING
/// and STOPPING. Returns the process exit code: 0 after a clean stop, 1 when
/// startup fails, 2 for a refused configuration.
int run_hub(const hub_config& cfg, const hub_run_options& opts);

/// The route table of the HTTP API, one line per route (wechat-hub --routes).
std::string hub_routes();

} // namespace wh
