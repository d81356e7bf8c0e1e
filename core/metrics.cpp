#include "core/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <set>

namespace wh {

namespace {

void append_escaped(std::string& out, std::string_view val) {
  for (char c : val) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void append_number(std::string& out, double value) {
  char buf[64];
  if (std::isinf(value))
    std::snprintf(buf, sizeof(buf), "%s", value > 0 ? "+Inf" : "-Inf");
  else if (std::floor(value) == value && std::fabs(value) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", value);
  else
    std::snprintf(buf, sizeof(buf), "%.9g", value);
  out += buf;
}

/// HELP text escaping: backslash and newline only.
void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

} // namespace

// -- histogram ----------------------------------------------------------------

const std::vector<double>& latency_buckets() {
  static const std::vector<double> bounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                          0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                          0.5,     1,      2.5,     5,      10,    30};
  return bounds;
}

histogram::histogram(const std::vector<double>& bounds_s)
  : bounds_s_(bounds_s), cells_(new std::atomic<uint64_t>[bounds_s.size() + 1]) {
  bounds_ns_.reserve(bounds_s.size());
  for (auto b : bounds_s)
    bounds_ns_.push_back(static_cast<int64_t>(std::llround(b * 1e9)));
  for (size_t i = 0; i <= bounds_s.size(); ++i)
    cells_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(std::chrono::nanoseconds d) {
  auto ns = std::max<int64_t>(0, d.count());
  size_t i = 0;
  while (i < bounds_ns_.size() && ns > bounds_ns_[i])
    ++i;
  cells_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

uint64_t histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_s_.size(); ++i)
    n += cells_[i].load(std::memory_order_relaxed);
  return n;
}

void histogram::render(std::string& out, std::string_view name, std::string_view lbls) const {
  // `lbls` is "{...}" or empty; `le` joins the other labels.
  std::string inner;
  if (lbls.size() > 2)
    inner = std::string{lbls.substr(1, lbls.size() - 2)} + ",";
  // _count is the +Inf bucket (both from the cells), so a scrape racing an
  // observation stays self-consistent.
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_s_.size(); ++i) {
    cumulative += cells_[i].load(std::memory_order_relaxed);
    out += name;
    out += "_bucket{";
    out += inner;
    out += "le=\"";
    if (i < bounds_s_.size())
      append_number(out, bounds_s_[i]);
    else
      out += "+Inf";
    out += "\"} ";
    out += std::to_string(cumulative);
    out += '\n';
  }
  out += name;
  out += "_sum";
  out += lbls;
  out += ' ';
  append_number(out, static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  out += '\n';
  out += name;
  out += "_count";
  out += lbls;
  out += ' ';
  out += std::to_string(cumulative);
  out += '\n';
}

// -- metrics ------------------------------------------------------------------

std::string metrics::render_labels(const labels& lbls) {
  if (lbls.empty())
    return {};
  std::string out = "{";
  for (size_t i = 0; i < lbls.size(); ++i) {
    if (i > 0)
      out += ',';
    out += lbls[i].first;
    out += "=\"";
    append_escaped(out, lbls[i].second);
    out += '"';
  }
  out += '}';
  return out;
}

void metrics::sink::add(const std::string& family, const labels& lbls, double value) {
  render_sample(lines_[family], family, lbls, value);
}

void metrics::describe(std::string name, std::string help, std::string type) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& fam = families_[std::move(name)];
  fam.help = std::move(help);
  fam.type = std::move(type);
}

std::atomic<uint64_t>& metrics::counter(const std::string& name, const labels& lbls) {
  auto key = render_labels(lbls);
  std::lock_guard<std::mutex> guard{mtx_};
  auto& fam = families_[name];
  return fam.series.try_emplace(std::move(key), 0).first->second;
}

wh::histogram& metrics::histogram(const std::string& name, const labels& lbls,
                                  const std::vector<double>& bounds_s) {
  auto key = render_labels(lbls);
  std::lock_guard<std::mutex> guard{mtx_};
  auto& fam = families_[name];
  fam.type = "histogram";
  auto& slot = fam.histograms[std::move(key)];
  if (!slot)
    slot = std::make_unique<wh::histogram>(bounds_s);
  return *slot;
}

void metrics::add_collector(std::function<void(sink&)> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  collectors_.push_back(std::move(fn));
}

void metrics::render_sample(std::string& out, std::string_view name, const labels& lbls,
                            double value) {
  out += name;
  out += render_labels(lbls);
  out += ' ';
  append_number(out, value);
  out += '\n';
}

std::string metrics::render() const {
  std::vector<std::function<void(sink&)>> collectors;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    collectors = collectors_;
  }
  // Collectors read other components' state: run them without our lock.
  sink gauges;
  for (auto& fn : collectors)
    fn(gauges);
  std::string out;
  std::lock_guard<std::mutex> guard{mtx_};
  std::set<std::string_view> names;
  for (auto& [name, fam] : families_)
    names.insert(name);
  for (auto& [name, lines] : gauges.lines_)
    names.insert(name);
  for (auto name : names) {
    auto fam = families_.find(std::string{name});
    if (fam != families_.end() && !fam->second.help.empty()) {
      out += "# HELP ";
      out += name;
      out += ' ';
      append_help(out, fam->second.help);
      out += '\n';
    }
    out += "# TYPE ";
    out += name;
    out += ' ';
    out += fam != families_.end() ? fam->second.type : "untyped";
    out += '\n';
    if (fam != families_.end()) {
      for (auto& [lbls, val] : fam->second.series) {
        out += name;
        out += lbls;
        out += ' ';
        out += std::to_string(val.load(std::memory_order_relaxed));
        out += '\n';
      }
      for (auto& [lbls, h] : fam->second.histograms)
        h->render(out, name, lbls);
    }
    if (auto g = gauges.lines_.find(std::string{name}); g != gauges.lines_.end())
      out += g->second;
  }
  return out;
}

} // namespace wh
