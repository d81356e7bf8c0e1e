#pragma once

// Rendering: every failure of the front end is a `caf::error` carrying an
// `ec`, and `error_response` is the one function that turns it into a
// status, the elixir_wechat error body and its headers.

#include <string>
#include <string_view>

#include "caf/error.hpp"

#include "actors/messages.hpp"
#include "core/error.hpp"
#include "http/server.hpp"

namespace wh::http {

/// HTTP status of an error code (500 for errors of other categories).
unsigned status_of(const caf::error& err);

/// Whether `err` renders as a 5xx (the failure is the hub's or upstream's).
bool is_server_error(const caf::error& err);

/// Whether `err` renders as a 404.
bool is_not_found(const caf::error& err);

/// The one error renderer: the status of `err`'s code and the four-key body
/// errcode (WeChat's, or null), message (the detail, else the reason),
/// reason (the code's name) and http_status; plus Allow (405),
/// WWW-Authenticate (401 with a challenge) and Retry-After (refresh loops).
response error_response(const caf::error& err);

/// `ec::unauthorized`; with `challenge` (e.g. "Bearer") the answer carries
/// it as WWW-Authenticate.
caf::error unauthorized(std::string detail, std::string challenge = {});

/// `ec::method_not_allowed` naming the methods the path accepts.
caf::error method_not_allowed(std::string allow);

/// `code` with a safe detail message (what the body's "message" shows).
caf::error fail_with(ec code, std::string detail);

/// 200 with a JSON body.
response json_ok(std::string body);

/// `{"access_token","expires_in","timestamp"}`.
std::string render_token(const actors::credential& x);
void render_token(const actors::credential& x, std::string& out);

/// `{"ticket","type","expires_in","timestamp"}`.
std::string render_ticket(const actors::credential& x, std::string_view type);
void render_ticket(const actors::credential& x, std::string_view type, std::string& out);

/// Appends `json_ok(body)` as the server writes it on a keep-alive HTTP/1.1
/// connection: status line, Server, Content-Type, Content-Length, body.
/// `body` is rendered into `out` in place (no copy): `render(out)` appends it.
template <class Render>
void render_json_ok_raw(std::string& out, Render&& render);

namespace detail {
/// Appends the head of a 200 JSON answer with a placeholder for its
/// Content-Length; returns where the placeholder starts.
size_t begin_json_ok_raw(std::string& out);
/// Fills the placeholder begun at `at`, the body having been appended.
void end_json_ok_raw(std::string& out, size_t at);
} // namespace detail

template <class Render>
void render_json_ok_raw(std::string& out, Render&& render) {
  auto at = detail::begin_json_ok_raw(out);
  render(out);
  detail::end_json_ok_raw(out, at);
}

} // namespace wh::http
