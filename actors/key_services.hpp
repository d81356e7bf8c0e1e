#pragma once
// The hub's keys as the front end and the admin API use them: the directory
// (registry) and the three services around it, built once per hub.

#include "caf/actor_system.hpp"

#include "actors/authorizations.hpp"
#include "actors/key_client.hpp"
#include "actors/registry.hpp"
#include "actors/runtime_definitions.hpp"

namespace wh::actors {

struct key_services {
  /// Build before the registry loads any component (authorizations hooks in).
  key_services(caf::actor_system& sys, registry& directory)
    : reg(directory),
      keys(sys, directory, directory.ask_timeout()),
      auths(sys, directory, keys),
      defs(sys, directory) {}

  key_services(const key_services&) = delete;
  key_services& operator=(const key_services&) = delete;

  registry& reg;
  key_client keys;
  authorizations auths;
  runtime_definitions defs;
};

} // namespace wh::actors
