#pragma once

// A hub's session with etcd (`[cluster] etcd`): the HTTP client, the etcd
// client and this node's etcd_membership, wired to the node and to the key
// actors' fencing.
//
// - attach(node): every view etcd reports goes to node::on_membership, then
//   the lease and view threads start; it waits (bounded) for this node's
//   registration so that a starting node knows the owners before it serves.
// - may_act(): the fencing check the registry puts before every upstream
//   call (actors/membership.hpp lease_check): the lease deadline on this
//   node's own clock. A change of its answer is logged once.

#include <atomic>
#include <chrono>
#include <memory>

#include "actors/membership.hpp"
#include "cluster/etcd_client.hpp"
#include "cluster/etcd_membership.hpp"
#include "core/config.hpp"

namespace wh::net {
class http_client;
}

namespace wh::cluster {

class node;

/// This hub's etcd session; see the file comment.
class etcd_session {
public:
  explicit etcd_session(const cluster_config& cfg);

  /// Calls stop().
  ~etcd_session();

  etcd_session(const etcd_session&) = delete;
  etcd_session& operator=(const etcd_session&) = delete;

  /// The fencing check for registry::options::may_act (valid as long as
  /// this session lives): the lease is alive and, once a node is attached,
  /// the node processed a view that holds it (a node whose lease lapsed
  /// and came back acts only after its rejoin, not under its older state).
  actors::lease_check may_act();

  /// Feeds `n` every membership view, starts the session and waits up to
  /// `timeout` for this node's registration; false when it is not
  /// registered yet (it keeps trying in the background).
  bool attach(node& n, std::chrono::milliseconds timeout);

  /// Revokes the lease (the node leaves the live set at once) and stops the
  /// session's threads; idempotent.
  void stop();

  etcd_membership& membership() { return *membership_; }

private:
  std::shared_ptr<net::http_client> http_;
  std::unique_ptr<etcd_client> etcd_;
  std::unique_ptr<etcd_membership> membership_;
  /// The last answer of may_act (logged on change).
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  /// The attached node's processed lease (node::lease), null before attach:
  /// a node acts only once it processed a view holding its current lease.
  std::shared_ptr<const std::atomic<int64_t>> node_lease_;
  std::shared_ptr<std::atomic<const std::atomic<int64_t>*>> node_lease_ptr_ =
    std::make_shared<std::atomic<const std::atomic<int64_t>*>>(nullptr);
  std::string node_id_;
};

} // namespace wh::cluster
