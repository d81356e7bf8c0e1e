#include "wechat/errcodes.hpp"

namespace wh::wechat {

errclass classify(int errcode) {
  switch (errcode) {
    case 0:
      return errclass::ok;
    case 40001:
    case 40014:
    case 42001:
      return errclass::token_invalid;
    case -1:
      return errclass::transient;
    case 45011:
      return errclass::minute_limited;
    case 45009:
      return errclass::daily_quota;
    case 40002:
    case 40013:
    case 40125:
    case 40164:
    case 40243:
    case 41002:
    case 41004:
    case 50004:
    case 50007:
    case 61004:
    case 61011:
      return errclass::credentials;
    case 61005:
    case 61006:
      return errclass::verify_ticket;
    case 61023:
      return errclass::refresh_token_invalid;
    case 61003:
      return errclass::revoked;
    case 89501:
    case 89503:
    case 89506:
    case 89507:
      return errclass::needs_confirmation;
    default:
      return errclass::other;
  }
}

const char* errclass_name(errclass x) {
  switch (x) {
    case errclass::ok: return "ok";
    case errclass::token_invalid: return "token_invalid";
    case errclass::transient: return "transient";
    case errclass::minute_limited: return "minute_limited";
    case errclass::daily_quota: return "daily_quota";
    case errclass::credentials: return "credentials";
    case errclass::verify_ticket: return "verify_ticket";
    case errclass::refresh_token_invalid: return "refresh_token_invalid";
    case errclass::revoked: return "revoked";
    case errclass::needs_confirmation: return "needs_confirmation";
    case errclass::other: return "other";
  }
  return "other";
}

std::string_view errcode_reason(int errcode) {
  switch (errcode) {
    case -1: return "system_busy";
    case 0: return "ok";
    case 40001: return "invalid_credential";
    case 40002: return "invalid_grant_type";
    case 40013: return "invalid_appid";
    case 40014: return "invalid_access_token";
    case 40125: return "invalid_appsecret";
    case 40164: return "ip_not_whitelisted";
    case 40243: return "appsecret_frozen";
    case 41001: return "access_token_missing";
    case 41002: return "appid_missing";
    case 41004: return "appsecret_missing";
    case 42001: return "access_token_expired";
    case 42002: return "refresh_token_expired";
    case 42007: return "user_reauthorization_required";
    case 43002: return "require_post";
    case 45009: return "api_daily_quota";
    case 45011: return "api_minute_quota";
    case 47001: return "data_format_error";
    case 48001: return "api_unauthorized";
    case 50001: return "user_unauthorized";
    case 50002: return "user_limited";
    case 50004: return "token_api_forbidden";
    case 50007: return "account_frozen";
    case 61003: return "authorizer_unauthorized";
    case 61004: return "component_ip_not_whitelisted";
    case 61005: return "invalid_component_verify_ticket";
    case 61006: return "invalid_component_verify_ticket";
    case 61007: return "api_unauthorized_to_component";
    case 61011: return "invalid_component";
    case 61023: return "invalid_component_refresh_token";
    case 61024: return "must_use_component_token";
    case 89501: return "ip_pending_admin_confirmation";
    case 89503: return "admin_confirmation_required";
    case 89506: return "ip_rejected_retry_in_24h";
    case 89507: return "ip_rejected_retry_in_1h";
    default: return "wechat_error";
  }
}

} // namespace wh::wechat
