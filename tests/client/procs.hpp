#pragma once

// Real processes for end-to-end tests: wechat-sim and wechat-hub on ephemeral
// loopback ports, started with posix_spawn and killed on destruction.

#include <cstdint>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include <boost/json/value.hpp>

#include "net/http_client.hpp"
#include "tests/support/process.hpp"

namespace wh::test {

/// Path of a binary built by this project (WH_BIN_DIR), or "" if missing.
std::string find_binary(const std::string& name);

/// Runs `argv` to completion with stdout / stderr in files; the exit code
/// (-1 when it did not exit normally).
int run_process(std::vector<std::string> argv, const std::string& out_file,
                const std::string& err_file);

/// Polls GET `url` until it answers 200; false on timeout.
bool wait_for_http(net::http_client& http, const std::string& url, int timeout_ms = 15'000);

/// A running wechat-sim with the given apps ("APPID:SECRET").
class sim_process {
public:
  sim_process(const std::string& dir, std::vector<std::string> apps,
              std::vector<std::string> extra_args = {});

  /// "http://127.0.0.1:PORT".
  const std::string& base() const { return base_; }

  /// POSTs a control call, returns the parsed JSON answer (null on failure).
  boost::json::value control(const std::string& path, const std::string& body = "{}");

  /// GETs a control path, returns the parsed JSON answer (null on failure).
  boost::json::value get(const std::string& path);

  /// Calls recorded by the sim for (path, appid).
  int64_t calls(const std::string& path, const std::string& appid);

private:
  net::http_client http_;
  process proc_;
  std::string base_;
};

/// A running wechat-hub serving `apps` (appid, secret) from `sim`.
class hub_process {
public:
  hub_process(const std::string& dir, const std::string& api_base,
              std::vector<std::pair<std::string, std::string>> apps);

  /// "http://127.0.0.1:PORT".
  const std::string& base() const { return base_; }

private:
  net::http_client http_;
  process proc_;
  std::string base_;
};

/// Lowercase hex MD5 of `data`.
std::string md5_hex(const std::string& data);

} // namespace wh::test
