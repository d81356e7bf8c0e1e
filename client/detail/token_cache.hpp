#pragma once

// Cache + single-flight shared by the built-in token sources.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/token_source.hpp"
#include "core/clock.hpp"

namespace wh::client::detail {

/// Caches one token per key and lets concurrent misses share one fetch.
class token_cache {
public:
  /// Fetches a token; `stale` is empty for a plain get, else the rejected token.
  using fetcher = std::function<void(const std::string& stale, token_callback done)>;

  token_cache(std::shared_ptr<const wh::clock> clk, std::chrono::seconds margin);

  /// Returns a fresh cached token or joins / starts a fetch.
  void get(const std::string& key, token_callback cb, fetcher fetch);

  /// Drops `stale` from the cache and returns a token different from it:
  /// a newer cached one, the result of a running fetch, or a new refresh.
  void report_stale(const std::string& key, std::string stale, token_callback cb, fetcher fetch);

  /// Current unix time of the injected clock.
  int64_t now() const;

private:
  struct waiter {
    token_callback cb;
    /// Non-empty: this waiter must not be given this token back.
    std::string stale;
  };

  struct slot {
    std::optional<token> cached;
    int64_t fetched_at = 0;
    bool in_flight = false;
    /// The stale token the running fetch refreshes; empty for a plain get.
    std::string flight_stale;
    std::vector<waiter> waiters;
  };

  bool fresh(const slot& s) const;

  void start(const std::string& key, std::string stale, fetcher fetch);

  void complete(const std::string& key, const std::string& flight_stale, result<token> res,
                fetcher fetch);

  std::shared_ptr<const wh::clock> clock_;
  std::chrono::seconds margin_;
  std::mutex mtx_;
  std::map<std::string, slot> slots_;
};

} // namespace wh::client::detail
