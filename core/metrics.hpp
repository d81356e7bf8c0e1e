#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wh {

/// A Prometheus counter family registry. Counters are created on first use and
/// never move, so hot paths may cache the returned reference. Label values
/// must never be secrets (appids, routes, reasons and errcodes only).
class metrics {
public:
  using labels = std::vector<std::pair<std::string, std::string>>;

  /// Declares a family's help text and type ("counter" or "gauge").
  void describe(std::string name, std::string help, std::string type = "counter");

  /// Returns the counter `name{labels}`, creating it at 0.
  std::atomic<uint64_t>& counter(const std::string& name, const labels& lbls);

  /// Increments `name{labels}` by one.
  void inc(const std::string& name, const labels& lbls) { counter(name, lbls)++; }

  /// Adds a callback that appends gauge lines at scrape time.
  void add_collector(std::function<void(std::string&)> fn);

  /// Renders everything in the Prometheus text exposition format 0.0.4.
  std::string render() const;

  /// Renders one sample line `name{k="v",...} value\n` into `out`.
  static void render_sample(std::string& out, std::string_view name, const labels& lbls,
                            double value);

private:
  struct family {
    std::string help;
    std::string type = "counter";
    // rendered label set -> counter; std::map keeps nodes (and atomics) stable
    std::map<std::string, std::atomic<uint64_t>> series;
  };

  mutable std::mutex mtx_;
  std::map<std::string, family> families_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

} // namespace wh
