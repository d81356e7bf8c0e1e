#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace wh {

/// Wall-clock source injected into everything that reads time, so tests can
/// drive expiry deterministically. Times are unix seconds (WeChat's unit).
class clock {
public:
  virtual ~clock() = default;

  /// Current unix time in seconds.
  virtual int64_t now() const = 0;

  /// Current unix time in milliseconds (replication lag, join waits); clocks
  /// that only know seconds report whole seconds.
  virtual int64_t now_ms() const { return now() * 1000; }
};

/// The real system clock.
class system_clock final : public clock {
public:
  int64_t now() const override {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock_t::now().time_since_epoch()).count();
  }

  int64_t now_ms() const override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock_t::now().time_since_epoch()).count();
  }

private:
  using system_clock_t = std::chrono::system_clock;
};

/// A clock that only moves when told to; thread-safe.
class manual_clock final : public clock {
public:
  explicit manual_clock(int64_t start = 1'700'000'000) : now_(start) {}

  int64_t now() const override { return now_.load(); }

  /// Moves the clock forward by `secs`.
  void advance(int64_t secs) { now_ += secs; }

  /// Sets the clock to `t`.
  void set(int64_t t) { now_ = t; }

private:
  std::atomic<int64_t> now_;
};

} // namespace wh
