#include "http/key_metrics.hpp"

#include <map>
#include <string>
#include <utility>

#include "actors/registry.hpp"
#include "core/metrics.hpp"

namespace wh::http {

using actors::key_entry;
using actors::key_kind;

void export_key_metrics(const actors::registry& reg, metrics& m, const wh::clock& clk,
                  uint32_t refresh_margin_s) {
  m.describe("wechat_hub_active_actors",
             "Running token actors per kind (virtual activation: a key's actor runs only "
             "while it has work)",
             "gauge");
  m.describe("wechat_hub_token_age_seconds", "Age of the access token served per appid",
             "gauge");
  m.describe("wechat_hub_token_ttl_seconds",
             "Seconds until the served access token expires per appid", "gauge");
  m.describe("wechat_hub_verify_ticket_age_seconds",
             "Age of the latest component_verify_ticket (pushed every 10 min, valid 12 h)",
             "gauge");
  m.describe("wechat_hub_component_degraded", "1 while WeChat rejects the verify ticket",
             "gauge");
  m.describe("wechat_hub_authorizers", "Authorizers by component and status", "gauge");
  m.describe("wechat_hub_refreshes_total",
             "Token and ticket refreshes by kind, reason and result");
  m.describe("wechat_upstream_calls_total", "Calls to WeChat by endpoint and errcode");
  m.describe("wechat_hub_force_refresh_refused_total",
             "Forced stable_token refreshes refused by the hub's budget, by appid and limit "
             "(daily = the 20/day budget is spent, spacing = under 30 s since the last)");
  m.describe("wechat_hub_refresh_margin_seconds",
             "Configured refresh margin: tokens are renewed at least this long before expiry",
             "gauge");
  m.describe("wechat_hub_refresh_loops_total",
             "Refresh loops (a verified token reported again and again) by key and action "
             "(escalated = one real refresh, refused = answered 429)");
  m.describe("wechat_hub_authorizer_list_walks_total",
             "Walks of api_get_authorizer_list (recovery and reconciliation) per component");
  m.describe("wechat_hub_authorizers_recovered_total",
             "Authorizers recovered from api_get_authorizer_list per component");
  m.describe("wechat_hub_reconciliations_total", "Completed reconciliations per component");
  m.describe("wechat_hub_reconcile_imported_total",
             "Authorizers listed by WeChat but missing here, imported by reconciliation");
  m.describe("wechat_hub_authorizers_absent_upstream",
             "Authorizers held here that WeChat's list did not contain at the last "
             "reconciliation (kept, not deleted)",
             "gauge");
  m.add_collector([&reg, &clk, refresh_margin_s](metrics::sink& out) {
    auto t = clk.now();
    // Authorizers are aggregated per component and status: 100,000 of
    // them must not become 100,000 series.
    std::map<std::pair<std::string, std::string>, size_t> authorizers;
    reg.for_each_entry([&](const std::shared_ptr<key_entry>& e) {
      if (e->shadow)
        return;
      if (e->kind == key_kind::authorizer) {
        auto comp = e->key.substr(0, e->key.find('/'));
        authorizers[{comp, to_string(e->status.load())}]++;
        return;
      }
      if (e->kind == key_kind::component) {
        if (auto at = e->verify_ticket_at.load(); at > 0)
          out.add("wechat_hub_verify_ticket_age_seconds", {{"component", e->key}},
                  static_cast<double>(t - at));
        out.add("wechat_hub_component_degraded", {{"component", e->key}},
                e->degraded.load() ? 1.0 : 0.0);
      }
      if (auto x = e->token.load()) {
        out.add("wechat_hub_token_age_seconds", {{"appid", e->key}},
                static_cast<double>(t - x->obtained_at));
        out.add("wechat_hub_token_ttl_seconds", {{"appid", e->key}},
                static_cast<double>(x->expires_at - t));
      }
    });
    out.add("wechat_hub_refresh_margin_seconds", {}, static_cast<double>(refresh_margin_s));
    auto active = reg.active_actors();
    for (size_t i = 0; i < active.size(); ++i)
      out.add("wechat_hub_active_actors", {{"kind", to_string(static_cast<key_kind>(i))}},
              static_cast<double>(active[i]));
    for (auto& [k, n] : authorizers)
      out.add("wechat_hub_authorizers", {{"component", k.first}, {"status", k.second}},
              static_cast<double>(n));
  });
}

} // namespace wh::http
