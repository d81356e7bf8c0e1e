#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/error.hpp"

namespace wh::http {

/// One parsed HTTP request, independent of Beast so handlers are plain functions.
struct request {
  std::string method;
  /// Origin-form target: path plus query.
  std::string target;
  std::string body;
  std::string content_type;
  std::string authorization;
  /// Whether the peer connected from a loopback address.
  bool loopback = false;
  /// The peer's IP address ("127.0.0.1", "::1"), empty if unknown.
  std::string peer;
  /// Subject CN of the verified client certificate (mTLS only), else empty.
  std::string client_cn;
  /// An admin change another cluster node accepted and relayed over the
  /// (authenticated) node link: applied here without a client key.
  bool replicated = false;
};

/// One HTTP response.
struct response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Delivers the response; callable from any thread, exactly once.
using responder = std::function<void(response)>;

/// Handles a request; may answer synchronously (fast path) or later.
using handler = std::function<void(request&&, responder)>;

/// Renders failures the server detects itself (ec::invalid_request for a
/// malformed request, ec::body_too_large, ec::headers_too_large), so every
/// error has one shape (the hub passes http/render.hpp's error_response).
using error_renderer = std::function<response(const caf::error& err)>;

/// What the hot path sees of a GET: views into the parsed request, valid
/// only during the call.
struct cached_get_request {
  /// Origin-form target as sent (not decoded).
  std::string_view target;
  /// The Authorization header's value, empty if absent.
  std::string_view authorization;
};

/// The hot path: appends a complete HTTP/1.1 response (status line, headers
/// and body, keep-alive) to `out` and returns true, or returns false, leaving
/// `out` as it was, so that the request takes the regular way through
/// `handler`. Runs on an I/O thread: it must not block and must answer only
/// what `handler` would answer byte for byte.
using cached_get_handler = std::function<bool(const cached_get_request& req, std::string& out)>;

/// Observes every response the server writes (for request metrics).
using response_observer = std::function<void(unsigned status)>;

/// HTTPS for the front end; plain HTTP when `cert` is empty.
struct tls_options {
  /// PEM certificate chain (leaf first).
  std::string cert;
  /// PEM private key matching `cert` (unencrypted).
  std::string key;
  /// PEM CA bundle; when set, clients must present a certificate it signed.
  std::string client_ca;

  bool enabled() const { return !cert.empty(); }
};

struct server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  /// I/O threads; 0 = hardware concurrency.
  unsigned threads = 0;
  uint32_t max_body_bytes = 64 * 1024;
  /// A larger body limit for some routes (admin bulk imports), chosen from
  /// the request line once the headers are read; unset = `max_body_bytes`.
  std::function<uint32_t(std::string_view method, std::string_view target)> body_limit_for;
  uint32_t max_header_bytes = 16 * 1024;
  /// Deadline for reading one request, from its first byte (or from accept
  /// for a connection's first request), and for writing any response.
  std::chrono::seconds request_timeout{15};
  /// How long a keep-alive connection may wait for the next request's first byte.
  std::chrono::seconds idle_timeout{60};
  /// Connections beyond this are closed right after accept (see fd_limit.hpp
  /// for how the hub keeps it below the file-descriptor limit).
  std::size_t max_connections = 10'000;
  /// Connections from one peer address beyond this are closed right after
  /// accept; 0 = no per-peer cap.
  std::size_t max_connections_per_peer = 0;
  /// First and longest pause of the accept loop when the process or system
  /// is out of file descriptors (EMFILE/ENFILE); it doubles in between.
  std::chrono::milliseconds accept_backoff_min{50};
  std::chrono::milliseconds accept_backoff_max{1000};
  /// Repeated accept problems are logged at most once per interval, with a count.
  std::chrono::seconds log_interval{10};
  /// TLS 1.2+ (and mTLS) when enabled; the handshake has `request_timeout`.
  tls_options tls;
  /// Tried first for keep-alive HTTP/1.1 GETs without a body; unset = none.
  cached_get_handler cached_get;
};

/// A Beast HTTP/1.1 server: keep-alive, one request in flight per connection,
/// body and header limits, deadlines on every read and write, and a graceful
/// drain. Each I/O thread runs its own event loop, and a connection lives on
/// one loop for its whole life (accepted connections are dealt round robin),
/// so no lock or thread hand-off sits on a request's way. Handler responses
/// are dispatched onto the connection's loop.
class server {
public:
  server(server_options opts, handler h, error_renderer render_error);
  ~server();

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Loads the TLS files (if any), binds, listens and starts the I/O
  /// threads. Errors (`invalid_config`) name the address or the file.
  caf::error start();

  /// The bound port (useful with port 0).
  uint16_t port() const;

  /// Stops accepting, lets in-flight requests finish (closing idle
  /// keep-alive connections at once), then stops within `grace`.
  void stop(std::chrono::milliseconds grace);

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace wh::http
