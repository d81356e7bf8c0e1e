#pragma once

#include <string>
#include <vector>

#include "core/type_ids.hpp"
#include "persistence/records.hpp"
#include "wechat/api.hpp"

namespace wh::actors {

/// A credential (token or ticket) as actors exchange it.
using credential = persistence::credential;

/// One call to the WeChat API, relative to the configured api_base.
struct upstream_call {
  /// Metrics label, e.g. "stable_token" (never carries parameters).
  std::string endpoint;
  std::string method;
  /// Path and query, e.g. "/cgi-bin/token?grant_type=...". May carry secrets.
  std::string target;
  std::string body;
  /// The key (appid, component or "component/authorizer") the call is made
  /// for: the quota book counts calls per key (GET /admin/quota).
  std::string key{};
};

/// The upstream call that sends `r` for `key` (empty: the calling actor's key).
inline upstream_call to_call(wechat::request r, std::string key = {}) {
  return upstream_call{std::move(r.endpoint), std::move(r.method), std::move(r.target), std::move(r.body),
                       std::move(key)};
}

/// One durable write for the store actor: puts and deletes applied atomically.
struct store_write {
  struct op {
    std::string key;
    std::string value;
    bool erase = false;
  };
  std::vector<op> ops;

  /// Adds a put of `value` at `key`.
  store_write& put(std::string key, std::string value) {
    ops.push_back(op{std::move(key), std::move(value), false});
    return *this;
  }
};

/// WeChat's answer: HTTP status and raw body.
struct upstream_reply {
  unsigned status = 0;
  std::string body;
};

/// The whole stored state of one key as replicated between nodes: every
/// record under the key's prefix (field name relative to the prefix, value)
/// and the state version `seq` (also one of the records).
struct key_state {
  std::string key;
  /// key_kind as a number.
  uint8_t kind = 0;
  uint64_t seq = 0;
  /// Owner's wall clock (unix ms) when it sent the state (replication lag).
  int64_t sent_ms = 0;
  /// field, value, field, value, ...
  std::vector<std::string> fields;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, key_state& x) {
  return f(caf::meta::type_name("key_state"), x.key, x.kind, x.seq, x.sent_ms, x.fields);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upstream_call& x) {
  return f(caf::meta::type_name("upstream_call"), x.endpoint, x.method, x.target, x.body,
           x.key);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_write::op& x) {
  return f(caf::meta::type_name("store_op"), x.key, x.value, x.erase);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_write& x) {
  return f(caf::meta::type_name("store_write"), x.ops);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upstream_reply& x) {
  return f(caf::meta::type_name("upstream_reply"), x.status, x.body);
}

} // namespace wh::actors
