#include "http/commands.hpp"

#include <boost/json.hpp>
#include <boost/url.hpp>

#include "core/error.hpp"
#include "wechat/msg_crypto.hpp"

namespace json = boost::json;
namespace urls = boost::urls;

namespace wh::http {

namespace {

caf::error bad(std::string why) {
  return make_detail_error(ec::invalid_request, std::move(why));
}

} // namespace

const std::string* find_param(const params& q, std::string_view key) {
  for (auto& [k, v] : q)
    if (k == key)
      return &v;
  return nullptr;
}

caf::expected<params> parse_body(const request& req) {
  params out;
  if (req.content_type.rfind("application/x-www-form-urlencoded", 0) == 0) {
    auto q = urls::parse_query(req.body);
    if (!q)
      return bad("malformed form body");
    for (auto p : *q)
      out.emplace_back(p.key, p.value);
    return out;
  }
  boost::system::error_code ec;
  auto val = json::parse(req.body, ec);
  if (ec || !val.is_object())
    return bad("body must be a JSON object");
  for (auto& [k, v] : val.as_object()) {
    if (v.is_string())
      out.emplace_back(std::string{k}, std::string{v.as_string()});
    else if (!v.is_null())
      return bad(std::string{k} + " must be a string");
  }
  return out;
}

caf::expected<std::string> read_id(const params& q, std::string_view key, bool required) {
  auto v = find_param(q, key);
  if (!v || v->empty()) {
    if (required)
      return bad(std::string{key} + " is required");
    return std::string{};
  }
  if (!valid_appid(*v))
    return bad(std::string{key} + " must be 1-64 characters of [A-Za-z0-9_-]");
  return *v;
}

caf::expected<key_ref> parse_key_ref(const params& q) {
  auto appid = read_id(q, "appid", true);
  if (!appid)
    return appid.error();
  auto authorizer = read_id(q, "authorizer_appid", false);
  if (!authorizer)
    return authorizer.error();
  return key_ref{std::move(*appid), std::move(*authorizer)};
}

caf::expected<token_query> parse_token_query(const params& q) {
  auto ref = parse_key_ref(q);
  if (!ref)
    return ref.error();
  return token_query{std::move(*ref)};
}

caf::expected<refresh_command> parse_refresh(const request& req, bool with_authorizer) {
  auto body = parse_body(req);
  if (!body)
    return body.error();
  refresh_command cmd;
  if (with_authorizer) {
    auto ref = parse_key_ref(*body);
    if (!ref)
      return ref.error();
    cmd.ref = std::move(*ref);
  } else {
    auto appid = read_id(*body, "appid", true);
    if (!appid)
      return appid.error();
    cmd.ref.appid = std::move(*appid);
  }
  if (auto stale = find_param(*body, "access_token")) {
    if (stale->size() > 2048)
      return bad("access_token is too long");
    cmd.stale = *stale;
  }
  return cmd;
}

caf::expected<ticket_query> parse_ticket_query(const params& q) {
  auto ref = parse_key_ref(q);
  if (!ref)
    return ref.error();
  auto type = find_param(q, "type");
  if (!type || (*type != "jsapi" && *type != "wx_card"))
    return bad("type must be jsapi or wx_card");
  return ticket_query{std::move(*ref), *type};
}

caf::expected<std::string> parse_component_query(const params& q) {
  return read_id(q, "appid", true);
}

caf::expected<key_ref> parse_admin_key(const request& req, const params& q, bool from_body) {
  if (!from_body)
    return parse_key_ref(q);
  auto body = parse_body(req);
  if (!body)
    return body.error();
  return parse_key_ref(*body);
}

caf::expected<key_ref> parse_quota_key(const request& req, const params& q, bool clear) {
  if (!clear)
    return parse_key_ref(q);
  auto body = parse_body(req);
  if (!body)
    return body.error();
  auto appid = read_id(*body, "appid", true);
  if (!appid)
    return appid.error();
  return key_ref{std::move(*appid), {}};
}

caf::expected<std::string> parse_cluster_key(const params& q) {
  auto key = find_param(q, "key");
  if (!key || key->empty())
    return std::string{};
  auto slash = key->find('/');
  if (!valid_appid(key->substr(0, slash))
      || (slash != std::string::npos && !valid_appid(key->substr(slash + 1))))
    return bad("key must be an appid or component/authorizer");
  return *key;
}

caf::expected<std::string> parse_path_appid(const std::string& appid) {
  if (!valid_appid(appid))
    return bad("malformed appid");
  return appid;
}

namespace {

/// The definition body's "secret" (1-256 bytes), plus the body.
caf::expected<params> definition_body(const request& req) {
  auto body = parse_body(req);
  if (!body)
    return body.error();
  auto secret = find_param(*body, "secret");
  if (!secret || secret->empty() || secret->size() > 256)
    return bad("secret is required");
  return body;
}

std::string value_of(const params& body, std::string_view key) {
  auto v = find_param(body, key);
  return v ? *v : std::string{};
}

} // namespace

caf::expected<app_config> parse_app_definition(const std::string& appid, const request& req) {
  auto body = definition_body(req);
  if (!body)
    return body.error();
  auto api = value_of(*body, "token_api");
  if (!api.empty() && api != "stable" && api != "classic")
    return bad("token_api must be stable or classic");
  return app_config{appid, value_of(*body, "secret"),
                    api == "classic" ? token_api::classic : token_api::stable};
}

caf::expected<component_config> parse_component_definition(const std::string& appid,
                                                           const request& req) {
  auto body = definition_body(req);
  if (!body)
    return body.error();
  component_config comp{appid, value_of(*body, "secret"), value_of(*body, "token"),
                        value_of(*body, "encoding_aes_key")};
  if (comp.token.empty() || !wechat::msg_crypto::make(comp.encoding_aes_key, comp.token, appid))
    return bad("token and a 43-character encoding_aes_key are required");
  return comp;
}

caf::expected<page> parse_page(const params& q) {
  page p;
  try {
    if (auto v = find_param(q, "offset"))
      p.offset = std::stoul(*v);
    if (auto v = find_param(q, "limit"))
      p.limit = std::min<size_t>(1000, std::stoul(*v));
  } catch (...) {
    return bad("offset and limit must be numbers");
  }
  return p;
}

caf::expected<authorizer_grants> parse_authorizer_import(const request& req) {
  boost::system::error_code ec;
  auto val = json::parse(req.body, ec);
  if (ec || !val.is_object() || !val.as_object().contains("authorizers")
      || !val.as_object().at("authorizers").is_array())
    return bad("body must be {\"authorizers\": [{\"authorizer_appid\", \"refresh_token\"}, ...]}");
  auto& arr = val.as_object().at("authorizers").as_array();
  if (arr.size() > 10'000)
    return bad("at most 10000 authorizers per request");
  authorizer_grants items;
  items.reserve(arr.size());
  for (auto& v : arr) {
    auto o = v.if_object();
    auto aid = o ? o->if_contains("authorizer_appid") : nullptr;
    auto rt = o ? o->if_contains("refresh_token") : nullptr;
    if (!aid || !aid->is_string() || !valid_appid(aid->as_string()) || !rt || !rt->is_string()
        || rt->as_string().empty() || rt->as_string().size() > 1024)
      return bad("entry " + std::to_string(items.size())
                 + " needs a valid authorizer_appid and a non-empty refresh_token");
    items.emplace_back(std::string{aid->as_string()}, std::string{rt->as_string()});
  }
  return items;
}

caf::expected<std::string> parse_path_authorizer(const std::string& authorizer) {
  if (authorizer.empty())
    return make_detail_error(ec::not_found, "no such path");
  if (!valid_appid(authorizer))
    return bad("malformed authorizer appid");
  return authorizer;
}

caf::expected<std::string> parse_authorizer_grant(const request& req) {
  auto body = parse_body(req);
  if (!body)
    return body.error();
  auto rt = find_param(*body, "refresh_token");
  if (!rt || rt->empty() || rt->size() > 1024)
    return bad("refresh_token is required");
  return *rt;
}

push_query parse_push_query(const params& q) {
  return {value_of(q, "timestamp"), value_of(q, "nonce"), value_of(q, "msg_signature")};
}

} // namespace wh::http
