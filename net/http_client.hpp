#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/expected.hpp"

namespace wh::net {

/// One outgoing HTTP request. `url` is absolute: http:// or https://.
struct request {
  /// "GET", "POST", ...
  std::string method = "GET";
  /// Absolute URL including the query string.
  std::string url;
  std::string body;
  /// Content-Type of `body`; empty = none.
  std::string content_type;
  /// Extra headers (name, value).
  std::vector<std::pair<std::string, std::string>> headers;
  /// Deadline for the whole exchange (connect, TLS, write, read).
  std::chrono::milliseconds timeout{10'000};
  /// Whether a stale pooled keep-alive connection may be retried once.
  bool idempotent = true;
};

/// One HTTP response as received.
struct response {
  unsigned status = 0;
  std::string body;
  std::string content_type;
  /// All response headers (name, value) in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Completion handler; runs on a client I/O thread and must not block.
using callback = std::function<void(caf::expected<response>)>;

/// Options of an http_client.
struct client_options {
  /// I/O threads owned by the client.
  unsigned io_threads = 1;
  /// Idle keep-alive connections kept per (scheme, host, port).
  std::size_t max_idle_per_host = 32;
  /// Idle pooled connections are closed after this long.
  std::chrono::seconds idle_timeout{30};
  /// Responses with a larger body fail with ec::transport_failure.
  std::size_t max_body_bytes = 16 * 1024 * 1024;
  /// Extra CA bundle (PEM) trusted for https in addition to the system store.
  std::string ca_file;
  /// Verify server certificates and host names (only tests may disable).
  bool verify_peer = true;
  std::string user_agent = "wechat-hub/0.1";
};

/// An asynchronous HTTP/1.1 client on Boost.Beast with a keep-alive
/// connection pool, per-request deadlines and TLS (SNI, certificate and
/// host-name verification against the system trust store). Thread-safe.
/// Errors are ec::transport_failure or ec::timeout; their messages never
/// contain the query string or body (they may carry secrets).
class http_client {
public:
  explicit http_client(client_options opts = {});
  ~http_client();

  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Starts `req`; `cb` runs exactly once on an I/O thread.
  void async_send(request req, callback cb);

  /// Blocking form; must not be called from one of this client's I/O threads.
  caf::expected<response> send(request req);

  /// Stops I/O; pending requests complete with ec::shutting_down. Must not
  /// be called from one of this client's I/O threads.
  void shutdown();

  /// Whether the calling thread is one of this client's I/O threads (where
  /// blocking on another request of this client would deadlock).
  bool on_io_thread() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Percent-encodes `str` for a query component.
std::string url_encode(std::string_view str);

/// Appends `key=value` (encoded) to `url`, using '?' or '&' as needed.
std::string add_query(std::string url, std::string_view key, std::string_view value);

/// Joins `base` ("https://host[:port][/prefix]") and `path_or_url`: a full
/// http(s) URL is returned unchanged, a path is appended to base.
std::string resolve_url(std::string_view base, std::string_view path_or_url);

} // namespace wh::net
