#include "sim/faults.hpp"

namespace wh::sim {

std::optional<fault_kind> parse_fault_kind(std::string_view str) {
  if (str == "errcode") return fault_kind::errcode;
  if (str == "http500") return fault_kind::http500;
  if (str == "drop") return fault_kind::drop;
  if (str == "latency") return fault_kind::latency;
  if (str == "html") return fault_kind::html;
  return std::nullopt;
}

void fault_table::add(fault_rule rule) {
  if (rule.times == 0)
    return;
  std::lock_guard guard{mtx_};
  rules_.push_back(std::move(rule));
}

void fault_table::clear() {
  std::lock_guard guard{mtx_};
  rules_.clear();
}

std::optional<fault_rule> fault_table::take(std::string_view path, std::string_view appid) {
  std::lock_guard guard{mtx_};
  for (auto i = rules_.begin(); i != rules_.end(); ++i) {
    if (i->path != "*" && i->path != path)
      continue;
    if (!i->appid.empty() && i->appid != appid)
      continue;
    auto hit = *i;
    if (i->times > 0 && --i->times == 0)
      rules_.erase(i);
    return hit;
  }
  return std::nullopt;
}

std::size_t fault_table::size() const {
  std::lock_guard guard{mtx_};
  return rules_.size();
}

void call_stats::count(std::string_view path, std::string_view appid) {
  std::lock_guard guard{mtx_};
  auto i = calls_.find(path);
  if (i == calls_.end())
    i = calls_.emplace(std::string{path}, std::map<std::string, int64_t, std::less<>>{}).first;
  auto j = i->second.find(appid);
  if (j == i->second.end())
    j = i->second.emplace(std::string{appid}, 0).first;
  ++j->second;
  ++total_;
}

void call_stats::reset() {
  std::lock_guard guard{mtx_};
  calls_.clear();
  total_ = 0;
}

boost::json::object call_stats::to_json() const {
  std::lock_guard guard{mtx_};
  boost::json::object calls;
  for (auto& [path, per_app] : calls_) {
    boost::json::object inner;
    for (auto& [appid, n] : per_app)
      inner[appid] = n;
    calls[path] = std::move(inner);
  }
  boost::json::object out;
  out["calls"] = std::move(calls);
  out["total"] = total_;
  return out;
}

int64_t call_stats::get(std::string_view path, std::string_view appid) const {
  std::lock_guard guard{mtx_};
  auto i = calls_.find(path);
  if (i == calls_.end())
    return 0;
  auto j = i->second.find(appid);
  return j == i->second.end() ? 0 : j->second;
}

} // namespace wh::sim
