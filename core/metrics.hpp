#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wh {

/// A fixed-bucket histogram of durations. `observe` takes no lock and
/// allocates nothing (relaxed atomic adds), so request paths may call it;
/// instances are created once by `metrics::histogram` and never move.
class histogram {
public:
  /// `bounds_s`: ascending upper bounds in seconds (+Inf is implicit).
  explicit histogram(const std::vector<double>& bounds_s);

  /// Records one duration (negative durations count as 0).
  void observe(std::chrono::nanoseconds d);

  /// Appends the `_bucket`, `_sum` and `_count` samples of `name{lbls}`.
  void render(std::string& out, std::string_view name, std::string_view lbls) const;

  /// Observations so far (for tests).
  uint64_t count() const;

private:
  std::vector<int64_t> bounds_ns_;
  std::vector<double> bounds_s_;
  /// One non-cumulative cell per bound plus the +Inf cell.
  std::unique_ptr<std::atomic<uint64_t>[]> cells_;
  std::atomic<uint64_t> sum_ns_{0};
};

/// Latency buckets from 50 µs to 30 s: cached answers take well under a
/// millisecond, WeChat calls up to the upstream timeout.
const std::vector<double>& latency_buckets();

/// A Prometheus metric registry. Every family is declared once (`describe`)
/// and rendered once, with one HELP and one TYPE line, whatever produced its
/// samples (counters, histograms or scrape-time collectors). Counters and
/// histograms are created on first use and never move, so hot paths cache
/// the returned reference. Label values must never be secrets (appids,
/// routes, endpoints, reasons and errcodes only).
class metrics {
public:
  using labels = std::vector<std::pair<std::string, std::string>>;

  /// Where collectors put gauge samples at scrape time.
  class sink {
  public:
    /// Adds the sample `family{lbls} value` (family declared with `describe`).
    void add(const std::string& family, const labels& lbls, double value);

  private:
    friend class metrics;
    std::map<std::string, std::string> lines_;
  };

  /// Declares a family's help text and type ("counter", "gauge" or "histogram").
  void describe(std::string name, std::string help, std::string type = "counter");

  /// Returns the counter `name{labels}`, creating it at 0.
  std::atomic<uint64_t>& counter(const std::string& name, const labels& lbls);

  /// Increments `name{labels}` by one.
  void inc(const std::string& name, const labels& lbls) { counter(name, lbls)++; }

  /// Returns the histogram `name{labels}`, creating it with `bounds_s` (the
  /// bounds of the first call win).
  wh::histogram& histogram(const std::string& name, const labels& lbls,
                           const std::vector<double>& bounds_s = latency_buckets());

  /// Adds a callback that adds gauge samples at scrape time. It runs without
  /// the registry's lock held.
  void add_collector(std::function<void(sink&)> fn);

  /// Renders everything in the Prometheus text exposition format 0.0.4.
  std::string render() const;

  /// Renders one sample line `name{k="v",...} value\n` into `out`.
  static void render_sample(std::string& out, std::string_view name, const labels& lbls,
                            double value);

  /// Renders `{k="v",...}` (empty for no labels).
  static std::string render_labels(const labels& lbls);

private:
  struct family {
    std::string help;
    std::string type = "counter";
    // rendered label set -> cell; std::map keeps nodes (and atomics) stable
    std::map<std::string, std::atomic<uint64_t>> series;
    std::map<std::string, std::unique_ptr<wh::histogram>> histograms;
  };

  mutable std::mutex mtx_;
  std::map<std::string, family> families_;
  std::vector<std::function<void(sink&)>> collectors_;
};

} // namespace wh
