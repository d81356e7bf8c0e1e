#pragma once

// An etcd v3 client over etcd 3.4's JSON gateway (`POST /v3/...`): keys and
// values travel base64, int64 fields as JSON strings, and fields holding
// their default value (0, false, empty) are left out of replies. Requests go
// through our own net::http_client; replies are parsed with Boost.JSON.
//
// Every call has an asynchronous form whose handler runs on an I/O thread of
// the http_client (it must not block), and a blocking form for threads that
// may wait: never a CAF scheduler thread, never an I/O thread of the client.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"

namespace wh::net {
class http_client;
} // namespace wh::net

namespace wh::cluster {

/// One key as etcd stores it (key and value decoded).
struct etcd_kv {
  std::string key;
  std::string value;
  /// Revision of the key's creation (the put that made it exist).
  int64_t create_revision = 0;
  /// Revision of the key's last change.
  int64_t mod_revision = 0;
  int64_t version = 0;
  /// The lease the key is attached to, 0 = none.
  int64_t lease = 0;
};

/// The answer to a range read.
struct etcd_range {
  /// The store revision the read saw (the reply header's revision).
  int64_t revision = 0;
  std::vector<etcd_kv> kvs;
  /// Number of keys in the range (also set for count-only reads).
  int64_t count = 0;
};

/// Options of a range read.
struct etcd_range_options {
  /// Read the store as of this revision (0 = current). Compacted revisions
  /// fail with an etcd error.
  int64_t revision = 0;
  /// Only count the keys.
  bool count_only = false;
  /// At most this many keys (0 = all).
  int64_t limit = 0;
};

/// A granted lease.
struct etcd_lease {
  int64_t id = 0;
  /// The TTL etcd granted (it may raise a requested TTL to its minimum).
  std::chrono::seconds ttl{0};
  int64_t revision = 0;
};

/// One comparison of a transaction: `target(key) result value`.
struct etcd_compare {
  enum class target { create_revision, mod_revision, version };
  enum class result { equal, not_equal, greater, less };
  std::string key;
  target what = target::create_revision;
  result op = result::equal;
  int64_t value = 0;
};

/// One operation of a transaction branch.
struct etcd_op {
  enum class kind { put, range, erase };
  kind type = kind::range;
  std::string key;
  /// Range end for range and erase ("" = the single key).
  std::string range_end;
  /// Put only.
  std::string value;
  int64_t lease = 0;

  static etcd_op put(std::string key, std::string value, int64_t lease = 0);
  static etcd_op get(std::string key, std::string range_end = {});
  static etcd_op erase(std::string key, std::string range_end = {});
};

/// The outcome of a transaction.
struct etcd_txn_result {
  /// Whether all comparisons held (the success branch ran).
  bool succeeded = false;
  int64_t revision = 0;
  /// One entry per range operation of the branch that ran, in order.
  std::vector<etcd_range> ranges;
};

/// The outcome of a fenced acquire (see etcd_client::async_acquire).
struct etcd_acquire {
  /// Whether the caller's lease holds the key now.
  bool acquired = false;
  /// The key as etcd holds it: on success the caller's (its create_revision
  /// is the fencing epoch), otherwise the current holder's.
  etcd_kv holder;
};

/// Where and how to reach etcd.
struct etcd_options {
  /// Client URLs ("http://127.0.0.1:2379"), tried in turn.
  std::vector<std::string> endpoints;
  /// Deadline of one request to one endpoint.
  std::chrono::milliseconds request_timeout{1000};
};

/// Completion handler of an asynchronous call.
template <class T>
using etcd_handler = std::function<void(caf::expected<T>)>;

/// A thread-safe etcd v3 client. Errors are ec::cluster_unavailable with a
/// message naming the endpoint: unreachable (after trying every endpoint),
/// an etcd error (its message, with the gRPC code as context, see
/// etcd_code_of), or a malformed reply. An endpoint that cannot be reached
/// or answers 503 (no leader, timeout inside etcd) passes the request to the
/// next one; the last one that answered is tried first next time.
/// `http` must outlive the client's pending calls (shut it down first).
class etcd_client {
public:
  etcd_client(net::http_client& http, etcd_options opts);
  ~etcd_client();

  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  const etcd_options& options() const;

  // -- asynchronous API (handlers run on an http_client I/O thread) ----------

  /// Grants a lease of `ttl` (whole seconds, as etcd counts them).
  void async_grant(std::chrono::seconds ttl, etcd_handler<etcd_lease> cb);

  /// Renews `lease` once; yields its TTL, or 0 when etcd no longer knows it
  /// (expired or revoked).
  void async_keepalive(int64_t lease, etcd_handler<std::chrono::seconds> cb);

  /// Revokes `lease`, deleting its keys; yields the revision.
  void async_revoke(int64_t lease, etcd_handler<int64_t> cb);

  /// Puts `key` = `value` (attached to `lease` unless 0); yields the revision.
  void async_put(std::string key, std::string value, int64_t lease, etcd_handler<int64_t> cb);

  /// Reads [`key`, `range_end`) ("" = the single key).
  void async_range(std::string key, std::string range_end, etcd_range_options opts,
                   etcd_handler<etcd_range> cb);

  /// Deletes [`key`, `range_end`); yields the number of deleted keys.
  void async_erase(std::string key, std::string range_end, etcd_handler<int64_t> cb);

  /// Runs `success` if every comparison holds, else `failure`, atomically.
  void async_txn(std::vector<etcd_compare> compare, std::vector<etcd_op> success,
                 std::vector<etcd_op> failure, etcd_handler<etcd_txn_result> cb);

  /// Fenced acquire: puts `key` = `value` under `lease` if the key does not
  /// exist (create_revision == 0); otherwise reads its holder. Retrying after
  /// a lost reply is safe: a key already held by `lease` counts as acquired.
  void async_acquire(std::string key, std::string value, int64_t lease,
                     etcd_handler<etcd_acquire> cb);

  // -- blocking API (not on a CAF scheduler thread or an http I/O thread) ----

  caf::expected<etcd_lease> grant(std::chrono::seconds ttl);
  caf::expected<std::chrono::seconds> keepalive(int64_t lease);
  caf::expected<int64_t> revoke(int64_t lease);
  caf::expected<int64_t> put(std::string key, std::string value, int64_t lease = 0);
  caf::expected<etcd_range> range(std::string key, std::string range_end = {},
                                  etcd_range_options opts = {});
  caf::expected<int64_t> erase(std::string key, std::string range_end = {});
  caf::expected<etcd_txn_result> txn(std::vector<etcd_compare> compare,
                                     std::vector<etcd_op> success,
                                     std::vector<etcd_op> failure);
  caf::expected<etcd_acquire> acquire(std::string key, std::string value, int64_t lease);

  /// The range end that selects every key starting with `prefix`.
  static std::string prefix_end(std::string_view prefix);

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

/// The gRPC status code etcd reported in `err` (5 = not found, 11 = out of
/// range such as a compacted or future revision, ...), or -1.
int etcd_code_of(const caf::error& err);

} // namespace wh::cluster
