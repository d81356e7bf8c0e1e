#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "caf/error.hpp"

#include "core/clock.hpp"

namespace wh {
class metrics;
}

namespace wh::persistence {
class store;
}

namespace wh::actors {

/// The hub's own count of WeChat calls per key and endpoint for the current
/// Beijing day (WeChat's daily quotas reset at 00:00 UTC+8), and the last
/// quota errors seen per key: 45009 (daily quota) and 45011 (minute quota).
/// The upstream actor records every answered call; GET /admin/quota reads it.
/// Counts are this process's (a restart or another cluster node starts at 0).
class quota_book {
public:
  explicit quota_book(const wh::clock& clk) : clock_(clk) {}

  /// One quota error as last seen.
  struct quota_error {
    int64_t at = 0;
    std::string endpoint;
  };

  /// What the book knows about one key.
  struct view {
    /// Beijing day number (unix days of UTC+8) the counts belong to.
    int64_t day = 0;
    /// Calls per endpoint today.
    std::map<std::string, uint64_t> calls;
    std::optional<quota_error> last_45009;
    std::optional<quota_error> last_45011;
  };

  /// Counts one call of `endpoint` for `key`; `errcode` is WeChat's answer
  /// (calls without an answer count too: WeChat may have counted them).
  void record(const std::string& key, const std::string& endpoint, int errcode);

  /// The view of `key` today (empty counts when it made no call today).
  view get(const std::string& key) const;

  /// WeChat reset `key`'s quota (clear_quota): its 45009 is no longer current.
  void cleared(const std::string& key);

  /// Whether `key` saw a 45009 today (Beijing day) that no clear_quota lifted.
  bool exhausted(const std::string& key) const;

  /// Publishes `wechat_hub_daily_quota_exhausted{appid,endpoint}` (1 while
  /// the key's last 45009 is from today and not cleared, else 0) for keys
  /// that ever saw a 45009.
  void export_to(metrics& m);

  // -- clear_quota budget (WeChat allows 10 resets per account and month) ----

  /// Beijing month of unix time `t` as YYYYMM.
  static int64_t beijing_month(int64_t t);

  /// Takes one of `limit` clear_quota resets of this month for `key`; false
  /// when none is left. `used` receives the count including this one.
  bool take_clear(const std::string& key, uint32_t limit, uint32_t& used);

  /// Gives back a reset taken by `take_clear` (WeChat refused the call).
  void return_clear(const std::string& key);

  /// Resets of `key` this month.
  uint32_t clears_used(const std::string& key) const;

  /// Restores a persisted budget (month YYYYMM, used) at startup.
  void restore_clears(const std::string& key, int64_t month, uint32_t used);

  /// Storage key of an app's clear_quota budget.
  static std::string clear_key(const std::string& appid);

  /// Stored form of a budget: "YYYYMM used".
  static std::string encode_clears(int64_t month, uint32_t used);

  /// Restores every stored clear_quota budget (startup, blocking: call it
  /// before the actors run). Malformed records are logged and skipped.
  caf::error load(persistence::store& db);

private:
  /// The rare part of an entry: a reset, quota errors, calls of a third
  /// endpoint on one day.
  struct rare {
    int64_t cleared_at = 0;
    std::optional<quota_error> last_45009;
    std::optional<quota_error> last_45011;
    /// (endpoint id, calls today) beyond the entry's inline two.
    std::vector<std::pair<uint8_t, uint32_t>> calls;
  };

  /// One per key that called WeChat. Compact (a million authorizers each
  /// have one after a refresh, typically with one endpoint and no error):
  /// endpoints are interned ids, two counts live inline, the rest behind a
  /// pointer allocated only when needed.
  struct entry {
    int32_t day = 0;
    int32_t clear_month = 0;
    uint32_t clears = 0;
    /// Endpoint ids and calls today of the inline counts (0 calls = unused).
    std::array<uint8_t, 2> ep{};
    std::array<uint32_t, 2> n{};
    std::unique_ptr<rare> more;

    rare& extra() {
      if (!more)
        more = std::make_unique<rare>();
      return *more;
    }
  };

  bool exhausted_locked(const entry& e, int64_t t) const;
  /// Counts one call of endpoint `id` today.
  static void count_call(entry& e, uint8_t id);
  /// The id of `endpoint` (interned under mtx_; at most 255 names, then one
  /// shared "other" id).
  uint8_t endpoint_id(const std::string& endpoint);

  const wh::clock& clock_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, entry> keys_;
  std::vector<std::string> endpoints_;
  std::unordered_map<std::string, uint8_t> endpoint_ids_;
};

/// The Beijing (UTC+8) day number of unix time `t`.
inline int64_t beijing_day_of(int64_t t) {
  return (t + 8 * 3600) / 86400;
}

} // namespace wh::actors
