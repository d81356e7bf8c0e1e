#pragma once

// The one question a node's key router asks the cluster: who serves a key.
// Today the answer comes from the cluster's membership view (rendezvous
// hashing over the live nodes, cluster/ownership.hpp); the issue on a safe
// cluster replaces it with etcd leases, so this seam stays this small.

#include <functional>
#include <string_view>

#include "caf/atom.hpp"

#include "actors/key_protocol.hpp"

namespace wh::actors {

/// Where a key is served, as this node sees the cluster now.
struct key_owner {
  /// This node owns the key: its actor runs here.
  bool here = false;
  /// Another node owns it: that node's router (invalid: no live owner).
  key_router_actor router;
};

/// `(route_atom, key)` -> `key_router_actor`, asked of the node actor
/// (registry::cluster_link::node) when the owner is another node this node
/// has not met yet (a node that just started): the owner's router once the
/// connection is up, an invalid handle when the key is now this node's, or an
/// error when the owner left. The router bounds the wait (router_options).
using route_atom = caf::atom_constant<caf::atom("route")>;

/// Answers for any key; thread-safe, never blocks.
using owner_lookup = std::function<key_owner(std::string_view key)>;

/// Fencing: whether this node may act as an owner now (call WeChat). In a
/// cluster with etcd it answers whether the node's lease is alive on its own
/// clock (etcd_membership::lease_alive); empty = always (a single node).
/// Thread-safe, never blocks; checked right before every upstream call.
using lease_check = std::function<bool()>;

} // namespace wh::actors
