#include "http/render.hpp"

#include <charconv>
#include <cstring>

#include <boost/json.hpp>

#include "core/error.hpp"

namespace json = boost::json;

namespace wh::http {

unsigned status_of(const caf::error& err) {
  switch (code_of(err)) {
    case ec::invalid_request:
    case ec::invalid_push: return 400;
    case ec::unauthorized:
    case ec::invalid_signature:
    case ec::push_out_of_window: return 401;
    case ec::forbidden: return 403;
    case ec::unknown_key:
    case ec::unknown_authorizer:
    case ec::not_found: return 404;
    case ec::method_not_allowed: return 405;
    case ec::needs_reauthorization:
    case ec::conflict: return 409;
    case ec::authorizer_revoked: return 410;
    case ec::body_too_large: return 413;
    case ec::report_loop:
    case ec::clear_budget_exhausted: return 429;
    case ec::headers_too_large: return 431;
    case ec::upstream_error:
    case ec::bad_credentials:
    case ec::verify_ticket_invalid: return 502;
    case ec::upstream_unavailable:
    case ec::quota_exhausted:
    case ec::rate_limited:
    case ec::force_budget_exhausted:
    case ec::timeout:
    case ec::cluster_unavailable:
    case ec::shutting_down:
    case ec::push_not_applied:
    case ec::push_unknown_component: return 503;
    default: return 500;
  }
}

bool is_server_error(const caf::error& err) {
  return status_of(err) >= 500;
}

bool is_not_found(const caf::error& err) {
  return status_of(err) == 404;
}

caf::error method_not_allowed(std::string allow) {
  auto detail = "this path only accepts " + allow;
  return caf::make_error(ec::method_not_allowed, std::move(detail), std::move(allow));
}

caf::error unauthorized(std::string detail, std::string challenge) {
  if (challenge.empty())
    return make_detail_error(ec::unauthorized, std::move(detail));
  return caf::make_error(ec::unauthorized, std::move(detail), std::move(challenge));
}

caf::error fail_with(ec code, std::string detail) {
  return make_detail_error(code, std::move(detail));
}

namespace {

/// The second string of `err`'s context (the Allow value of a 405, the
/// challenge of a 401).
std::string header_value_of(const caf::error& err) {
  const auto& ctx = err.context();
  bool first = true;
  for (size_t i = 0; i < ctx.size(); ++i)
    if (ctx.match_element<std::string>(i)) {
      if (!first)
        return ctx.get_as<std::string>(i);
      first = false;
    }
  return {};
}

} // namespace

response error_response(const caf::error& err) {
  auto status = status_of(err);
  auto code = code_of(err);
  std::string reason = code == ec::none ? "internal_error" : to_string(code);
  auto detail = detail_of(err);
  if (detail.empty())
    detail = code == ec::none ? "internal error" : reason;
  json::object obj;
  int errcode = 0;
  bool has_errcode = wechat_errcode_of(err, errcode);
  if (has_errcode)
    obj["errcode"] = errcode;
  else
    obj["errcode"] = nullptr;
  obj["message"] = detail;
  obj["reason"] = reason;
  obj["http_status"] = status;
  response res;
  res.status = status;
  res.body = json::serialize(obj);
  if (code == ec::method_not_allowed)
    res.headers.emplace_back("Allow", header_value_of(err));
  if (code == ec::unauthorized)
    if (auto challenge = header_value_of(err); !challenge.empty())
      res.headers.emplace_back("WWW-Authenticate", std::move(challenge));
  if (!has_errcode)
    if (auto retry = retry_after_of(err); retry > 0)
      res.headers.emplace_back("Retry-After", std::to_string(retry));
  return res;
}

response json_ok(std::string body) {
  response res;
  res.body = std::move(body);
  return res;
}

namespace {

/// Appends `value` as a JSON string, as json::serialize does.
void append_json_string(std::string& out, std::string_view value) {
  // Tokens and tickets are printable ASCII: no escapes, no copy through a
  // temporary. Anything else takes Boost.JSON's serializer.
  for (unsigned char c : value)
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += json::serialize(json::string_view{value.data(), value.size()});
      return;
    }
  out += '"';
  out += value;
  out += '"';
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end);
}

constexpr std::string_view json_ok_head = "HTTP/1.1 200 OK\r\nServer: wechat-hub\r\n"
                                          "Content-Type: application/json\r\nContent-Length: ";
/// Room for any body length (right-aligned, then the gap is closed).
constexpr size_t length_digits = 10;

} // namespace

void render_token(const actors::credential& x, std::string& out) {
  out += R"({"access_token":)";
  append_json_string(out, x.value);
  out += R"(,"expires_in":)";
  append_int(out, x.expires_at - x.obtained_at);
  out += R"(,"timestamp":)";
  append_int(out, x.obtained_at);
  out += '}';
}

std::string render_token(const actors::credential& x) {
  std::string out;
  out.reserve(x.value.size() + 64);
  render_token(x, out);
  return out;
}

void render_ticket(const actors::credential& x, std::string_view type, std::string& out) {
  out += R"({"ticket":)";
  append_json_string(out, x.value);
  out += R"(,"type":)";
  append_json_string(out, type);
  out += R"(,"expires_in":)";
  append_int(out, x.expires_at - x.obtained_at);
  out += R"(,"timestamp":)";
  append_int(out, x.obtained_at);
  out += '}';
}

std::string render_ticket(const actors::credential& x, std::string_view type) {
  std::string out;
  out.reserve(x.value.size() + 80);
  render_ticket(x, type, out);
  return out;
}

namespace detail {

size_t begin_json_ok_raw(std::string& out) {
  out += json_ok_head;
  auto at = out.size();
  out.append(length_digits, ' ');
  out += "\r\n\r\n";
  return at;
}

void end_json_ok_raw(std::string& out, size_t at) {
  auto body = out.size() - (at + length_digits + 4);
  char buf[length_digits] = {};
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), body);
  auto n = static_cast<size_t>(end - buf);
  std::memcpy(out.data() + at, buf, n);
  out.erase(at + n, length_digits - n);
}

} // namespace detail

} // namespace wh::http
