#pragma once

#include <fstream>
#include <mutex>
#include <string>
#include <string_view>

namespace wh::http {

/// The path of an origin-form request target as the audit log records it:
/// percent-decoded, dot segments removed, query dropped, at most 512 bytes.
std::string normalise_path(std::string_view target);

/// Append-only audit trail of admin actions: one JSON object per line with
/// time, client, action, target and HTTP status. Never carries bodies.
class audit_log {
public:
  /// Opens `path` for appending (created 0600 if missing).
  explicit audit_log(const std::string& path);

  /// Records one action; thread-safe, flushed immediately.
  void record(std::string_view client, std::string_view action, std::string_view target,
              unsigned status);

  bool ok() const { return ok_; }

private:
  std::mutex mtx_;
  std::ofstream out_;
  bool ok_ = false;
};

} // namespace wh::http
