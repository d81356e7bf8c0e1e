#pragma once

// Apps and components defined at runtime through the admin API, stored so
// a restart (and every node of a cluster) finds them again. Values hold the
// secrets; the encrypted store seals them.

#include <string>
#include <string_view>
#include <vector>

#include "caf/error.hpp"

#include "core/config.hpp"

namespace wh::persistence {

class store;

namespace definitions {

inline constexpr std::string_view app_prefix = "cfg/app/";
inline constexpr std::string_view component_prefix = "cfg/component/";

inline std::string app_key(std::string_view appid) {
  return std::string{app_prefix} + std::string{appid};
}
inline std::string component_key(std::string_view appid) {
  return std::string{component_prefix} + std::string{appid};
}

/// Versioned JSON ({"v":1,...}).
std::string encode(const app_config& app);
std::string encode(const component_config& comp);

/// Every stored definition; a corrupt one is logged and skipped.
caf::error load(store& db, std::vector<app_config>& apps, std::vector<component_config>& comps);

} // namespace definitions

} // namespace wh::persistence
