#include "wechat/api.hpp"

#include <algorithm>

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include "core/config.hpp"

namespace json = boost::json;

namespace wh::wechat {

namespace {

/// Percent-encodes everything but RFC 3986's unreserved characters.
std::string enc(std::string_view str) {
  return boost::urls::encode(str, boost::urls::unreserved_chars);
}

request get(std::string endpoint, std::string target) {
  return request{std::move(endpoint), "GET", std::move(target), {}};
}

request post(std::string endpoint, std::string target, const json::object& body) {
  return request{std::move(endpoint), "POST", std::move(target), json::serialize(body)};
}

/// A component endpoint authenticated with the component's token.
request component_post(std::string endpoint, std::string_view component_access_token,
                       const json::object& body) {
  auto target = "/cgi-bin/component/" + endpoint + "?component_access_token=" + enc(component_access_token);
  return post(std::move(endpoint), std::move(target), body);
}

json::string_view jv(std::string_view str) {
  return {str.data(), str.size()};
}

} // namespace

// -- requests -------------------------------------------------------------------

request stable_token(std::string_view appid, std::string_view secret, bool force_refresh) {
  return post(force_refresh ? "stable_token_force" : "stable_token", "/cgi-bin/stable_token",
              {{"grant_type", "client_credential"},
               {"appid", jv(appid)},
               {"secret", jv(secret)},
               {"force_refresh", force_refresh}});
}

request classic_token(std::string_view appid, std::string_view secret) {
  return get("token",
             "/cgi-bin/token?grant_type=client_credential&appid=" + enc(appid) + "&secret=" + enc(secret));
}

request component_token(std::string_view component_appid, std::string_view component_secret,
                        std::string_view verify_ticket) {
  return post("api_component_token", "/cgi-bin/component/api_component_token",
              {{"component_appid", jv(component_appid)},
               {"component_appsecret", jv(component_secret)},
               {"component_verify_ticket", jv(verify_ticket)}});
}

request authorizer_token(std::string_view component_access_token, std::string_view component_appid,
                         std::string_view authorizer_appid, std::string_view refresh_token) {
  return component_post("api_authorizer_token", component_access_token,
                        {{"component_appid", jv(component_appid)},
                         {"authorizer_appid", jv(authorizer_appid)},
                         {"authorizer_refresh_token", jv(refresh_token)}});
}

request start_push_ticket(std::string_view component_appid, std::string_view component_secret) {
  return post("api_start_push_ticket", "/cgi-bin/component/api_start_push_ticket",
              {{"component_appid", jv(component_appid)}, {"component_secret", jv(component_secret)}});
}

request api_domain_ip(std::string_view access_token) {
  return get("get_api_domain_ip", "/cgi-bin/get_api_domain_ip?access_token=" + enc(access_token));
}

request authorizer_list(std::string_view component_access_token, std::string_view component_appid,
                        int64_t offset, int64_t count) {
  return component_post("api_get_authorizer_list", component_access_token,
                        {{"component_appid", jv(component_appid)}, {"offset", offset}, {"count", count}});
}

request query_auth(std::string_view component_access_token, std::string_view component_appid,
                   std::string_view authorization_code) {
  return component_post("api_query_auth", component_access_token,
                        {{"component_appid", jv(component_appid)},
                         {"authorization_code", jv(authorization_code)}});
}

request get_ticket(std::string_view access_token, std::string_view type) {
  return get("getticket",
             "/cgi-bin/ticket/getticket?access_token=" + enc(access_token) + "&type=" + enc(type));
}

request clear_quota(std::string_view access_token, std::string_view appid) {
  return post("clear_quota", "/cgi-bin/clear_quota?access_token=" + enc(access_token),
              {{"appid", jv(appid)}});
}

// -- replies --------------------------------------------------------------------

namespace {

/// The longest token, ticket or refresh token accepted (WeChat documents
/// 512 characters of storage for a token).
constexpr size_t max_credential = 2048;

/// The longest lifetime accepted: anything longer is a broken answer.
constexpr int64_t max_expires_in = 30 * 86400;

reply_error fault(reply_fault f, unsigned status, std::string detail) {
  reply_error out;
  out.fault = f;
  out.http_status = status;
  out.detail = std::move(detail);
  return out;
}

/// WeChat's errcode and errmsg in `obj`; errcode 0 when absent or not an integer.
void read_errcode(const json::object& obj, reply_error& out) {
  if (auto code = obj.if_contains("errcode"); code && code->is_int64())
    out.errcode = static_cast<int>(code->as_int64());
  if (auto msg = obj.if_contains("errmsg"); msg && msg->is_string())
    out.errmsg = std::string{msg->as_string()}.substr(0, 200);
}

/// The JSON object of a 200 answer with errcode 0 (or none).
parsed<json::object> open(unsigned status, std::string_view body) {
  boost::system::error_code ec;
  auto val = json::parse(body, ec);
  bool is_object = !ec && val.is_object();
  if (status != 200) {
    auto err = fault(reply_fault::http_status, status, "WeChat answered HTTP " + std::to_string(status));
    if (is_object)
      read_errcode(val.as_object(), err);
    return err;
  }
  if (!is_object)
    return fault(reply_fault::not_json, status, "WeChat answered a body that is not JSON");
  auto err = fault(reply_fault::errcode, status, {});
  read_errcode(val.as_object(), err);
  if (err.errcode != 0) {
    err.detail = "WeChat errcode " + std::to_string(err.errcode);
    return err;
  }
  return std::move(val.as_object());
}

/// A non-empty string of at most `max` bytes at `key`.
const json::string* text(const json::object& obj, std::string_view key, size_t max) {
  auto v = obj.if_contains(key);
  if (!v || !v->is_string() || v->as_string().empty() || v->as_string().size() > max)
    return nullptr;
  return &v->as_string();
}

/// `expires_in` as a lifetime in 1 .. max_expires_in seconds.
std::optional<int64_t> lifetime(const json::object& obj) {
  auto e = obj.if_contains("expires_in");
  int64_t out = 0;
  if (e && e->is_int64())
    out = e->as_int64();
  else if (e && e->is_uint64())
    out = static_cast<int64_t>(std::min<uint64_t>(e->as_uint64(), max_expires_in + 1));
  else
    return std::nullopt;
  if (out <= 0 || out > max_expires_in)
    return std::nullopt;
  return out;
}

} // namespace

const char* reply_fault_name(reply_fault x) {
  switch (x) {
    case reply_fault::http_status: return "http_status";
    case reply_fault::not_json: return "not_json";
    case reply_fault::errcode: return "errcode";
    case reply_fault::missing_field: return "missing_field";
  }
  return "unknown";
}

const char* token_field(token_type x) {
  switch (x) {
    case token_type::component_access_token: return "component_access_token";
    case token_type::authorizer_access_token: return "authorizer_access_token";
    case token_type::access_token: break;
  }
  return "access_token";
}

parsed<ack> parse_ack(unsigned status, std::string_view body) {
  auto obj = open(status, body);
  if (!obj)
    return obj.error();
  return ack{};
}

parsed<token_reply> parse_token(token_type type, unsigned status, std::string_view body) {
  auto obj = open(status, body);
  if (!obj)
    return obj.error();
  auto value = text(*obj, token_field(type), max_credential);
  auto expires_in = lifetime(*obj);
  if (!value || !expires_in)
    return fault(reply_fault::missing_field, status, "WeChat's token answer lacks the token or expires_in");
  token_reply out{std::string{*value}, *expires_in, {}};
  if (type == token_type::authorizer_access_token)
    if (auto rt = text(*obj, "authorizer_refresh_token", max_credential))
      out.refresh_token = std::string{*rt};
  return out;
}

parsed<ticket_reply> parse_ticket(unsigned status, std::string_view body) {
  auto obj = open(status, body);
  if (!obj)
    return obj.error();
  auto value = text(*obj, "ticket", max_credential);
  auto expires_in = lifetime(*obj);
  if (!value || !expires_in)
    return fault(reply_fault::missing_field, status, "WeChat's getticket answer lacks ticket or expires_in");
  return ticket_reply{std::string{*value}, *expires_in};
}

parsed<authorizer_list_page> parse_authorizer_list(unsigned status, std::string_view body) {
  auto obj = open(status, body);
  if (!obj)
    return obj.error();
  auto list = obj->if_contains("list");
  if (!list || !list->is_array())
    return fault(reply_fault::missing_field, status, "api_get_authorizer_list answer lacks list");
  authorizer_list_page out;
  if (auto tc = obj->if_contains("total_count"); tc && tc->is_int64())
    out.total_count = tc->as_int64();
  out.entries = static_cast<int64_t>(list->as_array().size());
  for (auto& item : list->as_array()) {
    auto o = item.if_object();
    if (!o)
      continue;
    auto aid = o->if_contains("authorizer_appid");
    auto rt = text(*o, "refresh_token", 1024);
    if (aid && aid->is_string() && valid_appid(aid->as_string()) && rt)
      out.authorizers.push_back({std::string{aid->as_string()}, std::string{*rt}});
  }
  return out;
}

parsed<query_auth_reply> parse_query_auth(unsigned status, std::string_view body) {
  auto obj = open(status, body);
  if (!obj)
    return obj.error();
  auto bad = [status] {
    return fault(reply_fault::missing_field, status, "api_query_auth answer lacks authorization_info fields");
  };
  auto info = obj->if_contains("authorization_info");
  if (!info || !info->is_object())
    return bad();
  auto& o = info->as_object();
  auto aid = text(o, "authorizer_appid", 64);
  auto rt = o.if_contains("authorizer_refresh_token");
  auto value = text(o, "authorizer_access_token", max_credential);
  auto expires_in = lifetime(o);
  if (!aid || !rt || !rt->is_string() || rt->as_string().empty() || !value || !expires_in)
    return bad();
  return query_auth_reply{std::string{*aid}, std::string{*value}, *expires_in, std::string{rt->as_string()}};
}

} // namespace wh::wechat
