#pragma once

// WeChat errcode classes: how the hub reacts to an errcode (protocol doc §8).

#include <string_view>

namespace wh::wechat {

/// What an errcode means for the token lifecycle.
enum class errclass {
  /// 0.
  ok,
  /// The access token used was invalid or expired (40001 40014 42001):
  /// invalidate exactly that token, refetch, retry once.
  token_invalid,
  /// System busy (-1): retry with backoff.
  transient,
  /// Minute quota (45011): retry after the next minute.
  minute_limited,
  /// Daily quota (45009): no retry until the daily reset / clear_quota.
  daily_quota,
  /// Configuration / credential problems (40002 40013 40125 40164 40243 41002
  /// 41004 50004 50007 61004 61011): no retry, alert.
  credentials,
  /// The component verify ticket was rejected (61005 61006): wait for a push.
  verify_ticket,
  /// The authorizer refresh token was rejected (61023): re-authorization.
  refresh_token_invalid,
  /// The authorizer revoked the authorization (61003).
  revoked,
  /// An admin must confirm or rejected this caller (89501 89503 89506 89507).
  needs_confirmation,
  /// Anything else: no retry.
  other,
};

/// Classifies a WeChat errcode.
errclass classify(int errcode);

/// A stable snake_case name of `x` (e.g. "token_invalid").
const char* errclass_name(errclass x);

/// A stable snake_case reason for `errcode` (e.g. 40001 -> "invalid_credential",
/// 45009 -> "api_daily_quota"); "wechat_error" for codes without a name.
std::string_view errcode_reason(int errcode);

} // namespace wh::wechat
