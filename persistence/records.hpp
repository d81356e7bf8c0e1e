#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "caf/expected.hpp"
#include "caf/meta/type_name.hpp"

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

/// CAF's inspector of a credential (actors exchange credentials, nodes
/// replicate them).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, credential& x) {
  return f(caf::meta::type_name("credential"), x.value, x.obtained_at, x.expires_at, x.version);
}

/// How many forced refreshes were spent on which (Beijing) day.
struct force_budget_record {
  int64_t day = 0;
  uint32_t used = 0;
  int64_t last_at = 0;
};

/// Storage keys. Every key's state lives under one prefix ("app/<appid>/",
/// "comp/<component>/", "auth/<component>/<authorizer>/") so a scan loads one
/// owner and all authorizers of a component share "auth/<component>/".
namespace keys {
std::string app_prefix(std::string_view appid);
std::string component_prefix(std::string_view component_appid);
std::string authorizer_prefix(std::string_view component_appid, std::string_view authorizer_appid);
/// All authorizers of a component.
std::string authorizers_of(std::string_view component_appid);

inline std::string token(std::string_view prefix) { return std::string{prefix} + "access_token"; }
inline std::string ticket(std::string_view prefix, std::string_view type) {
  return std::string{prefix} + "ticket/" + std::string{type};
}
inline std::string force(std::string_view prefix) { return std::string{prefix} + "force"; }
/// An authorizer's refresh token (a credential record without expiry).
inline std::string refresh_token(std::string_view prefix) { return std::string{prefix} + "refresh_token"; }
/// A component's latest verify ticket (obtained_at = receipt time).
inline std::string verify_ticket(std::string_view prefix) { return std::string{prefix} + "verify_ticket"; }
/// An authorizer's lifecycle status record ("revoked" / "needs_reauthorization").
inline std::string status(std::string_view prefix) { return std::string{prefix} + "status"; }
/// When an authorizer's authorization that gave its refresh token happened
/// (decimal unix seconds: the push's CreateTime, else the hub's receipt
/// time); merges order it against a revocation (see actors/state_merge.hpp).
inline std::string authorized_at(std::string_view prefix) { return std::string{prefix} + "authorized_at"; }
/// The version of the key's whole state (decimal), written with every change.
inline std::string seq(std::string_view prefix) { return std::string{prefix} + "seq"; }
/// The key's entry in the refresh schedule as last written (decimal unix time).
inline std::string due(std::string_view prefix) { return std::string{prefix} + "due"; }

/// The durable refresh schedule: one empty record per key with a refresh to
/// make, ordered by due time ("sched/<20-digit unix time>/<key>"), so a
/// restart finds what is due without reading every key.
inline constexpr std::string_view schedule_prefix = "sched/";
std::string schedule(int64_t due, std::string_view key);
/// The due time and key of a schedule record; false for a malformed one.
bool parse_schedule(std::string_view record, int64_t& due, std::string& key);
/// Present once every key's due time is in the schedule (written by the
/// first start of a hub with virtual activation).
inline constexpr std::string_view schedule_marker = "meta/schedule_v1";

std::string app_token(std::string_view appid);
std::string app_ticket(std::string_view appid, std::string_view type);
std::string app_force(std::string_view appid);
} // namespace keys

/// Encodes as versioned JSON ({"v":1,...}).
std::string encode(const credential& x);
std::string encode(const force_budget_record& x);

/// An authorizer's lifecycle status ("revoked", "needs_reauthorization") and when it was set.
std::string encode_status(std::string_view status, int64_t at);
caf::expected<std::string> decode_status(std::string_view bytes);
/// ... and the time it was set (0 when the record has none).
int64_t decode_status_time(std::string_view bytes);

/// Decodes; ec::corrupt_record with a reason for garbage or an unknown version.
caf::expected<credential> decode_credential(std::string_view bytes);
caf::expected<force_budget_record> decode_force_budget(std::string_view bytes);

} // namespace wh::persistence
