#pragma once

// WeChat's API endpoints as the hub and the client library use them: one
// builder per endpoint (protocol doc §1-§4) and pure parsers of the replies.
// No networking and no actors: callers send `request` relative to their
// api_base and hand the HTTP status and body back to a parser.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace wh::wechat {

// -- requests -------------------------------------------------------------------

/// One call to WeChat's API, relative to the configured api_base.
struct request {
  /// Metrics label, e.g. "stable_token" (never carries parameters).
  std::string endpoint;
  /// "GET" or "POST".
  std::string method;
  /// Path and query, e.g. "/cgi-bin/token?grant_type=...". May carry secrets.
  std::string target;
  /// JSON body of a POST (empty for a GET). May carry secrets.
  std::string body;
};

/// POST /cgi-bin/stable_token; the endpoint label is "stable_token_force"
/// when `force_refresh` (it spends WeChat's 20-a-day budget).
request stable_token(std::string_view appid, std::string_view secret, bool force_refresh);

/// GET /cgi-bin/token (grant_type=client_credential).
request classic_token(std::string_view appid, std::string_view secret);

/// POST /cgi-bin/component/api_component_token.
request component_token(std::string_view component_appid, std::string_view component_secret,
                        std::string_view verify_ticket);

/// POST /cgi-bin/component/api_authorizer_token with the component's token.
request authorizer_token(std::string_view component_access_token, std::string_view component_appid,
                         std::string_view authorizer_appid, std::string_view refresh_token);

/// POST /cgi-bin/component/api_start_push_ticket.
request start_push_ticket(std::string_view component_appid, std::string_view component_secret);

/// GET /cgi-bin/get_api_domain_ip: the cheapest call that proves a token.
request api_domain_ip(std::string_view access_token);

/// POST /cgi-bin/component/api_get_authorizer_list: `count` entries from `offset`.
request authorizer_list(std::string_view component_access_token, std::string_view component_appid,
                        int64_t offset, int64_t count);

/// POST /cgi-bin/component/api_query_auth: exchanges an authorization code.
request query_auth(std::string_view component_access_token, std::string_view component_appid,
                   std::string_view authorization_code);

/// GET /cgi-bin/ticket/getticket; `type` is "jsapi" or "wx_card".
request get_ticket(std::string_view access_token, std::string_view type);

/// POST /cgi-bin/clear_quota: resets the daily quota of `appid`.
request clear_quota(std::string_view access_token, std::string_view appid);

// -- replies --------------------------------------------------------------------

/// Why a reply is not the answer the caller asked for.
enum class reply_fault : uint8_t {
  /// An HTTP status other than 200 (WeChat answers its errors with 200).
  http_status,
  /// The body is not a JSON object.
  not_json,
  /// WeChat answered a non-zero errcode.
  errcode,
  /// A field is missing, empty, of the wrong type or out of range.
  missing_field,
};

/// A stable snake_case name of `x` (e.g. "not_json").
const char* reply_fault_name(reply_fault x);

/// A reply that is not the expected answer. Never carries the body, a token
/// or a secret: only what WeChat said about itself (errcode, errmsg).
struct reply_error {
  reply_fault fault = reply_fault::not_json;
  unsigned http_status = 0;
  /// WeChat's errcode: set for `errcode`, and for `http_status` when the
  /// body still was a JSON object with a non-zero errcode.
  int errcode = 0;
  /// WeChat's errmsg (at most 200 bytes).
  std::string errmsg;
  /// One line naming the problem, e.g. "WeChat answered HTTP 502".
  std::string detail;
};

/// A parsed reply or why it is not one.
template <class T>
class parsed {
public:
  parsed(T value) : data_(std::in_place_index<0>, std::move(value)) {
  }

  parsed(reply_error err) : data_(std::in_place_index<1>, std::move(err)) {
  }

  explicit operator bool() const {
    return data_.index() == 0;
  }

  T& operator*() {
    return std::get<0>(data_);
  }

  const T& operator*() const {
    return std::get<0>(data_);
  }

  T* operator->() {
    return &std::get<0>(data_);
  }

  const T* operator->() const {
    return &std::get<0>(data_);
  }

  /// Precondition: `!*this`.
  const reply_error& error() const {
    return std::get<1>(data_);
  }

private:
  std::variant<T, reply_error> data_;
};

/// An answer that carries nothing but errcode 0 (or no errcode at all).
struct ack {};

/// Which token a token endpoint issues: names the JSON field that holds it.
enum class token_type : uint8_t {
  /// /cgi-bin/token and /cgi-bin/stable_token: "access_token".
  access_token,
  /// api_component_token: "component_access_token".
  component_access_token,
  /// api_authorizer_token: "authorizer_access_token".
  authorizer_access_token,
};

/// The JSON field (and the usual name) of `x`, e.g. "component_access_token".
const char* token_field(token_type x);

/// A token endpoint's answer.
struct token_reply {
  std::string access_token;
  /// Seconds, 1 .. 30 days.
  int64_t expires_in = 0;
  /// api_authorizer_token only: the refresh token WeChat returned, empty
  /// when it returned none.
  std::string refresh_token;
};

/// getticket's answer.
struct ticket_reply {
  std::string ticket;
  /// Seconds, 1 .. 30 days.
  int64_t expires_in = 0;
};

/// One entry of api_get_authorizer_list.
struct listed_authorizer {
  std::string appid;
  std::string refresh_token;
};

/// One page of api_get_authorizer_list.
struct authorizer_list_page {
  /// total_count (0 when absent).
  int64_t total_count = 0;
  /// Entries in the page, well-formed or not: the next page starts at
  /// offset + `entries`.
  int64_t entries = 0;
  /// The well-formed entries (valid appid, refresh token of 1..1024 bytes).
  std::vector<listed_authorizer> authorizers;
};

/// api_query_auth's authorization_info.
struct query_auth_reply {
  std::string authorizer_appid;
  std::string access_token;
  /// Seconds, 1 .. 30 days.
  int64_t expires_in = 0;
  std::string refresh_token;
};

/// An answer whose only content is its errcode (api_start_push_ticket,
/// clear_quota, get_api_domain_ip as a token probe).
parsed<ack> parse_ack(unsigned status, std::string_view body);

/// A token endpoint's answer (`type` names the token field).
parsed<token_reply> parse_token(token_type type, unsigned status, std::string_view body);

/// getticket's answer.
parsed<ticket_reply> parse_ticket(unsigned status, std::string_view body);

/// One page of api_get_authorizer_list.
parsed<authorizer_list_page> parse_authorizer_list(unsigned status, std::string_view body);

/// api_query_auth's answer.
parsed<query_auth_reply> parse_query_auth(unsigned status, std::string_view body);

} // namespace wh::wechat
