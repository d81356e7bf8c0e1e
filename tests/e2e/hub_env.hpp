#pragma once

// A wechat-sim plus wechat-hub pair on loopback, started as real processes.

#include <memory>
#include <string>

#include <boost/json.hpp>

#include "net/http_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace wh::test {

/// The third-party platform both the simulator and (when configured) the hub know.
inline constexpr const char* component_appid = "wxcomp0000000001";
inline constexpr const char* component_secret = "component-secret-value";
inline constexpr const char* component_token = "pushtoken";
inline constexpr const char* component_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// The `[[component]]` TOML block for the hub.
std::string component_toml();

struct http_result {
  unsigned status = 0;
  std::string body;
  std::string content_type;
  std::string header(std::string_view name) const;
  std::vector<std::pair<std::string, std::string>> headers;
};

class hub_env {
public:
  /// Starts the simulator with apps "wxe2e" (secret "e2e-secret-value") and "wxother".
  hub_env();

  /// Starts (or restarts) the hub; `extra` is appended to the generated TOML.
  void start_hub(const std::string& extra = {});

  /// kill -9 of the hub.
  void kill_hub();

  /// Sends SIGTERM and returns the exit code (or -1 if still running after `wait`).
  int stop_hub(std::chrono::milliseconds wait);

  http_result hub(const std::string& method, const std::string& target,
                  const std::string& body = {}, const std::string& content_type = {});
  http_result sim(const std::string& method, const std::string& target,
                  const std::string& body = {});

  /// Upstream calls the simulator saw for `path` and `appid`.
  int64_t sim_calls(const std::string& path, const std::string& appid);

  std::string hub_url() const { return "http://127.0.0.1:" + std::to_string(hub_port); }
  std::string hub_log() const { return read_file(dir / "hub.log"); }

  /// Extra `[hub]` lines of the generated TOML (e.g. log_format = "json").
  std::string hub_settings;

  /// Sent as `Authorization: Bearer <key>` on hub requests when set.
  std::string bearer;

  temp_dir dir;
  process sim_proc;
  process hub_proc;
  uint16_t sim_port = 0;
  uint16_t hub_port = 0;
  net::http_client client;
};

boost::json::object parse_object(const std::string& body);

} // namespace wh::test
