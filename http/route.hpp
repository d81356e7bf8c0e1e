#pragma once

// The route table's vocabulary: what a route needs (its scope), how a path
// pattern matches, and the lookup that turns an unknown path into
// ec::not_found and a known path with the wrong method into
// ec::method_not_allowed.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "caf/error.hpp"

namespace wh::http {

class hub_api;
struct exchange;

/// Path parameters captured by a pattern, in pattern order.
using path_args = std::vector<std::string>;

/// Who may call a route.
enum class scope : uint8_t {
  /// Anyone (health checks, WeChat's pushes; pushes are signed instead).
  open,
  /// A client key once [[client]]s exist; the key's scopes are checked
  /// against the appid the request names.
  client,
  /// An admin key once [[client]]s exist, else loopback peers only.
  admin,
};

/// "open", "client" or "admin".
const char* to_string(scope x);

/// Handles one routed request (parse -> execute -> render).
using route_handler = void (hub_api::*)(exchange&);

/// Validates a route's path parameters (a malformed appid, an unknown
/// component) before its method is: a path that names no resource is
/// answered as such whatever the method.
using route_check = caf::error (hub_api::*)(const path_args&) const;

/// One entry of the route table.
struct route {
  std::string_view method;
  /// Literal segments and `{name}` (one segment, possibly empty); a last
  /// `{name...}` takes the rest of the path, slashes included.
  std::string_view pattern;
  scope need;
  route_handler handler;
  /// The `route` label of wechat_hub_http_requests_total and
  /// wechat_hub_http_request_duration_seconds.
  std::string_view label;
  /// Runs before the method check and the handler (nullptr: none).
  route_check check;
};

/// Whether `path` matches `pattern`; fills `out` with the captures.
bool match_path(std::string_view pattern, std::string_view path, path_args& out);

/// The outcome of a lookup: `index` of the route that serves the request
/// (or, for a 405, the first route of that path, and its captures); `npos`
/// when no route has the path. `err` is ec::not_found or ec::method_not_allowed (Allow:
/// the path's methods in table order, HEAD implied by GET).
struct route_match {
  static constexpr size_t npos = static_cast<size_t>(-1);
  size_t index = npos;
  path_args args;
  caf::error err;
};

/// Looks `method` `path` up in `table`.
route_match find_route(std::span<const route> table, std::string_view method,
                       std::string_view path);

/// The scope of a path no route serves, by its prefix: a client key is
/// asked for under /client/ and /refresh/ (and an admin one under /admin/)
/// before a 404, so that unauthenticated callers cannot probe for paths.
scope scope_of_unrouted(std::string_view path);

/// One line per route: "METHOD PATTERN  scope=S label=L[ path-checked]".
std::string describe(std::span<const route> table);

} // namespace wh::http
