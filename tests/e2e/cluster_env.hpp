#pragma once

// One wechat-sim plus N wechat-hub processes forming a cluster on loopback,
// started as real processes. Every node gets the same apps (and, optionally,
// the component of hub_env.hpp), its own data_dir and HTTP port (port file),
// and a fixed CAF middleman port picked free at construction. The processes
// are killed with the env, and also when the test binary aborts (CAF 0.17's
// CAF_REQUIRE and uncaught exceptions abort without running destructors).

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "net/http_client.hpp"
#include "tests/e2e/hub_env.hpp"
#include "tests/support/etcd.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace wh::test {

/// An official account both the simulator and every node know.
struct cluster_app {
  std::string appid;
  std::string secret;
  bool classic = false;

  /// The simulator path its access token comes from.
  std::string token_path() const { return classic ? "/cgi-bin/token" : "/cgi-bin/stable_token"; }
};

struct cluster_options {
  std::vector<cluster_app> apps;
  /// Adds component_toml() to every node and the component to the simulator.
  bool component = false;
  std::size_t nodes = 3;
  uint32_t replicas = 2;
  uint32_t join_grace_ms = 1500;
  /// etcd client URL: the nodes take membership and leases from it (and get
  /// no `peers`); empty = the env starts an etcd of its own for them.
  std::string etcd = {};
  uint32_t lease_ttl_ms = 1000;
  /// Per node (by index): its own etcd URL in place of `etcd` (e.g. a
  /// cuttable proxy in front of etcd, tests/support/tcp_proxy.hpp).
  std::vector<std::string> etcd_of = {};
  /// Per node: the `[cluster] advertise` endpoint for its CAF port (the
  /// argument; e.g. a proxy forwarding to it); unset = none.
  std::function<std::string(std::size_t node, uint16_t cluster_port)> advertise = {};
  /// Extra lines for every node's `[hub]` table (e.g. "refresh_margin_s = 30").
  std::string hub_extra = {};
  /// Extra wechat-sim arguments (e.g. {"--token-lifetime", "40"}).
  std::vector<std::string> sim_args = {};
};

/// One hub process of the cluster.
struct cluster_node {
  /// "n1", "n2", ...
  std::string id;
  /// Fixed CAF middleman port (the same across restarts).
  uint16_t cluster_port = 0;
  /// HTTP port of the current process (changes on restart).
  uint16_t http_port = 0;
  process proc;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_port); }
};

/// What GET /healthz said.
struct health {
  unsigned status = 0;
  std::string state;
  std::vector<std::string> live; // sorted
  std::string body;
};

class cluster_env {
public:
  /// Starts the simulator (not the nodes).
  explicit cluster_env(cluster_options opts);
  ~cluster_env();

  cluster_env(const cluster_env&) = delete;
  cluster_env& operator=(const cluster_env&) = delete;

  /// Starts every node at once and waits until all are ready and see each
  /// other (retrying with fresh cluster ports if a node cannot bind its own).
  void start_all(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  /// Starts (or restarts, same data_dir) node `i`; waits for its HTTP port only.
  void start_node(std::size_t i);

  /// kill -9 of node `i`.
  void kill_node(std::size_t i);

  /// Rewrites node `i`'s config from `opts` and sends SIGHUP; true once the
  /// node counted the reload as applied (false if rejected or after 10 s).
  bool reload_node(std::size_t i);

  /// Waits until each of `nodes` answers /healthz 200, "ready", and lists
  /// exactly `nodes` as live. Returns false (and a description in `why`) on timeout.
  bool wait_ready(const std::vector<std::size_t>& nodes, std::chrono::milliseconds timeout,
                  std::string* why = nullptr);

  health healthz(std::size_t i);

  /// HTTP to node `i` / the simulator. Never throws: a transport failure (a
  /// dead node) is status 0 with the error in the body.
  http_result node(std::size_t i, const std::string& method, const std::string& target,
                   const std::string& body = {}, const std::string& content_type = {});
  http_result sim(const std::string& method, const std::string& target, const std::string& body = {});

  /// Upstream calls the simulator saw for `path` and `appid`.
  int64_t sim_calls(const std::string& path, const std::string& appid);
  /// All upstream calls the simulator saw.
  int64_t sim_total();

  /// GET /client/access_token?appid=A[&authorizer_appid=B] on node `i`: the
  /// token, or "<status N reason>".
  std::string token(std::size_t i, const std::string& appid, const std::string& authorizer = {});

  /// GET /admin/cluster?key=K on node `i` (empty object on failure).
  boost::json::object cluster_info(std::size_t i, const std::string& key);
  /// The owner node id of `key` according to node `i` ("" if unknown).
  std::string owner_of(const std::string& key, std::size_t asked = 0);
  /// The replica node ids of `key` (owner first) according to node `i`.
  std::vector<std::string> replicas_of(const std::string& key, std::size_t asked = 0);

  /// GET /admin/state?appid=...: access_token.version (-1 if absent).
  int64_t state_version(std::size_t i, const std::string& appid, const std::string& authorizer = {});

  /// A sample of node `i`'s /metrics: the value of `series` (a name with its
  /// labels); for a bare name, the sum of all its samples whatever their
  /// labels (0 when missing).
  double metric(std::size_t i, const std::string& series);

  /// Index of the node called `id` (nodes.size() if none).
  std::size_t index_of(const std::string& id) const;

  std::vector<std::size_t> all() const;
  std::vector<std::size_t> all_but(std::size_t i) const;

  std::string node_log(std::size_t i) const;
  std::string sim_log() const { return read_file(dir / "sim.log"); }
  /// The last `lines` lines of every node's log, labelled (for failure messages).
  std::string log_tails(std::size_t lines = 40) const;

  const std::string& sim_url() const { return sim_url_; }

  cluster_options opts;
  /// Node links over TLS with node.crt, node.key and ca.crt of this
  /// scripts/dev-certs directory (plain CAF remoting when empty); set
  /// before the nodes start.
  std::string tls_dir;
  temp_dir dir;
  process sim_proc;
  uint16_t sim_port = 0;
  std::vector<cluster_node> nodes;
  net::http_client client;

private:
  std::string config_of(std::size_t i) const;
  void spawn_node(std::size_t i);
  void await_port(std::size_t i);

  std::string sim_url_;
  /// The env's own etcd (when opts.etcd was empty).
  std::unique_ptr<etcd_server> etcd_;
};

/// Free TCP ports on 127.0.0.1, preferably below the ephemeral port range
/// (bound together, then closed).
std::vector<uint16_t> free_ports(std::size_t n);

} // namespace wh::test
