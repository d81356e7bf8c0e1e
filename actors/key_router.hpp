#pragma once

// The node's key router: virtual activation of token actors, after Orleans'
// virtual actors and Akka Cluster Sharding's passivation, and in a cluster
// the delivery of key requests to their owner.
//
// A key's actor exists only while the key has work. The router is the one
// place that starts and stops them:
// - Every key request (`key_requests` in key_protocol.hpp) in its keyed form,
//   the key after the leading atoms (`(get_atom, ticket_atom, key, type)`),
//   is delegated to the key's actor; a key without one is started from its
//   stored state on the storage worker first. Requests for a key that is
//   starting or stopping are parked and delivered once it runs (never dropped).
// - In a cluster the router asks the membership view (membership.hpp) who
//   owns the key: another node's key goes to that node's router (a request
//   from a peer is never sent on: views that differ briefly cannot bounce
//   it); a key this node owns is started by the node actor
//   (`(activate_atom, key, create)`), which knows when it may.
// - `(idle_atom, key)` from an actor idle for the idle time: the router asks
//   it `(stop_atom, idle_atom)`; an actor with work refuses. Past
//   `max_active` running actors the least recently started are asked too.
// - `(ready_atom)`: every stored key is loaded; the schedule starts.
// - The durable refresh schedule: a stopped actor's next refresh is written
//   as a `sched/<due>/<key>` record (batched, flushed before that key is read
//   again); once a second the router reads what is due (at most `rate` keys
//   per second, in due order) and wakes those keys with `(wake_atom)`.
//   Idle keys keep no timer in memory, and a restart finds what is overdue
//   without reading every key.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

#include "actors/key_protocol.hpp"
#include "core/clock.hpp"

namespace wh::persistence {
class store;
}

namespace wh::actors {

class registry;

struct router_options {
  /// Keys woken by the schedule per second (restarts after a long downtime
  /// refresh overdue keys at this rate).
  uint32_t rate = 500;
  /// More running actors than this: the least recently started are asked to stop.
  size_t max_active = 20000;
  /// Period of the schedule's check.
  caf::timespan tick = std::chrono::seconds(1);
  /// How long a request for a key another node owns waits for the
  /// connection to that node (a node that just started has not met its
  /// peers yet); then it fails with cluster_unavailable.
  caf::timespan owner_wait = std::chrono::milliseconds(800);
  /// Runs storage reads and schedule writes on a detached actor (tests turn
  /// this off to step them on the deterministic scheduler).
  bool detached_io = true;
};

/// Spawns the router of `reg`'s keys. `db` is the hub's store (read by the
/// storage worker); `clk` must outlive the router.
key_router_actor spawn_key_router(caf::actor_system& sys, registry& reg,
                            std::shared_ptr<persistence::store> db, const wh::clock& clk,
                            router_options opts);

} // namespace wh::actors
