#pragma once
// Apps and components defined at run time (admin API): stored beside the
// tokens (secrets sealed by the store) and started or stopped in the
// registry. Config-file keys cannot be changed this way.

#include <string>
#include <vector>

#include "caf/actor_system.hpp"
#include "caf/error.hpp"

#include "actors/registry.hpp"
#include "core/config.hpp"

namespace wh::actors {

class runtime_definitions {
public:
  using done_callback = registry::done_callback;

  runtime_definitions(caf::actor_system& sys, registry& reg) : sys_(sys), reg_(reg) {}

  /// Persists an app definition (secret included; the store encrypts values)
  /// and (re)starts its actor. Config-file apps cannot be changed (ec::invalid_request).
  void put_app(app_config app, done_callback cb);

  /// Persists a component definition and (re)starts its actor.
  void put_component(component_config comp, done_callback cb);

  /// Deletes a runtime app or component (and a component's authorizers) and its state.
  void remove(const std::string& appid, done_callback cb);

  /// Loads the runtime definitions stored by put_app / put_component.
  caf::error load_runtime(std::vector<app_config>& apps, std::vector<component_config>& comps) const;

private:
  caf::actor_system& sys_;
  registry& reg_;
};

} // namespace wh::actors
