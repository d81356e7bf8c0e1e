#pragma once

#include <string>

#include "core/config.hpp"

namespace wh {
class metrics;
} // namespace wh
namespace wh::actors {
class registry;
} // namespace wh::actors
namespace wh::http {
class hub_api;
} // namespace wh::http

namespace wh {

/// Whether `host` is a loopback address ("localhost", "::1", 127.0.0.0/8).
bool is_loopback_host(const std::string& host);

/// Declares wechat_hub_config_reloads_total (rendered at 0 before the first reload).
void describe_reload_metrics(metrics& stats);

/// SIGHUP: re-reads the config file at `path` and applies what a running hub
/// can change: client keys and scopes (from the next request on), apps and
/// components (unchanged keys keep their actors and tokens), log level and
/// format. An invalid file is logged as "FILE: KEY: PROBLEM" and changes
/// nothing. Settings bound at startup (listen, data_dir, TLS, cluster, ...)
/// are logged as needing a restart. `running` is the file config in force and
/// is updated. Counts wechat_hub_config_reloads_total{result="ok"|"invalid"|
/// "partial"}. Returns whether the file was applied.
bool reload_config(const std::string& path, hub_config& running, actors::registry& reg,
                   http::hub_api& api, metrics& stats);

} // namespace wh
