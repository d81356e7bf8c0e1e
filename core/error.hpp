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
  // -- front-end failures (rendered by http/render.cpp's render_error) -------
  /// No route serves the path.
  not_found,
  /// The route exists but not for this method (context: detail, Allow value).
  method_not_allowed,
  /// No valid client key (Authorization: Bearer or path key).
  unauthorized,
  /// The client key may not use this key or route.
  forbidden,
  /// The component does not know the authorizer.
  unknown_authorizer,
  /// An admin definition conflicts with what the hub holds.
  conflict,
  /// A push's msg_signature does not verify.
  invalid_signature,
  /// A push cannot be decrypted, parsed, or misses a field.
  invalid_push,
  /// A signed push's timestamp is outside the accepted window (a replay).
  push_out_of_window,
  /// A verified push could not be recorded or applied (WeChat retries it).
  push_not_applied,
  /// A verified push names a component that went away while it was applied
  /// (503, so that WeChat retries; reason unknown_appid).
  push_unknown_component,
  /// The monthly clear_quota budget (10 per account) is spent.
  clear_budget_exhausted,
  /// A failure without a more specific code.
  internal_error,
  /// A request body exceeds the route's limit.
  body_too_large,
  /// A request's headers exceed the limit.
  headers_too_large,
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
