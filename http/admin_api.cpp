// The admin API: one small handler per resource (cluster, state, refresh,
// apps, components, authorizers); quota lives in http/quota_api.cpp.
#include <algorithm>
#include <mutex>

#include <boost/json.hpp>

#include "actors/key_services.hpp"
#include "actors/registry.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "http/api.hpp"
#include "http/api_util.hpp"
#include "http/key_view.hpp"
#include "http/membership.hpp"
#include "wechat/msg_crypto.hpp"

namespace json = boost::json;

namespace wh::http {

bool hub_api::admit_admin(exchange& x) {
  // Every admin action, refused ones included, lands in the audit log.
  auto client = x.req.replicated ? std::string{"(cluster)"}
                : x.who         ? x.who->name
                                : std::string{x.req.loopback ? "(open, loopback)" : "(open)"};
  x.respond = detail::with_timing_of(
    x.respond, [this, client, action = x.req.method, path = x.path, raw = x.respond](response res) {
      audit_.record(client, action, path, res.status);
      raw(std::move(res));
    });
  // With keys: admin keys only. Without: loopback only.
  if (auth_.enabled() && (!x.who || !x.who->admin) && !x.req.replicated) {
    reply_to(this, x).fail(fail_with(ec::forbidden, "this key may not use the admin API"));
    return false;
  }
  if (!auth_.enabled() && !x.req.loopback) {
    reply_to(this, x).fail(
      fail_with(ec::forbidden, "without [[client]] keys the admin API answers only on loopback"));
    return false;
  }
  return true;
}

// -- cluster -------------------------------------------------------------------

void hub_api::get_cluster(exchange& x) {
  auto out = reply_to(this, x);
  if (!cluster_)
    return out.fail(fail_with(ec::not_found, "this hub is not part of a cluster"));
  auto v = cluster_->current();
  auto obj = render_membership(v);
  obj["replicas"] = v.replicas;
  obj["owned_keys"] = v.owned_keys;
  auto key = parse_cluster_key(x.query);
  if (!key)
    return out.fail(key.error());
  if (!key->empty()) {
    auto where = cluster_->place(*key);
    json::object k;
    k["key"] = *key;
    k["owner"] = where.owner;
    json::array holders;
    for (auto& h : where.holders)
      holders.emplace_back(h);
    k["replicas"] = std::move(holders);
    obj["key"] = std::move(k);
  }
  out.ok(json_ok(json::serialize(obj)));
}

// -- state and forced refresh --------------------------------------------------

caf::expected<std::shared_ptr<actors::key_entry>> hub_api::admin_entry(const exchange& x,
                                                                        bool from_body) {
  auto ref = parse_admin_key(x.req, x.query, from_body);
  if (!ref)
    return ref.error();
  auto entry = reg_.find(ref->key());
  if (!entry)
    return fail_with(ec::unknown_key, "no such key on this hub");
  return entry;
}

void hub_api::get_state(exchange& x) {
  auto out = reply_to(this, x);
  auto entry = admin_entry(x, false);
  if (!entry)
    return out.fail(entry.error());
  svc_.keys.describe(**entry, [out](caf::expected<std::string> res) {
    if (!res)
      return out.fail(res.error());
    out.ok(json_ok(std::move(*res)));
  });
}

void hub_api::post_force_refresh(exchange& x) {
  auto out = reply_to(this, x);
  auto entry = admin_entry(x, true);
  if (!entry)
    return out.fail(entry.error());
  svc_.keys.force_refresh(**entry, [out](caf::expected<actors::credential> res) {
    if (!res)
      return out.fail(res.error());
    json::object o;
    o["status"] = "refreshed";
    o["version"] = res->version;
    o["obtained_at"] = res->obtained_at;
    o["expires_at"] = res->expires_at;
    out.ok(json_ok(json::serialize(o)));
  });
}

// -- apps and components -------------------------------------------------------

namespace {

/// GET /admin/apps and /admin/components: the keys of one kind, by key.
template <class Pick, class Describe>
std::string render_listing(std::vector<std::shared_ptr<actors::key_entry>> all, const char* field,
                           Pick pick, Describe describe) {
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a->key < b->key; });
  json::array arr;
  for (auto& e : all) {
    if (!pick(*e))
      continue;
    json::object o;
    o["appid"] = e->key;
    o["source"] = keys::is_runtime(*e) ? "admin" : "config";
    describe(*e, o);
    arr.push_back(std::move(o));
  }
  json::object out;
  out[field] = std::move(arr);
  return json::serialize(out);
}

} // namespace

void hub_api::list_apps(exchange& x) {
  reply_to(this, x).ok(json_ok(render_listing(
    reg_.entries(), "apps", [](auto& e) { return keys::is_app(e); },
    [](auto& e, json::object& o) { o["token_api"] = keys::token_api_of(e); })));
}

void hub_api::list_components(exchange& x) {
  reply_to(this, x).ok(json_ok(render_listing(
    reg_.entries(), "components", [](auto& e) { return keys::is_component(e); },
    [](auto& e, json::object& o) { o["degraded"] = keys::is_degraded(e); })));
}

std::function<void(caf::error)> hub_api::definition_done(const exchange& x) {
  // Definitions live on every node: a change accepted here is relayed.
  auto relay = cluster_ && !x.req.replicated;
  return [this, out = reply_to(this, x), relay, method = x.req.method, target = x.req.target,
          body = x.req.body, ctype = x.req.content_type](caf::error err) {
    if (err) {
      // The registry refuses a definition that clashes with what it holds
      // (invalid_request): to the operator that is a conflict.
      if (code_of(err) == ec::invalid_request)
        err = make_detail_error(ec::conflict, detail_of(err));
      return out.fail(err);
    }
    if (relay)
      cluster_->relay_admin(method, target, body, ctype);
    out.ok(json_ok(R"({"status":"ok"})"));
  };
}

// The path checks (check_appid, check_component, check_authorizer) ran
// before these handlers: their path parameters are well-formed.

void hub_api::put_app(exchange& x) {
  auto out = reply_to(this, x);
  auto app = parse_app_definition(x.args.at(0), x.req);
  if (!app)
    return out.fail(app.error());
  svc_.defs.put_app(std::move(*app), definition_done(x));
}

void hub_api::delete_app(exchange& x) {
  svc_.defs.remove(x.args.at(0), definition_done(x));
}

void hub_api::put_component(exchange& x) {
  auto out = reply_to(this, x);
  const auto& appid = x.args.at(0);
  auto comp = parse_component_definition(appid, x.req);
  if (!comp)
    return out.fail(comp.error());
  // parse_component_definition checked that the crypto can be made.
  auto crypto = wechat::msg_crypto::make(comp->encoding_aes_key, comp->token, appid);
  svc_.defs.put_component(*comp, [this, appid, crypto = std::move(*crypto),
                             done = definition_done(x)](caf::error err) {
    if (!err)
      put_push_crypto(appid, crypto);
    done(std::move(err));
  });
}

void hub_api::delete_component(exchange& x) {
  svc_.defs.remove(x.args.at(0), [this, appid = x.args.at(0), done = definition_done(x)](caf::error err) {
    if (!err)
      drop_push_crypto(appid);
    done(std::move(err));
  });
}

// -- path checks ---------------------------------------------------------------

caf::error hub_api::check_appid(const path_args& args) const {
  auto appid = parse_path_appid(args.at(0));
  return appid ? caf::error{} : appid.error();
}

caf::error hub_api::check_component(const path_args& args) const {
  auto component = authorizers_component(args);
  return component ? caf::error{} : component.error();
}

caf::error hub_api::check_authorizer(const path_args& args) const {
  if (auto authorizer = parse_path_authorizer(args.at(1)); !authorizer)
    return authorizer.error();
  return check_component(args);
}

// -- authorizers ---------------------------------------------------------------

caf::expected<std::string> hub_api::authorizers_component(const path_args& args) const {
  const auto& component = args.at(0);
  auto comp = reg_.find(component);
  if (!valid_appid(component) || !comp || !keys::is_component(*comp))
    return fail_with(ec::unknown_key, "component is not configured on this hub");
  return component;
}

namespace {

/// The answer of an authorizer change: `body` once done, else the error.
auto done_json(hub_api::reply out, std::string body) {
  return [out, body = std::move(body)](caf::error err) {
    if (err)
      return out.fail(err);
    out.ok(json_ok(body));
  };
}

} // namespace

void hub_api::list_authorizers(exchange& x) {
  auto out = reply_to(this, x);
  const auto& component = x.args.at(0);
  auto p = parse_page(x.query);
  if (!p)
    return out.fail(p.error());
  size_t total = 0;
  auto items = svc_.auths.list_authorizers(component, p->offset, p->limit, total);
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
  obj["offset"] = p->offset;
  obj["authorizers"] = std::move(arr);
  out.ok(json_ok(json::serialize(obj)));
}

void hub_api::import_authorizers(exchange& x) {
  auto out = reply_to(this, x);
  const auto& component = x.args.at(0);
  auto items = parse_authorizer_import(x.req);
  if (!items)
    return out.fail(items.error());
  auto n = items->size();
  svc_.auths.import_authorizers(component, std::move(*items),
                          done_json(out, "{\"imported\":" + std::to_string(n) + "}"));
}

void hub_api::put_authorizer(exchange& x) {
  auto out = reply_to(this, x);
  const auto& component = x.args.at(0);
  const auto& authorizer = x.args.at(1);
  auto rt = parse_authorizer_grant(x.req);
  if (!rt)
    return out.fail(rt.error());
  WH_INFO("admin", "import of authorizer " << component << "/" << authorizer);
  svc_.auths.import_authorizers(component, {{authorizer, *rt}}, done_json(out, R"({"status":"imported"})"));
}

void hub_api::delete_authorizer(exchange& x) {
  const auto& component = x.args.at(0);
  const auto& authorizer = x.args.at(1);
  WH_INFO("admin", "revoking authorizer " << component << "/" << authorizer);
  svc_.auths.revoke(component, authorizer, done_json(reply_to(this, x), R"({"status":"revoked"})"));
}

} // namespace wh::http
