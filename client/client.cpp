#include "client/client.hpp"

#include <condition_variable>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>

#include <boost/json/serialize.hpp>

#include "client/detail/util.hpp"
#include "core/log.hpp"
#include "net/http_client.hpp"
#include "wechat/errcodes.hpp"
#include "wechat/multipart.hpp"
#include "wechat/signature.hpp"

namespace wh::client {

namespace json = boost::json;

namespace {

constexpr const char* component = "client";

std::string guess_content_type(std::string_view filename) {
  auto dot = filename.rfind('.');
  std::string ext;
  if (dot != std::string_view::npos)
    for (char c : filename.substr(dot + 1))
      ext += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "jpg" || ext == "jpeg")
    return "image/jpeg";
  if (ext == "png")
    return "image/png";
  if (ext == "gif")
    return "image/gif";
  if (ext == "bmp")
    return "image/bmp";
  if (ext == "mp3")
    return "audio/mpeg";
  if (ext == "amr")
    return "audio/amr";
  if (ext == "wav")
    return "audio/wav";
  if (ext == "mp4")
    return "video/mp4";
  return "application/octet-stream";
}

/// One API call in flight; lives until its callback ran.
struct call {
  std::string method;
  /// URL without the token.
  std::string url;
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{};
  token_kind kind = token_kind::access_token;
  /// Whether the one retry after a token error was used.
  bool retried = false;
  json_callback cb;
};

using call_ptr = std::shared_ptr<call>;

} // namespace

// -- client::impl -------------------------------------------------------------------

struct client::impl {
  impl(std::shared_ptr<token_source> src, client_options o)
    : source(std::move(src)), opts(std::move(o)), http(make_net_options(opts)) {
  }

  static net::client_options make_net_options(const client_options& opts) {
    net::client_options out;
    out.io_threads = opts.io_threads;
    out.ca_file = opts.ca_file;
    out.verify_peer = opts.verify_peer;
    out.user_agent = "wechat-hub-client/0.1";
    // Shorter than typical server keep-alive timeouts, so pooled connections
    // are rarely found dead (POSTs are not replayed on a dead connection).
    out.idle_timeout = std::chrono::seconds{15};
    return out;
  }

  void start(call_ptr c) {
    source->async_get(c->kind, [this, c](result<token> tok) {
      if (!tok)
        return finish(c, std::move(tok.err()));
      send(c, std::move(*tok));
    });
  }

  void send(call_ptr c, token tok) {
    net::request req;
    req.method = c->method;
    req.url = net::add_query(c->url, to_string(c->kind), tok.value);
    req.body = c->body;
    req.content_type = c->content_type;
    req.headers = c->headers;
    req.timeout = c->timeout;
    req.idempotent = c->method == "GET" || c->method == "HEAD";
    http.async_send(std::move(req), [this, c, used = std::move(tok.value)](
                                      caf::expected<net::response> res) mutable {
      on_response(c, std::move(used), res);
    });
  }

  void on_response(call_ptr c, std::string used, const caf::expected<net::response>& res) {
    if (!res)
      return finish(c, detail::from_net_error(res.error(), "WeChat"));
    auto doc = detail::parse_json(res->body);
    if (res->status != 200 && !(doc && doc->is_object() && doc->as_object().contains("errcode")))
      return finish(c, make_error("http_error",
                                  "WeChat: " + detail::describe_body(res->status,
                                                                     res->content_type, res->body),
                                  res->status));
    if (!doc)
      return finish(c, make_error("invalid_json",
                                  "WeChat: answer is not JSON: "
                                    + detail::describe_body(res->status, res->content_type,
                                                            res->body),
                                  res->status));
    auto code = static_cast<int>(detail::int_field(*doc, "errcode").value_or(0));
    if (code == 0)
      return finish(c, std::move(*doc));
    if (is_token_error(code) && !c->retried) {
      c->retried = true;
      WH_INFO(component, "appid " << source->account().appid << ": " << to_string(c->kind)
                                  << " rejected (" << code << "), refreshing and retrying once");
      return source->async_report_stale(c->kind, std::move(used), [this, c](result<token> tok) {
        if (!tok)
          return finish(c, std::move(tok.err()));
        send(c, std::move(*tok));
      });
    }
    error err;
    err.errcode = code;
    err.errmsg = detail::string_field(*doc, "errmsg");
    err.http_status = res->status;
    err.reason = std::string{wechat::errcode_reason(code)};
    finish(c, std::move(err));
  }

  void finish(const call_ptr& c, result<json::value> res) {
    auto cb = std::move(c->cb);
    try {
      cb(std::move(res));
    } catch (const std::exception& e) {
      WH_ERROR(component, "request callback threw: " << e.what());
    }
    std::lock_guard guard{mtx};
    if (--pending == 0)
      drained.notify_all();
  }

  std::shared_ptr<token_source> source;
  client_options opts;
  net::http_client http;
  std::mutex mtx;
  std::condition_variable drained;
  size_t pending = 0;
};

// -- client ---------------------------------------------------------------------------

client::client(std::shared_ptr<token_source> source, client_options opts)
  : impl_(std::make_shared<impl>(std::move(source), std::move(opts))) {
}

client::~client() {
  // Calls waiting on the token source finish through the stopped HTTP
  // client with "shutting_down"; wait for all of them before the state goes.
  impl_->http.shutdown();
  std::unique_lock guard{impl_->mtx};
  impl_->drained.wait(guard, [this] { return impl_->pending == 0; });
}

const std::shared_ptr<token_source>& client::source() const {
  return impl_->source;
}

void client::async_request(std::string method, std::string path_or_url, request_options opts,
                           json_callback cb) {
  auto c = std::make_shared<call>();
  c->method = std::move(method);
  c->kind = impl_->source->account().kind_for(path_or_url);
  c->url = net::resolve_url(impl_->opts.api_base, path_or_url);
  for (auto& [key, value] : opts.query)
    c->url = net::add_query(std::move(c->url), key, value);
  if (!opts.form.empty()) {
    std::vector<wechat::form_part> parts;
    parts.reserve(opts.form.size());
    for (auto& part : opts.form)
      parts.push_back(wechat::form_part{std::move(part.name), std::move(part.filename),
                                        std::move(part.content_type), std::move(part.data)});
    auto boundary = wechat::make_boundary();
    c->body = wechat::build_multipart(parts, boundary);
    c->content_type = wechat::multipart_content_type(boundary);
  } else if (!opts.body.is_null()) {
    c->body = json::serialize(opts.body);
    c->content_type = "application/json";
  } else if (!opts.raw_body.empty()) {
    c->body = std::move(opts.raw_body);
    c->content_type = opts.content_type.empty() ? "application/json" : opts.content_type;
  }
  c->headers = std::move(opts.headers);
  c->timeout = opts.timeout.value_or(impl_->opts.timeout);
  c->cb = std::move(cb);
  {
    std::lock_guard guard{impl_->mtx};
    ++impl_->pending;
  }
  impl_->start(std::move(c));
}

result<json::value> client::request(std::string method, std::string path_or_url,
                                    request_options opts) {
  if (impl_->http.on_io_thread())
    return make_error("invalid_request", "blocking request() called from a client callback");
  std::promise<result<json::value>> prom;
  async_request(std::move(method), std::move(path_or_url), std::move(opts),
                [&prom](result<json::value> res) { prom.set_value(std::move(res)); });
  return prom.get_future().get();
}

namespace {

request_options media_form(std::string type, media file) {
  request_options opts;
  opts.query.emplace_back("type", std::move(type));
  if (file.content_type.empty())
    file.content_type = guess_content_type(file.filename);
  opts.form.push_back(form_part{"media", std::move(file.filename), std::move(file.content_type),
                                std::move(file.data)});
  return opts;
}

template <class F>
result<json::value> block(F&& start) {
  std::promise<result<json::value>> prom;
  start([&prom](result<json::value> res) { prom.set_value(std::move(res)); });
  return prom.get_future().get();
}

} // namespace

void client::async_upload_media(std::string type, media file, json_callback cb) {
  async_request("POST", "/cgi-bin/media/upload", media_form(std::move(type), std::move(file)),
                std::move(cb));
}

result<json::value> client::upload_media(std::string type, media file) {
  return request("POST", "/cgi-bin/media/upload", media_form(std::move(type), std::move(file)));
}

void client::async_add_material(std::string type, media file, json::value description,
                                json_callback cb) {
  auto opts = media_form(std::move(type), std::move(file));
  if (!description.is_null())
    opts.form.push_back(form_part{"description", {}, {}, json::serialize(description)});
  async_request("POST", "/cgi-bin/material/add_material", std::move(opts), std::move(cb));
}

result<json::value> client::add_material(std::string type, media file, json::value description) {
  if (impl_->http.on_io_thread())
    return make_error("invalid_request", "blocking add_material() called from a client callback");
  return block([&](json_callback cb) {
    async_add_material(std::move(type), std::move(file), std::move(description), std::move(cb));
  });
}

// -- media ------------------------------------------------------------------------------

result<media> media::from_file(const std::string& path, std::string content_type) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error("invalid_request", "cannot open media file " + path);
  media out;
  out.data.assign(std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{});
  if (in.bad())
    return make_error("invalid_request", "cannot read media file " + path);
  auto slash = path.rfind('/');
  out.filename = slash == std::string::npos ? path : path.substr(slash + 1);
  out.content_type = content_type.empty() ? guess_content_type(out.filename)
                                          : std::move(content_type);
  return out;
}

media media::from_bytes(std::string filename, std::string data, std::string content_type) {
  media out;
  out.content_type = content_type.empty() ? guess_content_type(filename) : std::move(content_type);
  out.filename = std::move(filename);
  out.data = std::move(data);
  return out;
}

// -- free functions ---------------------------------------------------------------------

bool is_token_error(int errcode) {
  return wechat::classify(errcode) == wechat::errclass::token_invalid;
}

jssdk_signature sign_jssdk(std::string_view ticket, std::string_view url, std::string noncestr,
                           int64_t timestamp) {
  auto sig = wechat::sign_jssdk(ticket, url, std::move(noncestr), timestamp);
  return {std::move(sig.noncestr), sig.timestamp, std::move(sig.signature)};
}

card_signature sign_card(std::vector<std::string> values, std::string nonce_str,
                         int64_t timestamp) {
  auto sig = wechat::sign_card(std::move(values), std::move(nonce_str), timestamp);
  return {std::move(sig.nonce_str), sig.timestamp, std::move(sig.signature)};
}

} // namespace wh::client
