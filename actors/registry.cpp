#include "actors/registry.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "caf/all.hpp"


#include "actors/app_actor.hpp"
#include "actors/ask.hpp"
#include "persistence/definitions.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

namespace wh::actors {

namespace {

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
    opts_(opts) {
  if (opts_.idle_timeout.count() > 0) {
    router_ = spawn_key_router(sys_, *this, db_, clock_, opts_.router);
    auto marker = db_->get(persistence::keys::schedule_marker);
    schedule_ready_ = marker && *marker;
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
  p.may_act = opts_.may_act;
  // Stable per key: an actor started again draws the same refresh jitter.
  p.seed = key_seed(p.entry->key);
  // Virtual activation: a single node's router or, in a cluster, the
  // router of the owner (the node actor starts the key there on demand).
  if (virtual_key(*p.entry) || (cluster_.node && opts_.idle_timeout.count() > 0 && p.entry->kind != key_kind::component)) {
    p.router = router_;
    p.idle_timeout = opts_.idle_timeout;
  }
  return p;
}

void registry::insert(std::vector<std::shared_ptr<key_entry>> entries) {
  dir_.insert(std::move(entries));
}

namespace {

/// Applies one stored record (`field` relative to the key's prefix) to `p`.
void read_field(app_params& p, std::string_view field, std::string_view value,
                const std::string& key) {
  if (field == "access_token")
    p.token = decode_logged(key, value);
  else if (field == "ticket/jsapi")
    p.jsapi = decode_logged(key, value);
  else if (field == "ticket/wx_card")
    p.wx_card = decode_logged(key, value);
  else if (field == "refresh_token")
    p.refresh_token = decode_logged(key, value);
  else if (field == "verify_ticket")
    p.verify_ticket = decode_logged(key, value);
  else if (field == "force") {
    if (auto b = persistence::decode_force_budget(value))
      p.force_budget = *b;
    else
      WH_ERROR("registry", "ignoring corrupt record " << key);
  } else if (field == "status") {
    auto st = persistence::decode_status(value);
    if (!st)
      WH_ERROR("registry", "ignoring corrupt record " << key);
    else
      p.status = *st == "revoked" ? authorizer_status::revoked
                                  : authorizer_status::needs_reauthorization;
  } else if (field == "due") {
    int64_t x = 0;
    for (char c : value)
      x = c >= '0' && c <= '9' ? x * 10 + (c - '0') : x;
    p.due = x;
  } else if (field == "seq") {
    uint64_t x = 0;
    for (char c : value)
      x = c >= '0' && c <= '9' ? x * 10 + static_cast<uint64_t>(c - '0') : x;
    p.seq = x;
  }
}

} // namespace

std::string registry::prefix_of(const key_entry& e) {
  switch (e.kind) {
    case key_kind::app: return persistence::keys::app_prefix(e.key);
    case key_kind::component: return persistence::keys::component_prefix(e.key);
    default: {
      auto slash = e.key.find('/');
      return persistence::keys::authorizer_prefix(e.key.substr(0, slash), e.key.substr(slash + 1));
    }
  }
}

key_source registry::component_handle(const std::string& component) const {
  std::lock_guard<std::mutex> guard{defs_mtx_};
  if (auto i = comp_links_.find(component); i != comp_links_.end())
    return i->second;
  if (auto e = find(component))
    return e->actor();
  return {};
}

app_params registry::load_params(const std::shared_ptr<key_entry>& e) const {
  auto p = base_params(e);
  p.kind = e->kind;
  p.prefix = prefix_of(*e);
  switch (p.kind) {
    case key_kind::app: {
      std::lock_guard<std::mutex> guard{defs_mtx_};
      if (auto i = app_defs_.find(e->key); i != app_defs_.end())
        p.app = i->second;
      break;
    }
    case key_kind::component: {
      std::lock_guard<std::mutex> guard{defs_mtx_};
      uint32_t reconcile_s = 0;
      if (auto i = comp_defs_.find(e->key); i != comp_defs_.end()) {
        p.app = app_config{i->second.appid, i->second.secret, token_api::stable};
        reconcile_s = i->second.reconcile_interval_s;
      }
      p.component_appid = e->key;
      p.recovery_interval_s = opts_.recovery_interval_s;
      if (!cluster_.node) {
        p.reconcile_interval_s = reconcile_s;
        // The authorizer operations import what the walk found missing.
        if (hooks_.reconciled)
          p.on_reconcile = [hook = hooks_.reconciled, comp = e->key](
                             std::vector<std::pair<std::string, std::string>> listed) {
            hook(comp, std::move(listed));
          };
      }
      break;
    }
    case key_kind::authorizer: {
      auto slash = e->key.find('/');
      p.component_appid = e->key.substr(0, slash);
      p.app.appid = e->key.substr(slash + 1);
      p.component = component_handle(p.component_appid);
      break;
    }
  }
  auto err = db_->scan(p.prefix, [&](std::string_view key, std::string_view value) {
    read_field(p, key.substr(p.prefix.size()), value, std::string{key});
    return true;
  });
  if (err)
    WH_ERROR("registry", e->key << ": cannot read its state: " << detail_of(err));
  return p;
}

void registry::publish_stored(key_entry& e, const app_params& p) const {
  auto t = clock_.now();
  if (p.token && p.token->valid_at(t))
    key_entry::publish_newer(e.token, *p.token);
  if (p.jsapi && p.jsapi->valid_at(t))
    key_entry::publish_newer(e.jsapi, *p.jsapi);
  if (p.wx_card && p.wx_card->valid_at(t))
    key_entry::publish_newer(e.wx_card, *p.wx_card);
  e.status.store(p.status);
  if (p.status != authorizer_status::active)
    e.token.clear();
  if (p.verify_ticket)
    e.verify_ticket_at.store(p.verify_ticket->obtained_at);
}

void registry::start(const std::shared_ptr<key_entry>& e, app_params&& p) {
  if (cluster_.node) {
    // The node actor spawns the actor once this node owns the key; until
    // then the stored (replicated) state is served from the snapshots.
    p.cluster = cluster_.node;
    publish_stored(*e, p);
    return;
  }
  if (p.token && p.token->valid_at(clock_.now()) && p.kind == key_kind::app)
    WH_INFO("registry", e->key << ": restored access_token v" << p.token->version << ", "
                               << (p.token->expires_at - clock_.now()) << " s left");
  if (virtual_key(*e)) {
    // Virtual activation: the router starts the actor when work arrives
    // (a request, the refresh schedule); until then the snapshots serve.
    publish_stored(*e, p);
    if (!schedule_ready_)
      schedule_stored(*e, p);
    return;
  }
  e->set_actor(spawn_app_actor(sys_, std::move(p)));
}

key_actor registry::activate(const std::shared_ptr<key_entry>& e) {
  if (auto a = e->actor())
    return a;
  auto p = load_params(e);
  p.cluster = cluster_.node;
  publish_stored(*e, p);
  auto a = spawn_app_actor(sys_, std::move(p));
  e->set_actor(a);
  // Activation runs on the node's storage worker, concurrently with
  // shutdown() and remove(): an entry they dropped meanwhile stops again.
  if (find(e->key) != e) {
    e->set_actor(key_actor{});
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    return {};
  }
  return a;
}

key_actor registry::deactivate(key_entry& e) {
  auto a = e.actor();
  e.set_actor(key_actor{});
  return a;
}

void registry::enable_cluster(cluster_link link) {
  cluster_ = std::move(link);
  // A cluster's node actor starts and stops actors by ownership (no
  // virtual activation yet); the router delivers every key request, here or
  // to the owner's router.
  if (!router_)
    router_ = spawn_key_router(sys_, *this, db_, clock_, opts_.router);
}

key_source registry::spawn_component_link(const std::string& component) {
  // Authorizer actors ask "their component" for its token; in a cluster the
  // component may live on another node, so they ask this forwarder.
  return sys_.spawn([this, component](key_source::pointer self) -> key_source::behavior_type {
    // The component's actor here, else the router (by key, to the owner).
    auto route = [this, component](key_actor& local) -> key_router_actor {
      if (auto e = find(component))
        local = e->actor();
      return local ? key_router_actor{} : router_;
    };
    auto unreachable = [component] {
      return make_detail_error(ec::cluster_unavailable, "no live owner of component " + component);
    };
    return {
      [=](get_atom, token_atom) -> caf::typed_response_promise<credential> {
        auto rp = self->make_response_promise<credential>();
        key_actor local;
        if (auto router = route(local))
          rp.delegate(router, get_atom::value, token_atom::value, component);
        else if (local)
          rp.delegate(local, get_atom::value, token_atom::value);
        else
          rp.deliver(unreachable());
        return rp;
      },
      [=](stale_atom, force_atom, std::string& token) -> caf::typed_response_promise<credential> {
        auto rp = self->make_response_promise<credential>();
        key_actor local;
        if (auto router = route(local)) // the owner checks the report before it refreshes
          rp.delegate(router, stale_atom::value, component, std::move(token));
        else if (local)
          rp.delegate(local, stale_atom::value, force_atom::value, std::move(token));
        else
          rp.deliver(unreachable());
        return rp;
      },
      [=](import_atom, std::string& authorizer) -> caf::typed_response_promise<credential> {
        auto rp = self->make_response_promise<credential>();
        key_actor local;
        route(local);
        if (local)
          rp.delegate(local, import_atom::value, std::move(authorizer));
        else
          rp.deliver(make_detail_error(ec::cluster_unavailable,
                                       "authorizer recovery runs on the component's owner"));
        return rp;
      },
    };
  });
}

caf::expected<key_state> registry::read_state(const key_entry& e) const {
  key_state st;
  st.key = e.key;
  st.kind = static_cast<uint8_t>(e.kind);
  auto pre = prefix_of(e);
  auto err = db_->scan(pre, [&](std::string_view k, std::string_view v) {
    auto field = k.substr(pre.size());
    if (field == "seq") {
      app_params p;
      read_field(p, field, v, std::string{k});
      st.seq = p.seq;
    }
    st.fields.emplace_back(field);
    st.fields.emplace_back(v);
    return true;
  });
  if (err)
    return err;
  return st;
}

registry::adopt_result registry::adopt(const key_state& s) {
  auto e = find(s.key);
  auto kind = static_cast<key_kind>(s.kind);
  if (!e || e->shadow) {
    auto slash = s.key.find('/');
    if (kind != key_kind::authorizer || slash == std::string::npos) {
      WH_WARN("cluster", "replicated state of " << s.key << " is not configured on this node; "
                         "every node needs the same [[app]]/[[component]] definitions");
      return adopt_result::refused;
    }
    auto comp = find(s.key.substr(0, slash));
    if (!comp || comp->kind != key_kind::component)
      return adopt_result::refused;
    e = ensure_authorizer(s.key.substr(0, slash), s.key.substr(slash + 1));
  }
  if (e->kind != kind || s.fields.size() % 2 != 0)
    return adopt_result::refused;
  if (auto running = e->actor()) {
    // Never write under a running actor (it would not learn of the change
    // and its next write would mix both states): its state wins instead.
    // Not while this node's cluster lease lapsed: it must not act as owner
    // (the sender is a later owner; this node rejoins and takes its state).
    if (!opts_.may_act || opts_.may_act())
      caf::anon_send(running, sync_atom::value, s.seq);
    return adopt_result::owner_running;
  }
  auto pre = prefix_of(*e);
  std::vector<persistence::batch_entry> batch;
  uint64_t local = 0;
  auto err = db_->scan(pre, [&](std::string_view k, std::string_view v) {
    if (k.substr(pre.size()) == "seq") {
      app_params p;
      read_field(p, "seq", v, std::string{k});
      local = p.seq;
    }
    batch.emplace_back(std::string{k}, std::nullopt);
    return true;
  });
  if (err)
    return adopt_result::failed;
  if (s.seq <= local)
    return adopt_result::older;
  // The new state replaces the old one entirely, in one atomic batch.
  app_params p;
  for (size_t i = 0; i < s.fields.size(); i += 2) {
    batch.emplace_back(pre + s.fields[i], s.fields[i + 1]);
    read_field(p, s.fields[i], s.fields[i + 1], pre + s.fields[i]);
  }
  if (auto werr = db_->write(batch)) {
    WH_ERROR("cluster", "cannot store replicated state of " << s.key << ": " << detail_of(werr));
    return adopt_result::failed;
  }
  auto t = clock_.now();
  auto exact = [t](snapshot_slot& slot, const std::optional<credential>& x) {
    if (x && x->valid_at(t))
      slot.publish(*x);
    else
      slot.clear();
  };
  if (!e->actor()) {
    exact(e->token, p.token);
    exact(e->jsapi, p.jsapi);
    exact(e->wx_card, p.wx_card);
    e->status.store(p.status);
    if (p.verify_ticket)
      e->verify_ticket_at.store(p.verify_ticket->obtained_at);
  }
  return adopt_result::applied;
}

void registry::refresh_cached(const key_state& s) {
  auto e = find(s.key);
  if (!e || e->actor() || e->kind != static_cast<key_kind>(s.kind))
    return;
  auto pre = prefix_of(*e);
  app_params p;
  for (size_t i = 0; i + 1 < s.fields.size(); i += 2)
    read_field(p, s.fields[i], s.fields[i + 1], pre + s.fields[i]);
  auto t = clock_.now();
  auto fresh = [t](snapshot_slot& slot, const std::optional<credential>& x) {
    if (x && x->valid_at(t))
      key_entry::publish_newer(slot, *x);
  };
  fresh(e->token, p.token);
  fresh(e->jsapi, p.jsapi);
  fresh(e->wx_card, p.wx_card);
}

caf::error registry::add_app(const app_config& app, bool runtime) {
  if (find(app.appid))
    return make_detail_error(ec::invalid_config, "duplicate appid " + app.appid);
  auto entry = std::make_shared<key_entry>();
  entry->key = app.appid;
  entry->runtime = runtime;
  entry->token_api = app.api == token_api::stable ? "stable" : "classic";
  {
    std::lock_guard<std::mutex> guard{defs_mtx_};
    app_defs_[app.appid] = app;
  }
  start(entry, load_params(entry));
  insert({std::move(entry)});
  flush_migration();
  return caf::none;
}

std::shared_ptr<key_entry> registry::make_authorizer(const std::string& component,
                                                     const std::string& authorizer, app_params&& p) {
  auto entry = std::make_shared<key_entry>();
  entry->key = component + "/" + authorizer;
  entry->kind = key_kind::authorizer;
  auto base = base_params(entry);
  base.kind = key_kind::authorizer;
  base.app.appid = authorizer;
  base.component_appid = component;
  base.component = component_handle(component);
  base.prefix = persistence::keys::authorizer_prefix(component, authorizer);
  base.token = std::move(p.token);
  base.jsapi = std::move(p.jsapi);
  base.wx_card = std::move(p.wx_card);
  base.refresh_token = std::move(p.refresh_token);
  base.status = p.status;
  base.seq = p.seq;
  start(entry, std::move(base));
  return entry;
}

caf::error registry::add_component(const component_config& comp, bool runtime) {
  if (find(comp.appid))
    return make_detail_error(ec::invalid_config, "duplicate appid " + comp.appid);
  return start_component(comp, runtime);
}

caf::error registry::start_component(const component_config& comp, bool runtime) {
  auto entry = std::make_shared<key_entry>();
  entry->key = comp.appid;
  entry->runtime = runtime;
  entry->kind = key_kind::component;
  {
    std::lock_guard<std::mutex> guard{defs_mtx_};
    comp_defs_[comp.appid] = comp;
    if (cluster_.node)
      comp_links_[comp.appid] = spawn_component_link(comp.appid);
  }
  start(entry, load_params(entry));
  insert({entry});
  auto all = persistence::keys::authorizers_of(comp.appid);
  if (router_ && !cluster_.node && schedule_ready_) {
    // Virtual activation with a complete schedule: the directory needs only
    // the keys (and the rare non-active status); tokens load on first use.
    auto err = load_authorizer_keys(comp.appid, all);
    if (!err) {
      if (hooks_.started)
        hooks_.started(comp.appid);
      warm_snapshots(comp.appid);
    }
    return err;
  }
  // Restore every stored authorizer: one scan, one map update.
  std::map<std::string, app_params> found;
  auto err = db_->scan(all, [&](std::string_view key, std::string_view value) {
    auto rest = key.substr(all.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos)
      return true;
    read_field(found[std::string{rest.substr(0, slash)}], rest.substr(slash + 1), value,
               std::string{key});
    return true;
  });
  if (err)
    return err;
  std::vector<std::shared_ptr<key_entry>> entries;
  entries.reserve(found.size());
  for (auto& [aid, ap] : found)
    entries.push_back(make_authorizer(comp.appid, aid, std::move(ap)));
  WH_INFO("registry", comp.appid << ": component with " << found.size() << " stored authorizer(s)");
  insert(std::move(entries));
  flush_migration();
  if (!cluster_.node && hooks_.started)
    hooks_.started(comp.appid);
  return caf::none;
}

void registry::write(store_write w, done_callback cb) {
  ask_then<done_atom>(
    sys_, store_, std::chrono::seconds(60), [cb](done_atom) { cb(caf::none); },
    [cb](caf::error err) { cb(std::move(err)); }, put_atom::value, std::move(w));
}

bool registry::virtual_key(const key_entry& e) const {
  return router_ && !cluster_.node && e.kind != key_kind::component;
}

std::array<size_t, 3> registry::active_actors() const {
  std::array<size_t, 3> n{};
  dir_.for_each([&](const std::shared_ptr<key_entry>& e) {
    if (auto k = static_cast<size_t>(e->kind); k < n.size() && e->actor())
      ++n[k];
  });
  return n;
}

registry::key_route registry::route_of(const key_entry& e) const {
  key_route r;
  if (virtual_key(e) || cluster_.node) {
    // Always through the router: it knows whether the actor is starting,
    // running or stopping, and which node owns the key.
    r.router = router_;
    return r;
  }
  r.local = e.actor();
  return r;
}

void registry::remember(const std::string& key, const std::string& slot, const credential& x) {
  if (!cluster_.node)
    return; // the key's actor runs here and publishes for itself
  auto e = find(key);
  if (!e) {
    // An authorizer this node does not store: cache the owner's answers
    // (entries are only created for keys the owner confirmed).
    if (key.find('/') == std::string::npos)
      return;
    e = std::make_shared<key_entry>();
    e->key = key;
    e->kind = key_kind::authorizer;
    e->shadow = true;
    insert({e});
  }
  if (e->actor())
    return; // the local actor publishes for itself
  auto dst = slot == "token" ? &e->token : e->ticket(slot);
  if (dst)
    key_entry::publish_newer(*dst, x);
}

std::shared_ptr<key_entry> registry::ensure_authorizer(const std::string& component,
                                                       const std::string& authorizer) {
  std::lock_guard<std::mutex> guard{runtime_mtx_};
  auto key = component + "/" + authorizer;
  auto entry = find(key);
  if (entry && !entry->shadow)
    return entry;
  auto fresh = make_authorizer(component, authorizer, app_params{});
  if (entry) // a shadow becomes a real entry; keep what it cached
    if (auto x = entry->token.load())
      fresh->token.publish(*x);
  insert({fresh});
  return fresh;
}

void registry::import_local(const std::string& component,
                            std::vector<std::pair<std::string, std::string>> refresh_tokens,
                            done_callback cb) {
  auto t = clock_.now();
  store_write w;
  for (auto& [aid, rt] : refresh_tokens) {
    auto pre = persistence::keys::authorizer_prefix(component, aid);
    w.put(persistence::keys::refresh_token(pre),
          persistence::encode(credential{rt, t, std::numeric_limits<int64_t>::max(), 1}));
    w.ops.push_back(store_write::op{persistence::keys::status(pre), "", true});
  }
  auto apply = [this, component, t, refresh_tokens = std::move(refresh_tokens), cb]() {
    std::vector<std::shared_ptr<key_entry>> fresh;
    // In a cluster this node owns the keys (the node actor routed them
    // here): they start from their stored state once in the map (activate
    // stops an actor whose entry is not).
    std::vector<std::pair<std::shared_ptr<key_entry>, credential>> run;
    for (auto& [aid, rt] : refresh_tokens) {
      credential x{rt, t, std::numeric_limits<int64_t>::max(), 1};
      auto existing = find(component + "/" + aid);
      if (existing && !existing->shadow) {
        if (cluster_.node)
          run.emplace_back(existing, x);
        else if (virtual_key(*existing))
          caf::anon_send(router_, auth_atom::value, existing->key, x);
        else
          caf::anon_send(existing->actor(), auth_atom::value, x);
      } else {
        app_params p;
        p.refresh_token = x;
        auto entry = make_authorizer(component, aid, std::move(p));
        if (cluster_.node)
          run.emplace_back(entry, x);
        fresh.push_back(std::move(entry));
      }
    }
    if (!fresh.empty())
      insert(std::move(fresh));
    for (auto& [e, x] : run)
      caf::anon_send(activate(e), auth_atom::value, x);
    cb(caf::none);
  };
  write(std::move(w), [this, apply = std::move(apply), cb](caf::error err) mutable {
    if (err)
      return cb(std::move(err));
    // activate reads each key's state from RocksDB: not on the scheduler
    // thread that delivered the store's answer.
    if (cluster_.node)
      return off_scheduler(sys_, std::move(apply));
    apply();
  });
}

void registry::set_component_hooks(component_hooks hooks) {
  hooks_ = std::move(hooks);
}

std::vector<std::shared_ptr<key_entry>> registry::with_prefix(std::string_view prefix) const {
  return dir_.with_prefix(prefix);
}

std::shared_ptr<key_entry> registry::find(std::string_view key) const {
  return dir_.find(key);
}

std::vector<std::shared_ptr<key_entry>> registry::entries() const {
  return dir_.all();
}

void registry::stop_component(const std::string& appid) {
  std::vector<std::string> keys{appid};
  auto pre = appid + "/";
  for (auto& e : entries())
    if (e->key == appid || e->key.compare(0, pre.size(), pre) == 0) {
      caf::anon_send_exit(e->actor(), caf::exit_reason::user_shutdown);
      keys.push_back(e->key);
    }
  erase_entries(keys);
}

void registry::erase_entries(const std::vector<std::string>& keys) {
  dir_.erase(keys);
}

void registry::shutdown() {
  if (router_)
    caf::anon_send_exit(router_, caf::exit_reason::user_shutdown);
  for (auto& e : dir_.clear())
    if (auto a = e->actor())
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  std::lock_guard<std::mutex> guard{defs_mtx_};
  for (auto& [k, link] : comp_links_)
    caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
  comp_links_.clear();
}

} // namespace wh::actors
