// The built-in token sources: a WeChat Hub, or WeChat directly.
#include <future>

#include <boost/json/serialize.hpp>

#include "client/detail/token_cache.hpp"
#include "client/detail/util.hpp"
#include "client/token_source.hpp"
#include "core/log.hpp"
#include "net/http_client.hpp"
#include "wechat/api.hpp"
#include "wechat/errcodes.hpp"

namespace wh::client {

namespace json = boost::json;

namespace {

constexpr const char* component = "client";

net::client_options net_options(const source_options& opts) {
  net::client_options out;
  out.ca_file = opts.ca_file;
  out.verify_peer = opts.verify_peer;
  out.user_agent = "wechat-hub-client/0.1";
  return out;
}

/// Interprets a hub answer: the token shape on success, the hub's error
/// shape ({"errcode","message","reason","http_status"}) otherwise, and a
/// "bad_hub_response" for anything else (HTML, empty 500, truncated JSON).
result<token> parse_hub_answer(const caf::expected<net::response>& res, std::string_view field,
                               int64_t now) {
  if (!res)
    return detail::from_net_error(res.error(), "hub");
  auto doc = detail::parse_json(res->body);
  if (doc && doc->is_object()) {
    auto value = detail::string_field(*doc, field);
    auto expires_in = detail::int_field(*doc, "expires_in");
    if (res->status == 200 && !value.empty() && expires_in) {
      auto stamp = detail::int_field(*doc, "timestamp").value_or(now);
      return token{std::move(value), stamp + *expires_in};
    }
    auto reason = detail::string_field(*doc, "reason");
    if (!reason.empty()) {
      error err;
      err.reason = std::move(reason);
      err.errcode = static_cast<int>(detail::int_field(*doc, "errcode").value_or(0));
      err.errmsg = "hub: " + detail::string_field(*doc, "message");
      err.http_status = res->status;
      return err;
    }
  }
  return make_error("bad_hub_response",
                    "hub: unexpected answer: "
                      + detail::describe_body(res->status, res->content_type, res->body)
                      + (doc ? std::string{" without "} + std::string{field} : " (not JSON)"),
                    res->status);
}

} // namespace

// -- hub_token_source -------------------------------------------------------------

struct hub_token_source::impl {
  impl(client::account a, hub_options o)
    : acc(std::move(a)), opts(std::move(o)), http(net_options(opts)),
      cache(opts.clock, opts.safety_margin) {
    while (!opts.hub_url.empty() && opts.hub_url.back() == '/')
      opts.hub_url.pop_back();
  }

  net::request make(std::string method, std::string path) {
    net::request req;
    req.method = std::move(method);
    req.url = opts.hub_url + path;
    req.timeout = opts.timeout;
    if (!opts.key.empty())
      req.headers.emplace_back("Authorization", "Bearer " + opts.key);
    return req;
  }

  void send(net::request req, std::string field, token_callback done) {
    http.async_send(std::move(req), [this, field = std::move(field),
                                     done = std::move(done)](caf::expected<net::response> res) {
      auto tok = parse_hub_answer(res, field, cache.now());
      if (!tok)
        WH_WARN(component, "hub token request failed for appid " << acc.appid << ": "
                                                                  << tok.err().to_string());
      done(std::move(tok));
    });
  }

  /// The fetcher for `kind`: GET on a miss, POST refresh for a stale token.
  void fetch(token_kind kind, const std::string& stale, token_callback done) {
    bool comp = kind == token_kind::component_access_token;
    if (stale.empty()) {
      auto path = comp ? "/client/component_access_token" : "/client/access_token";
      auto req = make("GET", net::add_query(path, "appid", acc.appid));
      if (!comp && acc.type == account_type::authorizer)
        req.url = net::add_query(req.url, "authorizer_appid", acc.authorizer_appid);
      return send(std::move(req), "access_token", std::move(done));
    }
    json::object body;
    body["appid"] = acc.appid;
    body["access_token"] = stale;
    if (!comp && acc.type == account_type::authorizer)
      body["authorizer_appid"] = acc.authorizer_appid;
    auto req = make("POST", comp ? "/client/refresh_component_access_token"
                                 : "/refresh/access_token");
    req.body = json::serialize(body);
    req.content_type = "application/json";
    // The hub refreshes compare-and-set on the stale token: repeating is safe.
    req.idempotent = true;
    send(std::move(req), "access_token", std::move(done));
  }

  std::optional<error> check_kind(token_kind kind) const {
    if (kind == token_kind::component_access_token && acc.type == account_type::app)
      return make_error("unsupported", "an official account has no component_access_token");
    if (kind == token_kind::access_token && acc.type == account_type::component)
      return make_error("unsupported", "a component has no access_token of its own; use "
                                       "an authorizer account for non-component APIs");
    return std::nullopt;
  }

  client::account acc;
  hub_options opts;
  net::http_client http;
  detail::token_cache cache;
};

hub_token_source::hub_token_source(client::account acc, hub_options opts)
  : impl_(std::make_shared<impl>(std::move(acc), std::move(opts))) {
}

hub_token_source::~hub_token_source() {
  // Completes every outstanding fetch before the cache goes away.
  impl_->http.shutdown();
}

const account& hub_token_source::account() const {
  return impl_->acc;
}

void hub_token_source::async_get(token_kind kind, token_callback cb) {
  if (auto err = impl_->check_kind(kind))
    return cb(std::move(*err));
  impl_->cache.get(to_string(kind), std::move(cb),
                   [this, kind](const std::string& stale, token_callback done) {
                     impl_->fetch(kind, stale, std::move(done));
                   });
}

void hub_token_source::async_report_stale(token_kind kind, std::string stale, token_callback cb) {
  if (auto err = impl_->check_kind(kind))
    return cb(std::move(*err));
  impl_->cache.report_stale(to_string(kind), std::move(stale), std::move(cb),
                            [this, kind](const std::string& stale, token_callback done) {
                              impl_->fetch(kind, stale, std::move(done));
                            });
}

void hub_token_source::async_ticket(std::string type, token_callback cb) {
  if (type != "jsapi" && type != "wx_card")
    return cb(make_error("invalid_request", "ticket type must be jsapi or wx_card"));
  if (impl_->acc.type == account_type::component)
    return cb(make_error("unsupported", "a component has no JS-SDK tickets"));
  impl_->cache.get("ticket." + type, std::move(cb),
                   [this, type](const std::string&, token_callback done) {
                     auto req = impl_->make("GET", "/client/ticket");
                     req.url = net::add_query(req.url, "appid", impl_->acc.appid);
                     req.url = net::add_query(req.url, "type", type);
                     if (impl_->acc.type == account_type::authorizer)
                       req.url = net::add_query(req.url, "authorizer_appid",
                                                impl_->acc.authorizer_appid);
                     impl_->send(std::move(req), "ticket", std::move(done));
                   });
}

result<token> hub_token_source::ticket(std::string type) {
  std::promise<result<token>> prom;
  async_ticket(std::move(type), [&prom](result<token> res) { prom.set_value(std::move(res)); });
  return prom.get_future().get();
}

// -- direct_token_source ------------------------------------------------------------

struct direct_token_source::impl {
  impl(std::string appid, direct_options o)
    : acc(client::account::app(std::move(appid))), opts(std::move(o)), http(net_options(opts)),
      cache(opts.clock, opts.safety_margin) {
  }

  void stable_token(bool force, std::function<void(result<token>)> done) {
    auto call = wechat::stable_token(acc.appid, opts.secret, force);
    net::request req;
    req.method = std::move(call.method);
    req.url = net::resolve_url(opts.api_base, call.target);
    req.body = std::move(call.body);
    req.content_type = "application/json";
    req.timeout = opts.timeout;
    // A forced refresh spends WeChat's 20-a-day budget: never replay it blindly.
    req.idempotent = !force;
    http.async_send(std::move(req), [this, done = std::move(done)](
                                      caf::expected<net::response> res) {
      done(parse(res));
    });
  }

  result<token> parse(const caf::expected<net::response>& res) {
    if (!res)
      return detail::from_net_error(res.error(), "WeChat");
    auto ans = wechat::parse_token(wechat::token_type::access_token, res->status, res->body);
    if (ans)
      return token{std::move(ans->access_token), cache.now() + ans->expires_in};
    auto& fault = ans.error();
    if (fault.errcode != 0) {
      error err;
      err.errcode = fault.errcode;
      err.errmsg = fault.errmsg;
      err.http_status = res->status;
      err.reason = std::string{wechat::errcode_reason(err.errcode)};
      WH_WARN(component, "stable_token for appid " << acc.appid << " failed: " << err.to_string());
      return err;
    }
    if (fault.fault == wechat::reply_fault::missing_field)
      return make_error("invalid_json",
                        "WeChat: stable_token answer without access_token or a valid expires_in",
                        res->status);
    return make_error("invalid_json", "WeChat: unexpected answer to stable_token: "
                                        + detail::describe_body(res->status, res->content_type,
                                                                res->body),
                      res->status);
  }

  void fetch(const std::string& stale, token_callback done) {
    stable_token(false, [this, stale, done = std::move(done)](result<token> res) mutable {
      if (res && !stale.empty() && res->value == stale) {
        WH_INFO(component, "appid " << acc.appid
                                    << ": WeChat rejected the current stable token; forcing a refresh");
        return stable_token(true, std::move(done));
      }
      done(std::move(res));
    });
  }

  client::account acc;
  direct_options opts;
  net::http_client http;
  detail::token_cache cache;
};

direct_token_source::direct_token_source(std::string appid, direct_options opts)
  : impl_(std::make_shared<impl>(std::move(appid), std::move(opts))) {
}

direct_token_source::~direct_token_source() {
  impl_->http.shutdown();
}

const account& direct_token_source::account() const {
  return impl_->acc;
}

void direct_token_source::async_get(token_kind kind, token_callback cb) {
  if (kind != token_kind::access_token)
    return cb(make_error("unsupported", "direct_token_source serves official accounts only"));
  impl_->cache.get("access_token", std::move(cb),
                   [this](const std::string& stale, token_callback done) {
                     impl_->fetch(stale, std::move(done));
                   });
}

void direct_token_source::async_report_stale(token_kind kind, std::string stale,
                                             token_callback cb) {
  if (kind != token_kind::access_token)
    return cb(make_error("unsupported", "direct_token_source serves official accounts only"));
  impl_->cache.report_stale("access_token", std::move(stale), std::move(cb),
                            [this](const std::string& stale, token_callback done) {
                              impl_->fetch(stale, std::move(done));
                            });
}

} // namespace wh::client
