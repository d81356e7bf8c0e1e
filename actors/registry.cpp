#include "actors/registry.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <random>

#include "caf/all.hpp"

#include <boost/json.hpp>

#include "actors/app_actor.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

namespace wh::actors {

namespace {

/// Reads and decodes one stored credential; corrupt data is logged, not fatal.
std::optional<credential> load_credential(persistence::store& db, const std::string& key) {
  auto raw = db.get(key);
  if (!raw) {
    WH_ERROR("registry", "cannot read " << key << ": " << detail_of(raw.error()));
    return std::nullopt;
  }
  if (!raw->has_value())
    return std::nullopt;
  auto x = persistence::decode_credential(**raw);
  if (!x) {
    WH_ERROR("registry", "ignoring corrupt record " << key << ": " << detail_of(x.error()));
    return std::nullopt;
  }
  return std::move(*x);
}

caf::error normalize(caf::error err) {
  if (code_of(err) == ec::none)
    return make_detail_error(ec::timeout, "the token actor did not answer in time");
  return err;
}

/// Sends one request from a short-lived bridge actor so that non-actor threads
/// (Asio) never block on the actor system. `T` is the expected reply type.
template <class T, class OnOk, class OnErr, class... Ts>
void ask_then(caf::actor_system& sys, caf::actor target, caf::timespan timeout, OnOk on_ok,
              OnErr on_err, Ts... xs) {
  sys.spawn([target, timeout, on_ok, on_err, xs...](caf::event_based_actor* self) mutable {
    self->request(target, timeout, xs...)
      .then([on_ok](T& x) mutable { on_ok(std::move(x)); },
            [on_err](caf::error& err) mutable { on_err(normalize(std::move(err))); });
  });
}

template <class... Ts>
void ask(caf::actor_system& sys, caf::actor target, caf::timespan timeout,
         credential_callback cb, Ts... xs) {
  ask_then<credential>(
    sys, std::move(target), timeout, [cb](credential x) { cb(std::move(x)); },
    [cb](caf::error err) { cb(std::move(err)); }, xs...);
}

std::optional<credential> decode_logged(const std::string& key, std::string_view raw) {
  auto x = persistence::decode_credential(raw);
  if (!x) {
    WH_ERROR("registry", "ignoring corrupt record " << key << ": " << detail_of(x.error()));
    return std::nullopt;
  }
  return std::move(*x);
}

} // namespace

registry::registry(caf::actor_system& sys, caf::actor upstream, caf::actor store,
                   std::shared_ptr<persistence::store> db, const wh::clock& clk,
                   metrics* stats, options opts)
  : sys_(sys),
    upstream_(std::move(upstream)),
    store_(std::move(store)),
    db_(std::move(db)),
    clock_(clk),
    stats_(stats),
    opts_(opts),
    map_(std::make_shared<const map_type>()) {
  if (stats_) {
    stats_->describe("wechat_hub_token_age_seconds", "Age of the access token served per appid",
                     "gauge");
    stats_->describe("wechat_hub_token_ttl_seconds",
                     "Seconds until the served access token expires per appid", "gauge");
    stats_->describe("wechat_hub_refreshes_total",
                     "Token and ticket refreshes by kind, reason and result");
    stats_->describe("wechat_upstream_calls_total", "Calls to WeChat by endpoint and errcode");
    stats_->add_collector([this](std::string& out) {
      auto t = clock_.now();
      std::string ages = "# HELP wechat_hub_token_age_seconds Age of the served access token\n"
                         "# TYPE wechat_hub_token_age_seconds gauge\n";
      std::string ttls = "# HELP wechat_hub_token_ttl_seconds Seconds until the served access "
                         "token expires\n# TYPE wechat_hub_token_ttl_seconds gauge\n";
      std::string vt = "# HELP wechat_hub_verify_ticket_age_seconds Age of the latest "
                       "component_verify_ticket (pushed every 10 min, valid 12 h)\n"
                       "# TYPE wechat_hub_verify_ticket_age_seconds gauge\n"
                       "# HELP wechat_hub_component_degraded 1 while WeChat rejects the verify ticket\n"
                       "# TYPE wechat_hub_component_degraded gauge\n";
      // Authorizers are aggregated per component and status: 100,000 of
      // them must not become 100,000 series.
      std::map<std::pair<std::string, std::string>, size_t> authorizers;
      for (auto& e : entries()) {
        if (e->kind == static_cast<uint8_t>(key_kind::authorizer)) {
          auto comp = e->key.substr(0, e->key.find('/'));
          auto st = e->status.load();
          authorizers[{comp, st == 1 ? "revoked" : st == 2 ? "needs_reauthorization" : "active"}]++;
          continue;
        }
        if (e->kind == static_cast<uint8_t>(key_kind::component)) {
          if (auto at = e->verify_ticket_at.load(); at > 0)
            metrics::render_sample(vt, "wechat_hub_verify_ticket_age_seconds", {{"component", e->key}},
                                   static_cast<double>(t - at));
          metrics::render_sample(vt, "wechat_hub_component_degraded", {{"component", e->key}},
                                 e->degraded.load() ? 1.0 : 0.0);
        }
        if (auto x = e->token.load()) {
          metrics::render_sample(ages, "wechat_hub_token_age_seconds", {{"appid", e->key}},
                                 static_cast<double>(t - x->obtained_at));
          metrics::render_sample(ttls, "wechat_hub_token_ttl_seconds", {{"appid", e->key}},
                                 static_cast<double>(x->expires_at - t));
        }
      }
      out += ages;
      out += ttls;
      out += vt;
      out += "# HELP wechat_hub_authorizers Authorizers by component and status\n"
             "# TYPE wechat_hub_authorizers gauge\n";
      for (auto& [k, n] : authorizers)
        metrics::render_sample(out, "wechat_hub_authorizers", {{"component", k.first}, {"status", k.second}},
                               static_cast<double>(n));
    });
  }
}

registry::~registry() {
  shutdown();
}

app_params registry::base_params(std::shared_ptr<key_entry> entry) const {
  app_params p;
  p.upstream = upstream_;
  p.store = store_;
  p.entry = std::move(entry);
  p.clock = &clock_;
  p.stats = stats_;
  p.refresh_margin_s = opts_.refresh_margin_s;
  p.refresh_jitter_s = opts_.refresh_jitter_s;
  p.upstream_timeout = opts_.upstream_timeout;
  p.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  return p;
}

void registry::insert(std::vector<std::shared_ptr<key_entry>> entries) {
  std::lock_guard<std::mutex> guard{add_mtx_};
  auto next = std::make_shared<map_type>(*map_.load());
  next->reserve(next->size() + entries.size());
  for (auto& e : entries)
    (*next)[e->key] = std::move(e);
  map_.store(std::move(next));
}

caf::error registry::add_app(const app_config& app, bool runtime) {
  if (find(app.appid))
    return make_detail_error(ec::invalid_config, "duplicate appid " + app.appid);
  auto entry = std::make_shared<key_entry>();
  entry->key = app.appid;
  entry->runtime = runtime;
  entry->token_api = app.api == token_api::stable ? "stable" : "classic";
  auto p = base_params(entry);
  p.app = app;
  p.prefix = persistence::keys::app_prefix(app.appid);
  p.token = load_credential(*db_, persistence::keys::app_token(app.appid));
  p.jsapi = load_credential(*db_, persistence::keys::app_ticket(app.appid, "jsapi"));
  p.wx_card = load_credential(*db_, persistence::keys::app_ticket(app.appid, "wx_card"));
  if (auto raw = db_->get(persistence::keys::app_force(app.appid)); raw && raw->has_value()) {
    if (auto b = persistence::decode_force_budget(**raw))
      p.force_budget = *b;
    else
      WH_ERROR("registry", "ignoring corrupt force budget of " << app.appid);
  }
  if (p.token && p.token->valid_at(clock_.now()))
    WH_INFO("registry", app.appid << ": restored access_token v" << p.token->version << ", "
                                  << (p.token->expires_at - clock_.now()) << " s left");
  entry->actor = spawn_app_actor(sys_, std::move(p));
  insert({std::move(entry)});
  return caf::none;
}

std::shared_ptr<key_entry> registry::make_authorizer(const std::string& component,
                                                     const caf::actor& comp_actor,
                                                     const std::string& authorizer, app_params&& p) {
  auto entry = std::make_shared<key_entry>();
  entry->key = component + "/" + authorizer;
  entry->kind = static_cast<uint8_t>(key_kind::authorizer);
  auto base = base_params(entry);
  base.kind = key_kind::authorizer;
  base.app.appid = authorizer;
  base.component_appid = component;
  base.component = comp_actor;
  base.prefix = persistence::keys::authorizer_prefix(component, authorizer);
  base.token = std::move(p.token);
  base.jsapi = std::move(p.jsapi);
  base.wx_card = std::move(p.wx_card);
  base.refresh_token = std::move(p.refresh_token);
  base.status = p.status;
  entry->actor = spawn_app_actor(sys_, std::move(base));
  return entry;
}

caf::error registry::add_component(const component_config& comp, bool runtime) {
  if (find(comp.appid))
    return make_detail_error(ec::invalid_config, "duplicate appid " + comp.appid);
  auto entry = std::make_shared<key_entry>();
  entry->key = comp.appid;
  entry->runtime = runtime;
  entry->kind = static_cast<uint8_t>(key_kind::component);
  auto p = base_params(entry);
  p.kind = key_kind::component;
  p.app = app_config{comp.appid, comp.secret, token_api::stable};
  p.component_appid = comp.appid;
  p.prefix = persistence::keys::component_prefix(comp.appid);
  p.token = load_credential(*db_, persistence::keys::token(p.prefix));
  p.verify_ticket = load_credential(*db_, persistence::keys::verify_ticket(p.prefix));
  entry->actor = spawn_app_actor(sys_, std::move(p));
  // Restore every stored authorizer: one scan, one map update.
  std::map<std::string, app_params> found;
  auto all = persistence::keys::authorizers_of(comp.appid);
  auto err = db_->scan(all, [&](std::string_view key, std::string_view value) {
    auto rest = key.substr(all.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos)
      return true;
    auto& ap = found[std::string{rest.substr(0, slash)}];
    auto field = rest.substr(slash + 1);
    std::string k{key};
    if (field == "access_token")
      ap.token = decode_logged(k, value);
    else if (field == "ticket/jsapi")
      ap.jsapi = decode_logged(k, value);
    else if (field == "ticket/wx_card")
      ap.wx_card = decode_logged(k, value);
    else if (field == "refresh_token")
      ap.refresh_token = decode_logged(k, value);
    else if (field == "status") {
      auto st = persistence::decode_status(value);
      if (!st)
        WH_ERROR("registry", "ignoring corrupt record " << k);
      else
        ap.status = *st == "revoked" ? authorizer_status::revoked
                                     : authorizer_status::needs_reauthorization;
    }
    return true;
  });
  if (err)
    return err;
  std::vector<std::shared_ptr<key_entry>> entries;
  entries.reserve(found.size() + 1);
  for (auto& [aid, ap] : found)
    entries.push_back(make_authorizer(comp.appid, entry->actor, aid, std::move(ap)));
  WH_INFO("registry", comp.appid << ": component with " << found.size() << " stored authorizer(s)");
  entries.push_back(std::move(entry));
  insert(std::move(entries));
  return caf::none;
}

void registry::write(store_write w, done_callback cb) {
  ask_then<done_atom>(
    sys_, store_, std::chrono::seconds(60), [cb](done_atom) { cb(caf::none); },
    [cb](caf::error err) { cb(std::move(err)); }, put_atom::value, std::move(w));
}

void registry::deliver_verify_ticket(const std::string& component, std::string ticket,
                                     done_callback cb) {
  auto e = find(component);
  if (!e || e->kind != static_cast<uint8_t>(key_kind::component))
    return cb(make_detail_error(ec::unknown_key, "component " + component + " is not configured"));
  ask_then<done_atom>(
    sys_, e->actor, opts_.ask_timeout, [cb](done_atom) { cb(caf::none); },
    [cb](caf::error err) { cb(std::move(err)); }, vticket_atom::value, std::move(ticket));
}

void registry::authorize(const std::string& component, std::string code, done_callback cb) {
  auto e = find(component);
  if (!e || e->kind != static_cast<uint8_t>(key_kind::component))
    return cb(make_detail_error(ec::unknown_key, "component " + component + " is not configured"));
  auto comp_actor = e->actor;
  ask_then<authorization>(
    sys_, comp_actor, opts_.ask_timeout,
    [this, component, comp_actor, cb](authorization a) {
      auto key = component + "/" + a.authorizer_appid;
      auto entry = find(key);
      if (!entry) {
        entry = make_authorizer(component, comp_actor, a.authorizer_appid, app_params{});
        insert({entry});
      }
      ask_then<done_atom>(
        sys_, entry->actor, opts_.ask_timeout, [cb](done_atom) { cb(caf::none); },
        [cb](caf::error err) { cb(std::move(err)); }, auth_atom::value, std::move(a));
    },
    [cb](caf::error err) { cb(std::move(err)); }, auth_atom::value, std::move(code));
}

void registry::revoke(const std::string& component, const std::string& authorizer,
                      done_callback cb) {
  auto e = find(component + "/" + authorizer);
  if (!e)
    return cb(make_detail_error(ec::unknown_key,
                                "authorizer " + authorizer + " of " + component + " is not known"));
  ask_then<done_atom>(
    sys_, e->actor, opts_.ask_timeout, [cb](done_atom) { cb(caf::none); },
    [cb](caf::error err) { cb(std::move(err)); }, revoke_atom::value);
}

void registry::import_authorizers(const std::string& component,
                                  std::vector<std::pair<std::string, std::string>> refresh_tokens,
                                  done_callback cb) {
  auto e = find(component);
  if (!e || e->kind != static_cast<uint8_t>(key_kind::component))
    return cb(make_detail_error(ec::unknown_key, "component " + component + " is not configured"));
  auto t = clock_.now();
  store_write w;
  for (auto& [aid, rt] : refresh_tokens) {
    auto pre = persistence::keys::authorizer_prefix(component, aid);
    w.put(persistence::keys::refresh_token(pre),
          persistence::encode(credential{rt, t, std::numeric_limits<int64_t>::max(), 1}));
    w.ops.push_back(store_write::op{persistence::keys::status(pre), "", true});
  }
  auto comp_actor = e->actor;
  write(std::move(w), [this, component, comp_actor, t, refresh_tokens = std::move(refresh_tokens),
                       cb](caf::error err) {
    if (err)
      return cb(std::move(err));
    std::vector<std::shared_ptr<key_entry>> fresh;
    for (auto& [aid, rt] : refresh_tokens) {
      credential x{rt, t, std::numeric_limits<int64_t>::max(), 1};
      if (auto existing = find(component + "/" + aid)) {
        caf::anon_send(existing->actor, auth_atom::value, x);
      } else {
        app_params p;
        p.refresh_token = x;
        fresh.push_back(make_authorizer(component, comp_actor, aid, std::move(p)));
      }
    }
    if (!fresh.empty())
      insert(std::move(fresh));
    cb(caf::none);
  });
}

std::vector<registry::authorizer_info>
registry::list_authorizers(const std::string& component, size_t offset, size_t limit,
                           size_t& total) const {
  auto cur = map_.load();
  auto pre = component + "/";
  std::vector<std::shared_ptr<key_entry>> all;
  for (auto& [k, e] : *cur)
    if (k.size() > pre.size() && k.compare(0, pre.size(), pre) == 0)
      all.push_back(e);
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a->key < b->key; });
  total = all.size();
  std::vector<authorizer_info> out;
  auto t = clock_.now();
  for (size_t i = offset; i < all.size() && out.size() < limit; ++i) {
    authorizer_info info;
    info.appid = all[i]->key.substr(pre.size());
    auto x = all[i]->token.load();
    info.status = all[i]->status.load() == 1 ? "revoked"
                  : all[i]->status.load() == 2 ? "needs_reauthorization"
                                               : "active";
    if (x && x->valid_at(t))
      info.token_expires_at = x->expires_at;
    out.push_back(std::move(info));
  }
  return out;
}

std::shared_ptr<key_entry> registry::find(std::string_view key) const {
  auto cur = map_.load(std::memory_order_acquire);
  auto i = cur->find(std::string{key});
  return i == cur->end() ? nullptr : i->second;
}

std::vector<std::shared_ptr<key_entry>> registry::entries() const {
  auto cur = map_.load();
  std::vector<std::shared_ptr<key_entry>> out;
  out.reserve(cur->size());
  for (auto& [k, v] : *cur)
    out.push_back(v);
  return out;
}

void registry::ask_token(const key_entry& e, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), get_atom::value, token_atom::value);
}

void registry::ask_ticket(const key_entry& e, std::string type, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), get_atom::value, ticket_atom::value,
      std::move(type));
}

void registry::report_stale(const key_entry& e, std::string token, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), stale_atom::value, std::move(token));
}

void registry::force_refresh(const key_entry& e, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), refresh_atom::value);
}

namespace {

constexpr std::string_view app_def_prefix = "cfg/app/";
constexpr std::string_view comp_def_prefix = "cfg/component/";

} // namespace

caf::error registry::load_runtime(std::vector<app_config>& apps,
                                  std::vector<component_config>& comps) const {
  auto err = db_->scan(app_def_prefix, [&](std::string_view key, std::string_view value) {
    boost::system::error_code ec;
    auto v = boost::json::parse(value, ec);
    auto o = ec ? nullptr : v.if_object();
    if (!o || !o->contains("appid") || !o->contains("secret")) {
      WH_ERROR("registry", "ignoring corrupt runtime app " << key);
      return true;
    }
    app_config a;
    a.appid = std::string{o->at("appid").as_string()};
    a.secret = std::string{o->at("secret").as_string()};
    a.api = o->contains("token_api") && o->at("token_api") == "classic" ? token_api::classic : token_api::stable;
    apps.push_back(std::move(a));
    return true;
  });
  if (err)
    return err;
  return db_->scan(comp_def_prefix, [&](std::string_view key, std::string_view value) {
    boost::system::error_code ec;
    auto v = boost::json::parse(value, ec);
    auto o = ec ? nullptr : v.if_object();
    if (!o || !o->contains("appid") || !o->contains("secret") || !o->contains("token")
        || !o->contains("encoding_aes_key")) {
      WH_ERROR("registry", "ignoring corrupt runtime component " << key);
      return true;
    }
    component_config c;
    c.appid = std::string{o->at("appid").as_string()};
    c.secret = std::string{o->at("secret").as_string()};
    c.token = std::string{o->at("token").as_string()};
    c.encoding_aes_key = std::string{o->at("encoding_aes_key").as_string()};
    comps.push_back(std::move(c));
    return true;
  });
}

void registry::put_app(app_config app, done_callback cb) {
  if (auto e = find(app.appid)) {
    if (!e->runtime)
      return cb(make_detail_error(ec::invalid_request, app.appid + " is defined in the config file"));
    if (e->kind != static_cast<uint8_t>(key_kind::app))
      return cb(make_detail_error(ec::invalid_request, app.appid + " is a component"));
  }
  boost::json::object o;
  o["v"] = 1;
  o["appid"] = app.appid;
  o["secret"] = app.secret;
  o["token_api"] = app.api == token_api::classic ? "classic" : "stable";
  store_write w;
  w.put(std::string{app_def_prefix} + app.appid, boost::json::serialize(o));
  write(std::move(w), [this, app, cb](caf::error err) {
    if (err)
      return cb(std::move(err));
    std::lock_guard<std::mutex> guard{runtime_mtx_};
    if (auto old = find(app.appid)) {
      caf::anon_send_exit(old->actor, caf::exit_reason::user_shutdown);
      erase_entries({app.appid});
    }
    cb(add_app(app, true));
  });
}

void registry::put_component(component_config comp, done_callback cb) {
  if (auto e = find(comp.appid)) {
    if (!e->runtime)
      return cb(make_detail_error(ec::invalid_request, comp.appid + " is defined in the config file"));
    if (e->kind != static_cast<uint8_t>(key_kind::component))
      return cb(make_detail_error(ec::invalid_request, comp.appid + " is an app"));
  }
  boost::json::object o;
  o["v"] = 1;
  o["appid"] = comp.appid;
  o["secret"] = comp.secret;
  o["token"] = comp.token;
  o["encoding_aes_key"] = comp.encoding_aes_key;
  store_write w;
  w.put(std::string{comp_def_prefix} + comp.appid, boost::json::serialize(o));
  write(std::move(w), [this, comp, cb](caf::error err) {
    if (err)
      return cb(std::move(err));
    std::lock_guard<std::mutex> guard{runtime_mtx_};
    if (find(comp.appid))
      stop_component(comp.appid);
    cb(add_component(comp, true));
  });
}

void registry::stop_component(const std::string& appid) {
  std::vector<std::string> keys{appid};
  auto pre = appid + "/";
  for (auto& e : entries())
    if (e->key == appid || e->key.compare(0, pre.size(), pre) == 0) {
      caf::anon_send_exit(e->actor, caf::exit_reason::user_shutdown);
      keys.push_back(e->key);
    }
  erase_entries(keys);
}

void registry::erase_entries(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> guard{add_mtx_};
  auto next = std::make_shared<map_type>(*map_.load());
  for (auto& k : keys)
    next->erase(k);
  map_.store(std::move(next));
}

void registry::remove(const std::string& appid, done_callback cb) {
  auto e = find(appid);
  if (!e || e->kind == static_cast<uint8_t>(key_kind::authorizer))
    return cb(make_detail_error(ec::unknown_key, appid + " is not defined on this hub"));
  if (!e->runtime)
    return cb(make_detail_error(ec::invalid_request, appid + " is defined in the config file"));
  bool comp = e->kind == static_cast<uint8_t>(key_kind::component);
  // Delete the definition and every stored value of the key.
  store_write w;
  w.ops.push_back({std::string{comp ? comp_def_prefix : app_def_prefix} + appid, "", true});
  std::vector<std::string> prefixes{comp ? persistence::keys::component_prefix(appid)
                                         : persistence::keys::app_prefix(appid)};
  if (comp)
    prefixes.push_back(persistence::keys::authorizers_of(appid));
  for (auto& pre : prefixes)
    db_->scan(pre, [&](std::string_view k, std::string_view) {
      w.ops.push_back({std::string{k}, "", true});
      return true;
    });
  write(std::move(w), [this, appid, comp, cb](caf::error err) {
    if (err)
      return cb(std::move(err));
    std::lock_guard<std::mutex> guard{runtime_mtx_};
    if (comp) {
      stop_component(appid);
    } else if (auto e = find(appid)) {
      caf::anon_send_exit(e->actor, caf::exit_reason::user_shutdown);
      erase_entries({appid});
    }
    cb(caf::none);
  });
}

void registry::describe(const key_entry& e, std::function<void(caf::expected<std::string>)> cb) {
  ask_then<std::string>(
    sys_, e.actor, opts_.ask_timeout, [cb](std::string x) { cb(std::move(x)); },
    [cb](caf::error err) { cb(std::move(err)); }, state_atom::value);
}

void registry::shutdown() {
  auto cur = map_.exchange(std::make_shared<const map_type>());
  for (auto& [k, e] : *cur)
    caf::anon_send_exit(e->actor, caf::exit_reason::user_shutdown);
}

} // namespace wh::actors
