#include "client/detail/token_cache.hpp"

#include <algorithm>
#include <future>

namespace wh::client {

// -- error ----------------------------------------------------------------------

std::string error::to_string() const {
  std::string out = reason.empty() ? std::string{"error"} : reason;
  if (errcode != 0 || http_status != 0) {
    out += " (";
    if (errcode != 0)
      out += "errcode " + std::to_string(errcode);
    if (errcode != 0 && http_status != 0)
      out += ", ";
    if (http_status != 0)
      out += "HTTP " + std::to_string(http_status);
    out += ")";
  }
  if (!errmsg.empty())
    out += ": " + errmsg;
  return out;
}

error make_error(std::string reason, std::string errmsg, unsigned http_status) {
  error err;
  err.reason = std::move(reason);
  err.errmsg = std::move(errmsg);
  err.http_status = http_status;
  return err;
}

// -- token_source ---------------------------------------------------------------

const char* to_string(token_kind kind) {
  return kind == token_kind::access_token ? "access_token" : "component_access_token";
}

account account::app(std::string appid) {
  return {account_type::app, std::move(appid), {}};
}

account account::component(std::string component_appid) {
  return {account_type::component, std::move(component_appid), {}};
}

account account::authorizer(std::string component_appid, std::string authorizer_appid) {
  return {account_type::authorizer, std::move(component_appid), std::move(authorizer_appid)};
}

token_kind account::kind_for(std::string_view path) const {
  if (type == account_type::app)
    return token_kind::access_token;
  // Strip scheme and host of a full URL; only the path decides.
  if (auto pos = path.find("://"); pos != std::string_view::npos) {
    auto slash = path.find('/', pos + 3);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  for (auto prefix : {std::string_view{"/cgi-bin/component/"}, std::string_view{"/sns/component/"},
                      std::string_view{"/sns/oauth2/component/"}})
    if (path.starts_with(prefix))
      return token_kind::component_access_token;
  return token_kind::access_token;
}

token_source::~token_source() = default;

namespace {

result<token> wait_for(std::function<void(token_callback)> start) {
  std::promise<result<token>> prom;
  auto fut = prom.get_future();
  start([&prom](result<token> res) { prom.set_value(std::move(res)); });
  return fut.get();
}

} // namespace

result<token> token_source::get(token_kind kind) {
  return wait_for([&](token_callback cb) { async_get(kind, std::move(cb)); });
}

result<token> token_source::report_stale(token_kind kind, std::string stale) {
  return wait_for([&](token_callback cb) { async_report_stale(kind, std::move(stale), std::move(cb)); });
}

} // namespace wh::client

namespace wh::client::detail {

token_cache::token_cache(std::shared_ptr<const wh::clock> clk, std::chrono::seconds margin)
  : clock_(std::move(clk)), margin_(margin) {
  if (!clock_)
    clock_ = std::make_shared<wh::system_clock>();
}

int64_t token_cache::now() const {
  return clock_->now();
}

bool token_cache::fresh(const slot& s) const {
  if (!s.cached)
    return false;
  if (s.cached->expires_at == 0)
    return true;
  // Like elixir_wechat (`now - timestamp >= expires_in` is expired), plus a
  // margin capped at half the lifetime so short-lived tokens stay usable.
  auto lifetime = std::max<int64_t>(s.cached->expires_at - s.fetched_at, 0);
  auto margin = std::min<int64_t>(margin_.count(), lifetime / 2);
  return now() < s.cached->expires_at - margin;
}

void token_cache::get(const std::string& key, token_callback cb, fetcher fetch) {
  std::unique_lock guard{mtx_};
  auto& s = slots_[key];
  if (fresh(s)) {
    auto tok = *s.cached;
    guard.unlock();
    cb(std::move(tok));
    return;
  }
  s.waiters.push_back(waiter{std::move(cb), {}});
  if (s.in_flight)
    return;
  s.in_flight = true;
  s.flight_stale.clear();
  guard.unlock();
  start(key, {}, std::move(fetch));
}

void token_cache::report_stale(const std::string& key, std::string stale, token_callback cb,
                               fetcher fetch) {
  std::unique_lock guard{mtx_};
  auto& s = slots_[key];
  if (s.cached && s.cached->value == stale)
    s.cached.reset();
  if (fresh(s)) {
    // Someone refreshed already: the newer token is the answer.
    auto tok = *s.cached;
    guard.unlock();
    cb(std::move(tok));
    return;
  }
  s.waiters.push_back(waiter{std::move(cb), stale});
  if (s.in_flight)
    return; // complete() re-runs a refresh if that fetch returns `stale`
  s.in_flight = true;
  s.flight_stale = stale;
  guard.unlock();
  start(key, std::move(stale), std::move(fetch));
}

void token_cache::start(const std::string& key, std::string stale, fetcher fetch) {
  auto again = fetch;
  fetch(stale, [this, key, stale, again = std::move(again)](result<token> res) mutable {
    complete(key, stale, std::move(res), std::move(again));
  });
}

void token_cache::complete(const std::string& key, const std::string& flight_stale,
                           result<token> res, fetcher fetch) {
  std::vector<waiter> deliver;
  std::string refresh_for;
  {
    std::lock_guard guard{mtx_};
    auto& s = slots_[key];
    if (res) {
      s.cached = *res;
      s.fetched_at = now();
      std::vector<waiter> keep;
      for (auto& w : s.waiters) {
        // A plain get that returned a token somebody already saw rejected:
        // those waiters need a real refresh. After a refresh we deliver
        // whatever came back; the caller's retry-once rule stops any loop.
        if (!w.stale.empty() && w.stale == res->value && flight_stale != w.stale)
          keep.push_back(std::move(w));
        else
          deliver.push_back(std::move(w));
      }
      s.waiters = std::move(keep);
      if (!s.waiters.empty()) {
        refresh_for = s.waiters.front().stale;
        s.cached.reset();
        s.flight_stale = refresh_for;
      } else {
        s.in_flight = false;
        s.flight_stale.clear();
      }
    } else {
      deliver = std::move(s.waiters);
      s.waiters.clear();
      s.in_flight = false;
      s.flight_stale.clear();
    }
  }
  for (auto& w : deliver)
    w.cb(res);
  if (!refresh_for.empty())
    start(key, std::move(refresh_for), std::move(fetch));
}

} // namespace wh::client::detail
