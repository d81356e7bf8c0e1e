#pragma once

// The cluster membership object /healthz and GET /admin/cluster share
// (internal to http/'s .cpp files).

#include <boost/json.hpp>

#include "http/ports.hpp"

namespace wh::http {

/// {"node","state","live"} of a cluster node.
inline boost::json::object render_membership(const cluster_port::status& v) {
  boost::json::object obj;
  obj["node"] = v.self;
  obj["state"] = v.ready ? "ready" : "joining";
  boost::json::array live;
  for (auto& n : v.live)
    live.emplace_back(n);
  obj["live"] = std::move(live);
  return obj;
}

} // namespace wh::http
