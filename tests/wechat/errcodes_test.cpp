#define CAF_SUITE wechat_errcodes

#include "caf/test/dsl.hpp"

#include <set>
#include <string>

#include "wechat/errcodes.hpp"

using namespace wh::wechat;

namespace {

std::string cls(int code) {
  return errclass_name(classify(code));
}

} // namespace

CAF_TEST(classes of the token lifecycle table) {
  CAF_CHECK_EQUAL(cls(0), "ok");
  for (int c : {40001, 40014, 42001})
    CAF_CHECK_EQUAL(cls(c), "token_invalid");
  CAF_CHECK_EQUAL(cls(-1), "transient");
  CAF_CHECK_EQUAL(cls(45011), "minute_limited");
  CAF_CHECK_EQUAL(cls(45009), "daily_quota");
  for (int c : {40002, 40013, 40125, 40164, 40243, 41002, 41004, 50004, 50007, 61004, 61011})
    CAF_CHECK_EQUAL(cls(c), "credentials");
  for (int c : {61005, 61006})
    CAF_CHECK_EQUAL(cls(c), "verify_ticket");
  CAF_CHECK_EQUAL(cls(61023), "refresh_token_invalid");
  CAF_CHECK_EQUAL(cls(61003), "revoked");
  for (int c : {89501, 89503, 89506, 89507})
    CAF_CHECK_EQUAL(cls(c), "needs_confirmation");
  for (int c : {1, -2, 40003, 41001, 42002, 43002, 48001, 61007, 61024, 99999})
    CAF_CHECK_EQUAL(cls(c), "other");
}

CAF_TEST(class names are distinct) {
  std::set<std::string> names;
  for (auto x : {errclass::ok, errclass::token_invalid, errclass::transient,
                 errclass::minute_limited, errclass::daily_quota, errclass::credentials,
                 errclass::verify_ticket, errclass::refresh_token_invalid, errclass::revoked,
                 errclass::needs_confirmation, errclass::other})
    names.insert(errclass_name(x));
  CAF_CHECK_EQUAL(names.size(), 11u);
}

CAF_TEST(reasons) {
  CAF_CHECK_EQUAL(errcode_reason(-1), "system_busy");
  CAF_CHECK_EQUAL(errcode_reason(0), "ok");
  CAF_CHECK_EQUAL(errcode_reason(40001), "invalid_credential");
  CAF_CHECK_EQUAL(errcode_reason(40014), "invalid_access_token");
  CAF_CHECK_EQUAL(errcode_reason(42001), "access_token_expired");
  CAF_CHECK_EQUAL(errcode_reason(45009), "api_daily_quota");
  CAF_CHECK_EQUAL(errcode_reason(45011), "api_minute_quota");
  CAF_CHECK_EQUAL(errcode_reason(40125), "invalid_appsecret");
  CAF_CHECK_EQUAL(errcode_reason(40164), "ip_not_whitelisted");
  CAF_CHECK_EQUAL(errcode_reason(61003), "authorizer_unauthorized");
  CAF_CHECK_EQUAL(errcode_reason(61005), "invalid_component_verify_ticket");
  CAF_CHECK_EQUAL(errcode_reason(61006), "invalid_component_verify_ticket");
  CAF_CHECK_EQUAL(errcode_reason(61023), "invalid_component_refresh_token");
  CAF_CHECK_EQUAL(errcode_reason(89503), "admin_confirmation_required");
  CAF_CHECK_EQUAL(errcode_reason(12345), "wechat_error");
  CAF_CHECK_EQUAL(errcode_reason(-40001), "wechat_error");
}

CAF_TEST(reasons are snake case) {
  int bad = 0;
  for (int c = -2; c < 100000; ++c) {
    auto r = errcode_reason(c);
    if (r.empty())
      ++bad;
    for (char ch : r)
      if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
        ++bad;
  }
  CAF_CHECK_EQUAL(bad, 0);
}
