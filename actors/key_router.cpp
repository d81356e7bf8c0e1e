#include "actors/key_router.hpp"

#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "caf/all.hpp"

#include "actors/app_actor.hpp"
#include "actors/registry.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/store.hpp"

namespace wh::actors {

namespace {

using load_atom = caf::atom_constant<caf::atom("load")>;
using activate_atom = caf::atom_constant<caf::atom("activate")>;
using due_atom = caf::atom_constant<caf::atom("due")>;
using sched_atom = caf::atom_constant<caf::atom("sched")>;

// -- storage worker ---------------------------------------------------------------

struct io_state {
  static inline const char* name = "wh.router.io";
};

/// Reads and schedule writes, in the order the router sent them (a write of
/// a key's schedule lands before that key is read again).
caf::behavior router_io(caf::stateful_actor<io_state>*, registry* reg,
                        std::shared_ptr<persistence::store> db) {
  return {
    [=](load_atom, const std::string& key) -> key_actor {
      auto e = reg->find(key);
      if (!e || e->shadow)
        return {};
      return reg->activate(e);
    },
    [=](due_atom, int64_t now, uint32_t limit)
      -> caf::result<std::vector<std::string>, std::vector<int64_t>> {
      std::vector<std::string> keys;
      std::vector<int64_t> dues;
      auto err = db->scan(persistence::keys::schedule_prefix, [&](std::string_view k, std::string_view) {
        int64_t due = 0;
        std::string key;
        if (!persistence::keys::parse_schedule(k, due, key))
          return true; // not ours; never written by this code
        if (due > now || keys.size() >= limit)
          return false;
        keys.push_back(std::move(key));
        dues.push_back(due);
        return true;
      });
      if (err)
        WH_ERROR("router", "cannot read the refresh schedule: " << detail_of(err));
      return {std::move(keys), std::move(dues)};
    },
    [=](sched_atom, const store_write& w) {
      std::vector<persistence::batch_entry> batch;
      batch.reserve(w.ops.size());
      for (auto& op : w.ops)
        batch.emplace_back(op.key, op.erase ? std::nullopt : std::optional<std::string>{op.value});
      if (auto err = db->write(batch))
        WH_ERROR("router", "cannot write " << w.ops.size()
                                           << " refresh schedule change(s): " << detail_of(err));
    },
  };
}

// -- router -------------------------------------------------------------------------

using parked_fn = std::function<void(const key_actor&, const caf::error&)>;

struct router_state {
  static inline const char* name = "wh.router";

  registry* reg = nullptr;
  caf::actor io;
  const wh::clock* clock = nullptr;
  router_options opts;
  std::unordered_map<std::string, std::vector<parked_fn>> parked;
  std::unordered_set<std::string> starting;
  std::unordered_set<std::string> stopping;
  /// Keys whose actor this router started, oldest first (max_active).
  std::unordered_set<std::string> live;
  std::deque<std::string> order;
  /// Keys the schedule woke, with the due time of the record that woke them
  /// (erased when the key stops again).
  std::unordered_map<std::string, int64_t> woken;
  /// Schedule changes not yet sent to the storage worker.
  store_write pending;
  std::unordered_set<std::string> pending_keys;
  /// The registry loaded every stored key (the schedule runs from then on).
  bool ready = false;
  size_t failed_stops = 0;
  int64_t failed_stops_logged_at = 0;
};

using self_ptr = key_router_actor::stateful_pointer<router_state>;

bool busy(self_ptr self, const std::string& key) {
  auto& st = self->state;
  return st.starting.count(key) > 0 || st.stopping.count(key) > 0;
}

void flush_schedule(self_ptr self) {
  auto& st = self->state;
  if (st.pending.ops.empty())
    return;
  caf::anon_send(st.io, sched_atom::value, std::move(st.pending));
  st.pending = store_write{};
  st.pending_keys.clear();
}

void flush_parked(self_ptr self, const std::string& key, const key_actor& a, const caf::error& err) {
  auto i = self->state.parked.find(key);
  if (i == self->state.parked.end())
    return;
  auto waiting = std::move(i->second);
  self->state.parked.erase(i);
  for (auto& f : waiting)
    f(a, err);
}

void start(self_ptr self, const std::string& key, bool create = false);

void passivate(self_ptr self, const std::string& key, const key_actor& a) {
  auto& st = self->state;
  if (busy(self, key) || st.parked.count(key))
    return;
  st.stopping.insert(key);
  self->request(a, std::chrono::seconds(10), stop_atom::value, idle_atom::value)
    .then(
      [self, key, a](bool stopped, int64_t due, int64_t stored) {
        auto& st = self->state;
        st.stopping.erase(key);
        if (!stopped) // it got work meanwhile
          return flush_parked(self, key, a, caf::error{});
        st.live.erase(key);
        auto e = st.reg->find(key);
        if (e && e->actor() == a)
          e->set_actor(key_actor{});
        int64_t woke = 0;
        if (auto i = st.woken.find(key); i != st.woken.end()) {
          woke = i->second;
          st.woken.erase(i);
        }
        if (e && (due != stored || woke != 0)) {
          auto& w = st.pending;
          for (auto old : {stored, woke})
            if (old > 0 && old != due)
              w.ops.push_back({persistence::keys::schedule(old, key), "", true});
          auto pre = registry::prefix_of(*e);
          if (due > 0) {
            w.put(persistence::keys::schedule(due, key), "");
            w.put(persistence::keys::due(pre), std::to_string(due));
          } else {
            w.ops.push_back({persistence::keys::due(pre), "", true});
          }
          st.pending_keys.insert(key);
        }
        if (st.parked.count(key))
          start(self, key);
      },
      [self, key, a](caf::error& err) {
        // No answer: it may have died (removed key); start afresh if asked.
        auto& st = self->state;
        st.stopping.erase(key);
        // Logged at most once per 10 s with a count (an overloaded node
        // could otherwise log one line per key).
        ++st.failed_stops;
        auto t = st.clock->now();
        if (t - st.failed_stops_logged_at >= 10) {
          WH_WARN("router", st.failed_stops << " passivation(s) failed since the last report, e.g. " << key
                                           << ": " << self->system().render(err)
                                           << " (the actors keep running)");
          st.failed_stops = 0;
          st.failed_stops_logged_at = t;
        }
        auto e = st.reg->find(key);
        if (e && e->actor() == a && !a->getf(caf::abstract_actor::is_terminated_flag))
          return flush_parked(self, key, a, caf::error{});
        if (e && e->actor() == a)
          e->set_actor(key_actor{});
        st.live.erase(key);
        if (st.parked.count(key))
          start(self, key);
      });
}

/// Asks the least recently started actors to stop while more than
/// max_active run (a cold pass over a million keys must not keep them all).
void enforce_cap(self_ptr self) {
  auto& st = self->state;
  // A key that stopped and started again is in `order` twice; drop stale
  // entries once they outnumber the running keys (keeps `order` bounded).
  if (st.order.size() > 2 * st.live.size() + 1024) {
    std::deque<std::string> kept;
    std::unordered_set<std::string> seen;
    for (auto& k : st.order)
      if (st.live.count(k) && seen.insert(k).second)
        kept.push_back(std::move(k));
    st.order = std::move(kept);
  }
  for (int tries = 0; st.live.size() > st.opts.max_active && !st.order.empty() && tries < 4; ++tries) {
    auto key = std::move(st.order.front());
    st.order.pop_front();
    if (!st.live.count(key))
      continue;
    auto e = st.reg->find(key);
    auto a = e ? e->actor() : key_actor{};
    if (!a) {
      st.live.erase(key);
      continue;
    }
    st.order.push_back(key); // if it refuses, it is asked again later
    passivate(self, key, a);
  }
}

// -- multi-node hubs ---------------------------------------------------------------

/// Whether the current message came from another node (a peer's router
/// delegated it; the sender is then the peer's requester). Ask before making
/// a response promise: it takes the sender.
bool from_peer(self_ptr self) {
  auto& src = self->current_sender();
  return src && src->node() != self->node();
}

/// Counts a request a peer delegated here (wechat_hub_cluster_forwarded_total).
void count_forwarded(self_ptr self, std::string_view request, const char* result, bool peer) {
  if (auto m = self->state.reg->stats(); m && peer)
    m->inc("wechat_hub_cluster_forwarded_total", {{"request", std::string{request}}, {"result", result}});
}

/// Where a key request goes (membership.hpp).
struct key_route {
  /// Refused (a peer's request for a key this node does not own).
  caf::error err;
  /// The owner's router; invalid where this node serves the key (always on
  /// a single node).
  key_router_actor router;
  /// Another node owns the key but this node has not met it yet: ask the
  /// node actor (await_owner).
  bool await = false;
};

key_route owner_route(self_ptr self, const std::string& key, std::string_view request, bool peer) {
  key_route out;
  auto& link = self->state.reg->cluster();
  if (!link.node)
    return out;
  auto owner = link.owner_of(key);
  if (owner.here)
    return out;
  if (peer) {
    // The peer's view differs from ours for a moment: never send it back.
    count_forwarded(self, request, "not_owner", peer);
    out.err = make_detail_error(ec::cluster_unavailable, "ownership of " + key + " is moving between nodes; retry");
  } else if (owner.router) {
    out.router = std::move(owner.router);
  } else {
    out.await = true;
  }
  return out;
}

/// The owner of `key` is a node this node has not met yet (it just
/// started): `then` gets the owner's router once the node actor has it, an
/// invalid handle when the key is this node's by then, or an error after
/// `owner_wait` (the request is forwarded, never parked for long).
template <class F>
void await_owner(self_ptr self, const std::string& key, F then) {
  auto& st = self->state;
  self->request(st.reg->cluster().node, st.opts.owner_wait, route_atom::value, key)
    .then([then](key_router_actor& owner) mutable { then(caf::expected<key_router_actor>{std::move(owner)}); },
          [then, key](caf::error&) mutable {
            then(caf::expected<key_router_actor>{
              make_detail_error(ec::cluster_unavailable, key + " has no reachable owner yet; retry")});
          });
}

/// Starts `key`'s actor: from its stored state on the storage worker, or
/// in a cluster by the node actor (it decides whether this node may, e.g.
/// not while the key is still being handed over; `create`: an authorizer new
/// to this node gets an entry first).
void start(self_ptr self, const std::string& key, bool create) {
  auto& st = self->state;
  if (!st.starting.insert(key).second)
    return;
  if (auto& node = st.reg->cluster().node) {
    self->request(node, caf::infinite, activate_atom::value, key, create)
      .then(
        [self, key](key_actor& a) {
          self->state.starting.erase(key);
          flush_parked(self, key, a, caf::error{});
        },
        [self, key](caf::error& err) {
          self->state.starting.erase(key);
          flush_parked(self, key, key_actor{}, err);
        });
    return;
  }
  if (st.pending_keys.count(key))
    flush_schedule(self); // the storage worker writes before it reads
  self->request(st.io, caf::infinite, load_atom::value, key)
    .then(
      [self, key](key_actor& a) {
        auto& st = self->state;
        st.starting.erase(key);
        if (!a)
          return flush_parked(self, key, key_actor{},
                              make_detail_error(ec::unknown_key, key + " is not known to this hub"));
        if (st.live.insert(key).second)
          st.order.push_back(key);
        flush_parked(self, key, a, caf::error{});
        enforce_cap(self);
      },
      [self, key](caf::error& err) {
        self->state.starting.erase(key);
        flush_parked(self, key, key_actor{}, err);
      });
}

/// Runs `deliver` with the key's running actor, starting it first if needed.
void with_actor(self_ptr self, const std::string& key, parked_fn deliver, bool create = false,
                std::string_view request = {}, bool peer = false) {
  auto& st = self->state;
  auto e = st.reg->find(key);
  // A cluster's node actor knows keys new to this node (authorizations).
  bool cluster = static_cast<bool>(st.reg->cluster().node);
  if (!cluster && (!e || e->shadow))
    return deliver(key_actor{}, make_detail_error(ec::unknown_key, key + " is not known to this hub"));
  if (e && !e->shadow && !busy(self, key)) {
    if (auto a = e->actor()) {
      count_forwarded(self, request, "served", peer);
      return deliver(a, caf::error{});
    }
  }
  count_forwarded(self, request, "started", peer);
  st.parked[key].push_back(std::move(deliver));
  if (!busy(self, key))
    start(self, key, create);
}

// -- delivery by key ---------------------------------------------------------------

using caf::detail::type_list;

/// The router's handler of one key request: takes its keyed form
/// `(atoms..., key, rest...)` and delegates `(atoms..., rest...)` to the
/// key's actor, starting it first if needed. Generated from key_requests
/// (key_protocol.hpp), so the router understands exactly what a key does.
template <class Atoms, class Rest, class Out>
struct route_fn;

template <class... As, class... Rs, class... Os>
struct route_fn<type_list<As...>, type_list<Rs...>, caf::output_tuple<Os...>> {
  self_ptr self;

  caf::typed_response_promise<Os...> operator()(As... atoms, const std::string& key, const Rs&... xs) const {
    auto peer = from_peer(self);
    auto rp = self->template make_response_promise<Os...>();
    auto route = owner_route(self, key, request_name(), peer);
    if (route.err)
      return rp.deliver(route.err);
    if (route.router)
      return rp.delegate(route.router, atoms..., key, xs...);
    if (route.await) {
      await_owner(self, key, [s = self, rp, key, atoms..., xs...](caf::expected<key_router_actor> owner) mutable {
        if (!owner)
          rp.deliver(owner.error());
        else if (*owner)
          rp.delegate(*owner, atoms..., key, xs...);
        else
          serve_here(s, rp, key, false, atoms..., xs...);
      });
      return rp;
    }
    serve_here(self, rp, key, peer, atoms..., xs...);
    return rp;
  }

  /// Delivers the request to the key's actor here (started if needed).
  static void serve_here(self_ptr self, caf::typed_response_promise<Os...> rp, const std::string& key, bool peer,
                         As... atoms, const Rs&... xs) {
    with_actor(
      self, key,
      [rp, atoms..., xs...](const key_actor& a, const caf::error& err) mutable {
        if (err)
          rp.deliver(err);
        else
          rp.delegate(a, atoms..., xs...);
      },
      creates, request_name(), peer);
  }

  /// An authorization is the one request that creates its (authorizer) key.
  static constexpr bool creates = std::is_same_v<type_list<As..., Rs...>, type_list<auth_atom, authorization>>;

  /// The metrics label: the last atom ("token", "ticket", "stale", ...).
  static std::string request_name() {
    std::string name;
    ((name = caf::to_string(As::value)), ...);
    return name;
  }
};

/// One-way messages (no answer): dropped for a key this hub does not know.
template <class... As, class... Rs>
struct route_fn<type_list<As...>, type_list<Rs...>, caf::output_tuple<void>> {
  self_ptr self;

  void operator()(As... atoms, const std::string& key, const Rs&... xs) const {
    auto route = owner_route(self, key, "", from_peer(self));
    if (route.err)
      return;
    // Sent as this router: the owner never sends it back (from_peer).
    if (route.router)
      return self->send(route.router, atoms..., key, xs...);
    if (route.await)
      return await_owner(self, key, [s = self, key, atoms..., xs...](caf::expected<key_router_actor> owner) {
        if (owner && *owner)
          s->send(*owner, atoms..., key, xs...);
        else if (owner)
          serve_here(s, key, atoms..., xs...);
      });
    serve_here(self, key, atoms..., xs...);
  }

  static void serve_here(self_ptr self, const std::string& key, As... atoms, const Rs&... xs) {
    with_actor(self, key, [atoms..., xs...](const key_actor& a, const caf::error&) {
      if (a)
        caf::anon_send(a, atoms..., xs...);
    });
  }
};

template <class Sig>
struct route_of;

template <class... Is, class Out>
struct route_of<caf::typed_mpi<type_list<Is...>, Out>> {
  using parts = protocol::split_atoms<type_list<>, type_list<Is...>>;
  using type = route_fn<typename parts::atoms, typename parts::rest, Out>;
};

/// The router's behavior: a route for every key request, then `own`.
template <class... Sigs, class... Fs>
key_router_actor::behavior_type with_routes(self_ptr self, type_list<Sigs...>, Fs... own) {
  return {typename route_of<Sigs>::type{self}..., std::move(own)...};
}

/// Wakes the keys whose refresh is due/// Wakes the keys whose refresh is due (at most `rate` per tick, in due order).
void check_schedule(self_ptr self) {
  auto& st = self->state;
  flush_schedule(self);
  auto limit = static_cast<uint32_t>(std::min<size_t>(st.opts.rate + st.woken.size(), 1'000'000));
  self->request(st.io, caf::infinite, due_atom::value, st.clock->now(), limit)
    .then(
      [self](std::vector<std::string>& keys, std::vector<int64_t>& dues) {
        auto& st = self->state;
        uint32_t woke = 0;
        for (size_t i = 0; i < keys.size() && woke < st.opts.rate; ++i) {
          auto& key = keys[i];
          if (st.woken.count(key))
            continue;
          auto& link = st.reg->cluster();
          if (!st.reg->find(key) || (link.node && !link.owner_of(key).here)) {
            // A removed key's leftover record, or a key another node owns
            // now (it took the key over running and keeps its own schedule).
            st.pending.ops.push_back({persistence::keys::schedule(dues[i], key), "", true});
            continue;
          }
          WH_DEBUG("router", key << ": due at " << dues[i] << ", woken");
          st.woken.emplace(key, dues[i]);
          ++woke;
          with_actor(self, key, [](const key_actor& a, const caf::error&) {
            if (a)
              caf::anon_send(a, wake_atom::value);
          });
        }
      },
      [](caf::error&) {});
}

key_router_actor::behavior_type key_router(self_ptr self, registry* reg, caf::actor io, const wh::clock* clk,
                         router_options opts) {
  auto& st = self->state;
  st.reg = reg;
  st.io = std::move(io);
  st.clock = clk;
  st.opts = opts;
  self->link_to(st.io);
  return with_routes(
    self, key_requests::signatures{},
    [=](ready_atom) {
      // Every stored key is in the directory: the schedule may run (before
      // that, a record of a key not loaded yet would look like a leftover).
      if (self->state.ready)
        return;
      self->state.ready = true;
      self->send(self, tick_atom::value);
    },
    [=](idle_atom, const std::string& key) {
      auto sender = caf::actor_cast<key_actor>(self->current_sender());
      auto e = self->state.reg->find(key);
      if (sender && e && e->actor() == sender)
        passivate(self, key, sender);
    },
    [=](tick_atom, const std::string& key, caf::actor_id from, uint8_t kind, uint64_t gen) {
      // A timer step of a key's actor: delivered only to the same actor (a
      // stopped actor's timer is dropped; the schedule wakes its key).
      auto e = self->state.reg->find(key);
      WH_DEBUG("router", key << ": timer step (running: " << (e && e->actor()) << ")");
      if (!e)
        return;
      if (auto a = e->actor(); a && a->id() == from)
        self->send(a, tick_atom::value, kind, gen);
    },
    [=](tick_atom) {
      check_schedule(self);
      self->delayed_send(self, self->state.opts.tick, tick_atom::value);
    });
}

} // namespace

key_router_actor spawn_key_router(caf::actor_system& sys, registry& reg,
                            std::shared_ptr<persistence::store> db, const wh::clock& clk,
                            router_options opts) {
  auto io = opts.detached_io ? sys.spawn<caf::detached>(router_io, &reg, std::move(db))
                             : sys.spawn(router_io, &reg, std::move(db));
  return sys.spawn(key_router, &reg, std::move(io), &clk, opts);
}

} // namespace wh::actors
