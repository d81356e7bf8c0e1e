#pragma once

// Parsing: each route's request becomes a typed command, or an `ec`
// (invalid_request, not_found) whose detail the error body shows. Plain
// functions, tested directly (tests/http/commands_test.cpp).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/expected.hpp"

#include "core/config.hpp"
#include "http/server.hpp"

namespace wh::http {

/// Decoded query or body parameters, in order.
using params = std::vector<std::pair<std::string, std::string>>;

/// The first value of `key`, or nullptr.
const std::string* find_param(const params& q, std::string_view key);

/// A JSON object (string or null values) or a urlencoded form body.
caf::expected<params> parse_body(const request& req);

/// An appid-like parameter: 1-64 of [A-Za-z0-9_-]; missing or empty gives
/// "" unless `required`.
caf::expected<std::string> read_id(const params& q, std::string_view key, bool required);

/// An app, a component or an authorizer of a component.
struct key_ref {
  std::string appid;
  /// Empty for apps and components.
  std::string authorizer;
  std::string key() const { return authorizer.empty() ? appid : appid + "/" + authorizer; }
};

/// `appid` (required) and `authorizer_appid` (optional) from `q`.
caf::expected<key_ref> parse_key_ref(const params& q);

/// GET /client/access_token, GET /admin/state.
struct token_query {
  key_ref ref;
};
caf::expected<token_query> parse_token_query(const params& q);

/// POST /refresh/access_token and /client/refresh_component_access_token:
/// `stale` empty (null, missing or "") means the client has no token, so
/// the request is a GET in disguise, never a forced refresh.
struct refresh_command {
  key_ref ref;
  std::string stale;
};
/// `with_authorizer`: whether authorizer_appid is read (not for components).
caf::expected<refresh_command> parse_refresh(const request& req, bool with_authorizer);

/// GET /client/ticket.
struct ticket_query {
  key_ref ref;
  /// "jsapi" or "wx_card".
  std::string type;
};
caf::expected<ticket_query> parse_ticket_query(const params& q);

/// GET /client/component_access_token.
caf::expected<std::string> parse_component_query(const params& q);

/// POST /admin/refresh (body) and GET /admin/state (query).
caf::expected<key_ref> parse_admin_key(const request& req, const params& q, bool from_body);

/// GET /admin/quota (query: appid, authorizer_appid) and POST
/// /admin/clear_quota (body: appid).
caf::expected<key_ref> parse_quota_key(const request& req, const params& q, bool clear);

/// GET /admin/cluster?key=...: empty when no key is asked for.
caf::expected<std::string> parse_cluster_key(const params& q);

/// An appid named in an admin path (/admin/apps/{appid}, ...).
caf::expected<std::string> parse_path_appid(const std::string& appid);

/// PUT /admin/apps/{appid}: {"secret", "token_api"}.
caf::expected<app_config> parse_app_definition(const std::string& appid, const request& req);

/// PUT /admin/components/{appid}: {"secret", "token", "encoding_aes_key"}
/// (the key must make a usable message crypto).
caf::expected<component_config> parse_component_definition(const std::string& appid,
                                                           const request& req);

/// GET /admin/components/{c}/authorizers?offset&limit (limit capped at 1000).
struct page {
  size_t offset = 0;
  size_t limit = 100;
};
caf::expected<page> parse_page(const params& q);

/// POST /admin/components/{c}/authorizers:
/// {"authorizers":[{"authorizer_appid","refresh_token"},...]} (at most 10000).
using authorizer_grants = std::vector<std::pair<std::string, std::string>>;
caf::expected<authorizer_grants> parse_authorizer_import(const request& req);

/// The {authorizer...} of /admin/components/{c}/authorizers/{a}: empty is
/// not a path (not_found), anything else must be an appid.
caf::expected<std::string> parse_path_authorizer(const std::string& authorizer);

/// PUT /admin/components/{c}/authorizers/{a}: {"refresh_token"}.
caf::expected<std::string> parse_authorizer_grant(const request& req);

/// The signature parameters of a push (missing ones are empty).
struct push_query {
  std::string timestamp;
  std::string nonce;
  std::string signature;
};
push_query parse_push_query(const params& q);

} // namespace wh::http
