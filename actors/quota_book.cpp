#include "actors/quota_book.hpp"

#include <algorithm>
#include <ctime>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/store.hpp"

namespace wh::actors {

uint8_t quota_book::endpoint_id(const std::string& endpoint) {
  if (auto i = endpoint_ids_.find(endpoint); i != endpoint_ids_.end())
    return i->second;
  if (endpoints_.size() >= 255)
    return 255;
  auto id = static_cast<uint8_t>(endpoints_.size());
  endpoints_.push_back(endpoint);
  endpoint_ids_.emplace(endpoint, id);
  return id;
}

void quota_book::record(const std::string& key, const std::string& endpoint, int errcode) {
  if (key.empty())
    return;
  auto t = clock_.now();
  auto day = static_cast<int32_t>(beijing_day_of(t));
  std::lock_guard<std::mutex> guard{mtx_};
  auto id = endpoint_id(endpoint);
  auto& e = keys_[key];
  if (e.day != day) {
    e.day = day;
    e.n = {};
    if (e.more)
      e.more->calls.clear();
  }
  count_call(e, id);
  if (errcode != 45009 && errcode != 45011)
    return;
  auto& x = e.extra();
  (errcode == 45009 ? x.last_45009 : x.last_45011) = quota_error{t, endpoint};
}

void quota_book::count_call(entry& e, uint8_t id) {
  for (size_t i = 0; i < e.n.size(); ++i) {
    if (e.n[i] != 0 && e.ep[i] == id) {
      ++e.n[i];
      return;
    }
  }
  for (size_t i = 0; i < e.n.size(); ++i) {
    if (e.n[i] == 0) {
      e.ep[i] = id;
      e.n[i] = 1;
      return;
    }
  }
  auto& calls = e.extra().calls;
  auto i = std::find_if(calls.begin(), calls.end(), [id](auto& c) { return c.first == id; });
  if (i == calls.end())
    calls.emplace_back(id, 1);
  else
    ++i->second;
}

quota_book::view quota_book::get(const std::string& key) const {
  view v;
  v.day = beijing_day_of(clock_.now());
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = keys_.find(key);
  if (i == keys_.end())
    return v;
  auto& e = i->second;
  auto name = [this](uint8_t id) { return id < endpoints_.size() ? endpoints_[id] : std::string{"other"}; };
  if (e.day == v.day) {
    for (size_t k = 0; k < e.n.size(); ++k)
      if (e.n[k] != 0)
        v.calls[name(e.ep[k])] += e.n[k];
    if (e.more)
      for (auto [id, n] : e.more->calls)
        v.calls[name(id)] += n;
  }
  if (e.more) {
    v.last_45009 = e.more->last_45009;
    v.last_45011 = e.more->last_45011;
  }
  return v;
}

bool quota_book::exhausted_locked(const entry& e, int64_t t) const {
  return e.more && e.more->last_45009 && beijing_day_of(e.more->last_45009->at) == beijing_day_of(t)
         && e.more->cleared_at < e.more->last_45009->at;
}

bool quota_book::exhausted(const std::string& key) const {
  auto t = clock_.now();
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = keys_.find(key);
  return i != keys_.end() && exhausted_locked(i->second, t);
}

void quota_book::cleared(const std::string& key) {
  auto t = clock_.now();
  std::lock_guard<std::mutex> guard{mtx_};
  auto& e = keys_[key];
  // A 45009 in the same second as the reset predates it.
  e.extra().cleared_at = t + 1;
}

void quota_book::export_to(metrics& m) {
  m.describe("wechat_hub_daily_quota_exhausted",
             "1 while WeChat's daily quota (45009) of the key is exhausted today (Beijing day) and "
             "no clear_quota lifted it",
             "gauge");
  m.add_collector([this](metrics::sink& out) {
    auto t = clock_.now();
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [key, e] : keys_)
      if (e.more && e.more->last_45009)
        out.add("wechat_hub_daily_quota_exhausted", {{"appid", key}, {"endpoint", e.more->last_45009->endpoint}},
                exhausted_locked(e, t) ? 1.0 : 0.0);
  });
}

int64_t quota_book::beijing_month(int64_t t) {
  std::time_t bj = static_cast<std::time_t>(t + 8 * 3600);
  std::tm tm{};
  gmtime_r(&bj, &tm);
  return (tm.tm_year + 1900) * 100 + tm.tm_mon + 1;
}

bool quota_book::take_clear(const std::string& key, uint32_t limit, uint32_t& used) {
  auto month = beijing_month(clock_.now());
  std::lock_guard<std::mutex> guard{mtx_};
  auto& e = keys_[key];
  if (e.clear_month != month) {
    e.clear_month = static_cast<int32_t>(month);
    e.clears = 0;
  }
  if (e.clears >= limit) {
    used = e.clears;
    return false;
  }
  used = ++e.clears;
  return true;
}

void quota_book::return_clear(const std::string& key) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& e = keys_[key];
  if (e.clears > 0)
    e.clears--;
}

uint32_t quota_book::clears_used(const std::string& key) const {
  auto month = beijing_month(clock_.now());
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = keys_.find(key);
  return i != keys_.end() && i->second.clear_month == month ? i->second.clears : 0;
}

void quota_book::restore_clears(const std::string& key, int64_t month, uint32_t used) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& e = keys_[key];
  e.clear_month = static_cast<int32_t>(month);
  e.clears = used;
}

namespace {

constexpr std::string_view clear_prefix = "quota/clear/";

} // namespace

std::string quota_book::clear_key(const std::string& appid) {
  return std::string{clear_prefix} + appid;
}

std::string quota_book::encode_clears(int64_t month, uint32_t used) {
  return std::to_string(month) + " " + std::to_string(used);
}

caf::error quota_book::load(persistence::store& db) {
  return db.scan(clear_prefix, [this](std::string_view key, std::string_view value) {
    auto appid = std::string{key.substr(clear_prefix.size())};
    auto space = value.find(' ');
    int64_t month = 0;
    uint32_t used = 0;
    bool ok = space != std::string_view::npos && space > 0 && space <= 6 && space + 1 < value.size();
    for (size_t i = 0; ok && i < value.size(); ++i) {
      if (i == space)
        continue;
      auto c = value[i];
      if (c < '0' || c > '9' || (i > space && used > 1000))
        ok = false;
      else if (i < space)
        month = month * 10 + (c - '0');
      else
        used = used * 10 + static_cast<uint32_t>(c - '0');
    }
    if (!ok)
      WH_ERROR("quota", "ignoring corrupt clear_quota record of " << appid);
    else
      restore_clears(appid, month, used);
    return true;
  });
}

} // namespace wh::actors
