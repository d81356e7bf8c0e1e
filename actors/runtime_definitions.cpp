#include "actors/runtime_definitions.hpp"

#include <mutex>

#include "caf/all.hpp"

#include "actors/ask.hpp"
#include "core/error.hpp"
#include "persistence/definitions.hpp"
#include "persistence/records.hpp"

namespace wh::actors {

caf::error runtime_definitions::load_runtime(std::vector<app_config>& apps,
                                             std::vector<component_config>& comps) const {
  return persistence::definitions::load(*reg_.db(), apps, comps);
}

void runtime_definitions::put_app(app_config app, done_callback cb) {
  if (auto e = reg_.find(app.appid)) {
    if (!e->runtime)
      return cb(make_detail_error(ec::invalid_request, app.appid + " is defined in the config file"));
    if (e->kind != key_kind::app)
      return cb(make_detail_error(ec::invalid_request, app.appid + " is a component"));
  }
  store_write w;
  w.put(persistence::definitions::app_key(app.appid), persistence::definitions::encode(app));
  reg_.write(std::move(w), [this, app, cb](caf::error err) {
    if (err)
      return cb(std::move(err));
    // add_app reads the app's stored state from RocksDB: on a thread of its
    // own, not on the scheduler thread that delivered the store's answer.
    off_scheduler(sys_, [this, app, cb] {
      std::lock_guard<std::mutex> guard{reg_.definitions_mutex()};
      if (auto old = reg_.find(app.appid)) {
        caf::anon_send_exit(old->actor(), caf::exit_reason::user_shutdown);
        reg_.erase_entries({app.appid});
      }
      auto err2 = reg_.add_app(app, true);
      if (reg_.cluster().node)
        caf::anon_send(reg_.cluster().node, ready_atom::value);
      cb(std::move(err2));
    });
  });
}

void runtime_definitions::put_component(component_config comp, done_callback cb) {
  if (auto e = reg_.find(comp.appid)) {
    if (!e->runtime)
      return cb(make_detail_error(ec::invalid_request, comp.appid + " is defined in the config file"));
    if (e->kind != key_kind::component)
      return cb(make_detail_error(ec::invalid_request, comp.appid + " is an app"));
  }
  store_write w;
  w.put(persistence::definitions::component_key(comp.appid), persistence::definitions::encode(comp));
  reg_.write(std::move(w), [this, comp, cb](caf::error err) {
    if (err)
      return cb(std::move(err));
    // add_component reads the component and every stored authorizer from
    // RocksDB: on a thread of its own, not on the scheduler thread that
    // delivered the store's answer (blocking actors are always detached).
    sys_.spawn([this, comp, cb](caf::blocking_actor*) {
      std::lock_guard<std::mutex> guard{reg_.definitions_mutex()};
      if (reg_.find(comp.appid))
        reg_.stop_component(comp.appid);
      auto err2 = reg_.add_component(comp, true);
      if (reg_.cluster().node)
        caf::anon_send(reg_.cluster().node, ready_atom::value);
      cb(std::move(err2));
    });
  });
}

void runtime_definitions::remove(const std::string& appid, done_callback cb) {
  auto e = reg_.find(appid);
  if (!e || e->kind == key_kind::authorizer)
    return cb(make_detail_error(ec::unknown_key, appid + " is not defined on this hub"));
  if (!e->runtime)
    return cb(make_detail_error(ec::invalid_request, appid + " is defined in the config file"));
  bool comp = e->kind == key_kind::component;
  // Delete the definition and every stored value of the key. The scan runs
  // on a thread of its own: the caller may be a scheduler thread (the node
  // actor applies a peer's relayed DELETE).
  off_scheduler(sys_, [this, appid, comp, cb] {
    store_write w;
    w.ops.push_back({comp ? persistence::definitions::component_key(appid)
                          : persistence::definitions::app_key(appid),
                     "", true});
    std::vector<std::string> prefixes{comp ? persistence::keys::component_prefix(appid)
                                           : persistence::keys::app_prefix(appid)};
    if (comp)
      prefixes.push_back(persistence::keys::authorizers_of(appid));
    for (auto& pre : prefixes)
      reg_.db()->scan(pre, [&](std::string_view k, std::string_view) {
        w.ops.push_back({std::string{k}, "", true});
        return true;
      });
    reg_.write(std::move(w), [this, appid, comp, cb](caf::error err) {
      if (err)
        return cb(std::move(err));
      std::lock_guard<std::mutex> guard{reg_.definitions_mutex()};
      if (comp) {
        reg_.stop_component(appid);
      } else if (auto e = reg_.find(appid)) {
        caf::anon_send_exit(e->actor(), caf::exit_reason::user_shutdown);
        reg_.erase_entries({appid});
      }
      cb(caf::none);
    });
  });
}

} // namespace wh::actors
