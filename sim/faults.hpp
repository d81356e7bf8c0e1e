#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

namespace wh::sim {

/// What an injected fault does to a matching upstream request.
enum class fault_kind {
  /// Answer HTTP 200 `{"errcode":N,...}`.
  errcode,
  /// Answer HTTP 500.
  http500,
  /// Close the connection without answering.
  drop,
  /// Wait `latency_ms`, then handle the request normally.
  latency,
  /// Answer HTTP 200 text/html garbage.
  html,
};

/// Parses "errcode" / "http500" / "drop" / "latency" / "html".
std::optional<fault_kind> parse_fault_kind(std::string_view str);

/// One rule added by POST /sim/fault.
struct fault_rule {
  /// Exact upstream path or "*".
  std::string path = "*";
  /// Empty = any appid.
  std::string appid;
  fault_kind kind = fault_kind::errcode;
  int64_t errcode = -1;
  int64_t latency_ms = 0;
  /// Remaining applications; -1 = until cleared.
  int64_t times = 1;
};

/// Fault rules, consumed first-match-first; thread-safe.
class fault_table {
public:
  /// Appends a rule.
  void add(fault_rule rule);

  /// Removes every rule.
  void clear();

  /// Takes one application of the first matching rule, if any.
  std::optional<fault_rule> take(std::string_view path, std::string_view appid);

  /// Number of live rules.
  std::size_t size() const;

private:
  mutable std::mutex mtx_;
  std::vector<fault_rule> rules_;
};

/// Per-path, per-appid upstream call counters; thread-safe.
class call_stats {
public:
  /// Counts one call.
  void count(std::string_view path, std::string_view appid);

  /// Zeroes every counter.
  void reset();

  /// `{"calls":{path:{appid:n}},"total":N}`.
  boost::json::object to_json() const;

  /// Calls of `path` for `appid` (tests).
  int64_t get(std::string_view path, std::string_view appid) const;

private:
  mutable std::mutex mtx_;
  std::map<std::string, std::map<std::string, int64_t, std::less<>>, std::less<>> calls_;
  int64_t total_ = 0;
};

} // namespace wh::sim
