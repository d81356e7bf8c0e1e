#include "core/error.hpp"

#include "caf/message.hpp"

namespace wh {

const char* to_string(ec x) {
  switch (x) {
    case ec::none: return "none";
    case ec::invalid_request: return "invalid_request";
    case ec::unknown_key: return "unknown_appid";
    case ec::upstream_error: return "upstream_error";
    case ec::upstream_unavailable: return "upstream_unavailable";
    case ec::quota_exhausted: return "quota_exhausted";
    case ec::rate_limited: return "rate_limited";
    case ec::force_budget_exhausted: return "force_refresh_budget_exhausted";
    case ec::bad_credentials: return "invalid_credentials";
    case ec::storage_failure: return "storage_failure";
    case ec::corrupt_record: return "corrupt_record";
    case ec::invalid_config: return "invalid_config";
    case ec::transport_failure: return "transport_failure";
    case ec::timeout: return "timeout";
    case ec::verify_ticket_invalid: return "invalid_component_verify_ticket";
    case ec::authorizer_revoked: return "authorizer_revoked";
    case ec::needs_reauthorization: return "needs_reauthorization";
    case ec::shutting_down: return "shutting_down";
    case ec::cluster_unavailable: return "cluster_unavailable";
    case ec::report_loop: return "refresh_loop";
    case ec::not_found: return "not_found";
    case ec::method_not_allowed: return "method_not_allowed";
    case ec::unauthorized: return "unauthorized";
    case ec::forbidden: return "forbidden";
    case ec::unknown_authorizer: return "unknown_authorizer";
    case ec::conflict: return "conflict";
    case ec::invalid_signature: return "invalid_signature";
    case ec::invalid_push: return "invalid_push";
    case ec::push_out_of_window: return "push_timestamp_out_of_window";
    case ec::push_not_applied: return "push_not_applied";
    case ec::push_unknown_component: return "unknown_appid";
    case ec::clear_budget_exhausted: return "clear_quota_budget_exhausted";
    case ec::internal_error: return "internal_error";
    case ec::body_too_large: return "body_too_large";
    case ec::headers_too_large: return "headers_too_large";
  }
  return "unknown";
}

ec code_of(const caf::error& err) {
  if (!err || err.category() != caf::atom("wechathub"))
    return ec::none;
  return static_cast<ec>(err.code());
}

bool wechat_errcode_of(const caf::error& err, int& out) {
  const auto& ctx = err.context();
  if (ctx.size() >= 1 && ctx.match_element<int>(0)) {
    out = ctx.get_as<int>(0);
    return true;
  }
  return false;
}

std::string detail_of(const caf::error& err) {
  const auto& ctx = err.context();
  for (size_t i = 0; i < ctx.size(); ++i)
    if (ctx.match_element<std::string>(i))
      return ctx.get_as<std::string>(i);
  return {};
}

uint32_t retry_after_of(const caf::error& err) {
  const auto& ctx = err.context();
  for (size_t i = 0; i < ctx.size(); ++i)
    if (ctx.match_element<uint32_t>(i))
      return ctx.get_as<uint32_t>(i);
  return 0;
}

caf::error make_upstream_error(ec code, int errcode, std::string detail) {
  return caf::make_error(code, errcode, std::move(detail));
}

caf::error make_detail_error(ec code, std::string detail) {
  return caf::make_error(code, std::move(detail));
}

} // namespace wh
