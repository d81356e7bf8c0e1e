// registry::sync_config: applies a reloaded config file's apps and components.
#include "actors/registry.hpp"

#include <optional>
#include <set>
#include <unordered_map>

#include "caf/all.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

namespace wh::actors {

namespace {

constexpr auto app_kind = key_kind::app;
constexpr auto component_kind = key_kind::component;

} // namespace

void registry::unload(const key_entry& e) {
  if (e.kind == component_kind) {
    stop_component(e.key);
    std::lock_guard<std::mutex> guard{defs_mtx_};
    comp_defs_.erase(e.key);
    if (auto i = comp_links_.find(e.key); i != comp_links_.end()) {
      caf::anon_send_exit(i->second, caf::exit_reason::user_shutdown);
      comp_links_.erase(i);
    }
    return;
  }
  if (auto a = e.actor())
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  erase_entries({e.key});
  std::lock_guard<std::mutex> guard{defs_mtx_};
  app_defs_.erase(e.key);
}

void registry::replace_app(const app_config& app, const key_entry& old) {
  auto entry = std::make_shared<key_entry>();
  entry->key = app.appid;
  entry->token_api = app.api == token_api::stable ? "stable" : "classic";
  // Readers never miss: the new entry serves the old cache until its actor
  // publishes, and it takes the old one's place in a single map update.
  for (auto [from, to] : {std::pair{&old.token, &entry->token}, std::pair{&old.jsapi, &entry->jsapi},
                          std::pair{&old.wx_card, &entry->wx_card}})
    if (auto x = from->load())
      to->publish(*x);
  {
    std::lock_guard<std::mutex> guard{defs_mtx_};
    app_defs_[app.appid] = app;
  }
  // The old actor stops before the new one reads the stored state, so two
  // actors never refresh the same key.
  if (auto a = old.actor())
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  start(entry, load_params(entry));
  insert({std::move(entry)});
}

caf::error registry::replace_component(const component_config& comp) {
  std::vector<std::shared_ptr<key_entry>> old;
  auto pre = comp.appid + "/";
  for (auto& e : entries())
    if (e->key == comp.appid || e->key.compare(0, pre.size(), pre) == 0)
      old.push_back(e);
  // Stopped before the new actors read the stored state (one actor per key).
  for (auto& e : old)
    if (auto a = e->actor())
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  {
    std::lock_guard<std::mutex> guard{defs_mtx_};
    if (auto i = comp_links_.find(comp.appid); i != comp_links_.end()) {
      caf::anon_send_exit(i->second, caf::exit_reason::user_shutdown);
      comp_links_.erase(i);
    }
  }
  auto err = start_component(comp, false);
  // Entries the restart did not recreate (e.g. cluster shadows) go.
  std::vector<std::string> stale;
  for (auto& e : old)
    if (find(e->key) == e)
      stale.push_back(e->key);
  erase_entries(stale);
  return err;
}

registry::sync_report registry::sync_config(const std::vector<app_config>& apps,
                                             const std::vector<component_config>& comps) {
  std::lock_guard<std::mutex> guard{runtime_mtx_};
  sync_report rep;
  std::unordered_map<std::string, const app_config*> want_apps;
  std::unordered_map<std::string, const component_config*> want_comps;
  for (auto& a : apps)
    want_apps.emplace(a.appid, &a);
  for (auto& c : comps)
    want_comps.emplace(c.appid, &c);
  // Removed from the file, or switched between app and component.
  for (auto& e : entries()) {
    if (e->runtime || (e->kind != app_kind && e->kind != component_kind))
      continue;
    bool keep = e->kind == app_kind ? want_apps.count(e->key) > 0 : want_comps.count(e->key) > 0;
    if (keep)
      continue;
    bool replaced = want_apps.count(e->key) > 0 || want_comps.count(e->key) > 0;
    if (e->kind == component_kind)
      rep.dropped_components.push_back(e->key);
    unload(*e);
    if (!replaced)
      rep.removed.push_back(e->key);
  }
  auto defined_app = [this](const std::string& id) -> std::optional<app_config> {
    std::lock_guard<std::mutex> g{defs_mtx_};
    if (auto i = app_defs_.find(id); i != app_defs_.end())
      return i->second;
    return std::nullopt;
  };
  auto defined_comp = [this](const std::string& id) -> std::optional<component_config> {
    std::lock_guard<std::mutex> g{defs_mtx_};
    if (auto i = comp_defs_.find(id); i != comp_defs_.end())
      return i->second;
    return std::nullopt;
  };
  for (auto& app : apps) {
    auto e = find(app.appid);
    if (!e) {
      if (auto err = add_app(app))
        rep.failed.push_back(app.appid + ": " + detail_of(err));
      else
        rep.added.push_back(app.appid);
      continue;
    }
    if (e->runtime)
      WH_WARN_F("registry", app.appid << " is now defined in the config file, which replaces its admin "
                                         "API definition",
                {"key", app.appid});
    else if (auto def = defined_app(app.appid); def && *def == app)
      continue; // unchanged: the running actor and its tokens stay
    if (e->kind != app_kind) {
      // An admin-defined component of that appid: it goes, the app starts.
      rep.dropped_components.push_back(app.appid);
      unload(*e);
      if (auto err = add_app(app)) {
        rep.failed.push_back(app.appid + ": " + detail_of(err));
        continue;
      }
    } else {
      replace_app(app, *e);
    }
    rep.changed.push_back(app.appid);
  }
  for (auto& comp : comps) {
    auto e = find(comp.appid);
    caf::error err;
    if (!e) {
      err = add_component(comp);
    } else {
      if (e->runtime)
        WH_WARN_F("registry", comp.appid << " is now defined in the config file, which replaces its "
                                            "admin API definition",
                  {"key", comp.appid});
      else if (auto def = defined_comp(comp.appid); def && *def == comp)
        continue;
      if (e->kind == component_kind) {
        // It restarts with its authorizers, all from stored state.
        err = replace_component(comp);
      } else {
        unload(*e); // an admin-defined app of that appid
        err = add_component(comp);
      }
    }
    if (err)
      rep.failed.push_back(comp.appid + ": " + detail_of(err));
    else
      (e ? rep.changed : rep.added).push_back(comp.appid);
  }
  // A node learns of new keys (and stops owning removed ones) on reconcile.
  if (cluster_.node && !(rep.added.empty() && rep.changed.empty() && rep.removed.empty()))
    caf::anon_send(cluster_.node, ready_atom::value);
  return rep;
}

} // namespace wh::actors
