// The third-party platform's push receiver and the authorizer admin API.
#include <cstring>
#include <algorithm>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <boost/json.hpp>

#include "actors/registry.hpp"
#include "cluster/node.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "http/api.hpp"
#include "http/api_util.hpp"
#include "persistence/push_journal.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/push.hpp"

namespace json = boost::json;

namespace wh::http {

using namespace detail;

/// Per-component crypto plus the durable replay cache and per-subject order
/// of accepted pushes.
struct hub_api::push_state {
  std::unordered_map<std::string, wechat::msg_crypto> crypto;
  int64_t window_s = 300;
  std::mutex mtx;
  std::unique_ptr<persistence::push_journal> journal;
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

hub_api::hub_api(actors::registry& reg, wh::metrics& stats, const wh::clock& clk,
                 const hub_config& cfg)
  : reg_(reg), stats_(stats), clock_(clk), push_(make_push_state(cfg)), auth_(cfg.clients),
    audit_(cfg.audit_log.empty() ? cfg.data_dir + "/audit.log" : cfg.audit_log) {
  push_->journal = std::make_unique<persistence::push_journal>(reg_.db(), push_->window_s);
  stats_.describe("wechat_hub_http_requests_total", "HTTP requests by route and status");
  stats_.describe("wechat_hub_pushes_total",
                  "Encrypted pushes by component and result (applied, duplicate, outdated, rejected, failed)");
  init_latency();
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

void hub_api::post_push(const std::string& component, const request& req, const params& q,
                        const responder& respond) {
  auto& ps = *push_;
  std::optional<wechat::msg_crypto> crypto;
  {
    std::lock_guard<std::mutex> guard{ps.mtx};
    if (auto it = ps.crypto.find(component); it != ps.crypto.end())
      crypto = it->second;
  }
  if (!crypto)
    return respond_counted(r_push, respond,
                           error_response(404, "unknown_appid",
                                          "component " + component + " is not configured on this hub"));
  auto get = [&](std::string_view k) {
    auto v = find_param(q, k);
    return v ? *v : std::string{};
  };
  auto timestamp = get("timestamp");
  auto nonce = get("nonce");
  auto signature = get("msg_signature");
  auto ev = wechat::open_push(*crypto, req.body, timestamp, nonce, signature);
  if (!ev) {
    auto failure = wechat::push_failure_of(ev.error());
    WH_WARN("push", component << ": rejected push: " << wechat::to_string(failure));
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "rejected"}});
    if (failure == wechat::push_failure::bad_signature)
      return respond_counted(r_push, respond,
                             error_response(401, "invalid_signature", "msg_signature does not verify"));
    return respond_counted(r_push, respond,
                           error_response(400, "invalid_push", "the push cannot be decrypted or parsed: "
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
    return respond_counted(r_push, respond,
                           error_response(401, "push_timestamp_out_of_window",
                                          "push timestamp is outside the accepted window of "
                                            + std::to_string(ps.window_s) + " s"));
  }
  // Malformed events are refused before they are recorded anywhere.
  const auto& info = ev->info_type;
  std::string subject;
  if (info == "component_verify_ticket") {
    if (ev->component_verify_ticket.empty())
      return respond_counted(r_push, respond,
                             error_response(400, "invalid_push", "ComponentVerifyTicket is empty"));
    subject = "verify_ticket";
  } else if (info == "authorized" || info == "updateauthorized") {
    if (ev->authorization_code.empty() || !valid_appid(ev->authorizer_appid))
      return respond_counted(r_push, respond,
                             error_response(400, "invalid_push",
                                            "AuthorizerAppid or AuthorizationCode is missing"));
    subject = "auth/" + ev->authorizer_appid;
  } else if (info == "unauthorized") {
    if (!valid_appid(ev->authorizer_appid))
      return respond_counted(r_push, respond,
                             error_response(400, "invalid_push", "AuthorizerAppid is missing"));
    subject = "auth/" + ev->authorizer_appid;
  }
  // The replay cache and the per-subject order are durable, so neither a
  // replay after a restart nor a late copy of an older event (a verify
  // ticket, an unauthorized event) can undo newer state.
  auto verdict = ps.journal->admit(component, signature, subject,
                                   ev->create_time > 0 ? ev->create_time : ts, now);
  if (!verdict) {
    WH_WARN("push", component << ": cannot record the push: " << detail_of(verdict.error()));
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "failed"}});
    return respond_counted(r_push, respond,
                           error_response(503, "push_not_applied", "the push cannot be recorded"));
  }
  if (*verdict == persistence::push_journal::verdict::duplicate) {
    WH_INFO("push", component << ": duplicate push ignored");
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "duplicate"}});
    return respond_counted(r_push, respond, success_text());
  }
  if (*verdict == persistence::push_journal::verdict::outdated) {
    WH_INFO("push", component << ": " << info << " older than the last one applied for "
                              << subject << ", acknowledged and ignored");
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "outdated"}});
    return respond_counted(r_push, respond, success_text());
  }
  auto forget = [this, component, signature] { push_->journal->release(component, signature); };
  auto created = ev->create_time > 0 ? ev->create_time : ts;
  auto done = [this, respond, forget, component, info, signature, subject, created](caf::error err) {
    // Remembered only once applied: if the hub dies in between, WeChat's
    // retry of the same push is applied, not taken for a duplicate.
    if (!err)
      err = push_->journal->applied(component, signature, subject, created, clock_.now());
    if (err) {
      // Not applied: WeChat retries, and the retry must not look like a duplicate.
      forget();
      WH_WARN("push", component << ": " << info << " failed: " << to_string(code_of(err)) << " "
                                << detail_of(err));
      stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "failed"}});
      auto res = error_response(err);
      if (res.status < 500)
        res = error_response(503, res.status == 404 ? "unknown_appid" : "push_not_applied", detail_of(err));
      return respond_counted(r_push, respond, std::move(res));
    }
    stats_.inc("wechat_hub_pushes_total", {{"component", component}, {"result", "applied"}});
    respond_counted(r_push, respond, success_text());
  };
  if (info == "component_verify_ticket")
    return reg_.deliver_verify_ticket(component, ev->component_verify_ticket, done);
  if (info == "authorized" || info == "updateauthorized") {
    WH_INFO("push", component << ": " << info << " " << ev->authorizer_appid);
    return reg_.authorize(component, ev->authorization_code, ev->authorizer_appid, ev->create_time, done);
  }
  if (info == "unauthorized") {
    WH_INFO("push", component << ": unauthorized " << ev->authorizer_appid);
    return reg_.revoke(component, ev->authorizer_appid, [done](caf::error err) {
      // Revoking an authorizer this hub never knew is a no-op, not a failure.
      done(code_of(err) == ec::unknown_key ? caf::error{} : std::move(err));
    });
  }
  WH_INFO("push", component << ": ignoring InfoType " << info.substr(0, 64));
  forget();
  respond_counted(r_push, respond, success_text());
}

// -- admin -------------------------------------------------------------------

void hub_api::admin(const std::string& path, const request& req, const params& q,
                    const responder& respond_raw, caller who) {
  // Every admin action, refused ones included, lands in the audit log.
  auto client = req.replicated ? std::string{"(cluster)"}
                : who       ? who->name
                            : std::string{req.loopback ? "(open, loopback)" : "(open)"};
  responder respond = with_timing_of(
    respond_raw, [this, client, action = req.method, path, respond_raw](response res) {
      audit_.record(client, action, path, res.status);
      respond_raw(std::move(res));
    });
  // With keys: admin keys only. Without: loopback only.
  if (auth_.enabled() && (!who || !who->admin) && !req.replicated)
    return respond_counted(r_admin, respond,
                           error_response(403, "forbidden", "this key may not use the admin API"));
  if (!auth_.enabled() && !req.loopback)
    return respond_counted(r_admin, respond,
                           error_response(403, "forbidden",
                                          "without [[client]] keys the admin API answers only on loopback"));
  if (path == "/admin/quota" || path == "/admin/clear_quota")
    return admin_quota(path, req, q, respond);
  if (path == "/admin/cluster") {
    if (req.method != "GET")
      return respond_counted(r_admin, respond, method_not_allowed("GET"));
    if (!cluster_)
      return respond_counted(r_admin, respond,
                             error_response(404, "not_found", "this hub is not part of a cluster"));
    auto v = cluster_->current();
    json::object out;
    out["node"] = v->self;
    out["state"] = v->ready ? "ready" : "joining";
    json::array live;
    for (auto& n : v->own.nodes())
      live.emplace_back(n);
    out["live"] = std::move(live);
    out["replicas"] = v->replicas;
    out["owned_keys"] = v->owned_keys;
    if (auto key = find_param(q, "key"); key && !key->empty()) {
      auto slash = key->find('/');
      if (!valid_appid(key->substr(0, slash))
          || (slash != std::string::npos && !valid_appid(key->substr(slash + 1))))
        return respond_counted(r_admin, respond,
                               error_response(400, "invalid_request", "key must be an appid or component/authorizer"));
      json::object k;
      k["key"] = *key;
      k["owner"] = v->own.owner(*key);
      json::array holders;
      for (auto& h : v->own.rank(*key, v->replicas))
        holders.emplace_back(h);
      k["replicas"] = std::move(holders);
      out["key"] = std::move(k);
    }
    return respond_counted(r_admin, respond, json_ok(json::serialize(out)));
  }
  if (path == "/admin/refresh" || path == "/admin/state") {
    bool refresh = path == "/admin/refresh";
    if (req.method != (refresh ? "POST" : "GET"))
      return respond_counted(r_admin, respond, method_not_allowed(refresh ? "POST" : "GET"));
    params body;
    response err;
    if (refresh && !parse_body(req, body, err))
      return respond_counted(r_admin, respond, std::move(err));
    auto& src = refresh ? body : q;
    std::string appid, authorizer;
    if (!read_id(src, "appid", true, appid, err) || !read_id(src, "authorizer_appid", false, authorizer, err))
      return respond_counted(r_admin, respond, std::move(err));
    auto entry = reg_.find(authorizer.empty() ? appid : appid + "/" + authorizer);
    if (!entry)
      return respond_counted(r_admin, respond, error_response(404, "unknown_appid", "no such key on this hub"));
    if (!refresh)
      return reg_.describe(*entry, [this, respond](caf::expected<std::string> res) {
        if (!res)
          return respond_counted(r_admin, respond, error_response(res.error()));
        respond_counted(r_admin, respond, json_ok(std::move(*res)));
      });
    return reg_.force_refresh(*entry, [this, respond](caf::expected<actors::credential> res) {
      if (!res)
        return respond_counted(r_admin, respond, error_response(res.error()));
      json::object o;
      o["status"] = "refreshed";
      o["version"] = res->version;
      o["obtained_at"] = res->obtained_at;
      o["expires_at"] = res->expires_at;
      respond_counted(r_admin, respond, json_ok(json::serialize(o)));
    });
  }
  if (path == "/admin/apps" || path == "/admin/components") {
    if (req.method != "GET")
      return respond_counted(r_admin, respond, method_not_allowed("GET"));
    bool apps = path == "/admin/apps";
    json::array arr;
    std::vector<std::shared_ptr<actors::key_entry>> all = reg_.entries();
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a->key < b->key; });
    for (auto& e : all) {
      if (e->kind != (apps ? actors::key_kind::app : actors::key_kind::component))
        continue;
      json::object o;
      o["appid"] = e->key;
      o["source"] = e->runtime ? "admin" : "config";
      if (apps)
        o["token_api"] = e->token_api;
      else
        o["degraded"] = e->degraded.load();
      arr.push_back(std::move(o));
    }
    json::object out;
    out[apps ? "apps" : "components"] = std::move(arr);
    return respond_counted(r_admin, respond, json_ok(json::serialize(out)));
  }
  auto define = [&](bool app, const std::string& appid) {
    if (!valid_appid(appid))
      return respond_counted(r_admin, respond, error_response(400, "invalid_request", "malformed appid"));
    // Definitions live on every node: a change accepted here is relayed.
    auto relay = cluster_ && !req.replicated;
    auto done = [this, respond, relay, method = req.method, target = req.target, body = req.body,
                 ctype = req.content_type](caf::error err) {
      if (err) {
        auto res = error_response(err);
        if (code_of(err) == ec::invalid_request)
          res = error_response(409, "conflict", detail_of(err));
        return respond_counted(r_admin, respond, std::move(res));
      }
      if (relay)
        cluster_->relay_admin(method, target, body, ctype);
      respond_counted(r_admin, respond, json_ok(R"({"status":"ok"})"));
    };
    if (req.method == "DELETE") {
      if (!app) {
        return reg_.remove(appid, [this, appid, done](caf::error err) {
          if (!err) {
            std::lock_guard<std::mutex> guard{push_->mtx};
            push_->crypto.erase(appid);
          }
          done(std::move(err));
        });
      }
      return reg_.remove(appid, done);
    }
    if (req.method != "PUT")
      return respond_counted(r_admin, respond, method_not_allowed("PUT, DELETE"));
    params body;
    response err;
    if (!parse_body(req, body, err))
      return respond_counted(r_admin, respond, std::move(err));
    auto get = [&](std::string_view k) {
      auto v = find_param(body, k);
      return v ? *v : std::string{};
    };
    auto secret = get("secret");
    if (secret.empty() || secret.size() > 256)
      return respond_counted(r_admin, respond, error_response(400, "invalid_request", "secret is required"));
    if (app) {
      auto api = get("token_api");
      if (!api.empty() && api != "stable" && api != "classic")
        return respond_counted(r_admin, respond,
                               error_response(400, "invalid_request", "token_api must be stable or classic"));
      return reg_.put_app(app_config{appid, secret, api == "classic" ? token_api::classic : token_api::stable},
                          done);
    }
    component_config comp{appid, secret, get("token"), get("encoding_aes_key")};
    auto crypto = wechat::msg_crypto::make(comp.encoding_aes_key, comp.token, appid);
    if (comp.token.empty() || !crypto)
      return respond_counted(r_admin, respond,
                             error_response(400, "invalid_request",
                                            "token and a 43-character encoding_aes_key are required"));
    reg_.put_component(comp, [this, appid, crypto = std::move(*crypto), done](caf::error err) {
      if (!err) {
        std::lock_guard<std::mutex> guard{push_->mtx};
        push_->crypto.insert_or_assign(appid, crypto);
      }
      done(std::move(err));
    });
  };
  if (path.rfind("/admin/apps/", 0) == 0)
    return define(true, path.substr(std::strlen("/admin/apps/")));
  if (path.rfind("/admin/components/", 0) == 0
      && path.find('/', std::strlen("/admin/components/")) == std::string::npos)
    return define(false, path.substr(std::strlen("/admin/components/")));
  // /admin/components/{C}/authorizers[/{A}]
  static constexpr std::string_view base = "/admin/components/";
  if (path.rfind(base, 0) != 0)
    return respond_counted(r_admin, respond, error_response(404, "not_found", "no such path"));
  auto rest = std::string_view{path}.substr(base.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos)
    return respond_counted(r_admin, respond, error_response(404, "not_found", "no such path"));
  std::string component{rest.substr(0, slash)};
  rest = rest.substr(slash + 1);
  std::string authorizer;
  if (rest.rfind("authorizers", 0) != 0)
    return respond_counted(r_admin, respond, error_response(404, "not_found", "no such path"));
  rest = rest.substr(std::strlen("authorizers"));
  if (!rest.empty()) {
    if (rest.front() != '/' || rest.size() == 1)
      return respond_counted(r_admin, respond, error_response(404, "not_found", "no such path"));
    authorizer = std::string{rest.substr(1)};
    if (!valid_appid(authorizer))
      return respond_counted(r_admin, respond,
                             error_response(400, "invalid_request", "malformed authorizer appid"));
  }
  auto comp = reg_.find(component);
  if (!valid_appid(component) || !comp || comp->kind != actors::key_kind::component)
    return respond_counted(r_admin, respond,
                           error_response(404, "unknown_appid", "component is not configured on this hub"));
  auto done_json = [this, respond](std::string body) {
    return [this, respond, body](caf::error err) {
      if (err)
        return respond_counted(r_admin, respond, error_response(err));
      respond_counted(r_admin, respond, json_ok(body));
    };
  };
  if (authorizer.empty()) {
    if (req.method == "GET") {
      size_t offset = 0, limit = 100;
      try {
        if (auto v = find_param(q, "offset"))
          offset = std::stoul(*v);
        if (auto v = find_param(q, "limit"))
          limit = std::min<size_t>(1000, std::stoul(*v));
      } catch (...) {
        return respond_counted(r_admin, respond,
                               error_response(400, "invalid_request", "offset and limit must be numbers"));
      }
      size_t total = 0;
      auto items = reg_.list_authorizers(component, offset, limit, total);
      json::array arr;
      for (auto& i : items) {
        json::object o;
        o["authorizer_appid"] = i.appid;
        o["status"] = i.status;
        if (i.token_expires_at > 0)
          o["token_expires_at"] = i.token_expires_at;
        arr.push_back(std::move(o));
      }
      json::object obj;
      obj["total"] = total;
      obj["offset"] = offset;
      obj["authorizers"] = std::move(arr);
      return respond_counted(r_admin, respond, json_ok(json::serialize(obj)));
    }
    if (req.method != "POST")
      return respond_counted(r_admin, respond, method_not_allowed("GET, POST"));
    // Bulk import: {"authorizers":[{"authorizer_appid","refresh_token"},...]}
    boost::system::error_code ec;
    auto val = json::parse(req.body, ec);
    auto bad = [&](std::string why) {
      respond_counted(r_admin, respond, error_response(400, "invalid_request", why));
    };
    if (ec || !val.is_object() || !val.as_object().contains("authorizers")
        || !val.as_object().at("authorizers").is_array())
      return bad("body must be {\"authorizers\": [{\"authorizer_appid\", \"refresh_token\"}, ...]}");
    auto& arr = val.as_object().at("authorizers").as_array();
    if (arr.size() > 10'000)
      return bad("at most 10000 authorizers per request");
    std::vector<std::pair<std::string, std::string>> items;
    items.reserve(arr.size());
    for (auto& v : arr) {
      auto o = v.if_object();
      auto aid = o ? o->if_contains("authorizer_appid") : nullptr;
      auto rt = o ? o->if_contains("refresh_token") : nullptr;
      if (!aid || !aid->is_string() || !valid_appid(aid->as_string()) || !rt || !rt->is_string()
          || rt->as_string().empty() || rt->as_string().size() > 1024)
        return bad("entry " + std::to_string(items.size())
                   + " needs a valid authorizer_appid and a non-empty refresh_token");
      items.emplace_back(std::string{aid->as_string()}, std::string{rt->as_string()});
    }
    auto n = items.size();
    return reg_.import_authorizers(component, std::move(items),
                                   done_json("{\"imported\":" + std::to_string(n) + "}"));
  }
  if (req.method == "PUT") {
    params body;
    response err;
    if (!parse_body(req, body, err))
      return respond_counted(r_admin, respond, std::move(err));
    auto rt = find_param(body, "refresh_token");
    if (!rt || rt->empty() || rt->size() > 1024)
      return respond_counted(r_admin, respond,
                             error_response(400, "invalid_request", "refresh_token is required"));
    WH_INFO("admin", "import of authorizer " << component << "/" << authorizer);
    return reg_.import_authorizers(component, {{authorizer, *rt}},
                                   done_json(R"({"status":"imported"})"));
  }
  if (req.method == "DELETE") {
    WH_INFO("admin", "revoking authorizer " << component << "/" << authorizer);
    return reg_.revoke(component, authorizer, done_json(R"({"status":"revoked"})"));
  }
  respond_counted(r_admin, respond, method_not_allowed("PUT, DELETE"));
}

} // namespace wh::http
