#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

namespace wh {
class metrics;
}

namespace wh::actors {
class quota_book;
}

namespace wh::net {
class http_client;
}

namespace wh::actors {

/// Spawns the gateway to WeChat. Protocol: `(call_atom, upstream_call)` ->
/// `upstream_reply`, or `ec::upstream_unavailable` / `ec::timeout` when no
/// HTTP answer arrived. The HTTP exchange runs on the client's I/O threads;
/// the actor never blocks. Counts `wechat_upstream_calls_total{endpoint,errcode}`,
/// observes `wechat_upstream_call_duration_seconds{endpoint}` and records
/// every call in `quota` (when given) under the call's key.
caf::actor spawn_upstream_actor(caf::actor_system& sys, std::shared_ptr<net::http_client> http,
                                std::string api_base, std::chrono::milliseconds timeout,
                                metrics* stats, quota_book* quota = nullptr);

/// Extracts WeChat's errcode from a JSON body: 0 when absent, -2 when the body is not JSON.
int errcode_of(std::string_view body);

} // namespace wh::actors
