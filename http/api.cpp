#include "http/api.hpp"

#include <chrono>

#include <boost/json.hpp>
#include <boost/url.hpp>

#include "actors/key_services.hpp"
#include "actors/registry.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "http/api_util.hpp"
#include "http/key_view.hpp"
#include "http/membership.hpp"

namespace json = boost::json;
namespace urls = boost::urls;

namespace wh::http {

using detail::timed_responder;

// -- the route table -----------------------------------------------------------

std::span<const route> hub_api::routes() {
  static constexpr std::string_view admin = admin_label;
  static const route table[] = {
    // method, pattern, scope, handler, metric label, path check
    {"GET", "/client/access_token", scope::client, &hub_api::get_access_token,
     "/client/access_token", nullptr},
    {"POST", "/refresh/access_token", scope::client, &hub_api::post_refresh,
     "/refresh/access_token", nullptr},
    {"GET", "/client/ticket", scope::client, &hub_api::get_ticket, "/client/ticket", nullptr},
    {"GET", "/client/component_access_token", scope::client, &hub_api::get_component_token,
     "/client/component_access_token", nullptr},
    {"POST", "/client/refresh_component_access_token", scope::client,
     &hub_api::post_component_refresh, "/client/refresh_component_access_token", nullptr},
    {"GET", "/healthz", scope::open, &hub_api::get_healthz, "/healthz", nullptr},
    {"HEAD", "/healthz", scope::open, &hub_api::get_healthz, "/healthz", nullptr},
    {"GET", "/metrics", scope::client, &hub_api::get_metrics, "/metrics", nullptr},
    {"POST", "/wechat/component/{component}/events", scope::open, &hub_api::post_push,
     "/wechat/component/events", nullptr},
    {"GET", "/admin/quota", scope::admin, &hub_api::get_quota, admin, nullptr},
    {"POST", "/admin/clear_quota", scope::admin, &hub_api::post_clear_quota, admin, nullptr},
    {"GET", "/admin/cluster", scope::admin, &hub_api::get_cluster, admin, nullptr},
    {"GET", "/admin/state", scope::admin, &hub_api::get_state, admin, nullptr},
    {"POST", "/admin/refresh", scope::admin, &hub_api::post_force_refresh, admin, nullptr},
    {"GET", "/admin/apps", scope::admin, &hub_api::list_apps, admin, nullptr},
    {"GET", "/admin/components", scope::admin, &hub_api::list_components, admin, nullptr},
    {"PUT", "/admin/apps/{appid...}", scope::admin, &hub_api::put_app, admin,
     &hub_api::check_appid},
    {"DELETE", "/admin/apps/{appid...}", scope::admin, &hub_api::delete_app, admin,
     &hub_api::check_appid},
    {"PUT", "/admin/components/{appid}", scope::admin, &hub_api::put_component, admin,
     &hub_api::check_appid},
    {"DELETE", "/admin/components/{appid}", scope::admin, &hub_api::delete_component, admin,
     &hub_api::check_appid},
    {"GET", "/admin/components/{component}/authorizers", scope::admin,
     &hub_api::list_authorizers, admin, &hub_api::check_component},
    {"POST", "/admin/components/{component}/authorizers", scope::admin,
     &hub_api::import_authorizers, admin, &hub_api::check_component},
    {"PUT", "/admin/components/{component}/authorizers/{authorizer...}", scope::admin,
     &hub_api::put_authorizer, admin, &hub_api::check_authorizer},
    {"DELETE", "/admin/components/{component}/authorizers/{authorizer...}", scope::admin,
     &hub_api::delete_authorizer, admin, &hub_api::check_authorizer},
  };
  static_assert(std::size(table) < cells, "one metric cell per route plus other");
  return table;
}

// -- metrics -------------------------------------------------------------------

uint8_t hub_api::other_index() const {
  return static_cast<uint8_t>(routes().size());
}

namespace {

std::string label_of(uint8_t r) {
  auto table = hub_api::routes();
  return std::string{r < table.size() ? table[r].label : hub_api::other_label};
}

} // namespace

std::atomic<uint64_t>& hub_api::counter(uint8_t r, unsigned status) {
  for (size_t i = 0; i < statuses_.size(); ++i) {
    if (statuses_[i] != status)
      continue;
    auto& slot = cache_[r][i];
    if (auto p = slot.load(std::memory_order_acquire))
      return *p;
    auto& c = stats_.counter("wechat_hub_http_requests_total",
                             {{"route", label_of(r)}, {"status", std::to_string(status)}});
    slot.store(&c, std::memory_order_release);
    return c;
  }
  return stats_.counter("wechat_hub_http_requests_total",
                        {{"route", label_of(r)}, {"status", std::to_string(status)}});
}

uint8_t hub_api::index_of(std::string_view label) const {
  auto table = routes();
  for (uint8_t i = 0; i < table.size(); ++i)
    if (table[i].label == label)
      return i;
  return other_index();
}

void hub_api::count(std::string_view label, unsigned status) {
  counter(index_of(label), status).fetch_add(1, std::memory_order_relaxed);
}

void hub_api::init_metrics() {
  stats_.describe("wechat_hub_http_requests_total", "HTTP requests by route and status");
  stats_.describe("wechat_hub_http_request_duration_seconds",
                  "Time from a parsed request to its response, by route", "histogram");
  for (uint8_t i = 0; i <= other_index(); ++i)
    latency_[i] = &stats_.histogram("wechat_hub_http_request_duration_seconds",
                                    {{"route", label_of(i)}});
}

void hub_api::respond_counted(uint8_t r, const responder& respond, response res) {
  counter(r, res.status).fetch_add(1, std::memory_order_relaxed);
  if (auto t = respond.target<timed_responder>())
    latency_[r]->observe(std::chrono::steady_clock::now() - t->start);
  respond(std::move(res));
}

// -- dispatch ------------------------------------------------------------------

void hub_api::handle(request&& req, responder untimed) {
  exchange x;
  x.respond = responder{timed_responder{std::move(untimed), std::chrono::steady_clock::now()}};
  x.route = other_index();
  auto fail = [&](const caf::error& err) { reply_to(this, x).fail(err); };
  auto target = urls::parse_origin_form(req.target);
  if (!target)
    return fail(fail_with(ec::invalid_request, "malformed request target"));
  std::string path = target->path();
  for (auto p : target->params())
    x.query.emplace_back(p.key, p.value);
  // `/k/<key>/client/...`: the key of a `path_key = true` client in the path
  // (clients that cannot send headers). It is cut off here, before anything
  // logs, audits or counts the path.
  bool via_path_key = false;
  if (path.rfind("/k/", 0) == 0) {
    auto end = path.find('/', 3);
    auto rest = end == std::string::npos ? std::string{} : path.substr(end);
    if (!auth_.enabled() || (rest.rfind("/client/", 0) != 0 && rest.rfind("/refresh/", 0) != 0))
      return fail(fail_with(ec::not_found, "no such path"));
    x.held = auth_.authenticate_path_key(std::string_view{path}.substr(3, end - 3));
    x.who = x.held.get();
    path = rest;
    req.target = path + (target->has_query() ? "?" + std::string{target->encoded_query()} : "");
    if (!x.who)
      return fail(unauthorized("the path key is not valid")); // no header to challenge for
    via_path_key = true;
  }
  x.path = path;
  auto found = find_route(routes(), req.method, path);
  auto need = found.index == route_match::npos ? scope_of_unrouted(path) : routes()[found.index].need;
  if (need == scope::admin)
    x.route = found.index == route_match::npos ? index_of(admin_label) : static_cast<uint8_t>(found.index);
  x.req = std::move(req);
  // Client and admin routes need a key once [[client]]s exist.
  if (auth_.enabled() && need != scope::open && !x.req.replicated && !via_path_key) {
    // A key always wins; without one, `networks` may identify the client.
    x.held = x.req.authorization.empty() ? auth_.authenticate_network(x.req.peer)
                                         : auth_.authenticate(x.req.authorization);
    x.who = x.held.get();
    if (!x.who) {
      auto err = unauthorized(x.req.authorization.empty() ? "an Authorization: Bearer key is required"
                                                          : "the key is not valid",
                              "Bearer");
      // Refused admin requests are audited too, under the normalised path
      // (percent-decoded, dot segments removed) and with an unknown client.
      if (need == scope::admin)
        x.respond = detail::with_timing_of(
          x.respond, [this, action = x.req.method, path = normalise_path(x.req.target),
                      raw = x.respond](response res) {
            audit_.record("(unknown)", action, path, res.status);
            raw(std::move(res));
          });
      return fail(err);
    }
  }
  if (need == scope::admin && !admit_admin(x))
    return;
  if (found.index != route_match::npos) {
    // A path that names no resource is answered as such whatever the method.
    if (auto check = routes()[found.index].check)
      if (auto err = (this->*check)(found.args)) {
        x.route = static_cast<uint8_t>(found.index);
        return fail(err);
      }
  }
  if (found.err) {
    if (found.index != route_match::npos)
      x.route = static_cast<uint8_t>(found.index);
    return fail(found.err);
  }
  x.route = static_cast<uint8_t>(found.index);
  x.args = std::move(found.args);
  (this->*routes()[found.index].handler)(x);
}

// -- token routes --------------------------------------------------------------

caf::error hub_api::check_scope(caller who, const key_ref& ref) const {
  if (!who || authenticator::allows(*who, ref.appid, ref.authorizer))
    return {};
  return fail_with(ec::forbidden, "client " + who->name + " may not use " + ref.key());
}

caf::expected<std::shared_ptr<actors::key_entry>>
hub_api::lookup(const key_ref& ref, caller who, bool* recover) {
  if (auto err = check_scope(who, ref))
    return err;
  auto key = ref.key();
  auto entry = reg_.find(key);
  bool authorizer = !ref.authorizer.empty();
  if (!entry && authorizer && reg_.clustered()) {
    // Only an authorizer's owner and replicas store it: ask the owner, which
    // answers 404 itself if it does not know the authorizer either.
    if (auto comp = reg_.find(ref.appid); comp && keys::is_component(*comp))
      entry = keys::shadow_authorizer(key);
  }
  if (!entry && authorizer && recover && !reg_.clustered()) {
    if (auto comp = reg_.find(ref.appid); comp && keys::is_component(*comp)) {
      // Not known here: WeChat's authorizer list may still have it.
      *recover = true;
      return std::shared_ptr<actors::key_entry>{};
    }
  }
  if (!entry) {
    if (!authorizer)
      return fail_with(ec::unknown_key, "appid " + ref.appid + " is not configured on this hub");
    return fail_with(ec::unknown_authorizer,
                     "authorizer " + ref.authorizer + " of " + ref.appid + " is not known to this hub");
  }
  if (authorizer && keys::is_revoked(*entry))
    return fail_with(ec::authorizer_revoked,
                     "authorizer " + ref.authorizer + " revoked its authorization");
  return entry;
}

caf::expected<std::shared_ptr<actors::key_entry>>
hub_api::find_component(const std::string& appid) const {
  auto entry = reg_.find(appid);
  if (!entry || !keys::is_component(*entry))
    return fail_with(ec::unknown_key, "component " + appid + " is not configured on this hub");
  return entry;
}

void hub_api::recover_authorizer(const reply& out, const key_ref& ref, std::function<void()> retry) {
  svc_.auths.recover_authorizer(ref.appid, ref.authorizer, [out, ref, retry](caf::error err) {
    if (!err)
      return retry();
    if (code_of(err) == ec::unknown_key)
      return out.fail(fail_with(ec::unknown_authorizer,
                                "authorizer " + ref.authorizer + " of " + ref.appid
                                  + " is not known to this hub nor listed by WeChat"));
    out.fail(err);
  });
}

void hub_api::get_access_token(exchange& x) {
  auto q = parse_token_query(x.query);
  if (!q)
    return reply_to(this, x).fail(q.error());
  serve_token(reply_to(this, x), q->ref, x.held, true);
}

void hub_api::serve_token(const reply& out, const key_ref& ref,
                          std::shared_ptr<const client_config> who, bool may_recover) {
  bool recover = false;
  auto entry = lookup(ref, who.get(), may_recover ? &recover : nullptr);
  if (!entry)
    return out.fail(entry.error());
  if (recover)
    return recover_authorizer(out, ref, [this, out, ref, who] { serve_token(out, ref, who, false); });
  if (keys::is_component(**entry))
    return out.fail(fail_with(ec::invalid_request,
                              ref.appid + " is a component: use /client/component_access_token "
                                          "or pass authorizer_appid"));
  serve_current(out, **entry);
}

void hub_api::post_refresh(exchange& x) {
  auto cmd = parse_refresh(x.req, true);
  if (!cmd)
    return reply_to(this, x).fail(cmd.error());
  serve_refresh(reply_to(this, x), *cmd, x.held, true);
}

void hub_api::serve_refresh(const reply& out, const refresh_command& cmd,
                            std::shared_ptr<const client_config> who, bool may_recover) {
  bool recover = false;
  auto entry = lookup(cmd.ref, who.get(), may_recover ? &recover : nullptr);
  if (!entry)
    return out.fail(entry.error());
  if (recover)
    return recover_authorizer(out, cmd.ref,
                              [this, out, cmd, who] { serve_refresh(out, cmd, who, false); });
  if (keys::is_component(**entry))
    return out.fail(fail_with(ec::invalid_request,
                              cmd.ref.appid
                                + " is a component: use /client/refresh_component_access_token"));
  if (cmd.stale.empty())
    return serve_current(out, **entry);
  serve_stale(out, **entry, cmd.stale, who);
}

namespace {

constexpr const char* refused_read = "this node's cluster lease lapsed; it answers again once it has rejoined; retry";

} // namespace

void hub_api::serve_current(const reply& out, const actors::key_entry& entry) {
  // Fast path: the actor's published token, no actor round trip.
  auto mode = reads();
  if (mode == cluster_port::reads_mode::refuse)
    return out.fail(make_detail_error(ec::cluster_unavailable, refused_read));
  if (auto x = entry.token.load(); x && clock_.now() < x->expires_at && mode == cluster_port::reads_mode::serve)
    return out.ok(json_ok(render_token(*x)));
  svc_.keys.ask_token(entry, [out](caf::expected<actors::credential> res) {
    if (res)
      out.ok(json_ok(render_token(*res)));
    else
      out.fail(res.error());
  });
}

void hub_api::serve_stale(const reply& out, const actors::key_entry& entry,
                          const std::string& stale, std::shared_ptr<const client_config> who) {
  svc_.keys.report_stale(entry, stale, [this, out, who, key = entry.key](caf::expected<actors::credential> res) {
    if (res)
      return out.ok(json_ok(render_token(*res)));
    note_loop(res.error(), key, who.get());
    out.fail(res.error());
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

void hub_api::get_ticket(exchange& x) {
  auto q = parse_ticket_query(x.query);
  if (!q)
    return reply_to(this, x).fail(q.error());
  serve_ticket(reply_to(this, x), *q, x.held, true);
}

void hub_api::serve_ticket(const reply& out, const ticket_query& q,
                           std::shared_ptr<const client_config> who, bool may_recover) {
  bool recover = false;
  auto entry = lookup(q.ref, who.get(), may_recover ? &recover : nullptr);
  if (!entry)
    return out.fail(entry.error());
  if (recover)
    return recover_authorizer(out, q.ref, [this, out, q, who] { serve_ticket(out, q, who, false); });
  auto& e = **entry;
  auto mode = reads();
  if (mode == cluster_port::reads_mode::refuse)
    return out.fail(make_detail_error(ec::cluster_unavailable, refused_read));
  if (auto x = e.ticket(q.type)->load(); x && clock_.now() < x->expires_at && mode == cluster_port::reads_mode::serve)
    return out.ok(json_ok(render_ticket(*x, q.type)));
  svc_.keys.ask_ticket(e, q.type, [out, type = q.type](caf::expected<actors::credential> res) {
    if (res)
      out.ok(json_ok(render_ticket(*res, type)));
    else
      out.fail(res.error());
  });
}

void hub_api::get_component_token(exchange& x) {
  auto out = reply_to(this, x);
  auto appid = parse_component_query(x.query);
  if (!appid)
    return out.fail(appid.error());
  if (auto err = check_scope(x.who, key_ref{*appid, {}}))
    return out.fail(err);
  auto entry = find_component(*appid);
  if (!entry)
    return out.fail(entry.error());
  serve_current(out, **entry);
}

void hub_api::post_component_refresh(exchange& x) {
  auto out = reply_to(this, x);
  auto cmd = parse_refresh(x.req, false);
  if (!cmd)
    return out.fail(cmd.error());
  if (auto err = check_scope(x.who, cmd->ref))
    return out.fail(err);
  auto entry = find_component(cmd->ref.appid);
  if (!entry)
    return out.fail(entry.error());
  if (cmd->stale.empty())
    return serve_current(out, **entry);
  serve_stale(out, **entry, cmd->stale, x.held);
}

// -- health and metrics --------------------------------------------------------

void hub_api::get_healthz(exchange& x) {
  // Liveness stays 200; components WeChat refuses tokens for are listed.
  // A cluster node answers 503 until it has caught up with its peers.
  json::array degraded;
  for (auto& e : reg_.entries())
    if (keys::is_degraded(*e))
      degraded.emplace_back(e->key);
  json::object obj;
  obj["status"] = degraded.empty() ? "ok" : "degraded";
  if (!degraded.empty())
    obj["degraded_components"] = std::move(degraded);
  bool joining = false;
  if (cluster_) {
    auto v = cluster_->current();
    obj["cluster"] = render_membership(v);
    if (!v.ready) {
      obj["status"] = "joining";
      joining = true;
    }
  }
  auto res = json_ok(json::serialize(obj));
  if (joining)
    res.status = status_of(fail_with(ec::cluster_unavailable, {}));
  reply_to(this, x).ok(std::move(res));
}

void hub_api::get_metrics(exchange& x) {
  response res;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = stats_.render();
  reply_to(this, x).ok(std::move(res));
}

} // namespace wh::http
