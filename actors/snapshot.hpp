#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "caf/actor.hpp"

#include "actors/key_protocol.hpp"
#include "actors/kinds.hpp"
#include "actors/messages.hpp"

namespace wh::actors {

/// The latest credential an actor published. The owning actor is the only
/// writer; HTTP threads read it lock-free-ish (std::atomic<shared_ptr>) so
/// serving a cached token never touches the actor system.
class snapshot_slot {
public:
  std::shared_ptr<const credential> load() const { return ptr_.load(std::memory_order_acquire); }

  void publish(const credential& x) {
    ptr_.store(std::make_shared<const credential>(x), std::memory_order_release);
  }

  void clear() { ptr_.store(nullptr, std::memory_order_release); }

  /// Publishes `x` only where nothing is published yet (a background load
  /// never replaces what an actor published meanwhile).
  void publish_if_empty(const credential& x) {
    std::shared_ptr<const credential> none;
    ptr_.compare_exchange_strong(none, std::make_shared<const credential>(x), std::memory_order_acq_rel);
  }

private:
  std::atomic<std::shared_ptr<const credential>> ptr_;
};

// A million entries live in RAM: the status stays one lock-free byte.
static_assert(sizeof(std::atomic<authorizer_status>) == 1 && std::atomic<authorizer_status>::is_always_lock_free);

/// Everything the front end knows about one key: its actor and what it published.
struct key_entry {
  /// The appid (or "component/authorizer" for authorizers).
  std::string key;

  /// The key's token actor, or an invalid handle where this node does not
  /// own the key (multi-node hubs run a key's actor on its owner only).
  key_actor actor() const {
    lock();
    auto x = actor_;
    unlock();
    return x;
  }
  void set_actor(key_actor x) {
    lock();
    actor_.swap(x);
    unlock();
    // `x` (the previous handle) is released outside the lock.
  }

  key_kind kind = key_kind::app;
  /// Defined by the admin API at runtime (not in the config file).
  bool runtime = false;
  /// Multi-node hubs: an authorizer this node knows only from remote answers
  /// (not in its storage); hidden from listings and metrics.
  bool shadow = false;
  /// Apps: "stable" or "classic" (for listings; never the secret).
  std::string token_api;
  /// Components: WeChat rejected the verify ticket (61005/61006).
  std::atomic<bool> degraded{false};
  /// Authorizers: written by the actor.
  std::atomic<authorizer_status> status{authorizer_status::active};
  /// Components: unix time the latest verify ticket arrived (0 = never).
  std::atomic<int64_t> verify_ticket_at{0};
  snapshot_slot token;
  snapshot_slot jsapi;
  snapshot_slot wx_card;

  /// Returns the ticket slot for `type`, or nullptr for an unknown type.
  snapshot_slot* ticket(std::string_view type) {
    if (type == "jsapi")
      return &jsapi;
    if (type == "wx_card")
      return &wx_card;
    return nullptr;
  }

  /// Publishes `x` into `slot` unless it already holds a newer version
  /// (remote answers and replicated state may arrive out of order).
  static void publish_newer(snapshot_slot& slot, const credential& x) {
    // Obtained later wins, as when states merge (state_merge.hpp): versions
    // restart after a revocation, times do not. Within the same second the
    // last one published wins (an owner's states arrive in order).
    if (auto cur = slot.load(); cur && cur->obtained_at > x.obtained_at && cur->value != x.value)
      return;
    slot.publish(x);
  }

private:
  // A one-byte spin lock instead of a 40-byte std::mutex: a million entries,
  // and the critical sections are a pointer copy.
  void lock() const {
    while (actor_lock_.test_and_set(std::memory_order_acquire))
      actor_lock_.wait(true, std::memory_order_relaxed);
  }
  void unlock() const {
    actor_lock_.clear(std::memory_order_release);
    actor_lock_.notify_one();
  }

  mutable std::atomic_flag actor_lock_;
  key_actor actor_;
};

} // namespace wh::actors
