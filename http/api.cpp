#include "http/api.hpp"
#include "http/api_util.hpp"

#include <chrono>
#include <cstring>

#include <boost/json.hpp>
#include <boost/url.hpp>

#include "actors/registry.hpp"
#include "cluster/node.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

namespace json = boost::json;
namespace urls = boost::urls;

namespace wh::http {

namespace {


constexpr std::string_view route_names[] = {
  "/client/access_token", "/refresh/access_token",
  "/client/ticket",       "/client/component_access_token",
  "/client/refresh_component_access_token", "/healthz",
  "/metrics",             "/wechat/component/events", "/admin", "other",
};

} // namespace

namespace detail {

responder with_timing_of(const responder& timed, responder next) {
  auto t = timed.target<timed_responder>();
  return timed_responder{std::move(next), t ? t->start : std::chrono::steady_clock::now()};
}

const std::string* find_param(const std::vector<std::pair<std::string, std::string>>& q,
                              std::string_view key) {
  for (auto& [k, v] : q)
    if (k == key)
      return &v;
  return nullptr;
}

response json_ok(std::string body) {
  response res;
  res.body = std::move(body);
  return res;
}

response method_not_allowed(std::string_view allow) {
  auto res = error_response(405, "method_not_allowed",
                            "this path only accepts " + std::string{allow});
  res.headers.emplace_back("Allow", std::string{allow});
  return res;
}

/// Reads an appid-like parameter: missing or malformed values are 400s.
bool read_id(const std::vector<std::pair<std::string, std::string>>& q, std::string_view key,
             bool required, std::string& out, response& err) {
  auto v = find_param(q, key);
  if (!v || v->empty()) {
    if (required) {
      err = error_response(400, "invalid_request", std::string{key} + " is required");
      return false;
    }
    return true;
  }
  if (!valid_appid(*v)) {
    err = error_response(400, "invalid_request",
                         std::string{key} + " must be 1-64 characters of [A-Za-z0-9_-]");
    return false;
  }
  out = *v;
  return true;
}

/// Parses a refresh body: JSON object or urlencoded form (elixir sends either).
bool parse_body(const request& req, std::vector<std::pair<std::string, std::string>>& out,
                response& err) {
  if (req.content_type.rfind("application/x-www-form-urlencoded", 0) == 0) {
    auto q = urls::parse_query(req.body);
    if (!q) {
      err = error_response(400, "invalid_request", "malformed form body");
      return false;
    }
    for (auto p : *q)
      out.emplace_back(p.key, p.value);
    return true;
  }
  boost::system::error_code ec;
  auto val = json::parse(req.body, ec);
  if (ec || !val.is_object()) {
    err = error_response(400, "invalid_request", "body must be a JSON object");
    return false;
  }
  for (auto& [k, v] : val.as_object()) {
    if (v.is_string())
      out.emplace_back(std::string{k}, std::string{v.as_string()});
    else if (!v.is_null()) {
      err = error_response(400, "invalid_request", std::string{k} + " must be a string");
      return false;
    }
  }
  return true;
}

} // namespace detail

using namespace detail;

// -- rendering ---------------------------------------------------------------

response error_response(unsigned status, std::string_view reason, std::string_view message,
                        const int* errcode) {
  json::object obj;
  if (errcode)
    obj["errcode"] = *errcode;
  else
    obj["errcode"] = nullptr;
  obj["message"] = message;
  obj["reason"] = reason;
  obj["http_status"] = status;
  response res;
  res.status = status;
  res.body = json::serialize(obj);
  return res;
}

unsigned status_of(const caf::error& err) {
  switch (code_of(err)) {
    case ec::invalid_request: return 400;
    case ec::unknown_key: return 404;
    case ec::authorizer_revoked: return 410;
    case ec::needs_reauthorization: return 409;
    case ec::upstream_error:
    case ec::bad_credentials:
    case ec::verify_ticket_invalid: return 502;
    case ec::upstream_unavailable:
    case ec::quota_exhausted:
    case ec::rate_limited:
    case ec::force_budget_exhausted:
    case ec::timeout:
    case ec::cluster_unavailable:
    case ec::shutting_down: return 503;
    case ec::report_loop: return 429;
    default: return 500;
  }
}

response error_response(const caf::error& err) {
  auto status = status_of(err);
  auto code = code_of(err);
  std::string reason = code == ec::none ? "internal_error" : to_string(code);
  auto detail = detail_of(err);
  if (detail.empty())
    detail = code == ec::none ? "internal error" : reason;
  int errcode = 0;
  if (wechat_errcode_of(err, errcode))
    return error_response(status, reason, detail, &errcode);
  auto res = error_response(status, reason, detail);
  if (auto retry = retry_after_of(err); retry > 0)
    res.headers.emplace_back("Retry-After", std::to_string(retry));
  return res;
}

std::string render_token(const actors::credential& x) {
  std::string out;
  out.reserve(x.value.size() + 64);
  out += R"({"access_token":)";
  out += json::serialize(json::string_view{x.value});
  out += R"(,"expires_in":)";
  out += std::to_string(x.expires_at - x.obtained_at);
  out += R"(,"timestamp":)";
  out += std::to_string(x.obtained_at);
  out += '}';
  return out;
}

std::string render_ticket(const actors::credential& x, std::string_view type) {
  json::object obj;
  obj["ticket"] = x.value;
  obj["type"] = type;
  obj["expires_in"] = x.expires_at - x.obtained_at;
  obj["timestamp"] = x.obtained_at;
  return json::serialize(obj);
}

// -- hub_api -----------------------------------------------------------------



std::atomic<uint64_t>& hub_api::counter(route_id r, unsigned status) {
  for (size_t i = 0; i < statuses_.size(); ++i) {
    if (statuses_[i] != status)
      continue;
    auto& slot = cache_[r][i];
    if (auto p = slot.load(std::memory_order_acquire))
      return *p;
    auto& c = stats_.counter("wechat_hub_http_requests_total",
                             {{"route", std::string{route_names[r]}},
                              {"status", std::to_string(status)}});
    slot.store(&c, std::memory_order_release);
    return c;
  }
  return stats_.counter("wechat_hub_http_requests_total",
                        {{"route", std::string{route_names[r]}}, {"status", std::to_string(status)}});
}

void hub_api::count(std::string_view route, unsigned status) {
  route_id r = r_other;
  for (uint8_t i = 0; i < route_count; ++i)
    if (route_names[i] == route)
      r = static_cast<route_id>(i);
  counter(r, status).fetch_add(1, std::memory_order_relaxed);
}

void hub_api::init_latency() {
  stats_.describe("wechat_hub_http_request_duration_seconds",
                  "Time from a parsed request to its response, by route", "histogram");
  for (uint8_t i = 0; i < route_count; ++i)
    latency_[i] = &stats_.histogram("wechat_hub_http_request_duration_seconds",
                                    {{"route", std::string{route_names[i]}}});
}

void hub_api::respond_counted(route_id r, const responder& respond, response res) {
  counter(r, res.status).fetch_add(1, std::memory_order_relaxed);
  if (auto t = respond.target<timed_responder>())
    latency_[r]->observe(std::chrono::steady_clock::now() - t->start);
  respond(std::move(res));
}

void hub_api::handle(request&& req, responder untimed) {
  responder respond{timed_responder{std::move(untimed), std::chrono::steady_clock::now()}};
  auto target = urls::parse_origin_form(req.target);
  if (!target)
    return respond_counted(r_other, respond,
                           error_response(400, "invalid_request", "malformed request target"));
  std::string path = target->path();
  params q;
  for (auto p : target->params())
    q.emplace_back(p.key, p.value);
  bool get = req.method == "GET";
  bool post = req.method == "POST";
  caller who = nullptr;
  // `/k/<key>/client/...`: the key of a `path_key = true` client in the path
  // (clients that cannot send headers). It is cut off here, before anything
  // logs, audits or counts the path.
  std::shared_ptr<const client_config> held; // keeps `who` valid across a reload
  bool via_path_key = false;
  if (path.rfind("/k/", 0) == 0) {
    auto end = path.find('/', 3);
    auto rest = end == std::string::npos ? std::string{} : path.substr(end);
    if (!auth_.enabled() || (rest.rfind("/client/", 0) != 0 && rest.rfind("/refresh/", 0) != 0))
      return respond_counted(r_other, respond, error_response(404, "not_found", "no such path"));
    held = auth_.authenticate_path_key(std::string_view{path}.substr(3, end - 3));
    who = held.get();
    path = rest;
    req.target = path + (target->has_query() ? "?" + std::string{target->encoded_query()} : "");
    if (!who) {
      auto res = error_response(401, "unauthorized", "the path key is not valid");
      return respond_counted(r_other, respond, std::move(res));
    }
    via_path_key = true;
  }
  // Token routes, /metrics and /admin need a key once [[client]]s exist.
  bool protected_route = path.rfind("/client/", 0) == 0 || path.rfind("/refresh/", 0) == 0
                         || path == "/metrics" || path.rfind("/admin/", 0) == 0;
  if (auth_.enabled() && protected_route && !req.replicated && !via_path_key) {
    // A key always wins; without one, `networks` may identify the client.
    held = req.authorization.empty() ? auth_.authenticate_network(req.peer)
                                     : auth_.authenticate(req.authorization);
    who = held.get();
    if (!who) {
      auto res = error_response(401, "unauthorized",
                                req.authorization.empty() ? "an Authorization: Bearer key is required"
                                                          : "the key is not valid");
      res.headers.emplace_back("WWW-Authenticate", "Bearer");
      bool admin_path = path.rfind("/admin/", 0) == 0;
      // Refused admin requests are audited too, under the normalised path
      // (percent-decoded, dot segments removed) and with an unknown client.
      if (admin_path)
        audit_.record("(unknown)", req.method, normalise_path(req.target), res.status);
      return respond_counted(admin_path ? r_admin : r_other, respond, std::move(res));
    }
  }
  if (path == "/client/access_token") {
    if (!get)
      return respond_counted(r_access_token, respond, method_not_allowed("GET"));
    return get_access_token(q, respond, who);
  }
  if (path == "/refresh/access_token") {
    if (!post)
      return respond_counted(r_refresh, respond, method_not_allowed("POST"));
    return post_refresh(req, respond, who);
  }
  if (path == "/client/ticket") {
    if (!get)
      return respond_counted(r_ticket, respond, method_not_allowed("GET"));
    return get_ticket(q, respond, who);
  }
  if (path == "/client/component_access_token") {
    if (!get)
      return respond_counted(r_component_token, respond, method_not_allowed("GET"));
    return get_component_token(q, respond, who);
  }
  if (path == "/client/refresh_component_access_token") {
    if (!post)
      return respond_counted(r_component_refresh, respond, method_not_allowed("POST"));
    return post_component_refresh(req, respond, who);
  }
  if (path == "/healthz") {
    if (!get && req.method != "HEAD")
      return respond_counted(r_healthz, respond, method_not_allowed("GET"));
    // Liveness stays 200; components WeChat refuses tokens for are listed.
    // A cluster node answers 503 until it has caught up with its peers.
    json::array degraded;
    for (auto& e : reg_.entries())
      if (e->degraded.load(std::memory_order_relaxed))
        degraded.emplace_back(e->key);
    json::object obj;
    obj["status"] = degraded.empty() ? "ok" : "degraded";
    if (!degraded.empty())
      obj["degraded_components"] = std::move(degraded);
    unsigned status = 200;
    if (cluster_) {
      auto v = cluster_->current();
      json::object c;
      c["node"] = v->self;
      c["state"] = v->ready ? "ready" : "joining";
      json::array live;
      for (auto& n : v->own.nodes())
        live.emplace_back(n);
      c["live"] = std::move(live);
      obj["cluster"] = std::move(c);
      if (!v->ready) {
        obj["status"] = "joining";
        status = 503;
      }
    }
    auto res = json_ok(json::serialize(obj));
    res.status = status;
    return respond_counted(r_healthz, respond, std::move(res));
  }
  if (path.rfind("/wechat/component/", 0) == 0) {
    // /wechat/component/{component_appid}/events
    auto rest = path.substr(std::strlen("/wechat/component/"));
    auto slash = rest.find('/');
    if (slash == std::string::npos || rest.substr(slash) != "/events")
      return respond_counted(r_other, respond, error_response(404, "not_found", "no such path"));
    if (!post)
      return respond_counted(r_push, respond, method_not_allowed("POST"));
    return post_push(rest.substr(0, slash), req, q, respond);
  }
  if (path.rfind("/admin/", 0) == 0)
    return admin(path, req, q, respond, who);
  if (path == "/metrics") {
    if (!get)
      return respond_counted(r_metrics, respond, method_not_allowed("GET"));
    response res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = stats_.render();
    return respond_counted(r_metrics, respond, std::move(res));
  }
  respond_counted(r_other, respond, error_response(404, "not_found", "no such path"));
}

bool hub_api::in_scope(route_id r, caller who, const std::string& appid,
                       const std::string& authorizer, const responder& respond) {
  // Checked before existence so a client cannot probe for other keys.
  if (!who || authenticator::allows(*who, appid, authorizer))
    return true;
  respond_counted(r, respond,
                  error_response(403, "forbidden",
                                 "client " + who->name + " may not use "
                                   + (authorizer.empty() ? appid : appid + "/" + authorizer)));
  return false;
}

void hub_api::recover_authorizer(route_id r, const std::string& appid, const std::string& authorizer,
                                 const responder& respond, std::function<void()> retry) {
  reg_.recover_authorizer(appid, authorizer, [this, r, respond, appid, authorizer, retry](caf::error err) {
    if (!err)
      return retry();
    if (code_of(err) == ec::unknown_key)
      return respond_counted(r, respond,
                             error_response(404, "unknown_authorizer",
                                            "authorizer " + authorizer + " of " + appid
                                              + " is not known to this hub nor listed by WeChat"));
    respond_counted(r, respond, error_response(err));
  });
}

std::shared_ptr<actors::key_entry> hub_api::lookup(route_id r, const std::string& appid,
                                                   const std::string& authorizer,
                                                   const responder& respond, caller who,
                                                   bool* recover) {
  if (!in_scope(r, who, appid, authorizer, respond))
    return nullptr;
  auto key = authorizer.empty() ? appid : appid + "/" + authorizer;
  auto entry = reg_.find(key);
  if (!entry && !authorizer.empty() && reg_.clustered()) {
    // Only an authorizer's owner and replicas store it: ask the owner, which
    // answers 404 itself if it does not know the authorizer either.
    if (auto comp = reg_.find(appid); comp && comp->kind == actors::key_kind::component) {
      entry = std::make_shared<actors::key_entry>();
      entry->key = key;
      entry->kind = actors::key_kind::authorizer;
      entry->shadow = true;
    }
  }
  if (!entry && !authorizer.empty() && recover && !reg_.clustered()) {
    if (auto comp = reg_.find(appid); comp && comp->kind == actors::key_kind::component) {
      // Not known here: WeChat's authorizer list may still have it.
      *recover = true;
      return nullptr;
    }
  }
  if (!entry) {
    if (authorizer.empty())
      respond_counted(r, respond,
                      error_response(404, "unknown_appid", "appid " + appid + " is not configured on this hub"));
    else
      respond_counted(r, respond,
                      error_response(404, "unknown_authorizer",
                                     "authorizer " + authorizer + " of " + appid + " is not known to this hub"));
    return nullptr;
  }
  if (!authorizer.empty() && entry->status.load(std::memory_order_relaxed)
                                 == actors::authorizer_status::revoked) {
    respond_counted(r, respond,
                    error_response(410, "authorizer_revoked",
                                   "authorizer " + authorizer + " revoked its authorization"));
    return nullptr;
  }
  return entry;
}

namespace {

/// Whether `entry` is of the kind a route expects (an app or an authorizer
/// for the token routes, a component for the component routes).
bool is_component(const actors::key_entry& e) {
  return e.kind == actors::key_kind::component;
}

} // namespace

void hub_api::get_access_token(const params& q, const responder& respond, caller who,
                               bool may_recover) {
  std::string appid, authorizer;
  response err;
  if (!read_id(q, "appid", true, appid, err) || !read_id(q, "authorizer_appid", false, authorizer, err))
    return respond_counted(r_access_token, respond, std::move(err));
  bool recover = false;
  auto entry = lookup(r_access_token, appid, authorizer, respond, who, may_recover ? &recover : nullptr);
  if (recover)
    return recover_authorizer(r_access_token, appid, authorizer, respond,
                              [this, q, respond, who] { get_access_token(q, respond, who, false); });
  if (!entry)
    return;
  if (is_component(*entry))
    return respond_counted(r_access_token, respond,
                           error_response(400, "invalid_request",
                                          appid + " is a component: use /client/component_access_token "
                                                  "or pass authorizer_appid"));
  // Fast path: the actor's published token, no actor round trip.
  if (auto x = entry->token.load(); x && clock_.now() < x->expires_at)
    return respond_counted(r_access_token, respond, json_ok(render_token(*x)));
  reg_.ask_token(*entry, [this, respond](caf::expected<actors::credential> res) {
    if (res)
      respond_counted(r_access_token, respond, json_ok(render_token(*res)));
    else
      respond_counted(r_access_token, respond, error_response(res.error()));
  });
}

void hub_api::post_refresh(const request& req, const responder& respond, caller who,
                           bool may_recover) {
  params body;
  response err;
  if (!parse_body(req, body, err))
    return respond_counted(r_refresh, respond, std::move(err));
  std::string appid, authorizer;
  if (!read_id(body, "appid", true, appid, err) || !read_id(body, "authorizer_appid", false, authorizer, err))
    return respond_counted(r_refresh, respond, std::move(err));
  // null, missing or empty: the client has no token (its GET failed), so
  // this is a GET in disguise: never a forced refresh.
  auto stale = find_param(body, "access_token");
  if (stale && stale->size() > 2048)
    return respond_counted(r_refresh, respond,
                           error_response(400, "invalid_request", "access_token is too long"));
  bool recover = false;
  auto entry = lookup(r_refresh, appid, authorizer, respond, who, may_recover ? &recover : nullptr);
  if (recover)
    return recover_authorizer(r_refresh, appid, authorizer, respond,
                              [this, req, respond, who] { post_refresh(req, respond, who, false); });
  if (!entry)
    return;
  if (is_component(*entry))
    return respond_counted(r_refresh, respond,
                           error_response(400, "invalid_request",
                                          appid + " is a component: use /client/refresh_component_access_token"));
  if (!stale || stale->empty())
    return serve_current(r_refresh, *entry, respond);
  reg_.report_stale(*entry, *stale, [this, respond, who, key = entry->key](caf::expected<actors::credential> res) {
    if (res)
      return respond_counted(r_refresh, respond, json_ok(render_token(*res)));
    note_loop(res.error(), key, who);
    respond_counted(r_refresh, respond, error_response(res.error()));
  });
}

void hub_api::serve_current(route_id r, const actors::key_entry& entry, const responder& respond) {
  if (auto x = entry.token.load(); x && clock_.now() < x->expires_at)
    return respond_counted(r, respond, json_ok(render_token(*x)));
  reg_.ask_token(entry, [this, r, respond](caf::expected<actors::credential> res) {
    if (res)
      respond_counted(r, respond, json_ok(render_token(*res)));
    else
      respond_counted(r, respond, error_response(res.error()));
  });
}

void hub_api::note_loop(const caf::error& err, const std::string& key, caller who) {
  if (code_of(err) != ec::report_loop)
    return;
  auto client = who ? who->name : std::string{"(open)"};
  stats_.inc("wechat_hub_refresh_loop_refusals_total", {{"appid", key}, {"client", client}});
  // One line per loop (the actor marks its first refusal), never per report.
  const auto& ctx = err.context();
  for (size_t i = 0; i < ctx.size(); ++i)
    if (ctx.match_element<bool>(i) && ctx.get_as<bool>(i))
      WH_WARN("http", "refresh loop: client " << client << " keeps reporting the same token of " << key
                                              << "; answering 429 with Retry-After "
                                              << retry_after_of(err) << " s");
}

void hub_api::get_ticket(const params& q, const responder& respond, caller who, bool may_recover) {
  std::string appid, authorizer;
  response err;
  if (!read_id(q, "appid", true, appid, err) || !read_id(q, "authorizer_appid", false, authorizer, err))
    return respond_counted(r_ticket, respond, std::move(err));
  auto type_param = find_param(q, "type");
  if (!type_param || (*type_param != "jsapi" && *type_param != "wx_card"))
    return respond_counted(r_ticket, respond,
                           error_response(400, "invalid_request", "type must be jsapi or wx_card"));
  std::string type = *type_param;
  bool recover = false;
  auto entry = lookup(r_ticket, appid, authorizer, respond, who, may_recover ? &recover : nullptr);
  if (recover)
    return recover_authorizer(r_ticket, appid, authorizer, respond,
                              [this, q, respond, who] { get_ticket(q, respond, who, false); });
  if (!entry)
    return;
  if (auto x = entry->ticket(type)->load(); x && clock_.now() < x->expires_at)
    return respond_counted(r_ticket, respond, json_ok(render_ticket(*x, type)));
  reg_.ask_ticket(*entry, type, [this, respond, type](caf::expected<actors::credential> res) {
    if (res)
      respond_counted(r_ticket, respond, json_ok(render_ticket(*res, type)));
    else
      respond_counted(r_ticket, respond, error_response(res.error()));
  });
}

void hub_api::get_component_token(const params& q, const responder& respond, caller who) {
  std::string appid;
  response err;
  if (!read_id(q, "appid", true, appid, err))
    return respond_counted(r_component_token, respond, std::move(err));
  if (!in_scope(r_component_token, who, appid, {}, respond))
    return;
  auto entry = reg_.find(appid);
  if (!entry || !is_component(*entry))
    return respond_counted(r_component_token, respond,
                           error_response(404, "unknown_appid",
                                          "component " + appid + " is not configured on this hub"));
  if (auto x = entry->token.load(); x && clock_.now() < x->expires_at)
    return respond_counted(r_component_token, respond, json_ok(render_token(*x)));
  reg_.ask_token(*entry, [this, respond](caf::expected<actors::credential> res) {
    if (res)
      respond_counted(r_component_token, respond, json_ok(render_token(*res)));
    else
      respond_counted(r_component_token, respond, error_response(res.error()));
  });
}

void hub_api::post_component_refresh(const request& req, const responder& respond,
                                     caller who) {
  params body;
  response err;
  std::string appid;
  if (!parse_body(req, body, err) || !read_id(body, "appid", true, appid, err))
    return respond_counted(r_component_refresh, respond, std::move(err));
  auto stale = find_param(body, "access_token");
  if (stale && stale->size() > 2048)
    return respond_counted(r_component_refresh, respond,
                           error_response(400, "invalid_request", "access_token is too long"));
  if (!in_scope(r_component_refresh, who, appid, {}, respond))
    return;
  auto entry = reg_.find(appid);
  if (!entry || !is_component(*entry))
    return respond_counted(r_component_refresh, respond,
                           error_response(404, "unknown_appid",
                                          "component " + appid + " is not configured on this hub"));
  if (!stale || stale->empty())
    return serve_current(r_component_refresh, *entry, respond);
  reg_.report_stale(*entry, *stale, [this, respond, who, key = entry->key](caf::expected<actors::credential> res) {
    if (res)
      return respond_counted(r_component_refresh, respond, json_ok(render_token(*res)));
    note_loop(res.error(), key, who);
    respond_counted(r_component_refresh, respond, error_response(res.error()));
  });
}

} // namespace wh::http
