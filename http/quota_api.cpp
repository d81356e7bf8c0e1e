// Operator views of WeChat quota: GET /admin/quota and POST /admin/clear_quota.
#include <chrono>
#include <ctime>

#include <boost/json.hpp>

#include "caf/all.hpp"

#include "actors/messages.hpp"
#include "actors/quota_book.hpp"
#include "actors/key_services.hpp"
#include "actors/registry.hpp"
#include "actors/upstream_actor.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "http/api.hpp"
#include "http/key_view.hpp"
#include "net/http_client.hpp"
#include "wechat/api.hpp"

namespace json = boost::json;

namespace wh::http {

namespace {

/// WeChat allows 10 clear_quota resets per account and month (WECHAT_PROTOCOL.md §1).
constexpr uint32_t clears_per_month = 10;

std::string beijing_date(int64_t day) {
  std::time_t t = static_cast<std::time_t>(day * 86400);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

json::value render_error(const std::optional<actors::quota_book::quota_error>& e) {
  if (!e)
    return nullptr;
  json::object o;
  o["at"] = e->at;
  o["endpoint"] = e->endpoint;
  return o;
}

} // namespace

void hub_api::set_quota(actors::quota_book* quota, caf::actor upstream, caf::actor store) {
  quota_ = quota;
  upstream_ = std::move(upstream);
  store_ = std::move(store);
}

namespace {

/// The key an operator asks about, if this hub holds it (not a shadow).
caf::expected<std::shared_ptr<actors::key_entry>> quota_entry(actors::registry& reg,
                                                              const key_ref& ref) {
  auto entry = reg.find(ref.key());
  if (!entry || keys::is_shadow(*entry))
    return make_detail_error(ec::unknown_key, ref.key() + " is not configured on this hub");
  return entry;
}

caf::error quota_disabled() {
  return make_detail_error(ec::not_found, "quota accounting is not enabled on this hub");
}

} // namespace

void hub_api::get_quota(exchange& x) {
  auto out = reply_to(this, x);
  if (!quota_)
    return out.fail(quota_disabled());
  auto ref = parse_quota_key(x.req, x.query, false);
  if (!ref)
    return out.fail(ref.error());
  auto entry = quota_entry(reg_, *ref);
  if (!entry)
    return out.fail(entry.error());
  const auto& appid = ref->appid;
  const auto& authorizer = ref->authorizer;
  auto key = ref->key();
  auto v = quota_->get(key);
  json::object obj;
  obj["appid"] = appid;
  if (!authorizer.empty())
    obj["authorizer_appid"] = authorizer;
  obj["day"] = beijing_date(v.day);
  obj["timezone"] = "Asia/Shanghai";
  json::object calls;
  uint64_t total = 0;
  for (auto& [endpoint, n] : v.calls) {
    calls[endpoint] = n;
    total += n;
  }
  obj["calls"] = std::move(calls);
  obj["total"] = total;
  obj["last_45009"] = render_error(v.last_45009);
  obj["last_45011"] = render_error(v.last_45011);
  obj["daily_quota_exhausted"] = quota_->exhausted(key);
  if (keys::is_app(**entry)) {
    json::object cq;
    cq["used_this_month"] = quota_->clears_used(appid);
    cq["limit"] = clears_per_month;
    obj["clear_quota"] = std::move(cq);
  }
  obj["note"] = "calls this hub process made (another cluster node counts its own)";
  out.ok(json_ok(json::serialize(obj)));
}

void hub_api::post_clear_quota(exchange& x) {
  auto out = reply_to(this, x);
  if (!quota_)
    return out.fail(quota_disabled());
  auto ref = parse_quota_key(x.req, x.query, true);
  if (!ref)
    return out.fail(ref.error());
  auto found = quota_entry(reg_, *ref);
  if (!found)
    return out.fail(found.error());
  auto entry = std::move(*found);
  auto appid = ref->appid;
  // clear_quota needs the account's own access token, so only official
  // accounts whose secret the hub holds qualify.
  if (!keys::is_app(*entry))
    return out.fail(make_detail_error(ec::invalid_request,
                                      appid + " is not an official account whose secret this hub holds"));
  uint32_t used = 0;
  if (!quota_->take_clear(appid, clears_per_month, used))
    return out.fail(make_detail_error(ec::clear_budget_exhausted,
                                      "WeChat allows " + std::to_string(clears_per_month)
                                        + " clear_quota per account and month; all are used "
                                          "(the budget resets on the 1st, Beijing time)"));
  WH_WARN("quota", appid << ": clear_quota requested by an operator (" << used << "/"
                         << clears_per_month << " this month)");
  svc_.keys.ask_token(*entry, [this, out, appid, used, entry](caf::expected<actors::credential> tok) {
    if (!tok) {
      // Without a valid token of its own the account cannot be reset
      // (WeChat's clear_quota authenticates with it). The answer keeps the
      // token error's code, with a message that says what it means here.
      quota_->return_clear(appid);
      auto& err = tok.error();
      auto code = code_of(err) == ec::none ? ec::internal_error : code_of(err);
      return out.fail(make_detail_error(code, "clear_quota needs a valid access token of " + appid
                                                + " and none can be obtained: " + detail_of(err)));
    }
    auto call = actors::to_call(wechat::clear_quota(tok->value, appid), appid);
    auto upstream = upstream_;
    auto store = store_;
    upstream.home_system().spawn([this, out, appid, used, entry, upstream, store,
                                  call = std::move(call)](caf::event_based_actor* self) mutable {
      self->request(upstream, std::chrono::seconds(30), call_atom::value, std::move(call))
        .then(
          [this, self, out, appid, used, entry, store](actors::upstream_reply& rep) {
            auto code = rep.status == 200 ? actors::errcode_of(rep.body) : -2;
            if (code != 0) {
              quota_->return_clear(appid);
              WH_WARN("quota", appid << ": clear_quota failed, errcode " << code);
              if (code == -2)
                return out.fail(make_detail_error(ec::upstream_error,
                                                  "WeChat answered clear_quota with HTTP "
                                                    + std::to_string(rep.status)));
              return out.fail(make_upstream_error(
                ec::upstream_error, code, "WeChat refused clear_quota (errcode " + std::to_string(code) + ")"));
            }
            quota_->cleared(appid);
            // Lift the 45009 pause of the app's actor (where it runs here).
            bool lifted = false;
            if (auto a = entry->actor()) {
              caf::anon_send(a, quota_atom::value);
              lifted = true;
            }
            WH_INFO("quota", appid << ": WeChat reset the daily quota");
            actors::store_write w;
            w.put(actors::quota_book::clear_key(appid),
                  actors::quota_book::encode_clears(actors::quota_book::beijing_month(clock_.now()),
                                                    quota_->clears_used(appid)));
            auto answer = [out, appid, used, lifted] {
              json::object obj;
              obj["status"] = "cleared";
              obj["appid"] = appid;
              obj["pause_lifted"] = lifted;
              obj["clear_quota_used_this_month"] = used;
              obj["clear_quota_limit"] = clears_per_month;
              out.ok(json_ok(json::serialize(obj)));
            };
            self->request(store, caf::infinite, put_atom::value, std::move(w))
              .then([answer](done_atom) { answer(); },
                    [answer, appid](caf::error& err) {
                      WH_ERROR("quota", appid << ": cannot persist the clear_quota budget: "
                                              << detail_of(err));
                      answer();
                    });
          },
          [out](caf::error& err) {
            // No answer: WeChat may have applied (and counted) the reset,
            // so the reset taken from the budget stays taken.
            if (code_of(err) == ec::none)
              err = make_detail_error(ec::timeout, "no answer from WeChat in time");
            out.fail(err);
          });
    });
  });
}

} // namespace wh::http
