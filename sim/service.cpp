#include "sim/service.hpp"

#include <array>
#include <string_view>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "wechat/multipart.hpp"

namespace wh::sim {

namespace {

namespace json = boost::json;

constexpr std::array upstream_paths = {
  std::string_view{"/cgi-bin/token"},
  std::string_view{"/cgi-bin/stable_token"},
  std::string_view{"/cgi-bin/ticket/getticket"},
  std::string_view{"/cgi-bin/get_api_domain_ip"},
  std::string_view{"/cgi-bin/clear_quota"},
  std::string_view{"/cgi-bin/material/batchget_material"},
  std::string_view{"/cgi-bin/media/upload"},
  std::string_view{"/cgi-bin/material/add_material"},
  std::string_view{"/cgi-bin/component/api_start_push_ticket"},
  std::string_view{"/cgi-bin/component/api_component_token"},
  std::string_view{"/cgi-bin/component/api_create_preauthcode"},
  std::string_view{"/cgi-bin/component/api_query_auth"},
  std::string_view{"/cgi-bin/component/api_authorizer_token"},
  std::string_view{"/cgi-bin/component/api_get_authorizer_list"},
};

bool is_component_path(std::string_view path) {
  return path.starts_with("/cgi-bin/component/");
}

/// Endpoints whose body is a JSON object of credentials / arguments.
bool takes_json_body(std::string_view path) {
  return path == "/cgi-bin/stable_token" || path == "/cgi-bin/clear_quota" || is_component_path(path);
}

bool requires_post(std::string_view path) {
  return path != "/cgi-bin/token" && path != "/cgi-bin/ticket/getticket"
         && path != "/cgi-bin/get_api_domain_ip";
}

/// A string member of a JSON object, "" if absent or not a string.
std::string str_of(const std::optional<json::value>& v, std::string_view key) {
  if (!v || !v->is_object())
    return {};
  auto* m = v->as_object().if_contains(key);
  if (m == nullptr || !m->is_string())
    return {};
  return std::string{m->as_string()};
}

/// An integer member (numbers or numeric strings), `fallback` if absent.
std::optional<int64_t> int_of(const std::optional<json::value>& v, std::string_view key,
                              std::optional<int64_t> fallback = std::nullopt) {
  if (!v || !v->is_object())
    return fallback;
  auto* m = v->as_object().if_contains(key);
  if (m == nullptr)
    return fallback;
  if (m->is_int64())
    return m->as_int64();
  if (m->is_uint64() && m->as_uint64() < (1ull << 62))
    return static_cast<int64_t>(m->as_uint64());
  if (m->is_double())
    return static_cast<int64_t>(m->as_double());
  if (m->is_string()) {
    try {
      std::size_t used = 0;
      auto s = std::string{m->as_string()};
      auto n = std::stoll(s, &used);
      if (used == s.size())
        return n;
    } catch (...) {
    }
  }
  return std::nullopt;
}

bool truthy(const std::optional<json::value>& v, std::string_view key) {
  if (!v || !v->is_object())
    return false;
  auto* m = v->as_object().if_contains(key);
  if (m == nullptr)
    return false;
  if (m->is_bool())
    return m->as_bool();
  if (m->is_int64())
    return m->as_int64() != 0;
  if (m->is_string())
    return m->as_string() == "true" || m->as_string() == "1";
  return false;
}

http_reply control_error(unsigned status, std::string_view msg) {
  return json_reply(make_error(-1, msg), status);
}

json::object ok() { return make_error(0, "ok"); }

} // namespace

// -- free functions ---------------------------------------------------------

http_reply json_reply(const json::object& obj, unsigned status) {
  http_reply out;
  out.status = status;
  out.body = json::serialize(obj);
  return out;
}

http_reply push_result_reply(const json::object& info, unsigned status, const std::string& body,
                             const std::string& error) {
  json::object out = info;
  out["status"] = status;
  out["body"] = body;
  if (!error.empty())
    out["error"] = error;
  return json_reply(out);
}

std::string prepared::param(std::string_view key) const {
  for (auto& [k, v] : query)
    if (k == key)
      return v;
  return {};
}

// -- service ----------------------------------------------------------------

service::service(const wh::clock& base, service_options opts)
  : opts_(std::move(opts)), state_(base, opts_.lim, opts_.apps, opts_.components) {
  // parse_cli validated these; an unknown component here is a caller bug
  // the first push would report anyway, so it is not fatal.
  for (auto& [comp, url] : opts_.push_urls)
    state_.register_push(comp, url);
}

prepared service::prepare(http_request req) {
  prepared p;
  p.req = std::move(req);
  auto parsed = boost::urls::parse_origin_form(p.req.target);
  if (!parsed) {
    p.path = p.req.target; // unroutable; execute() answers 404
    return p;
  }
  p.path = std::string{parsed->path()};
  for (auto param : parsed->params())
    p.query.emplace_back(std::string{param.key}, std::string{param.value});
  if (p.path.starts_with("/sim/")) {
    p.control = true;
    if (!p.req.body.empty()) {
      boost::system::error_code ec;
      auto v = json::parse(p.req.body, ec);
      if (!ec)
        p.json = std::move(v);
    }
    return p;
  }
  for (auto known : upstream_paths)
    if (p.path == known)
      p.upstream = true;
  if (!p.upstream)
    return p;
  if (takes_json_body(p.path)) {
    boost::system::error_code ec;
    auto v = json::parse(p.req.body, ec);
    if (!ec && v.is_object())
      p.json = std::move(v);
  }
  if (p.path == "/cgi-bin/token")
    p.appid = p.param("appid");
  else if (p.path == "/cgi-bin/stable_token")
    p.appid = str_of(p.json, "appid");
  else if (is_component_path(p.path))
    p.appid = str_of(p.json, "component_appid");
  else
    p.appid = state_.token_owner(p.param("access_token"));
  stats_.count(p.path, p.appid);
  p.fault = faults_.take(p.path, p.appid);
  p.delay_ms = opts_.latency_ms;
  if (p.fault && p.fault->kind == fault_kind::latency) {
    p.delay_ms += p.fault->latency_ms;
    p.fault.reset();
  }
  return p;
}

http_reply service::fault_reply(const fault_rule& rule) {
  switch (rule.kind) {
    case fault_kind::http500: {
      http_reply out;
      out.status = 500;
      out.content_type = "text/html";
      out.body = "<html><body><h1>500 Internal Server Error</h1></body></html>";
      return out;
    }
    case fault_kind::html: {
      http_reply out;
      out.content_type = "text/html; charset=utf-8";
      out.body = "<!DOCTYPE html><html><head><title>sim</title></head><body>"
                 "<p>系统繁忙 system busy</p></body></html>";
      return out;
    }
    default:
      return json_reply(make_error(static_cast<int>(rule.errcode), "simulated fault"));
  }
}

outcome service::execute(prepared& p) {
  try {
    if (p.control)
      return execute_control(p);
    if (p.upstream)
      return execute_upstream(p);
  } catch (const std::exception& e) {
    return outcome{control_error(500, std::string{"internal error: "} + e.what())};
  }
  return outcome{control_error(404, "unknown path")};
}

outcome service::handle(http_request req) {
  auto p = prepare(std::move(req));
  if (p.fault) {
    if (p.fault->kind == fault_kind::drop)
      return outcome{http_reply{0, "", ""}};
    return outcome{fault_reply(*p.fault)};
  }
  return execute(p);
}

outcome service::execute_upstream(prepared& p) {
  auto& path = p.path;
  if (requires_post(path) && p.req.method != "POST")
    return outcome{json_reply(make_error(43002, "require POST method"))};
  if (takes_json_body(path) && !p.json)
    return outcome{json_reply(make_error(47001, "data format error"))};
  if (path == "/cgi-bin/token")
    return outcome{json_reply(
      state_.classic_token(p.param("grant_type"), p.param("appid"), p.param("secret")))};
  if (path == "/cgi-bin/stable_token")
    return outcome{json_reply(state_.stable_token(str_of(p.json, "grant_type"),
                                                  str_of(p.json, "appid"),
                                                  str_of(p.json, "secret"),
                                                  truthy(p.json, "force_refresh")))};
  auto token = p.param("access_token");
  if (path == "/cgi-bin/ticket/getticket")
    return outcome{json_reply(state_.get_ticket(token, p.param("type")))};
  if (path == "/cgi-bin/get_api_domain_ip")
    return outcome{json_reply(state_.api_domain_ip(token))};
  if (path == "/cgi-bin/clear_quota")
    return outcome{json_reply(state_.clear_quota(token, str_of(p.json, "appid")))};
  if (path == "/cgi-bin/material/batchget_material")
    return outcome{json_reply(state_.batchget_material(token))};
  if (path == "/cgi-bin/media/upload" || path == "/cgi-bin/material/add_material") {
    bool permanent = path == "/cgi-bin/material/add_material";
    // Check the token before parsing so token errors win over form errors.
    if (auto chk = state_.check_token(token); chk.errcode != 0)
      return outcome{json_reply(token_error(chk.errcode))};
    auto parts = wechat::parse_multipart(p.req.body, p.req.content_type);
    if (!parts)
      return outcome{json_reply(make_error(41005, "media data missing"))};
    const wechat::form_part* media = nullptr;
    std::optional<std::string> description;
    for (auto& part : *parts) {
      if (part.name == "media" && media == nullptr)
        media = &part;
      else if (part.name == "description")
        description = part.data;
    }
    if (description) {
      boost::system::error_code ec;
      auto v = json::parse(*description, ec);
      if (ec || !v.is_object())
        return outcome{json_reply(make_error(40097, "invalid args: description is not JSON"))};
    }
    std::optional<media_file> file;
    if (media != nullptr)
      file = media_file{media->filename, media->content_type, media->data};
    return outcome{json_reply(state_.upload_media(token, p.param("type"),
                                                  file ? &*file : nullptr, permanent,
                                                  std::move(description)))};
  }
  // Component endpoints.
  auto comp_appid = str_of(p.json, "component_appid");
  if (path == "/cgi-bin/component/api_start_push_ticket") {
    outcome out;
    out.reply = json_reply(
      state_.start_push_ticket(comp_appid, str_of(p.json, "component_secret"), out.push));
    return out;
  }
  if (path == "/cgi-bin/component/api_component_token")
    return outcome{json_reply(state_.component_token(comp_appid,
                                                     str_of(p.json, "component_appsecret"),
                                                     str_of(p.json, "component_verify_ticket")))};
  auto ctoken = p.param("component_access_token");
  if (ctoken.empty())
    ctoken = p.param("access_token");
  if (path == "/cgi-bin/component/api_create_preauthcode")
    return outcome{json_reply(state_.create_preauthcode(ctoken, comp_appid))};
  if (path == "/cgi-bin/component/api_query_auth")
    return outcome{json_reply(
      state_.query_auth(ctoken, comp_appid, str_of(p.json, "authorization_code")))};
  if (path == "/cgi-bin/component/api_authorizer_token")
    return outcome{json_reply(state_.authorizer_token(
      ctoken, comp_appid, str_of(p.json, "authorizer_appid"),
      str_of(p.json, "authorizer_refresh_token")))};
  if (path == "/cgi-bin/component/api_get_authorizer_list") {
    auto offset = int_of(p.json, "offset", 0);
    auto count = int_of(p.json, "count", 500);
    if (!offset || !count)
      return outcome{json_reply(make_error(47001, "data format error"))};
    return outcome{
      json_reply(state_.authorizer_list(ctoken, comp_appid, *offset, *count))};
  }
  return outcome{control_error(404, "unknown path")};
}

outcome service::execute_control(prepared& p) {
  auto& path = p.path;
  bool has_body = !p.req.body.empty();
  if (has_body && (!p.json || !p.json->is_object()))
    return outcome{control_error(400, "body must be a JSON object")};
  if (path == "/sim/stats")
    return outcome{json_reply(stats_.to_json())};
  if (path == "/sim/reset") {
    stats_.reset();
    return outcome{json_reply(ok())};
  }
  if (path == "/sim/time") {
    json::object out;
    out["now"] = state_.now();
    return outcome{json_reply(out)};
  }
  if (path == "/sim/advance") {
    auto secs = int_of(p.json, "seconds");
    if (!secs)
      return outcome{control_error(400, "seconds (integer) required")};
    state_.advance(*secs);
    json::object out = ok();
    out["now"] = state_.now();
    return outcome{json_reply(out)};
  }
  if (path == "/sim/clear_faults") {
    faults_.clear();
    return outcome{json_reply(ok())};
  }
  if (path == "/sim/fault") {
    fault_rule rule;
    rule.path = str_of(p.json, "path");
    if (rule.path.empty())
      rule.path = "*";
    rule.appid = str_of(p.json, "appid");
    auto kind = parse_fault_kind(str_of(p.json, "kind"));
    if (!kind)
      return outcome{control_error(400, "kind must be errcode|http500|drop|latency|html")};
    rule.kind = *kind;
    auto code = int_of(p.json, "errcode", -1);
    auto latency = int_of(p.json, "latency_ms", 0);
    auto times = int_of(p.json, "times", 1);
    if (!code || !latency || !times || *latency < 0 || *latency > 600'000 || *times < -1)
      return outcome{control_error(400, "errcode, latency_ms and times must be integers")};
    rule.errcode = *code;
    rule.latency_ms = *latency;
    rule.times = *times;
    faults_.add(std::move(rule));
    json::object out = ok();
    out["rules"] = faults_.size();
    return outcome{json_reply(out)};
  }
  if (path == "/sim/invalidate") {
    auto appid = str_of(p.json, "appid");
    if (!state_.invalidate(appid))
      return outcome{control_error(404, "unknown appid")};
    return outcome{json_reply(ok())};
  }
  if (path == "/sim/quota") {
    auto remaining = int_of(p.json, "remaining");
    if (!remaining)
      return outcome{control_error(400, "remaining (integer) required")};
    if (!state_.set_quota(str_of(p.json, "appid"), *remaining))
      return outcome{control_error(404, "unknown appid")};
    return outcome{json_reply(ok())};
  }
  if (path == "/sim/state") {
    auto appid = p.param("appid");
    if (appid.empty())
      appid = str_of(p.json, "appid");
    auto desc = state_.describe(appid);
    if (!desc)
      return outcome{control_error(404, "unknown appid")};
    return outcome{json_reply(*desc)};
  }
  if (path == "/sim/media") {
    json::array list;
    for (auto& m : state_.media()) {
      json::object item;
      item["media_id"] = m.media_id;
      item["owner"] = m.owner;
      item["type"] = m.type;
      item["filename"] = m.filename;
      item["content_type"] = m.content_type;
      item["md5"] = m.md5_hex;
      item["size"] = m.size;
      item["description"] = m.description;
      item["permanent"] = m.permanent;
      item["created_at"] = m.created_at;
      list.push_back(std::move(item));
    }
    json::object out;
    out["media"] = std::move(list);
    return outcome{json_reply(out)};
  }
  if (path == "/sim/register_push") {
    auto url = str_of(p.json, "url");
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed || parsed->scheme() != "http")
      return outcome{control_error(400, "url must be an absolute http:// URL")};
    if (!state_.register_push(str_of(p.json, "component_appid"), url))
      return outcome{control_error(404, "unknown component_appid")};
    return outcome{json_reply(ok())};
  }
  if (path == "/sim/authorizers") {
    if (p.req.method != "POST")
      return outcome{control_error(405, "POST required")};
    auto count = int_of(p.json, "count");
    if (!count)
      return outcome{control_error(400, "count (integer) required")};
    auto prefix = str_of(p.json, "prefix");
    if (prefix.empty())
      prefix = "wxa";
    std::vector<std::pair<std::string, std::string>> made;
    std::string error;
    if (!state_.create_authorizers(str_of(p.json, "component_appid"), *count, prefix, made,
                                   error))
      return outcome{control_error(error == "unknown component_appid" ? 404 : 400, error)};
    // Written straight into the body: a DOM of 200k objects would briefly
    // cost several times the authorizers themselves.
    http_reply reply;
    reply.body.reserve(32 + made.size() * 112);
    reply.body += R"({"authorizers":[)";
    for (std::size_t i = 0; i < made.size(); ++i) {
      reply.body += i == 0 ? R"({"authorizer_appid":)" : R"(,{"authorizer_appid":)";
      reply.body += json::serialize(json::string_view{made[i].first});
      reply.body += R"(,"refresh_token":)";
      reply.body += json::serialize(json::string_view{made[i].second});
      reply.body += '}';
    }
    reply.body += "]}";
    made = {};
    return outcome{std::move(reply)};
  }
  if (path == "/sim/repush") {
    // WeChat's retry of the latest authorization event (same code).
    auto ev = state_.last_grant(str_of(p.json, "component_appid"), str_of(p.json, "url"));
    if (!ev)
      return outcome{control_error(404, "no authorization event of this component to repeat")};
    outcome out;
    out.wait_for_push = true;
    out.push_info["authorization_code"] = ev->authorization_code;
    out.push_info["authorizer_appid"] = ev->authorizer_appid;
    out.push = std::move(ev);
    return out;
  }
  if (path == "/sim/push") {
    auto url = str_of(p.json, "url");
    if (!url.empty()) {
      auto parsed = boost::urls::parse_absolute_uri(url);
      if (!parsed || parsed->scheme() != "http")
        return outcome{control_error(400, "url must be an absolute http:// URL")};
    }
    auto info_type = str_of(p.json, "info_type");
    if (info_type.empty())
      info_type = "component_verify_ticket";
    std::string error;
    auto ev = state_.make_push(str_of(p.json, "component_appid"), info_type,
                               str_of(p.json, "authorizer_appid"), url, error);
    if (!ev)
      return outcome{control_error(400, error)};
    outcome out;
    out.wait_for_push = true;
    if (!ev->verify_ticket.empty())
      out.push_info["ticket"] = ev->verify_ticket;
    if (!ev->authorization_code.empty()) {
      out.push_info["authorization_code"] = ev->authorization_code;
      out.push_info["pre_auth_code"] = ev->pre_auth_code;
    }
    if (!ev->authorizer_appid.empty())
      out.push_info["authorizer_appid"] = ev->authorizer_appid;
    out.push = std::move(ev);
    return out;
  }
  return outcome{control_error(404, "unknown path")};
}

} // namespace wh::sim
