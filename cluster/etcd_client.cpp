#include "cluster/etcd_client.hpp"

#include <atomic>
#include <charconv>
#include <future>
#include <utility>

#include <boost/json.hpp>

#include "core/error.hpp"
#include "net/http_client.hpp"
#include "wechat/msg_crypto.hpp"

namespace wh::cluster {

namespace json = boost::json;

namespace {

using json_handler = std::function<void(caf::expected<json::object>)>;

caf::error unavailable(std::string detail) {
  return make_detail_error(ec::cluster_unavailable, std::move(detail));
}

// -- reading replies ----------------------------------------------------------

/// An int64 field: a JSON string (the gateway's encoding of int64), a number,
/// or absent (the default 0).
bool get_i64(const json::object& obj, std::string_view name, int64_t& out) {
  out = 0;
  auto v = obj.if_contains(name);
  if (!v)
    return true;
  if (auto s = v->if_string()) {
    auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), out);
    return ec == std::errc{} && end == s->data() + s->size();
  }
  if (auto i = v->if_int64()) {
    out = *i;
    return true;
  }
  if (auto u = v->if_uint64(); u && *u <= static_cast<uint64_t>(INT64_MAX)) {
    out = static_cast<int64_t>(*u);
    return true;
  }
  return false;
}

/// A base64 field (keys and values), absent = "".
bool get_b64(const json::object& obj, std::string_view name, std::string& out) {
  out.clear();
  auto v = obj.if_contains(name);
  if (!v)
    return true;
  auto s = v->if_string();
  if (!s)
    return false;
  auto dec = wechat::base64_decode(std::string_view{s->data(), s->size()});
  if (!dec)
    return false;
  out = std::move(*dec);
  return true;
}

bool get_bool(const json::object& obj, std::string_view name, bool& out) {
  out = false;
  auto v = obj.if_contains(name);
  if (!v)
    return true;
  if (auto b = v->if_bool()) {
    out = *b;
    return true;
  }
  return false;
}

/// The object member `name`; absent = empty object (all defaults).
const json::object* get_obj(const json::object& obj, std::string_view name) {
  static const json::object empty;
  auto v = obj.if_contains(name);
  if (!v)
    return &empty;
  return v->if_object();
}

bool header_revision(const json::object& reply, int64_t& out) {
  auto hdr = get_obj(reply, "header");
  return hdr && get_i64(*hdr, "revision", out);
}

bool parse_range(const json::object& reply, etcd_range& out) {
  if (!header_revision(reply, out.revision) || !get_i64(reply, "count", out.count))
    return false;
  auto kvs = reply.if_contains("kvs");
  if (!kvs)
    return true;
  auto arr = kvs->if_array();
  if (!arr)
    return false;
  for (auto& item : *arr) {
    auto o = item.if_object();
    if (!o)
      return false;
    etcd_kv kv;
    if (!get_b64(*o, "key", kv.key) || !get_b64(*o, "value", kv.value)
        || !get_i64(*o, "create_revision", kv.create_revision)
        || !get_i64(*o, "mod_revision", kv.mod_revision) || !get_i64(*o, "version", kv.version)
        || !get_i64(*o, "lease", kv.lease))
      return false;
    out.kvs.push_back(std::move(kv));
  }
  return true;
}

// -- writing requests ---------------------------------------------------------

std::string b64(std::string_view s) {
  return wechat::base64_encode(s);
}

std::string i64(int64_t v) {
  return std::to_string(v);
}

json::object range_request(const std::string& key, const std::string& range_end,
                           const etcd_range_options& opts) {
  json::object req{{"key", b64(key)}};
  if (!range_end.empty())
    req["range_end"] = b64(range_end);
  if (opts.revision != 0)
    req["revision"] = i64(opts.revision);
  if (opts.count_only)
    req["count_only"] = true;
  if (opts.limit != 0)
    req["limit"] = i64(opts.limit);
  return req;
}

json::object put_request(const std::string& key, const std::string& value, int64_t lease) {
  json::object req{{"key", b64(key)}, {"value", b64(value)}};
  if (lease != 0)
    req["lease"] = i64(lease);
  return req;
}

json::object erase_request(const std::string& key, const std::string& range_end) {
  json::object req{{"key", b64(key)}};
  if (!range_end.empty())
    req["range_end"] = b64(range_end);
  return req;
}

json::array ops_json(const std::vector<etcd_op>& ops) {
  json::array out;
  for (auto& op : ops) {
    switch (op.type) {
      case etcd_op::kind::put:
        out.push_back(json::object{{"request_put", put_request(op.key, op.value, op.lease)}});
        break;
      case etcd_op::kind::range:
        out.push_back(json::object{{"request_range", range_request(op.key, op.range_end, {})}});
        break;
      case etcd_op::kind::erase:
        out.push_back(
          json::object{{"request_delete_range", erase_request(op.key, op.range_end)}});
        break;
    }
  }
  return out;
}

json::object compare_json(const etcd_compare& c) {
  json::object out{{"key", b64(c.key)}};
  switch (c.what) {
    case etcd_compare::target::create_revision:
      out["target"] = "CREATE";
      out["create_revision"] = i64(c.value);
      break;
    case etcd_compare::target::mod_revision:
      out["target"] = "MOD";
      out["mod_revision"] = i64(c.value);
      break;
    case etcd_compare::target::version:
      out["target"] = "VERSION";
      out["version"] = i64(c.value);
      break;
  }
  switch (c.op) {
    case etcd_compare::result::equal:
      out["result"] = "EQUAL";
      break;
    case etcd_compare::result::not_equal:
      out["result"] = "NOT_EQUAL";
      break;
    case etcd_compare::result::greater:
      out["result"] = "GREATER";
      break;
    case etcd_compare::result::less:
      out["result"] = "LESS";
      break;
  }
  return out;
}

/// Waits for an asynchronous call on a thread that may block.
template <class T, class Start>
caf::expected<T> wait_for(const net::http_client& http, Start start) {
  if (http.on_io_thread())
    return make_detail_error(ec::internal_error,
                             "etcd: blocking call on an http_client I/O thread (would deadlock)");
  std::promise<caf::expected<T>> done;
  auto result = done.get_future();
  start([&done](caf::expected<T> r) { done.set_value(std::move(r)); });
  return result.get();
}

} // namespace

// -- the shared state of the client --------------------------------------------

struct etcd_client::impl : std::enable_shared_from_this<impl> {
  impl(net::http_client& h, etcd_options o) : http(h), opts(std::move(o)) {
    for (auto& ep : opts.endpoints)
      while (!ep.empty() && ep.back() == '/')
        ep.pop_back();
  }

  net::http_client& http;
  etcd_options opts;
  /// The endpoint that answered last; tried first.
  std::atomic<size_t> preferred{0};

  /// One call: `path` with `body`, over the endpoints in turn from the
  /// preferred one; `cb` gets the reply object of a 200, or an error.
  void call(std::string path, json::object body, json_handler cb) {
    if (opts.endpoints.empty())
      return cb(unavailable("etcd: no endpoints configured"));
    auto st = std::make_shared<attempt_state>();
    st->path = std::move(path);
    st->body = json::serialize(body);
    st->cb = std::move(cb);
    st->first = preferred.load() % opts.endpoints.size();
    attempt(std::move(st));
  }

  struct attempt_state {
    std::string path;
    std::string body;
    json_handler cb;
    size_t first = 0;
    size_t tried = 0;
    /// Why each endpoint tried so far failed.
    std::string failures;
  };

  void attempt(std::shared_ptr<attempt_state> st) {
    auto idx = (st->first + st->tried) % opts.endpoints.size();
    net::request req;
    req.method = "POST";
    req.url = opts.endpoints[idx] + st->path;
    req.body = st->body;
    req.content_type = "application/json";
    req.timeout = opts.request_timeout;
    auto self = shared_from_this();
    http.async_send(std::move(req), [self, st, idx](caf::expected<net::response> res) mutable {
      self->on_reply(std::move(st), idx, std::move(res));
    });
  }

  void on_reply(std::shared_ptr<attempt_state> st, size_t idx, caf::expected<net::response> res) {
    const auto& ep = opts.endpoints[idx];
    auto next = [&](std::string why) {
      if (!st->failures.empty())
        st->failures += "; ";
      st->failures += ep + ": " + why;
      if (++st->tried < opts.endpoints.size())
        return attempt(std::move(st));
      st->cb(unavailable("etcd unreachable (" + st->failures + ")"));
    };
    if (!res) {
      if (code_of(res.error()) == ec::shutting_down)
        return st->cb(res.error());
      auto detail = detail_of(res.error());
      return next(detail.empty() ? std::string{to_string(code_of(res.error()))} : detail);
    }
    auto where = "etcd " + ep + st->path;
    json::error_code jec;
    auto parsed = json::parse(res->body, jec);
    const json::object* obj = jec ? nullptr : parsed.if_object();
    // An error reply: {"error": "...", "message": "...", "code": N}; inside a
    // streamed reply (keepalive) it arrives as {"error": {...}}.
    const json::object* err = nullptr;
    if (obj) {
      if (auto e = obj->if_contains("error")) {
        err = e->if_object() ? e->if_object() : obj;
      }
    }
    if (res->status == 503 && !err)
      return next("HTTP 503");
    if (err || res->status != 200) {
      int64_t code = -1;
      std::string msg;
      if (err) {
        if (!get_i64(*err, "code", code))
          code = -1;
        if (auto m = err->if_contains("message"); m && m->is_string())
          msg = std::string{m->get_string()};
        else if (auto m2 = err->if_contains("error"); m2 && m2->is_string())
          msg = std::string{m2->get_string()};
      }
      if (msg.empty())
        msg = "HTTP " + std::to_string(res->status);
      // 503 with an etcd error: no leader or a timeout inside this member;
      // another member may still answer.
      if (res->status == 503)
        return next(msg);
      preferred.store(idx);
      return st->cb(make_upstream_error(ec::cluster_unavailable, static_cast<int>(code),
                                        where + ": " + msg + " (HTTP "
                                          + std::to_string(res->status) + ")"));
    }
    if (!obj)
      return st->cb(unavailable(where + ": malformed reply (not a JSON object)"));
    preferred.store(idx);
    // Streamed replies (keepalive) wrap the message in {"result": ...}.
    if (auto r = obj->if_contains("result"); r && r->is_object())
      return st->cb(r->get_object());
    st->cb(*obj);
  }

  /// Adapts a JSON handler that parses the reply into `T`.
  template <class T, class Parse>
  json_handler parse_with(std::string what, etcd_handler<T> cb, Parse parse) {
    return [what = std::move(what), cb = std::move(cb),
            parse = std::move(parse)](caf::expected<json::object> reply) {
      if (!reply)
        return cb(reply.error());
      T out{};
      if (!parse(*reply, out))
        return cb(unavailable("etcd " + what + ": malformed reply"));
      cb(std::move(out));
    };
  }
};

// -- etcd_op --------------------------------------------------------------------

etcd_op etcd_op::put(std::string key, std::string value, int64_t lease) {
  etcd_op op;
  op.type = kind::put;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}

etcd_op etcd_op::get(std::string key, std::string range_end) {
  etcd_op op;
  op.type = kind::range;
  op.key = std::move(key);
  op.range_end = std::move(range_end);
  return op;
}

etcd_op etcd_op::erase(std::string key, std::string range_end) {
  etcd_op op;
  op.type = kind::erase;
  op.key = std::move(key);
  op.range_end = std::move(range_end);
  return op;
}

// -- etcd_client ------------------------------------------------------------------

etcd_client::etcd_client(net::http_client& http, etcd_options opts)
  : impl_(std::make_shared<impl>(http, std::move(opts))) {
}

etcd_client::~etcd_client() = default;

const etcd_options& etcd_client::options() const {
  return impl_->opts;
}

std::string etcd_client::prefix_end(std::string_view prefix) {
  std::string end{prefix};
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  // Every byte is 0xff (or the prefix is empty): the range reaches the end
  // of the key space, which etcd spells "\0".
  return std::string(1, '\0');
}

void etcd_client::async_grant(std::chrono::seconds ttl, etcd_handler<etcd_lease> cb) {
  impl_->call("/v3/lease/grant", json::object{{"TTL", i64(ttl.count())}},
              impl_->parse_with<etcd_lease>("lease grant", std::move(cb),
                                            [](const json::object& r, etcd_lease& out) {
                                              int64_t ttl = 0;
                                              if (!get_i64(r, "ID", out.id)
                                                  || !get_i64(r, "TTL", ttl)
                                                  || !header_revision(r, out.revision)
                                                  || out.id == 0 || ttl <= 0)
                                                return false;
                                              out.ttl = std::chrono::seconds{ttl};
                                              return true;
                                            }));
}

void etcd_client::async_keepalive(int64_t lease, etcd_handler<std::chrono::seconds> cb) {
  impl_->call("/v3/lease/keepalive", json::object{{"ID", i64(lease)}},
              impl_->parse_with<std::chrono::seconds>(
                "lease keepalive", std::move(cb), [](const json::object& r, std::chrono::seconds& out) {
                  int64_t ttl = 0;
                  if (!get_i64(r, "TTL", ttl) || ttl < 0)
                    return false;
                  out = std::chrono::seconds{ttl};
                  return true;
                }));
}

void etcd_client::async_revoke(int64_t lease, etcd_handler<int64_t> cb) {
  impl_->call("/v3/lease/revoke", json::object{{"ID", i64(lease)}},
              impl_->parse_with<int64_t>("lease revoke", std::move(cb), header_revision));
}

void etcd_client::async_put(std::string key, std::string value, int64_t lease,
                            etcd_handler<int64_t> cb) {
  impl_->call("/v3/kv/put", put_request(key, value, lease),
              impl_->parse_with<int64_t>("put", std::move(cb), header_revision));
}

void etcd_client::async_range(std::string key, std::string range_end, etcd_range_options opts,
                              etcd_handler<etcd_range> cb) {
  impl_->call("/v3/kv/range", range_request(key, range_end, opts),
              impl_->parse_with<etcd_range>("range", std::move(cb), parse_range));
}

void etcd_client::async_erase(std::string key, std::string range_end, etcd_handler<int64_t> cb) {
  impl_->call("/v3/kv/deleterange", erase_request(key, range_end),
              impl_->parse_with<int64_t>("delete", std::move(cb),
                                         [](const json::object& r, int64_t& out) {
                                           int64_t rev = 0;
                                           return header_revision(r, rev)
                                                  && get_i64(r, "deleted", out);
                                         }));
}

void etcd_client::async_txn(std::vector<etcd_compare> compare, std::vector<etcd_op> success,
                            std::vector<etcd_op> failure, etcd_handler<etcd_txn_result> cb) {
  json::array cmp;
  for (auto& c : compare)
    cmp.push_back(compare_json(c));
  json::object body{{"compare", std::move(cmp)},
                    {"success", ops_json(success)},
                    {"failure", ops_json(failure)}};
  impl_->call("/v3/kv/txn", std::move(body),
              impl_->parse_with<etcd_txn_result>(
                "txn", std::move(cb), [](const json::object& r, etcd_txn_result& out) {
                  if (!header_revision(r, out.revision) || !get_bool(r, "succeeded", out.succeeded))
                    return false;
                  auto resp = r.if_contains("responses");
                  if (!resp)
                    return true;
                  auto arr = resp->if_array();
                  if (!arr)
                    return false;
                  for (auto& item : *arr) {
                    auto o = item.if_object();
                    if (!o)
                      return false;
                    if (auto rr = o->if_contains("response_range")) {
                      auto ro = rr->if_object();
                      etcd_range range;
                      if (!ro || !parse_range(*ro, range))
                        return false;
                      out.ranges.push_back(std::move(range));
                    }
                  }
                  return true;
                }));
}

void etcd_client::async_acquire(std::string key, std::string value, int64_t lease,
                                etcd_handler<etcd_acquire> cb) {
  etcd_compare absent{key, etcd_compare::target::create_revision, etcd_compare::result::equal, 0};
  // Both branches read the key back, so that a success reports the
  // create_revision (the fencing epoch) of the put it made.
  std::vector<etcd_op> success{etcd_op::put(key, value, lease), etcd_op::get(key)};
  std::vector<etcd_op> failure{etcd_op::get(key)};
  async_txn({std::move(absent)}, std::move(success), std::move(failure),
            [lease, cb = std::move(cb)](caf::expected<etcd_txn_result> r) {
              if (!r)
                return cb(r.error());
              if (r->ranges.size() != 1 || r->ranges[0].kvs.size() > 1)
                return cb(unavailable("etcd acquire: malformed reply"));
              etcd_acquire out;
              if (r->ranges[0].kvs.empty()) {
                // The holder went away between compare and read: cannot
                // happen inside one txn, so the reply is inconsistent.
                return cb(unavailable("etcd acquire: malformed reply (key missing)"));
              }
              out.holder = std::move(r->ranges[0].kvs[0]);
              out.acquired = r->succeeded || (lease != 0 && out.holder.lease == lease);
              cb(std::move(out));
            });
}

// -- blocking forms -----------------------------------------------------------------

caf::expected<etcd_lease> etcd_client::grant(std::chrono::seconds ttl) {
  return wait_for<etcd_lease>(impl_->http, [&](auto cb) { async_grant(ttl, std::move(cb)); });
}

caf::expected<std::chrono::seconds> etcd_client::keepalive(int64_t lease) {
  return wait_for<std::chrono::seconds>(impl_->http,
                                        [&](auto cb) { async_keepalive(lease, std::move(cb)); });
}

caf::expected<int64_t> etcd_client::revoke(int64_t lease) {
  return wait_for<int64_t>(impl_->http, [&](auto cb) { async_revoke(lease, std::move(cb)); });
}

caf::expected<int64_t> etcd_client::put(std::string key, std::string value, int64_t lease) {
  return wait_for<int64_t>(impl_->http, [&](auto cb) {
    async_put(std::move(key), std::move(value), lease, std::move(cb));
  });
}

caf::expected<etcd_range> etcd_client::range(std::string key, std::string range_end,
                                             etcd_range_options opts) {
  return wait_for<etcd_range>(impl_->http, [&](auto cb) {
    async_range(std::move(key), std::move(range_end), opts, std::move(cb));
  });
}

caf::expected<int64_t> etcd_client::erase(std::string key, std::string range_end) {
  return wait_for<int64_t>(impl_->http, [&](auto cb) {
    async_erase(std::move(key), std::move(range_end), std::move(cb));
  });
}

caf::expected<etcd_txn_result> etcd_client::txn(std::vector<etcd_compare> compare,
                                                std::vector<etcd_op> success,
                                                std::vector<etcd_op> failure) {
  return wait_for<etcd_txn_result>(impl_->http, [&](auto cb) {
    async_txn(std::move(compare), std::move(success), std::move(failure), std::move(cb));
  });
}

caf::expected<etcd_acquire> etcd_client::acquire(std::string key, std::string value,
                                                 int64_t lease) {
  return wait_for<etcd_acquire>(impl_->http, [&](auto cb) {
    async_acquire(std::move(key), std::move(value), lease, std::move(cb));
  });
}

int etcd_code_of(const caf::error& err) {
  int code = -1;
  if (code_of(err) == ec::cluster_unavailable && wechat_errcode_of(err, code))
    return code;
  return -1;
}

} // namespace wh::cluster
