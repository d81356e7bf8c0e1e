#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "net/http_client.hpp"

namespace wh::test {

/// Client options with `fn` applied to the defaults.
template <class F>
net::client_options with_opt(F fn) {
  net::client_options opts;
  fn(opts);
  return opts;
}

/// A request as seen by the in-process test server.
struct seen_request {
  std::string method;
  /// Path plus query, as sent.
  std::string target;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  /// Value of header `name` (case-insensitive), empty if absent.
  std::string header(std::string_view name) const;
};

/// What the test server does with one request.
struct reply {
  enum class action {
    /// Send the response.
    respond,
    /// Never answer; keep the connection open until the peer closes it.
    hang,
    /// Close the connection without answering.
    drop,
    /// Answer with keep-alive, then close the connection anyway (a server
    /// that expires idle connections).
    respond_then_close,
  };
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  action act = action::respond;
};

/// Handles one request on the server thread.
using handler = std::function<reply(const seen_request&)>;

/// PEM files for a TLS test server.
struct tls_files {
  std::string cert_chain;
  std::string private_key;
};

/// A misbehaving-on-demand HTTP(S)/1.1 server on 127.0.0.1 with an ephemeral
/// port, served by one background thread. Counts accepted connections.
class test_server {
public:
  explicit test_server(handler h, std::optional<tls_files> tls = std::nullopt);
  ~test_server();

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  /// The bound port.
  uint16_t port() const;

  /// "http://127.0.0.1:PORT" (or https).
  std::string base_url() const;

  /// Connections accepted so far.
  size_t connections() const;

  /// Requests read so far.
  size_t requests() const;

  /// Connections that have ended so far.
  size_t closed() const;

  /// Waits until at least `n` connections have ended; false on timeout.
  bool wait_closed(size_t n, std::chrono::milliseconds timeout);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A throwaway PKI made with the openssl CLI: a CA and a server certificate
/// for DNS:localhost (no IP SAN) signed by it.
struct test_pki {
  std::string dir;
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
};

/// Creates a test PKI in a fresh temp directory; throws on failure.
test_pki make_test_pki();

/// Returns a loopback port nobody listens on (bound, then closed).
uint16_t unused_port();

/// Creates a fresh temp directory and returns its path.
std::string make_temp_dir(const std::string& prefix);

} // namespace wh::test
