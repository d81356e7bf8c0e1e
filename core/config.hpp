#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "caf/expected.hpp"

namespace wh {

/// How an official-account app obtains its access_token.
enum class token_api {
  /// POST /cgi-bin/stable_token (default): repeat calls return the same token.
  stable,
  /// GET /cgi-bin/token: every call issues a new token and retires the old.
  classic,
};

/// One `[[app]]` entry.
struct app_config {
  std::string appid;
  /// The AppSecret. Never logged, never rendered.
  std::string secret;
  token_api api = token_api::stable;

  bool operator==(const app_config&) const = default;
};

/// One `[[component]]` entry (third-party platform).
struct component_config {
  std::string appid;
  std::string secret;
  /// Message-verification token set on the open platform.
  std::string token;
  /// 43-character EncodingAESKey.
  std::string encoding_aes_key;
  /// Reconciliation of the authorizers with api_get_authorizer_list every
  /// this many seconds (0 = off).
  uint32_t reconcile_interval_s = 6 * 3600;

  bool operator==(const component_config&) const = default;
};

/// One `[[client]]` entry: a service allowed to read tokens.
struct client_config {
  std::string name;
  /// Lowercase hex SHA-256 of the bearer key (the key itself is never stored).
  std::string key_sha256;
  /// "wx123" (an app), "wxcomp" (a component's own token), "wxcomp/wxauth"
  /// (one authorizer), "wxcomp/*" (a component and its authorizers), "*".
  std::vector<std::string> scopes;
  /// May use /admin/*.
  bool admin = false;
  /// The key may also travel in the path, `/k/<key>/client/...`, for clients
  /// that cannot send headers (unchanged elixir_wechat). Redacted everywhere.
  bool path_key = false;
  /// Source networks ("10.1.0.0/16", "::1/128") that identify this client
  /// without a key; empty = key only. A client needs a key or networks.
  std::vector<std::string> networks;

  /// Member-wise (a reload compares clients field by field).
  bool operator==(const client_config&) const = default;
};

/// `[hub.tls]`: HTTPS for the front end.
struct tls_config {
  std::string cert;
  std::string key;
  /// When set, clients must present a certificate signed by this CA (mTLS).
  std::string client_ca;

  bool enabled() const { return !cert.empty(); }
};

/// `[cluster]`: this node's place in a multi-node hub (see cluster/node.hpp).
struct cluster_config {
  /// Unique name of this node ([A-Za-z0-9_-]{1,32}); it feeds the ownership hash.
  std::string node_id;
  /// CAF middleman endpoint ("host:port") this node publishes on.
  std::string listen_host;
  uint16_t listen_port = 0;
  /// The endpoint the other nodes dial to reach this one ("host:port":
  /// registered in etcd, sent in the hello); empty = `listen`. Set it when
  /// the nodes reach each other through a NAT, a port forward or a proxy.
  std::string advertise;
  /// The endpoint the other nodes dial (`advertise`, else `listen`).
  std::string advertised_endpoint() const {
    return advertise.empty() ? listen_host + ":" + std::to_string(listen_port) : advertise;
  }
  /// The other nodes' endpoints (static membership).
  std::vector<std::string> peers;
  /// Copies of every key's state, the owner's included.
  uint32_t replicas = 2;
  /// A starting node waits this long to meet its peers before it owns keys alone.
  uint32_t join_grace_ms = 1500;
  /// etcd client URLs ("http://127.0.0.1:2379"), tried in turn; empty = no
  /// etcd (a single node, or static `peers`). See cluster/etcd_membership.hpp.
  std::vector<std::string> etcd;
  /// TTL of this node's etcd lease, milliseconds (etcd counts whole seconds).
  uint32_t lease_ttl_ms = 3000;
  /// Node links over TLS (caf_openssl); all three or none.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;

  bool enabled() const { return !node_id.empty(); }
};

/// The whole validated configuration of a hub process.
struct hub_config {
  /// Where the config was loaded from (for messages), empty for defaults.
  std::string source;

  // -- [hub] ------------------------------------------------------------------
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 4000;
  std::string data_dir = "var/hub";
  /// HTTP worker threads; 0 = number of cores.
  unsigned http_threads = 0;
  /// Largest accepted request body in bytes.
  uint32_t max_body_bytes = 64 * 1024;
  /// Largest body of an admin bulk import (POST /admin/components/{C}/authorizers):
  /// 10,000 authorizers with refresh tokens of up to ~700 bytes.
  uint32_t max_import_body_bytes = 8 * 1024 * 1024;
  /// Connections one peer address may hold open; 0 = no cap (the default:
  /// behind a load balancer or NAT every client shares one address).
  uint32_t max_connections_per_peer = 0;
  /// Time allowed to read one request (headers + body), seconds.
  uint32_t request_timeout_s = 15;
  /// Idle keep-alive connections are closed after this many seconds.
  uint32_t idle_timeout_s = 60;
  /// Refresh this many seconds before expiry (at most 300 keeps the old token
  /// valid until its own expiry, see WeChat's 5-minute overlap).
  uint32_t refresh_margin_s = 180;
  /// Spread refreshes over up to this many extra seconds earlier.
  uint32_t refresh_jitter_s = 90;
  /// Virtual activation (single-node hubs): an app's or authorizer's actor
  /// stops after this many seconds without work; 0 = every actor stays resident.
  uint32_t actor_idle_s = 60;
  /// At most this many token actors run at once; the least recently started
  /// idle ones are stopped first (a cold pass over a million keys).
  uint32_t max_active_actors = 5000;
  /// Keys the refresh schedule wakes per second (overdue keys after a
  /// restart refresh at this rate).
  uint32_t schedule_rate = 500;
  /// Accepted push timestamp skew, seconds (third-party pushes).
  uint32_t push_window_s = 300;
  std::string log_level = "info";
  /// "text" (default) or "json" (one object per line, for log pipelines).
  std::string log_format = "text";
  /// Serve without [[client]] keys on a non-loopback address (logged loudly).
  bool allow_open = false;
  /// Master key for secrets at rest; empty = "<data_dir>/master.key" (created).
  std::string master_key_file;
  /// Admin audit log (JSON lines); empty = "<data_dir>/audit.log".
  std::string audit_log;
  tls_config tls;

  // -- [wechat] ---------------------------------------------------------------
  std::string api_base = "https://api.weixin.qq.com";
  /// Timeout of one upstream call, milliseconds.
  uint32_t upstream_timeout_ms = 10'000;
  /// Optional CA bundle for upstream TLS (default: system trust store).
  std::string upstream_ca_file;

  std::vector<app_config> apps;
  std::vector<component_config> components;
  std::vector<client_config> clients;
  cluster_config cluster;
};

/// Looks up an environment variable; injectable for tests.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
std::optional<std::string> process_env(const std::string& name);

/// Parses and validates TOML text. `source` names the file in messages.
/// Errors are `ec::invalid_config` with a message "FILE: KEY: PROBLEM".
caf::expected<hub_config> parse_config(const std::string& text, const std::string& source,
                                       const env_lookup& env = process_env);

/// Reads and validates the file at `path`.
caf::expected<hub_config> load_config(const std::string& path,
                                      const env_lookup& env = process_env);

/// Whether `cidr` is "address/bits" (IPv4 or IPv6).
bool valid_cidr(std::string_view cidr);

/// Whether `id` is a well-formed appid: 1-64 characters of [A-Za-z0-9_-].
bool valid_appid(std::string_view id);

/// Splits "host:port" (port may be 0 = any); false on malformed input.
bool split_host_port(const std::string& str, std::string& host, uint16_t& port);

} // namespace wh
