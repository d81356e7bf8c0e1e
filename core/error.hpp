#pragma once

#include <cstdint>
#include <string>

#include "caf/error.hpp"
#include "caf/make_message.hpp"
#include "caf/message.hpp"

namespace wh {

/// Error codes of WeChat Hub. Travel as `caf::error` with category "wechathub";
/// context messages carry (int errcode, std::string detail) when WeChat answered.
enum class ec : uint8_t {
  none = 0,
  /// A request parameter is missing or malformed.
  invalid_request,
  /// The appid (or authorizer) is not configured on this hub.
  unknown_key,
  /// WeChat answered with an errcode (context: errcode, errmsg).
  upstream_error,
  /// WeChat could not be reached, timed out, or answered garbage.
  upstream_unavailable,
  /// WeChat reported the daily quota spent (45009); calls paused until reset.
  quota_exhausted,
  /// WeChat asked us to slow down (45011 / -1); backing off.
  rate_limited,
  /// The force_refresh budget (20/day, 30 s apart) refuses another forced refresh.
  force_budget_exhausted,
  /// The configured credentials were rejected (40013, 40125, 40164, ...).
  bad_credentials,
  /// Persistent storage failed.
  storage_failure,
  /// A stored record could not be decoded.
  corrupt_record,
  /// Configuration is invalid.
  invalid_config,
  /// An HTTP/TLS transport failure.
  transport_failure,
  /// The operation timed out.
  timeout,
  /// The component verify ticket is missing or rejected (61005 / 61006).
  verify_ticket_invalid,
  /// The authorizer revoked its authorization (61003 or an unauthorized push).
  authorizer_revoked,
  /// The authorizer's refresh token was rejected (61023).
  needs_reauthorization,
  /// The hub is shutting down.
  shutting_down,
  /// Multi-node hubs: the key's owner is unreachable or ownership is moving;
  /// retry (another node takes over within the failure-detection time).
  cluster_unavailable,
  /// A client keeps reporting the same token (a refresh loop): refused with
  /// 429 after one real refresh (context: detail, uint32 retry-after seconds,
  /// bool first refusal).
  report_loop,
};

/// Returns a stable snake_case name for `x`, used as the HTTP error `reason`.
const char* to_string(ec x);

/// Extracts our code from `err`, or `ec::none` when `err` is of another category.
ec code_of(const caf::error& err);

/// Extracts the WeChat errcode carried in `err`'s context, if any.
bool wechat_errcode_of(const caf::error& err, int& out);

/// Extracts the human-readable detail carried in `err`'s context, if any.
std::string detail_of(const caf::error& err);

/// Makes an error carrying a WeChat errcode and a safe detail message.
caf::error make_upstream_error(ec code, int errcode, std::string detail);

/// The retry-after seconds carried by an `ec::report_loop` error, else 0.
uint32_t retry_after_of(const caf::error& err);

/// Makes an error carrying only a safe detail message.
caf::error make_detail_error(ec code, std::string detail);

} // namespace wh

CAF_ERROR_CODE_ENUM(wh::ec, "wechathub")
