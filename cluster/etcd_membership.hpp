#pragma once

// This node's session in etcd and its view of the live nodes.
//
// The session holds a lease (the configured TTL) and registers the node
// under `<prefix><node_id>` with its CAF endpoint as the value, attached to
// the lease: when the node dies or pauses past the TTL, etcd deletes the key
// and every node's view drops it. A keepalive goes out every TTL/3.
//
// Fencing on the node's own clock: the lease is known alive until the time
// the last successful keepalive (or the grant) was *sent* plus the TTL. etcd
// counts its expiry from when it *received* that request, so the local
// deadline always passes first; a process that was paused and resumes sees
// its deadline passed before it can act. Owners check lease_alive() before
// every upstream call.
//
// The view: the live set is read from etcd every poll interval (200 ms by
// default). Our http_client delivers complete responses only, so it cannot
// follow the gateway's streamed watch; one small read five times a second is
// cheap for etcd. Every read takes the registrations and the membership
// record `<prefix>membership` in one snapshot. The record describes a live
// set ("n1@12,n2@40": node ids with their registration revisions); a node
// that reads a set the record does not describe writes it (compare-and-swap
// on the record's mod_revision, so one writer wins). The view's revision is
// the record's mod_revision: every node that sees the same set reports the
// same revision, it only grows, and a departure (a lease expiring deletes a
// key without any write of ours) moves it like an arrival does.
//
// When etcd cannot be reached the view keeps the last membership it read
// and reports itself stale once the lease deadline passes (or no read has
// succeeded for a TTL). Each state change is logged once, not each attempt.
//
// Two threads of its own (lease, view) make blocking etcd calls; nothing
// here runs on a CAF scheduler thread. The change handler runs on the view
// thread and must not block (hand the view to an actor with anon_send).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cluster/etcd_client.hpp"
#include "cluster/ownership.hpp"

namespace wh::cluster {

/// One live node as registered in etcd.
struct etcd_member {
  std::string node_id;
  /// Its CAF endpoint ("host:port").
  std::string endpoint;
  /// Revision of its registration (a restarted node registers anew).
  int64_t create_revision = 0;
  /// Revision of its last change.
  int64_t mod_revision = 0;
  int64_t lease = 0;

  bool operator==(const etcd_member&) const = default;
};

/// A snapshot of the membership view.
struct membership_view {
  /// Live nodes, sorted by node id.
  std::vector<etcd_member> nodes;
  /// The revision of the membership record that describes this set (the
  /// same on every node that sees the set; 0 = never read).
  int64_t revision = 0;
  /// The lease deadline passed or etcd could not be read for a TTL: the
  /// nodes are the last known ones and this node must not act as an owner.
  bool stale = true;
};

/// Options of an etcd_membership.
struct membership_options {
  /// This node's id (the ownership hash input).
  std::string node_id;
  /// This node's CAF endpoint, stored as the registration's value.
  std::string endpoint;
  /// Key prefix: registrations live under `<prefix>nodes/`, the membership
  /// record at `<prefix>membership`.
  std::string prefix = "/wechat-hub/";
  /// Lease TTL; etcd counts whole seconds, so it grants at least the
  /// next whole second, while the local deadline uses this value.
  std::chrono::milliseconds lease_ttl{3000};
  /// Keepalive period; 0 = lease_ttl / 3.
  std::chrono::milliseconds keepalive_interval{0};
  /// How often the live set is read.
  std::chrono::milliseconds poll_interval{200};
  /// The node's steady clock (injectable).
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
};

/// This node's lease and registration in etcd plus the live-node view.
/// Thread-safe; see the file comment.
class etcd_membership {
public:
  using time_point = std::chrono::steady_clock::time_point;
  using change_handler = std::function<void(const membership_view&)>;

  /// `etcd` must outlive this object.
  etcd_membership(etcd_client& etcd, membership_options opts);

  /// Calls stop().
  ~etcd_membership();

  etcd_membership(const etcd_membership&) = delete;
  etcd_membership& operator=(const etcd_membership&) = delete;

  /// Called with the new view whenever the live set, its revision or the
  /// stale flag changes. Set before start().
  void on_change(change_handler handler);

  /// Starts the lease and view threads; they retry until stop().
  void start();

  /// Blocks until the node is registered and the view has read a live set
  /// holding it, or `timeout` passes; returns whether it is ready.
  bool wait_ready(std::chrono::milliseconds timeout);

  /// Stops the threads and revokes the lease (the registration disappears
  /// at once instead of after the TTL). Blocks; idempotent.
  void stop();

  // -- the view ---------------------------------------------------------------

  /// The current view.
  membership_view view() const;

  /// Live nodes (last known ones when stale).
  std::vector<etcd_member> live_nodes() const;

  /// etcd revision of the live set (see membership_view::revision).
  int64_t revision() const;

  /// Until when (on this node's steady clock) the lease is known alive.
  time_point lease_alive_until() const;

  /// Whether the lease deadline lies ahead: check before acting as owner.
  bool lease_alive() const;

  /// Whether the view is stale (see membership_view::stale).
  bool stale() const;

  /// The current lease id, 0 while none is granted.
  int64_t lease_id() const;

  /// Whether this node may answer reads from the credentials it holds,
  /// given the lease of the registration its node actor last processed
  /// (`node_lease`, 0 = none yet): that lease is the current one and alive
  /// on the local clock, or etcd cannot be reached at all (the last read of
  /// the live set failed: held tokens are served read-only). False from the moment a
  /// paused process resumes until its node has seen its new registration.
  /// Lock-free (called per request).
  bool may_serve(int64_t node_lease) const;

  /// The owner of `key` by rendezvous hashing over the live set ("" when
  /// the set is empty).
  std::string owner_of(std::string_view key) const;

  const membership_options& options() const {
    return opts_;
  }

private:
  void lease_loop();
  void view_loop();
  /// One lease step: grant + register, or a keepalive.
  void lease_step();
  /// One read of the live set; publishes a changed view.
  void view_step();
  /// Writes the membership record for `desc` unless another node changed it
  /// since `record_mod`; an error only when etcd failed.
  caf::error write_record(const std::string& desc, int64_t record_mod);
  bool stale_locked(time_point now) const;
  /// Sleeps up to `d` unless stopping; false when stopping.
  bool pause(std::chrono::milliseconds d);
  std::chrono::milliseconds ttl_local(std::chrono::seconds granted) const;

  etcd_client& etcd_;
  membership_options opts_;
  std::string key_;
  std::string nodes_prefix_;
  std::string record_key_;
  change_handler handler_;

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool started_ = false;
  // Guarded by mtx_.
  int64_t lease_ = 0;
  std::chrono::seconds granted_ttl_{0};
  bool registered_ = false;
  time_point alive_until_{};
  time_point last_read_{};
  bool read_once_ = false;
  std::vector<etcd_member> nodes_;
  int64_t revision_ = 0;
  ownership owners_;
  // Used by the view thread only: the last published state.
  bool published_stale_ = true;
  bool ever_current_ = false;
  int64_t published_revision_ = -1;
  std::vector<etcd_member> published_nodes_;
  // Used by the lease / view threads only: for logging state changes once.
  bool lease_failing_ = false;
  bool view_failing_ = false;

  /// Mirrors of lease_ and alive_until_ (steady ns) for may_serve, and
  /// whether the last read of the live set failed.
  void mirror_locked();
  std::atomic<int64_t> lease_mirror_{0};
  std::atomic<int64_t> alive_until_ns_{0};
  std::atomic<bool> unreachable_{false};

  std::thread lease_thread_;
  std::thread view_thread_;
};

} // namespace wh::cluster
