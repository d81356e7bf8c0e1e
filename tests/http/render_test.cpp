#define CAF_SUITE http_render

#include "caf/test/dsl.hpp"

#include <boost/json.hpp>

#include "core/error.hpp"
#include "http/render.hpp"

using namespace wh;
using namespace wh::http;

namespace {

/// What clients see for each code: the status and the body's "reason".
struct expected_render {
  ec code;
  unsigned status;
  const char* reason;
};

constexpr expected_render table[] = {
  {ec::invalid_request, 400, "invalid_request"},
  {ec::unknown_key, 404, "unknown_appid"},
  {ec::upstream_error, 502, "upstream_error"},
  {ec::upstream_unavailable, 503, "upstream_unavailable"},
  {ec::quota_exhausted, 503, "quota_exhausted"},
  {ec::rate_limited, 503, "rate_limited"},
  {ec::force_budget_exhausted, 503, "force_refresh_budget_exhausted"},
  {ec::bad_credentials, 502, "invalid_credentials"},
  {ec::storage_failure, 500, "storage_failure"},
  {ec::corrupt_record, 500, "corrupt_record"},
  {ec::invalid_config, 500, "invalid_config"},
  {ec::transport_failure, 500, "transport_failure"},
  {ec::timeout, 503, "timeout"},
  {ec::verify_ticket_invalid, 502, "invalid_component_verify_ticket"},
  {ec::authorizer_revoked, 410, "authorizer_revoked"},
  {ec::needs_reauthorization, 409, "needs_reauthorization"},
  {ec::shutting_down, 503, "shutting_down"},
  {ec::cluster_unavailable, 503, "cluster_unavailable"},
  {ec::report_loop, 429, "refresh_loop"},
  {ec::not_found, 404, "not_found"},
  {ec::method_not_allowed, 405, "method_not_allowed"},
  {ec::unauthorized, 401, "unauthorized"},
  {ec::forbidden, 403, "forbidden"},
  {ec::unknown_authorizer, 404, "unknown_authorizer"},
  {ec::conflict, 409, "conflict"},
  {ec::invalid_signature, 401, "invalid_signature"},
  {ec::invalid_push, 400, "invalid_push"},
  {ec::push_out_of_window, 401, "push_timestamp_out_of_window"},
  {ec::push_not_applied, 503, "push_not_applied"},
  {ec::push_unknown_component, 503, "unknown_appid"},
  {ec::clear_budget_exhausted, 429, "clear_quota_budget_exhausted"},
  {ec::internal_error, 500, "internal_error"},
  {ec::body_too_large, 413, "body_too_large"},
  {ec::headers_too_large, 431, "headers_too_large"},
};

std::string body(const char* reason, unsigned status, const std::string& message) {
  return R"({"errcode":null,"message":")" + message + R"(","reason":")" + reason
         + R"(","http_status":)" + std::to_string(status) + "}";
}

} // namespace

CAF_TEST(every code renders its status and the four key body) {
  // The table covers every code after none (a new code must be added here).
  CAF_CHECK_EQUAL(std::size(table), static_cast<size_t>(ec::headers_too_large));
  for (auto& x : table) {
    CAF_MESSAGE(to_string(x.code));
    auto res = error_response(make_detail_error(x.code, "details here"));
    CAF_CHECK_EQUAL(res.status, x.status);
    CAF_CHECK_EQUAL(res.content_type, "application/json");
    CAF_CHECK_EQUAL(res.body, body(x.reason, x.status, "details here"));
    // Without a detail the message is the reason.
    res = error_response(caf::make_error(x.code));
    CAF_CHECK_EQUAL(res.body, body(x.reason, x.status, x.reason));
    CAF_CHECK_EQUAL(status_of(caf::make_error(x.code)), x.status);
  }
}

CAF_TEST(errors of other categories are internal errors) {
  auto res = error_response(caf::make_error(caf::sec::request_timeout));
  CAF_CHECK_EQUAL(res.status, 500u);
  CAF_CHECK_EQUAL(res.body, body("internal_error", 500, "internal error"));
}

CAF_TEST(wechat errcodes are carried and retry after only without them) {
  auto res = error_response(make_upstream_error(ec::upstream_error, 40013, "invalid appid"));
  CAF_CHECK_EQUAL(res.status, 502u);
  CAF_CHECK_EQUAL(res.body, R"({"errcode":40013,"message":"invalid appid","reason":"upstream_error","http_status":502})");
  CAF_CHECK(res.headers.empty());
  res = error_response(caf::make_error(ec::report_loop, std::string{"same token"}, uint32_t{30}, true));
  CAF_CHECK_EQUAL(res.status, 429u);
  CAF_REQUIRE_EQUAL(res.headers.size(), 1u);
  CAF_CHECK_EQUAL(res.headers[0].first, "Retry-After");
  CAF_CHECK_EQUAL(res.headers[0].second, "30");
}

CAF_TEST(the headers of 401 and 405) {
  auto res = error_response(unauthorized("the key is not valid", "Bearer"));
  CAF_CHECK_EQUAL(res.body, body("unauthorized", 401, "the key is not valid"));
  CAF_REQUIRE_EQUAL(res.headers.size(), 1u);
  CAF_CHECK_EQUAL(res.headers[0].first, "WWW-Authenticate");
  CAF_CHECK_EQUAL(res.headers[0].second, "Bearer");
  // A path key cannot be sent as a header: no challenge.
  CAF_CHECK(error_response(unauthorized("the path key is not valid")).headers.empty());
  res = error_response(method_not_allowed("PUT, DELETE"));
  CAF_CHECK_EQUAL(res.body, body("method_not_allowed", 405, "this path only accepts PUT, DELETE"));
  CAF_REQUIRE_EQUAL(res.headers.size(), 1u);
  CAF_CHECK_EQUAL(res.headers[0].first, "Allow");
  CAF_CHECK_EQUAL(res.headers[0].second, "PUT, DELETE");
  // A push signature failure is a 401 without a Bearer challenge.
  CAF_CHECK(error_response(fail_with(ec::invalid_signature, "x")).headers.empty());
}

CAF_TEST(messages are JSON escaped) {
  auto res = error_response(fail_with(ec::invalid_request, "a \"quoted\"\nline"));
  auto v = boost::json::parse(res.body).as_object();
  CAF_CHECK_EQUAL(v.at("message").as_string(), "a \"quoted\"\nline");
}

CAF_TEST(tokens and tickets) {
  actors::credential x;
  x.value = "tok\"en";
  x.obtained_at = 1000;
  x.expires_at = 8200;
  CAF_CHECK_EQUAL(render_token(x), R"({"access_token":"tok\"en","expires_in":7200,"timestamp":1000})");
  CAF_CHECK_EQUAL(render_ticket(x, "jsapi"),
                  R"({"ticket":"tok\"en","type":"jsapi","expires_in":7200,"timestamp":1000})");
}
