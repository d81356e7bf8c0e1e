#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "caf/expected.hpp"

namespace wh::persistence {

/// A credential with a lifetime: an access token or a ticket. Times are unix
/// seconds. `version` grows by one whenever the value changes.
struct credential {
  std::string value;
  int64_t obtained_at = 0;
  int64_t expires_at = 0;
  uint64_t version = 0;

  bool valid_at(int64_t now) const { return !value.empty() && now < expires_at; }
};

/// How many forced refreshes were spent on which (Beijing) day.
struct force_budget_record {
  int64_t day = 0;
  uint32_t used = 0;
  int64_t last_at = 0;
};

/// Storage keys, one namespace per owner so a scan can load one app.
namespace keys {
std::string app_token(std::string_view appid);
std::string app_ticket(std::string_view appid, std::string_view type);
std::string app_force(std::string_view appid);
} // namespace keys

/// Encodes as versioned JSON ({"v":1,...}).
std::string encode(const credential& x);
std::string encode(const force_budget_record& x);

/// Decodes; ec::corrupt_record with a reason for garbage or an unknown version.
caf::expected<credential> decode_credential(std::string_view bytes);
caf::expected<force_budget_record> decode_force_budget(std::string_view bytes);

} // namespace wh::persistence
