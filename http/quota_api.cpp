// Operator views of WeChat quota: GET /admin/quota and POST /admin/clear_quota.
#include <chrono>
#include <ctime>

#include <boost/json.hpp>

#include "caf/all.hpp"

#include "actors/messages.hpp"
#include "actors/quota_book.hpp"
#include "actors/registry.hpp"
#include "actors/upstream_actor.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "http/api.hpp"
#include "http/api_util.hpp"
#include "wechat/api.hpp"

namespace json = boost::json;

namespace wh::http {

using namespace detail;

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

void hub_api::admin_quota(const std::string& path, const request& req, const params& q,
                          const responder& respond) {
  bool clear = path == "/admin/clear_quota";
  if (req.method != (clear ? "POST" : "GET"))
    return respond_counted(r_admin, respond, method_not_allowed(clear ? "POST" : "GET"));
  if (!quota_)
    return respond_counted(r_admin, respond,
                           error_response(404, "not_found", "quota accounting is not enabled on this hub"));
  params body;
  response err;
  if (clear && !parse_body(req, body, err))
    return respond_counted(r_admin, respond, std::move(err));
  auto& src = clear ? body : q;
  std::string appid, authorizer;
  if (!read_id(src, "appid", true, appid, err)
      || (!clear && !read_id(src, "authorizer_appid", false, authorizer, err)))
    return respond_counted(r_admin, respond, std::move(err));
  auto key = authorizer.empty() ? appid : appid + "/" + authorizer;
  auto entry = reg_.find(key);
  if (!entry || entry->shadow)
    return respond_counted(r_admin, respond,
                           error_response(404, "unknown_appid", key + " is not configured on this hub"));
  if (!clear) {
    auto v = quota_->get(key);
    json::object out;
    out["appid"] = appid;
    if (!authorizer.empty())
      out["authorizer_appid"] = authorizer;
    out["day"] = beijing_date(v.day);
    out["timezone"] = "Asia/Shanghai";
    json::object calls;
    uint64_t total = 0;
    for (auto& [endpoint, n] : v.calls) {
      calls[endpoint] = n;
      total += n;
    }
    out["calls"] = std::move(calls);
    out["total"] = total;
    out["last_45009"] = render_error(v.last_45009);
    out["last_45011"] = render_error(v.last_45011);
    out["daily_quota_exhausted"] = quota_->exhausted(key);
    if (entry->kind == actors::key_kind::app) {
      json::object cq;
      cq["used_this_month"] = quota_->clears_used(appid);
      cq["limit"] = clears_per_month;
      out["clear_quota"] = std::move(cq);
    }
    out["note"] = "calls this hub process made (another cluster node counts its own)";
    return respond_counted(r_admin, respond, json_ok(json::serialize(out)));
  }
  // clear_quota needs the account's own access token, so only official
  // accounts whose secret the hub holds qualify.
  if (entry->kind != actors::key_kind::app)
    return respond_counted(r_admin, respond,
                           error_response(400, "invalid_request",
                                          appid + " is not an official account whose secret this hub holds"));
  uint32_t used = 0;
  if (!quota_->take_clear(appid, clears_per_month, used))
    return respond_counted(r_admin, respond,
                           error_response(429, "clear_quota_budget_exhausted",
                                          "WeChat allows " + std::to_string(clears_per_month)
                                            + " clear_quota per account and month; all are used "
                                              "(the budget resets on the 1st, Beijing time)"));
  WH_WARN("quota", appid << ": clear_quota requested by an operator (" << used << "/"
                         << clears_per_month << " this month)");
  reg_.ask_token(*entry, [this, respond, appid, used, entry](caf::expected<actors::credential> tok) {
    if (!tok) {
      // Without a valid token of its own the account cannot be reset
      // (WeChat's clear_quota authenticates with it).
      quota_->return_clear(appid);
      auto& err = tok.error();
      auto reason = code_of(err) == ec::none ? "internal_error" : to_string(code_of(err));
      return respond_counted(r_admin, respond,
                             error_response(status_of(err), reason,
                                            "clear_quota needs a valid access token of " + appid
                                              + " and none can be obtained: " + detail_of(err)));
    }
    auto call = actors::to_call(wechat::clear_quota(tok->value, appid), appid);
    auto upstream = upstream_;
    auto store = store_;
    upstream.home_system().spawn([this, respond, appid, used, entry, upstream, store,
                                  call = std::move(call)](caf::event_based_actor* self) mutable {
      self->request(upstream, std::chrono::seconds(30), call_atom::value, std::move(call))
        .then(
          [this, self, respond, appid, used, entry, store](actors::upstream_reply& rep) {
            auto code = rep.status == 200 ? actors::errcode_of(rep.body) : -2;
            if (code != 0) {
              quota_->return_clear(appid);
              WH_WARN("quota", appid << ": clear_quota failed, errcode " << code);
              if (code == -2)
                return respond_counted(r_admin, respond,
                                       error_response(502, "upstream_error",
                                                      "WeChat answered clear_quota with HTTP "
                                                        + std::to_string(rep.status)));
              return respond_counted(r_admin, respond,
                                     error_response(502, "upstream_error",
                                                    "WeChat refused clear_quota (errcode "
                                                      + std::to_string(code) + ")",
                                                    &code));
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
            auto answer = [this, respond, appid, used, lifted] {
              json::object out;
              out["status"] = "cleared";
              out["appid"] = appid;
              out["pause_lifted"] = lifted;
              out["clear_quota_used_this_month"] = used;
              out["clear_quota_limit"] = clears_per_month;
              respond_counted(r_admin, respond, json_ok(json::serialize(out)));
            };
            self->request(store, caf::infinite, put_atom::value, std::move(w))
              .then([answer](done_atom) { answer(); },
                    [answer, appid](caf::error& err) {
                      WH_ERROR("quota", appid << ": cannot persist the clear_quota budget: "
                                              << detail_of(err));
                      answer();
                    });
          },
          [this, respond](caf::error& err) {
            // No answer: WeChat may have applied (and counted) the reset,
            // so the reset taken from the budget stays taken.
            if (code_of(err) == ec::none)
              err = make_detail_error(ec::timeout, "no answer from WeChat in time");
            respond_counted(r_admin, respond, error_response(err));
          });
    });
  });
}

} // namespace wh::http
