#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sim/service.hpp"

namespace wh::sim {

/// Transport options of the simulator.
struct server_options {
  std::string host = "127.0.0.1";
  /// 0 = let the OS pick a free port.
  uint16_t port = 9000;
  unsigned threads = 1;
  /// Log one line per request to stderr.
  bool verbose = false;
  /// Stop on SIGINT / SIGTERM (the binary wants this, in-process tests don't).
  bool handle_signals = false;
  /// Seconds between verify-ticket pushes to every registered push URL, as
  /// WeChat pushes every 10 minutes; 0 = no periodic pushes.
  int64_t push_interval_s = 600;
  /// Push once right after start() to the URLs registered at construction
  /// (service_options::push_urls), so a hub gets a ticket without waiting.
  bool push_on_start = true;
};

/// The HTTP/1.1 keep-alive server in front of a `service`. Beast lives only
/// in server.cpp; this header is cheap to include.
class server {
public:
  server(service& svc, server_options opts);
  ~server();

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and listens; returns the bound port, or 0 and sets `error`.
  uint16_t start(std::string& error);

  /// Runs the I/O threads (the caller's thread is one of them) until stop().
  void run();

  /// Stops accepting and ends run(); thread-safe, idempotent.
  void stop();

  /// Implementation detail (public only so server.cpp's sessions can name it).
  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace wh::sim
