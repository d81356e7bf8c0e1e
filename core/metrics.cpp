#include "core/metrics.hpp"

#include <cmath>
#include <cstdio>

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

std::string render_labels(const metrics::labels& lbls) {
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

} // namespace

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

void metrics::add_collector(std::function<void(std::string&)> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  collectors_.push_back(std::move(fn));
}

void metrics::render_sample(std::string& out, std::string_view name, const labels& lbls,
                            double value) {
  out += name;
  out += render_labels(lbls);
  char buf[64];
  if (std::floor(value) == value && std::fabs(value) < 1e15)
    std::snprintf(buf, sizeof(buf), " %.0f\n", value);
  else
    std::snprintf(buf, sizeof(buf), " %g\n", value);
  out += buf;
}

std::string metrics::render() const {
  std::string out;
  std::vector<std::function<void(std::string&)>> collectors;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [name, fam] : families_) {
      if (!fam.help.empty())
        out += "# HELP " + name + " " + fam.help + "\n";
      out += "# TYPE " + name + " " + fam.type + "\n";
      for (auto& [lbls, val] : fam.series)
        out += name + lbls + " " + std::to_string(val.load(std::memory_order_relaxed)) + "\n";
    }
    collectors = collectors_;
  }
  for (auto& fn : collectors)
    fn(out);
  return out;
}

} // namespace wh
