#pragma once
// wh-loadgen's command line, its target (address and request bytes) and
// its TLS client context. Bad usage exits with status 2 and the usage text,
// an unresolvable host or unloadable certificates with status 1.

#include <string>
#include <vector>

#include <sys/socket.h>

#include <openssl/ssl.h>

namespace wh::bench::loadgen {

struct options {
  double rate = 0;
  double duration = 10;
  double warmup = 1;
  int connections = 64;
  int threads = 1;
  double timeout = 10;
  /// Sends due requests at most once per tick (0: each at its due time).
  double tick_us = 0;
  std::vector<std::string> headers;
  bool insecure = false;
  std::string cacert;
  std::string url;
};

/// The options of `argv` (exits on bad usage).
options parse_options(int argc, char** argv);

struct target {
  bool tls = false;
  std::string host; // for SNI and certificate checks
  std::string request;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

/// The target of `o.url`: resolved address and the request's bytes.
target resolve_target(const options& o);

/// OpenSSL's queued errors as one line (and clears them).
std::string ssl_error_text();

/// A TLS client context verifying as `o` says (exits when it cannot).
SSL_CTX* make_tls_context(const options& o);

} // namespace wh::bench::loadgen
