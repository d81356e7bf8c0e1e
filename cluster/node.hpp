#pragma once

// One node of a multi-node hub: membership, ownership,
// replication and failover, all decided by one CAF actor per node.
//
// Protocol between node actors (CAF remoting; every message is ordered per
// connection):
// - `(hello_atom, id, endpoint, ready, router)` -> the same of the other node: sent
//   by the side that dialed (the one whose endpoint sorts first; peers must be
//   listed as the other nodes' `listen` values); both sides then monitor each other and add the peer to
//   their live set. A peer that was ready when we met hands over the keys we
//   now own (see sync) before we start them.
// - `(sync_atom, version_atom, id, vector<key>)` -> `vector<uint64_t>`: the
//   versions the receiver stores of keys the sender is about to hand over
//   (0 = none, or the receiver runs the key); up to 20,000 keys per request.
// - `(sync_atom, id, vector<key_state>, more)`: the sender's states of keys
//   the receiver owns or replicates whose versions differ from the ones it
//   reported (merged by meaning there, see actors/state_merge.hpp); sent after every membership change, once the sender stopped
//   the actors of keys that moved (and their writes reached storage). The
//   message with `more == false` ends the handover (the three-argument form
//   without `more` is a complete one).
// - `(repl_atom, key_state)`: an owner's state change, sent to every live
//   node (not only the key's `replicas - 1` next nodes), so that no node
//   keeps serving a token its owner replaced. The receiver merges it into
//   its copy by meaning (actors/state_merge.hpp), whatever the versions.
// - Key requests travel between the nodes' key routers (actors/key_router.hpp):
//   a router delegates a request for a key another node owns to that node's
//   router, whose handle came with the hello. The node actor keeps
//   membership and replication, and decides when this node starts a key:
// - `(activate_atom, key, create)` -> `key_actor` (from the local router):
//   the key's actor, started when this node owns the key (requests that
//   arrive while the node is still catching up wait briefly).
// - `(import_atom, component, [appid, refresh_token, ...])`: imports the
//   authorizers this node owns (registry::import_local; one durable batch).
//
// Membership with `[cluster] etcd` (see on_membership): the live set is
// etcd's (cluster/etcd_membership.hpp), every node computes owners from the
// same revision, and the peers to dial are the endpoints registered there
// (`peers` is ignored). A CAF connection going down then changes no owner;
// only a lease expiring in etcd does. Without etcd, the live set is the
// peers this node is connected to.
//
// Ownership: rendezvous hashing over the live nodes (cluster/ownership.hpp).
// A node runs a key's actor only while it owns the key, so only the owner
// calls WeChat. Losing the owner (down_msg from the middleman) makes the
// first replica the owner; it already stores the state and serves it
// without calling WeChat.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/expected.hpp"

#include "actors/membership.hpp"
#include "cluster/etcd_membership.hpp"
#include "cluster/ownership.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"

namespace wh {
class metrics;
namespace actors {
class registry;
}
} // namespace wh

namespace wh::cluster {

/// What the HTTP threads route by; replaced (never mutated) by the node actor.
struct view {
  std::string self;
  /// Caught up with the peers and running the keys it owns.
  bool ready = false;
  /// The live nodes, this one included.
  ownership own;
  /// Node actor per live node id (this node's included).
  std::unordered_map<std::string, caf::actor> actors;
  /// Key router per live peer (this node's is the registry's).
  std::map<std::string, actors::key_router_actor> routers;
  uint32_t replicas = 1;
  /// Keys this node owns (their actors run here while they have work).
  size_t owned_keys = 0;
  /// The most nodes live at once since this node started (this one included).
  size_t most_live = 1;
};

/// Opens a connection to the node actor published at host:port (blocking;
/// plain CAF remoting or caf_openssl).
using connector = std::function<caf::expected<caf::actor>(const std::string& host, uint16_t port)>;

struct node_options {
  cluster_config cfg;
  /// Time between connection attempts to unreachable peers.
  caf::timespan retry = std::chrono::seconds(1);
  /// How long a request for a key that is being handed over may wait.
  caf::timespan park_timeout = std::chrono::seconds(5);
  /// Wall clock for the join wait and the replication lag (nullptr: the
  /// system clock); must outlive the node.
  const wh::clock* clock = nullptr;
  /// Runs the node's RocksDB reads and writes on a detached actor (tests turn
  /// this off to step them on the deterministic scheduler).
  bool detached_io = true;
};

/// Registers the message types node actors exchange (call on every node's
/// config before the actor system starts).
void add_message_types(caf::actor_system_config& cfg);

/// Hands `v` to the node actor `node_actor` (see node::on_membership); safe
/// after the node stopped.
void post_membership(const caf::actor& node_actor, const membership_view& v);

/// A node of the cluster: spawns the node actor and publishes the view.
class node {
public:
  node(caf::actor_system& sys, actors::registry& reg, caf::actor store, metrics* stats,
       node_options opts, connector connect);
  ~node();

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// The node actor (publish it on the middleman at cfg.listen).
  const caf::actor& actor() const { return actor_; }

  /// With `[cluster] etcd`: etcd's view of the live nodes, which decides
  /// the live set, every key's owner and the peers to connect to (hand it
  /// every view etcd_membership reports; a stale view changes nothing).
  void on_membership(const membership_view& v);

  /// Starts connecting to the peers (call after publishing, once the
  /// registry holds every definition: until then the node actor leaves
  /// peers' hellos and handovers, and etcd's views, in its mailbox).
  void start();

  /// The node actor of `key`'s owner (this node's own included), or invalid.
  caf::actor owner_node(std::string_view key) const;

  /// Who serves `key` (the router's membership view, actors/membership.hpp).
  actors::key_owner owner_of(std::string_view key) const;

  std::shared_ptr<const view> current() const { return view_->load(std::memory_order_acquire); }

  /// Whether the front end may answer from the credentials this node holds
  /// (its published snapshots): not before it caught up with its peers
  /// after a start or a rejoin, since what it stored may have been replaced
  /// meanwhile; reads then go to the key's owner. Lock-free.
  bool serves_held() const;

  /// With etcd: the lease of this node's registration in the last view the
  /// node actor processed (etcd_membership::may_serve); 0 before, -1 when
  /// that view did not hold this node. Lock-free.
  int64_t lease() const;

  /// The cell lease() reads (shared: it outlives the node for its readers).
  std::shared_ptr<const std::atomic<int64_t>> lease_cell() const { return lease_; }

  /// Stops the node actor.
  void stop();

  /// Applies an admin change (definitions of apps and components) that a
  /// peer relayed; set before start().
  using admin_handler = std::function<void(std::string method, std::string target, std::string body,
                                           std::string content_type)>;
  void on_relayed_admin(admin_handler fn) { *admin_ = std::move(fn); }

  /// Relays an admin change accepted on this node to every live peer.
  void relay_admin(const std::string& method, const std::string& target, const std::string& body,
                   const std::string& content_type) const;

private:
  caf::actor actor_;
  std::shared_ptr<std::atomic<std::shared_ptr<const view>>> view_;
  std::shared_ptr<admin_handler> admin_ = std::make_shared<admin_handler>();
  std::shared_ptr<std::atomic<int64_t>> lag_ms_ = std::make_shared<std::atomic<int64_t>>(0);
  std::shared_ptr<std::atomic<bool>> ready_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<int64_t>> lease_ = std::make_shared<std::atomic<int64_t>>(0);
};

} // namespace wh::cluster
