// The third-party platform's push receiver, and the hub API's construction.
#include <cstring>
#include <algorithm>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <boost/json.hpp>

#include "actors/key_services.hpp"
#include "actors/registry.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "http/api.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/push.hpp"

namespace json = boost::json;

namespace wh::http {

/// Per-component crypto plus the durable replay cache and per-subject order
/// of accepted pushes.
struct hub_api::push_state {
  std::unordered_map<std::string, wechat::msg_crypto> crypto;
  int64_t window_s = 300;
  std::mutex mtx;
  push_ledger journal;
};

std::unique_ptr<hub_api::push_state> hub_api::make_push_state(const hub_config& cfg) {
  auto st = std::make_unique<push_state>();
  st->window_s = cfg.push_window_s;
  for (auto& comp : cfg.components) {
    auto c = wechat::msg_crypto::make(comp.encoding_aes_key, comp.token, comp.appid);
    if (c)
      st->crypto.emplace(comp.appid, std::move(*c));
    else
      WH_ERROR("push", comp.appid << ": unusable encoding_aes_key; its pushes will be refused");
  }
  return st;
}

hub_api::hub_api(actors::key_services& keys, wh::metrics& stats, const wh::clock& clk,
                 const hub_config& cfg, push_ledger ledger)
  : svc_(keys), reg_(keys.reg), stats_(stats), clock_(clk), push_(make_push_state(cfg)), auth_(cfg.clients),
    audit_(cfg.audit_log.empty() ? cfg.data_dir + "/audit.log" : cfg.audit_log) {
  push_->journal = std::move(ledger);
  stats_.describe("wechat_hub_pushes_total",
                  "Encrypted pushes by component and result (applied, duplicate, outdated, rejected, failed)");
  init_metrics();
}

void hub_api::put_push_crypto(const std::string& appid, const wechat::msg_crypto& crypto) {
  std::lock_guard<std::mutex> guard{push_->mtx};
  push_->crypto.insert_or_assign(appid, crypto);
}

void hub_api::drop_push_crypto(const std::string& appid) {
  std::lock_guard<std::mutex> guard{push_->mtx};
  push_->crypto.erase(appid);
}

void hub_api::set_cluster(cluster_port port) {
  cluster_ = std::move(port);
}

hub_api::~hub_api() = default;

void hub_api::reload(const hub_config& cfg, const std::vector<std::string>& dropped) {
  auth_.replace(cfg.clients);
  auto next = make_push_state(cfg);
  std::lock_guard<std::mutex> guard{push_->mtx};
  for (auto& id : dropped)
    push_->crypto.erase(id);
  for (auto& [id, crypto] : next->crypto)
    push_->crypto.insert_or_assign(id, std::move(crypto));
}

namespace {

response success_text() {
  response res;
  res.content_type = "text/plain";
  res.body = "success";
  return res;
}

} // namespace

namespace {

/// A push whose effect failed is answered with a server error, so that
/// WeChat retries it: errors that are not server errors already become
/// push_not_applied, or push_unknown_component when the key was not found
/// (the component went away while the push was applied).
caf::error not_applied(const caf::error& err) {
  if (is_server_error(err))
    return err;
  return make_detail_error(is_not_found(err) ? ec::push_unknown_component : ec::push_not_applied,
                           detail_of(err));
}

} // namespace

void hub_api::post_push(exchange& x) {
  auto out = reply_to(this, x);
  const auto& component = x.args.at(0);
  const auto& req = x.req;
  auto pq = parse_push_query(x.query);
  auto& ps = *push_;
  std::optional<wechat::msg_crypto> crypto;
  {
    std::lock_guard<std::mutex> guard{ps.mtx};
    if (auto it = ps.crypto.find(component); it != ps.crypto.end())
      crypto = it->second;
  }
  if (!crypto)
    return out.fail(fail_with(ec::unknown_key, "component " + component + " is not configured on this hub"));
  const auto& timestamp = pq.timestamp;
  const auto& nonce = pq.nonce;
  const auto& signature = pq.signature;
  auto ev = wechat::open_push(*crypto, req.body, timestamp, nonce, signature);
  if (!ev) {
    auto failure = wechat::push_failure_of(ev.error());
    WH_WARN("push", component << ": rejected push: " << wechat::to_string(failure));
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "rejected"}});
    if (failure == wechat::push_failure::bad_signature)
      return out.fail(fail_with(ec::invalid_signature, "msg_signature does not verify"));
    return out.fail(fail_with(ec::invalid_push, "the push cannot be decrypted or parsed: "
                                                  + detail_of(ev.error())));
  }
  // Signed but stale or from the future: a replay from outside the window.
  int64_t ts = 0;
  try {
    ts = std::stoll(timestamp);
  } catch (...) {
    ts = 0;
  }
  auto now = clock_.now();
  if (ts <= 0 || ts < now - ps.window_s || ts > now + ps.window_s) {
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "rejected"}});
    return out.fail(fail_with(ec::push_out_of_window, "push timestamp is outside the accepted window of "
                                                        + std::to_string(ps.window_s) + " s"));
  }
  // Malformed events are refused before they are recorded anywhere.
  const auto& info = ev->info_type;
  std::string subject;
  if (info == "component_verify_ticket") {
    if (ev->component_verify_ticket.empty())
      return out.fail(fail_with(ec::invalid_push, "ComponentVerifyTicket is empty"));
    subject = "verify_ticket";
  } else if (info == "authorized" || info == "updateauthorized") {
    if (ev->authorization_code.empty() || !valid_appid(ev->authorizer_appid))
      return out.fail(fail_with(ec::invalid_push, "AuthorizerAppid or AuthorizationCode is missing"));
    subject = "auth/" + ev->authorizer_appid;
  } else if (info == "unauthorized") {
    if (!valid_appid(ev->authorizer_appid))
      return out.fail(fail_with(ec::invalid_push, "AuthorizerAppid is missing"));
    subject = "auth/" + ev->authorizer_appid;
  }
  // The replay cache and the per-subject order are durable, so neither a
  // replay after a restart nor a late copy of an older event (a verify
  // ticket, an unauthorized event) can undo newer state.
  auto verdict = ps.journal.admit(component, signature, subject,
                                   ev->create_time > 0 ? ev->create_time : ts, now);
  if (!verdict) {
    WH_WARN("push", component << ": cannot record the push: " << detail_of(verdict.error()));
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "failed"}});
    return out.fail(fail_with(ec::push_not_applied, "the push cannot be recorded"));
  }
  if (*verdict == push_ledger::verdict::duplicate) {
    WH_INFO("push", component << ": duplicate push ignored");
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "duplicate"}});
    return out.ok(success_text());
  }
  if (*verdict == push_ledger::verdict::outdated) {
    WH_INFO("push", component << ": " << info << " older than the last one applied for "
                              << subject << ", acknowledged and ignored");
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "outdated"}});
    return out.ok(success_text());
  }
  auto forget = [this, component, signature] { push_->journal.release(component, signature); };
  auto created = ev->create_time > 0 ? ev->create_time : ts;
  auto done = [this, out, forget, component, info, signature, subject, created](caf::error err) {
    // Remembered only once applied: if the hub dies in between, WeChat's
    // retry of the same push is applied, not taken for a duplicate.
    if (!err)
      err = push_->journal.applied(component, signature, subject, created, clock_.now());
    if (err) {
      // Not applied: WeChat retries, and the retry must not look like a duplicate.
      forget();
      WH_WARN("push", component << ": " << info << " failed: " << to_string(code_of(err)) << " "
                                << detail_of(err));
      stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "failed"}});
      return out.fail(not_applied(err));
    }
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "applied"}});
    out.ok(success_text());
  };
  if (info == "component_verify_ticket")
    return svc_.auths.deliver_verify_ticket(component, ev->component_verify_ticket, done);
  if (info == "authorized" || info == "updateauthorized") {
    WH_INFO("push", component << ": " << info << " " << ev->authorizer_appid);
    return svc_.auths.authorize(component, ev->authorization_code, ev->authorizer_appid, ev->create_time, done);
  }
  if (info == "unauthorized") {
    WH_INFO("push", component << ": unauthorized " << ev->authorizer_appid);
    return svc_.auths.revoke(component, ev->authorizer_appid, [done](caf::error err) {
      // Revoking an authorizer this hub never knew is a no-op, not a failure.
      done(code_of(err) == ec::unknown_key ? caf::error{} : std::move(err));
    });
  }
  WH_INFO("push", component << ": ignoring InfoType " << info.substr(0, 64));
  forget();
  out.ok(success_text());
}


} // namespace wh::http
