#include "cluster/node.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "caf/all.hpp"

#include "actors/registry.hpp"
#include "cluster/state_io.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

namespace wh::cluster {

using actors::key_state;

namespace {

/// The clock of nodes built without one.
const wh::clock& system_wall() {
  static const system_clock clk;
  return clk;
}

/// States per sync message (a message stays well below BASP's limits).
constexpr size_t sync_chunk = 2000;

/// Keys per version exchange of a handover (about 50 bytes each).
constexpr size_t version_chunk = 20000;

/// How long a handover waits for the peer's versions before sending every state.
constexpr auto version_timeout = std::chrono::seconds(30);

struct node_state {
  static inline const char* name = "wh.cluster.node";

  node_options opts;
  actors::registry* reg = nullptr;
  caf::actor store;
  metrics* stats = nullptr;
  connector connect;
  std::shared_ptr<std::atomic<std::shared_ptr<const view>>> published;
  std::shared_ptr<node::admin_handler> admin;
  /// Owner-to-replica delay of the last replicated state (rendered as a gauge).
  std::shared_ptr<std::atomic<int64_t>> lag_ms;
  /// `ready` and `self_lease`, for the front end's reads (node::serves_held, node::lease).
  std::shared_ptr<std::atomic<bool>> ready_flag;
  std::shared_ptr<std::atomic<int64_t>> lease_flag;

  const std::string& self_id() const { return opts.cfg.node_id; }

  /// Wall clock (injected; tests step it).
  const wh::clock* clk = nullptr;
  /// Storage worker: every RocksDB read and write of this actor goes there.
  caf::actor io;
  bool ready = false;
  /// When this node started (clk, ms): the join wait is measured from here.
  int64_t started_ms = 0;
  /// Live peers: id -> node actor.
  std::map<std::string, caf::actor> peers;
  /// Live peers' key routers (from their hello).
  std::map<std::string, actors::key_router_actor> routers;
  /// Endpoints with a live connection or an attempt under way.
  std::map<std::string, caf::actor> endpoint_peer;
  std::set<std::string> connecting;
  /// Ticks a peer we leave to dial us has not connected.
  std::map<std::string, int> unmet;
  /// Endpoints whose last attempt failed (logged once).
  std::set<std::string> failing;
  /// Peers whose link went down: when (clk, ms); their return is logged.
  std::map<std::string, int64_t> down_at;
  /// Until when (clk, ms) a failed dial of an endpoint is retried after
  /// 100 ms instead of at the next tick: set when etcd's view changes (a
  /// heal), so that a link comes back within a second of it.
  int64_t dial_fast_until = 0;
  /// Peers that were ready when we met and have not handed over yet.
  std::set<std::string> expect_sync;
  /// Peers whose sync arrived (before or after their hello reply).
  std::set<std::string> synced_from;
  /// Peers whose handover to this node is under way (they asked for its
  /// versions and have not sent their last part yet).
  std::set<std::string> incoming;
  /// States applied from a peer's handover whose last message is still due.
  std::map<std::string, size_t> applied_from;
  /// Keys whose actor the storage worker is starting.
  std::set<std::string> activating;
  /// Handovers in flight per peer (only the end of the last one ends its wait).
  std::map<caf::actor_addr, size_t> handing;
  ownership own;
  /// Ownership as of the last reconcile: keys this node owned then and no
  /// longer does are handed over, running or not.
  ownership was;
  /// Requests for keys this node owns but has not started yet.
  std::map<std::string, std::vector<std::function<void(const actors::key_actor&, const caf::error&)>>> parked;
  /// Async registry operations answering remote requests.
  uint64_t next_op = 0;
  std::map<uint64_t, caf::response_promise> ops;
  size_t owned = 0;
  bool stopped = false;
  /// etcd supplies the membership (cfg.etcd set): the live set and each
  /// key's owner come from etcd's view, and the peers to dial are the
  /// endpoints registered there; CAF connections only carry the traffic.
  bool etcd = false;
  /// The live nodes of etcd's view (id -> CAF endpoint; this node included
  /// while its lease holds) and its revision.
  std::map<std::string, std::string> members;
  int64_t members_rev = 0;
  bool have_members = false;
  /// Registration (create) revision per member: a new one is a rejoin.
  std::map<std::string, int64_t> registrations;
  /// The etcd lease of this node's registration in the last view (-1: not
  /// registered in it; 0: no view yet), and the last registration revision
  /// of this node seen.
  int64_t self_lease = 0;
  int64_t self_reg = 0;
  /// Fencing epochs: per key, the highest etcd membership revision an
  /// owner's write of it carried. A write or handover with an older epoch
  /// comes from a node that no longer owns the key (a paused or cut-off
  /// former owner) and is refused. In memory only; 0 without etcd.
  std::map<std::string, int64_t> epochs;
  /// Handed-over states a running actor here refused since the last
  /// membership change (adopted if this node turns out to rejoin).
  std::map<std::string, key_state> held;
  /// The router's `(route_atom, key)` for keys of live peers not met yet
  /// (a node that just started): answered with the peer's router at its
  /// hello; by owner node id, with the time (ms) after which nobody waits.
  std::map<std::string, std::vector<std::pair<int64_t, caf::response_promise>>> awaiting;
  /// Keys to hand to members etcd reports before their connection is up
  /// (a restarted node registers before it meets its peers): handed over
  /// when they connect, else they would start from an older stored state.
  std::map<std::string, std::set<std::string>> unsent;
  /// A reconcile is queued (ready_atom to self): many keys whose start
  /// ended after their owner changed share one pass over the directory.
  bool reconcile_queued = false;
  /// Joining again after its lease lapsed (its peers may have handed over
  /// before it noticed): peers that have not started a handover are not
  /// waited for.
  bool lapsed = false;
};

using self_ptr = caf::stateful_actor<node_state>*;

void reconcile(self_ptr self);
void expire_awaiting(self_ptr self, bool left_only);
void try_connect(self_ptr self);
/// Starts one connection attempt to `ep` (blocking connect on a detached actor).
void dial(self_ptr self, const std::string& ep);

/// How long a joining node (with etcd) waits for late members.
int64_t late_wait_ms(int64_t grace_ms) {
  return std::max<int64_t>(4 * grace_ms, 20'000);
}

int64_t now_ms(self_ptr self) {
  return self->state.clk->now_ms();
}

void count(self_ptr self, const std::string& name, const metrics::labels& lbls = {}) {
  if (auto m = self->state.stats)
    m->inc(name, lbls);
}

std::vector<std::string> live_ids(self_ptr self) {
  if (self->state.etcd && self->state.have_members) {
    std::vector<std::string> ids;
    for (auto& [id, ep] : self->state.members)
      ids.push_back(id);
    return ids;
  }
  std::vector<std::string> ids{self->state.self_id()};
  for (auto& [id, a] : self->state.peers)
    ids.push_back(id);
  return ids;
}

void publish_view(self_ptr self) {
  auto& st = self->state;
  auto v = std::make_shared<view>();
  v->self = st.self_id();
  v->ready = st.ready;
  v->own = st.own;
  v->replicas = st.opts.cfg.replicas;
  v->actors[st.self_id()] = caf::actor_cast<caf::actor>(self);
  for (auto& [id, a] : st.peers)
    v->actors[id] = a;
  v->routers = st.routers;
  v->owned_keys = st.owned;
  auto before = st.published->load(std::memory_order_acquire);
  v->most_live = std::max(before ? before->most_live : size_t{1}, v->own.nodes().size());
  st.published->store(std::move(v), std::memory_order_release);
  // In this order: whoever sees the new lease sees the readiness that
  // came with it (a rejoin clears it).
  st.ready_flag->store(st.ready, std::memory_order_release);
  st.lease_flag->store(st.self_lease, std::memory_order_release);
}

/// The node that owned `key` before this one joined (the previous holder of
/// its state), or "" when this node is alone.
std::string previous_owner(self_ptr self, std::string_view key) {
  auto ids = live_ids(self);
  std::erase(ids, self->state.self_id());
  if (ids.empty())
    return {};
  return ownership{ids}.owner(key);
}

/// Whether this node may start `key`'s actor now.
bool may_start(self_ptr self, std::string_view key) {
  auto& st = self->state;
  if (!st.ready || st.own.owner(key) != st.self_id())
    return false;
  return st.expect_sync.empty() || !st.expect_sync.count(previous_owner(self, key));
}

void flush_parked(self_ptr self, const std::string& key, const actors::key_actor& a, const caf::error& err) {
  auto i = self->state.parked.find(key);
  if (i == self->state.parked.end())
    return;
  auto ks = std::move(i->second);
  self->state.parked.erase(i);
  for (auto& k : ks)
    k(a, err);
}

bool is_peer(self_ptr self, const caf::actor& a) {
  for (auto& [id, x] : self->state.peers)
    if (x == a)
      return true;
  return false;
}

/// Sends `states` as sync messages; the last one says whether more follow.
void send_states(self_ptr self, const caf::actor& dst, std::vector<key_state> states, bool more) {
  auto& st = self->state;
  auto t = now_ms(self);
  size_t sent = 0;
  do {
    std::vector<key_state> chunk;
    for (size_t i = sent; i < states.size() && chunk.size() < sync_chunk; ++i) {
      chunk.push_back(std::move(states[i]));
      chunk.back().sent_ms = t;
    }
    sent += chunk.size();
    if (auto m = st.stats)
      m->counter("wechat_hub_cluster_sync_states_sent_total", {}) += chunk.size();
    self->send(dst, sync_atom::value, st.self_id(), std::move(chunk), more || sent < states.size(),
               st.members_rev);
    count(self, "wechat_hub_cluster_replication_sent_total");
  } while (sent < states.size());
}

/// Sends one part of a handover to `dst`; ending the last handover in
/// flight to it ends the peer's wait.
void send_part(self_ptr self, const caf::actor& dst, std::vector<key_state> states, bool more) {
  auto& handing = self->state.handing;
  auto i = handing.find(dst.address());
  if (!more && i != handing.end() && --i->second > 0)
    more = true; // another handover to the peer is still under way
  if (!more && i != handing.end())
    handing.erase(i);
  send_states(self, dst, std::move(states), more);
}

/// Hands `keys[from..]` over to `dst`, one version exchange at a time: the
/// peer reports the version it stores of each key, and only newer states
/// travel (a node that rejoins gets what changed while it was away).
void hand_over(self_ptr self, caf::actor dst, std::shared_ptr<const std::vector<std::string>> keys,
               size_t from) {
  auto& st = self->state;
  auto end = std::min(keys->size(), from + version_chunk);
  std::vector<std::string> chunk(keys->begin() + static_cast<ptrdiff_t>(from),
                                 keys->begin() + static_cast<ptrdiff_t>(end));
  bool more = end < keys->size();
  if (chunk.empty())
    return send_part(self, dst, {}, false);
  auto send_newer = [self, dst, keys, chunk, end, more](std::vector<uint64_t> theirs) {
    self->request(self->state.io, caf::infinite, read_atom::value, chunk, std::move(theirs))
      .then(
        [self, dst, keys, end, more](std::vector<key_state>& states) {
          if (!is_peer(self, dst))
            return (void) self->state.handing.erase(dst.address()); // a new one follows its return
          send_part(self, dst, std::move(states), more);
          if (more)
            hand_over(self, dst, keys, end);
        },
        [self, dst, keys, end, more](caf::error& err) {
          WH_ERROR("cluster", "cannot read key states to hand over: " << self->system().render(err));
          if (!is_peer(self, dst))
            return (void) self->state.handing.erase(dst.address());
          send_part(self, dst, {}, more);
          if (more)
            hand_over(self, dst, keys, end);
        });
  };
  self->request(dst, version_timeout, sync_atom::value, version_atom::value, st.self_id(), chunk)
    .then([send_newer](std::vector<uint64_t>& theirs) mutable { send_newer(std::move(theirs)); },
          [self, send_newer](caf::error& err) mutable {
            // Unanswered (timeout): send every state; the peer keeps the newest.
            WH_WARN("cluster", self->state.self_id() << ": no key versions from a peer ("
                                                     << self->system().render(err)
                                                     << "); handing over every state");
            send_newer({});
          });
}

/// Hands every live peer the states of the keys it should hold that this
/// node is responsible for: the keys it runs, plus `moved` (just stopped).
void resync(self_ptr self, std::vector<std::shared_ptr<actors::key_entry>> moved) {
  auto& st = self->state;
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [id, a] : st.peers)
    out[id];
  auto add = [&](const std::string& key) {
    for (auto& h : st.own.rank(key, st.opts.cfg.replicas))
      if (h != st.self_id() && out.count(h))
        out[h].push_back(key);
      else if (h != st.self_id() && st.members.count(h))
        st.unsent[h].insert(key);
  };
  for (auto& e : st.reg->entries())
    if (!e->shadow && (e->actor() || st.activating.count(e->key)))
      add(e->key);
  for (auto& e : moved)
    add(e->key);
  for (auto& [id, keys] : out)
    if (auto i = st.unsent.find(id); i != st.unsent.end()) {
      keys.insert(keys.end(), i->second.begin(), i->second.end());
      st.unsent.erase(i);
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    }
  for (auto& [id, keys] : out) {
    ++st.handing[st.peers[id].address()];
    hand_over(self, st.peers[id], std::make_shared<const std::vector<std::string>>(std::move(keys)), 0);
  }
}

/// Starts `key`'s actor from its stored state (read by the storage worker);
/// requests parked for the key are served once it runs.
void start_key(self_ptr self, const std::string& key) {
  auto& st = self->state;
  if (!st.activating.insert(key).second)
    return;
  self->request(st.io, caf::infinite, activate_atom::value, key)
    .then(
      [self, key](actors::key_actor& a) {
        auto& st = self->state;
        st.activating.erase(key);
        if (!a)
          return flush_parked(self, key, actors::key_actor{},
                              make_detail_error(ec::unknown_key, key + " is not known to this hub"));
        flush_parked(self, key, a, caf::error{});
        // Ownership moved while it started: stop it and hand it over (one
        // pass for all of them: a pass per key was quadratic when a
        // membership change came while thousands of keys were starting).
        if (st.own.owner(key) != st.self_id() && !st.reconcile_queued) {
          st.reconcile_queued = true;
          self->send(self, ready_atom::value);
        }
      },
      [self, key](caf::error& err) {
        self->state.activating.erase(key);
        flush_parked(self, key, actors::key_actor{}, err);
      });
}

/// Adopts states a peer sent (replication or handover) on the storage worker.
void adopt_states(self_ptr self, std::vector<key_state> states,
                  std::function<void(size_t applied)> then) {
  auto n = states.size();
  self->request(self->state.io, caf::infinite, adopt_atom::value, std::move(states))
    .then(
      [self, then](std::vector<uint8_t>& results) {
        using r = actors::registry::adopt_result;
        size_t applied = 0;
        for (auto x : results) {
          auto res = static_cast<r>(x);
          applied += res == r::applied;
          count(self, "wechat_hub_cluster_replication_applied_total",
                {{"result", res == r::applied         ? "applied"
                            : res == r::older         ? "older"
                            : res == r::owner_running ? "owner_running"
                                                      : "refused"}});
        }
        then(applied);
      },
      [self, n, then](caf::error& err) {
        WH_ERROR("cluster", "cannot adopt " << n << " key state(s): " << self->system().render(err));
        then(0);
      });
}

/// Starts the actors of keys this node now owns and stops the others; keys
/// that moved away are handed over (state sent after their writes landed).
void reconcile(self_ptr self) {
  auto& st = self->state;
  if (st.stopped)
    return;
  st.reconcile_queued = false;
  std::vector<std::shared_ptr<actors::key_entry>> moved;
  std::vector<actors::key_actor> stopping;
  size_t owned = 0;
  for (auto& e : st.reg->entries()) {
    if (e->shadow)
      continue;
    if (st.own.owner(e->key) == st.self_id()) {
      ++owned;
      if (!e->actor() && !st.activating.count(e->key) && may_start(self, e->key))
        start_key(self, e->key);
    } else if (auto a = st.reg->deactivate(*e)) {
      moved.push_back(e);
      stopping.push_back(std::move(a));
    } else if (st.was.owner(e->key) == st.self_id()) {
      moved.push_back(e); // stopped after idle: its stored state moves too
    }
  }
  if (st.ready) // before, no key started here
    st.was = st.own;
  st.owned = owned;
  publish_view(self);
  if (!moved.empty())
    WH_INFO("cluster", st.self_id() << ": handing over " << moved.size() << " key(s)");
  // Every write a stopped actor started reached the store actor before its
  // stop answer; the empty write after them is the barrier.
  auto left = std::make_shared<size_t>(stopping.size());
  // Shared, not copied: every stop's two handlers hold after_stop (a copy of
  // `moved` each was quadratic: 16k keys moving took gigabytes).
  auto handed = std::make_shared<const std::vector<std::shared_ptr<actors::key_entry>>>(std::move(moved));
  auto after_stop = [self, handed, left]() mutable {
    if (*left > 0 && --*left > 0)
      return;
    self->request(self->state.store, caf::infinite, put_atom::value, actors::store_write{})
      .then([self, handed](done_atom) { resync(self, *handed); },
            [self, handed](caf::error&) { resync(self, *handed); });
  };
  if (stopping.empty())
    return after_stop();
  for (auto& a : stopping)
    self->request(a, std::chrono::seconds(5), stop_atom::value)
      .then([after_stop](done_atom) mutable { after_stop(); },
            [after_stop](caf::error&) mutable { after_stop(); });
}

void set_members(self_ptr self) {
  self->state.own.set_nodes(live_ids(self));
  if (auto m = self->state.stats)
    (void) m; // gauges are rendered from the view
}

void peer_up(self_ptr self, const std::string& id, caf::actor handle, actors::key_router_actor router,
             bool peer_ready) {
  auto& st = self->state;
  if (id == st.self_id()) {
    WH_ERROR("cluster", "a peer uses this node's own node_id " << id << "; node ids must be unique");
    return;
  }
  auto known = st.peers.find(id);
  if (known != st.peers.end() && known->second == handle)
    return;
  self->monitor(handle);
  st.peers[id] = handle;
  st.routers[id] = std::move(router);
  if (auto i = st.awaiting.find(id); i != st.awaiting.end()) {
    for (auto& [until, rp] : i->second)
      rp.deliver(st.routers[id]);
    st.awaiting.erase(i);
  }
  if (peer_ready && !st.synced_from.count(id))
    st.expect_sync.insert(id);
  set_members(self);
  WH_INFO("cluster", st.self_id() << ": node " << id << " is up (" << (peer_ready ? "ready" : "joining")
                                  << "); live nodes: " << st.peers.size() + 1);
  if (auto i = st.down_at.find(id); i != st.down_at.end()) {
    WH_INFO("cluster", st.self_id() << ": reconnected to node " << id << " " << now_ms(self) - i->second
                                    << " ms after its link went down");
    st.down_at.erase(i);
  }
  reconcile(self);
}

void peer_down(self_ptr self, const std::string& id) {
  auto& st = self->state;
  auto known = st.peers.find(id);
  if (known == st.peers.end())
    return;
  auto handle = known->second;
  st.peers.erase(known);
  st.routers.erase(id);
  for (auto i = st.endpoint_peer.begin(); i != st.endpoint_peer.end();)
    i = i->second == handle ? st.endpoint_peer.erase(i) : std::next(i);
  st.expect_sync.erase(id);
  st.synced_from.erase(id);
  st.incoming.erase(id);
  st.applied_from.erase(id);
  st.handing.erase(handle.address());
  st.down_at[id] = now_ms(self);
  auto before = st.owned;
  set_members(self);
  reconcile(self);
  count(self, "wechat_hub_cluster_failovers_total");
  WH_WARN("cluster", st.self_id() << ": node " << id << " is down; now running " << st.owned
                                  << " key(s) (was " << before << "); live nodes: " << st.peers.size() + 1);
}

void become_ready(self_ptr self) {
  auto& st = self->state;
  if (st.ready)
    return;
  st.ready = true;
  WH_INFO("cluster", st.self_id() << ": ready with " << st.peers.size() + 1 << " live node(s)");
  reconcile(self);
}

std::string my_endpoint(self_ptr self) {
  return self->state.opts.cfg.advertised_endpoint();
}

/// The endpoints of the peers to connect to: those registered in etcd, or
/// the configured `peers` without etcd.
std::vector<std::string> dial_list(self_ptr self) {
  auto& st = self->state;
  if (!st.etcd)
    return st.opts.cfg.peers;
  std::vector<std::string> out;
  for (auto& [id, ep] : st.members)
    if (id != st.self_id() && !ep.empty())
      out.push_back(ep);
  return out;
}

/// Whether every peer this node should meet has said hello.
bool met_all(self_ptr self) {
  auto& st = self->state;
  if (!st.etcd)
    return st.peers.size() == st.opts.cfg.peers.size();
  if (!st.have_members)
    return false;
  for (auto& [id, ep] : st.members)
    if (id != st.self_id() && !st.peers.count(id))
      return false;
  return true;
}

/// Clears the published credentials of keys this node neither owns nor
/// replicates (copies of remote answers): after a rejoin they may be older
/// than what their owner holds, and no handover refreshes them.
void drop_unheld_copies(self_ptr self) {
  auto& st = self->state;
  size_t dropped = 0;
  ownership now{live_ids(self)};
  for (auto& e : st.reg->entries()) {
    auto holders = now.rank(e->key, st.opts.cfg.replicas);
    if (std::find(holders.begin(), holders.end(), st.self_id()) != holders.end())
      continue;
    dropped += e->token.load() || e->jsapi.load() || e->wx_card.load();
    e->token.clear();
    e->jsapi.clear();
    e->wx_card.clear();
  }
  if (dropped > 0)
    WH_INFO("cluster", st.self_id() << ": dropped the cached credentials of " << dropped
                                    << " key(s) other nodes hold; reads ask their owners");
}

/// etcd's view changed: the live set (and so every key's owner) follows it.
/// A stale view (lease lost, etcd unreachable) keeps the last live set; the
/// lease check before every upstream call keeps this node from acting.
///
/// A member registered anew (its lease lapsed: a pause, a partition from
/// etcd) is a rejoin. Its peers reconcile, which hands it every newer state
/// they hold of its keys. The rejoining node itself stops the actors it
/// still runs (their state may be older than what an interim owner wrote)
/// and starts its keys again only after those handovers (or the join grace).
void on_members(self_ptr self, std::vector<std::string> ids, std::vector<std::string> eps,
                std::vector<int64_t> regs, std::vector<int64_t> leases, int64_t rev, bool stale) {
  auto& st = self->state;
  if (st.stopped || stale)
    return;
  std::map<std::string, std::string> members;
  std::map<std::string, int64_t> registrations;
  int64_t self_lease = -1; // not registered in this view
  for (size_t i = 0; i < ids.size() && i < eps.size() && i < regs.size(); ++i) {
    members[ids[i]] = eps[i];
    registrations[ids[i]] = regs[i];
    if (ids[i] == st.self_id() && i < leases.size())
      self_lease = leases[i];
  }
  if (st.have_members && members == st.members && registrations == st.registrations
      && self_lease == st.self_lease)
    return;
  bool rejoined = false;
  bool peer_rejoined = false;
  for (auto& [id, reg] : registrations) {
    auto i = st.registrations.find(id);
    if (i == st.registrations.end() || i->second == reg)
      continue;
    (id == st.self_id() ? rejoined : peer_rejoined) = true;
  }
  // This node left etcd's view (its lease expired: a pause, or cut off
  // from etcd), or is back after it did: both start a rejoin. Its
  // registration is compared with the last one it saw of itself.
  if (auto mine = registrations.find(st.self_id()); mine == registrations.end())
    rejoined = rejoined || st.registrations.count(st.self_id()) > 0;
  else
    rejoined = rejoined || (st.self_reg != 0 && st.self_reg != mine->second);
  bool first = !st.have_members;
  st.members = std::move(members);
  st.registrations = std::move(registrations);
  std::erase_if(st.unsent, [&](auto& kv) { return !st.members.count(kv.first); });
  st.members_rev = rev;
  st.have_members = true;
  st.self_lease = self_lease;
  if (auto mine = st.registrations.find(st.self_id()); mine != st.registrations.end())
    st.self_reg = mine->second;
  std::string list;
  for (auto& [id, ep] : st.members)
    list += (list.empty() ? "" : ",") + id;
  WH_INFO("cluster", st.self_id() << ": etcd membership at revision " << rev << ": " << list);
  if (rejoined && !first) {
    WH_WARN("cluster", st.self_id() << ": left etcd's view or registered anew (its lease lapsed); stopping its keys "
                                       "until the peers hand over what changed meanwhile");
    // Killed, not stopped: every change they made is durable already, and
    // a stop would write their (possibly older) state once more with a new
    // version, which would then win over the interim owner's.
    for (auto& e : st.reg->entries())
      if (auto a = st.reg->deactivate(*e))
        self->send_exit(a, caf::exit_reason::kill);
    st.expect_sync.clear();
    for (auto& [id, a] : st.peers)
      st.expect_sync.insert(id);
    st.synced_from.clear();
    st.ready = false;
    st.lapsed = true;
    st.started_ms = now_ms(self);
    st.was = ownership{};
    // Copies of keys this node neither owns nor replicates are not handed
    // over: dropped, so that reads ask the owner instead of serving what it
    // may have replaced meanwhile.
    drop_unheld_copies(self);
    // Handovers that reached the stale actors before this view did.
    std::vector<key_state> held;
    for (auto& [key, s] : st.held)
      held.push_back(std::move(s));
    st.held.clear();
    if (!held.empty())
      adopt_states(self, std::move(held), [self](size_t applied) {
        WH_INFO("cluster", self->state.self_id() << ": took " << applied
                                                 << " newer key state(s) handed over before the rejoin");
        if (applied > 0)
          reconcile(self);
      });
  } else {
    st.held.clear();
  }
  set_members(self);
  expire_awaiting(self, true);
  st.dial_fast_until = now_ms(self) + 3000;
  try_connect(self);
  reconcile(self);
  (void) peer_rejoined; // reconcile hands every peer what it should hold
}

void try_connect(self_ptr self) {
  auto& st = self->state;
  // One connection per pair of nodes: the node whose endpoint sorts first
  // dials (two crossing connections make CAF drop one, which would look like
  // a node going down and up again). Should endpoints be spelled differently
  // on the two sides, the other node dials too after a few seconds.
  auto mine = my_endpoint(self);
  for (auto& ep : dial_list(self)) {
    if (st.endpoint_peer.count(ep) || st.connecting.count(ep)) {
      st.unmet.erase(ep);
      continue;
    }
    if (ep < mine && ++st.unmet[ep] < 5)
      continue;
    dial(self, ep);
  }
}

void dial(self_ptr self, const std::string& ep) {
  auto& st = self->state;
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(ep, host, port))
    return;
  st.connecting.insert(ep);
  auto me = caf::actor_cast<caf::actor>(self);
  auto fn = st.connect;
  self->spawn<caf::detached>([me, fn, ep, host, port](caf::blocking_actor*) {
    auto res = fn(host, port);
    if (res)
      caf::anon_send(me, connect_atom::value, ep, *res);
    else
      caf::anon_send(me, connect_atom::value, ep, to_string(res.error()));
  });
}

/// The router's `(activate_atom, key, create)`: this node owns `key` and a
/// request for it arrived; answers with the key's actor, starting it when
/// this node may (it waits while the key is handed over; `create`: a new
/// authorizer gets an entry first).
caf::response_promise activate_owned(self_ptr self, const std::string& key, bool create) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  auto e = st.reg->find(key);
  if ((!e || e->shadow) && create && key.find('/') != std::string::npos
      && st.own.owner(key) == st.self_id()) {
    auto slash = key.find('/');
    e = st.reg->ensure_authorizer(key.substr(0, slash), key.substr(slash + 1));
  }
  if (!e || e->shadow) {
    rp.deliver(make_detail_error(ec::unknown_key, key + " is not known to this hub"));
    return rp;
  }
  if (auto a = e->actor()) {
    rp.deliver(a);
    return rp;
  }
  if (st.own.owner(key) != st.self_id()) {
    rp.deliver(make_detail_error(ec::cluster_unavailable,
                                 "ownership of " + key + " is moving between nodes; retry"));
    return rp;
  }
  auto park = [&] {
    st.parked[key].push_back([rp](const actors::key_actor& a, const caf::error& err) mutable {
      if (err)
        rp.deliver(err);
      else
        rp.deliver(a);
    });
  };
  if (may_start(self, key)) {
    park();
    start_key(self, key);
    return rp;
  }
  // Handed over shortly (sync from the previous owner or the end of the join).
  park();
  self->delayed_send(self, st.opts.park_timeout, park_atom::value, key);
  return rp;
}

/// The router's `(route_atom, key)`: the router of `key`'s owner, which is
/// a live node this node has not met yet (see node_state::awaiting); an
/// invalid handle when this node owns the key now.
caf::response_promise route_to_owner(self_ptr self, const std::string& key) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  auto& id = st.own.owner(key);
  if (id == st.self_id()) {
    rp.deliver(actors::key_router_actor{});
  } else if (auto i = st.routers.find(id); i != st.routers.end()) {
    rp.deliver(i->second);
  } else if (st.etcd && !st.members.count(id)) {
    rp.deliver(make_detail_error(ec::cluster_unavailable, "the owner of " + key + " left; retry"));
  } else {
    // The router stops waiting on its own (router_options::owner_wait);
    // this only bounds what is kept here.
    st.awaiting[id].emplace_back(now_ms(self) + 5000, std::move(rp));
  }
  return rp;
}

/// Fails the waits for owners that left etcd's view and, unless
/// `left_only`, those past their time.
void expire_awaiting(self_ptr self, bool left_only) {
  auto& st = self->state;
  auto t = now_ms(self);
  for (auto i = st.awaiting.begin(); i != st.awaiting.end();) {
    bool left = st.etcd && st.have_members && !st.members.count(i->first);
    auto& ws = i->second;
    std::erase_if(ws, [&](auto& w) {
      if (!left && (left_only || w.first > t))
        return false;
      w.second.deliver(make_detail_error(ec::cluster_unavailable, "no connection to node " + i->first + " yet; retry"));
      return true;
    });
    i = ws.empty() ? st.awaiting.erase(i) : std::next(i);
  }
}

/// Runs a callback-based registry operation that answers `rp`.
template <class Op>
void run_op(self_ptr self, caf::response_promise rp, Op op) {
  auto id = ++self->state.next_op;
  self->state.ops.emplace(id, std::move(rp));
  auto me = caf::actor_cast<caf::actor>(self);
  op([me, id](caf::error err) { caf::anon_send(me, done_atom::value, id, std::move(err)); });
}

/// Runs a callback-based registry operation for a remote request.
template <class Op>
caf::response_promise async_op(self_ptr self, Op op) {
  auto rp = self->make_response_promise();
  run_op(self, rp, std::move(op));
  return rp;
}

/// Drops the states whose key saw an owner write with a newer epoch than
/// `epoch`; `owner_write` raises the keys' epochs to `epoch`.
void fence(self_ptr self, std::vector<key_state>& states, int64_t epoch, bool owner_write) {
  auto& st = self->state;
  std::erase_if(states, [&](const key_state& s) {
    auto& known = st.epochs[s.key];
    if (epoch < known) {
      WH_WARN("cluster", st.self_id() << ": refused a state of " << s.key << " with fencing epoch " << epoch
                                      << " (an owner wrote it at epoch " << known << ")");
      count(self, "wechat_hub_cluster_replication_applied_total", {{"result", "older_epoch"}});
      return true;
    }
    if (owner_write)
      known = epoch;
    return false;
  });
}

/// With etcd, a state of a key whose actor runs here comes from an owner
/// that followed this node (it lost its lease meanwhile): the actor must not
/// override it (which registry::adopt would make it do), so it is held and
/// adopted when this node rejoins (see on_members).
void hold_running(self_ptr self, std::vector<key_state>& states) {
  auto& st = self->state;
  if (!st.etcd)
    return;
  std::erase_if(states, [&](key_state& s) {
    auto e = st.reg->find(s.key);
    if (!e || !e->actor())
      return false;
    auto& h = st.held[s.key];
    if (s.seq > h.seq)
      h = std::move(s);
    return true;
  });
}

/// A peer's handover: adopted on the storage worker; the last message of it
/// (`more` false) ends the wait for that peer.
void on_sync(self_ptr self, const std::string& from, std::vector<key_state> states, bool more,
             int64_t epoch = 0) {
  if (auto m = self->state.stats)
    m->counter("wechat_hub_cluster_sync_states_received_total", {}) += states.size();
  fence(self, states, epoch, false);
  hold_running(self, states);
  auto n = states.size();
  adopt_states(self, std::move(states), [self, from, n, more](size_t applied) {
    auto& st = self->state;
    if (n > 0)
      WH_INFO("cluster", st.self_id() << ": caught up " << applied << " of " << n
                                      << " key state(s) from " << from);
    if (more) {
      // Keys start only once the whole handover is stored.
      st.applied_from[from] += applied;
      return;
    }
    applied += st.applied_from[from];
    st.applied_from.erase(from);
    st.incoming.erase(from);
    st.synced_from.insert(from);
    bool was_waiting = st.expect_sync.erase(from) > 0;
    if (was_waiting || applied > 0)
      reconcile(self);
  });
}

/// A state an owner sent after a write (`epoch`: its fencing epoch).
void on_repl(self_ptr self, key_state s, int64_t epoch) {
  auto& st = self->state;
  std::vector<key_state> one{std::move(s)};
  fence(self, one, epoch, true);
  hold_running(self, one);
  if (one.empty())
    return;
  // A node that is not one of the key's replicas only replaces what it
  // may have cached (so it stops serving a replaced token); it does not
  // store every key of the cluster.
  auto holders = st.own.rank(one.front().key, st.opts.cfg.replicas);
  if (std::find(holders.begin(), holders.end(), st.self_id()) == holders.end())
    return st.reg->refresh_cached(one.front());
  auto sent = one.front().sent_ms;
  adopt_states(self, std::move(one), [self, sent](size_t) {
    if (sent > 0)
      self->state.lag_ms->store(std::max<int64_t>(0, now_ms(self) - sent), std::memory_order_relaxed);
  });
}

caf::behavior node_actor(self_ptr self, node_options opts, actors::registry* reg, caf::actor store,
                         metrics* stats, connector connect,
                         std::shared_ptr<std::atomic<std::shared_ptr<const view>>> published,
                         std::shared_ptr<node::admin_handler> admin,
                         std::shared_ptr<std::atomic<int64_t>> lag_ms,
                         std::shared_ptr<std::atomic<bool>> ready_flag,
                         std::shared_ptr<std::atomic<int64_t>> lease_flag) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.reg = reg;
  st.store = std::move(store);
  st.stats = stats;
  st.connect = std::move(connect);
  st.published = std::move(published);
  st.admin = std::move(admin);
  st.lag_ms = std::move(lag_ms);
  st.ready_flag = std::move(ready_flag);
  st.lease_flag = std::move(lease_flag);
  st.clk = st.opts.clock ? st.opts.clock : &system_wall();
  st.etcd = !st.opts.cfg.etcd.empty();
  st.started_ms = now_ms(self);
  st.io = spawn_state_io(self->system(), *reg, st.opts.detached_io);
  self->link_to(st.io);
  st.own.set_nodes({st.self_id()});
  publish_view(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    for (auto& [id, a] : self->state.peers)
      if (a.address() == dm.source) {
        auto copy = id;
        peer_down(self, copy);
        return;
      }
  });
  caf::behavior running{
    [=](tick_atom) {
      auto& st = self->state;
      if (st.stopped)
        return;
      expire_awaiting(self, false);
      try_connect(self);
      auto waited_ms = now_ms(self) - st.started_ms;
      auto grace_ms = static_cast<int64_t>(st.opts.cfg.join_grace_ms);
      if (!st.ready) {
        bool met = met_all(self);
        // With etcd, a node alone in the view waits the join grace for others
        // to register: nodes started together would otherwise each own every
        // key for a moment (a component asks WeChat to push a verify ticket
        // wherever it starts).
        bool alone = st.etcd && st.members.size() <= 1 && waited_ms < grace_ms;
        bool all_met = met && st.expect_sync.empty() && !alone;
        // With etcd, members it lists that have not connected yet (a peer
        // retrying its dial after this node went away) and peers that have
        // not started their handover yet are waited for a while (four graces,
        // at least 20 s: peers stop the keys that move back first):
        // their handover brings what changed meanwhile.
        bool unstarted = std::any_of(st.expect_sync.begin(), st.expect_sync.end(),
                                     [&](auto& id) { return !st.incoming.count(id); });
        bool late = st.etcd && (!met || (unstarted && !st.lapsed)) && waited_ms < late_wait_ms(grace_ms);
        if (all_met || (waited_ms >= grace_ms && !late)) {
          // With etcd, a handover that never comes (a peer that saw nothing
          // change) must not keep keys parked: they start from storage. One
          // under way (a large one takes longer than the grace) is waited
          // for: its keys stay parked, the others start now (a peer that
          // goes down ends the wait; one whose version answer times out
          // sends every state, and its last part ends the wait).
          if (st.etcd && !st.expect_sync.empty()) {
            auto n = std::erase_if(st.expect_sync, [&](auto& id) { return !st.incoming.count(id); });
            if (n > 0)
              WH_WARN("cluster", st.self_id() << ": no handover from " << n
                                              << " peer(s) within the join grace; starting from stored state");
          }
          become_ready(self);
        }
      }
      self->delayed_send(self, st.ready ? st.opts.retry : std::chrono::milliseconds(100), tick_atom::value);
    },
    [=](connect_atom, const std::string& ep, const caf::actor& peer) {
      auto& st = self->state;
      st.connecting.erase(ep);
      if (!peer || st.stopped)
        return;
      st.endpoint_peer[ep] = peer;
      st.failing.erase(ep);
      self->request(peer, std::chrono::seconds(10), hello_atom::value, st.self_id(), my_endpoint(self),
                    st.ready, st.reg->router())
        .then(
          [self, peer](hello_atom, const std::string& id, const std::string&, bool peer_ready,
                       actors::key_router_actor& router) {
            peer_up(self, id, peer, std::move(router), peer_ready);
          },
          [self, ep](caf::error& err) {
            WH_WARN("cluster", self->state.self_id() << ": no hello from " << ep << ": "
                                                     << self->system().render(err));
            self->state.endpoint_peer.erase(ep);
          });
    },
    [=](connect_atom, const std::string& ep, const std::string& err) {
      // Logged once per endpoint until it connects again.
      auto& st = self->state;
      st.connecting.erase(ep);
      // Shortly after a membership change (a heal), retry this endpoint
      // in 100 ms rather than at the next tick.
      if (now_ms(self) < st.dial_fast_until)
        self->delayed_send(self, std::chrono::milliseconds(100), connect_atom::value, ep);
      if (st.failing.insert(ep).second)
        WH_WARN("cluster", st.self_id() << ": cannot connect to peer " << ep << ": " << err
                                        << " (retrying every " << std::chrono::duration_cast<std::chrono::milliseconds>(st.opts.retry).count() << " ms)");
    },
    [=](connect_atom, const std::string& ep) {
      // The fast retry of a failed dial (see dial_fast_until).
      auto& st = self->state;
      auto eps = dial_list(self);
      if (st.stopped || st.endpoint_peer.count(ep) || st.connecting.count(ep)
          || std::find(eps.begin(), eps.end(), ep) == eps.end())
        return;
      dial(self, ep);
    },
    [=](hello_atom, const std::string& id, const std::string& endpoint, bool peer_ready,
        actors::key_router_actor& router) {
      auto& st = self->state;
      auto peer = caf::actor_cast<caf::actor>(self->current_sender());
      auto reply = caf::make_message(hello_atom::value, st.self_id(), my_endpoint(self), st.ready,
                                     st.reg->router());
      if (peer) {
        st.endpoint_peer[endpoint] = peer; // the peer dialed us: no need to dial it
        peer_up(self, id, peer, std::move(router), peer_ready);
      }
      return reply;
    },
    [=](sync_atom, const std::string& from, std::vector<key_state>& states) {
      on_sync(self, from, std::move(states), false);
    },
    [=](sync_atom, const std::string& from, std::vector<key_state>& states, bool more) {
      on_sync(self, from, std::move(states), more);
    },
    [=](sync_atom, const std::string& from, std::vector<key_state>& states, bool more, int64_t epoch) {
      on_sync(self, from, std::move(states), more, epoch);
    },
    [=](sync_atom, version_atom, const std::string& from, std::vector<std::string>& keys)
      -> caf::result<caf::message> {
      // A peer is about to hand keys over: the versions stored here.
      self->state.incoming.insert(from);
      return self->delegate(self->state.io, version_atom::value, std::move(keys));
    },
    [=](repl_atom, const std::string& key, const std::string&) {
      // A local owner persisted a change: send the new state to the replicas.
      auto& st = self->state;
      auto e = st.reg->find(key);
      if (!e || st.peers.empty())
        return;
      self->request(st.io, caf::infinite, read_atom::value, std::vector<std::string>{key},
                    std::vector<uint64_t>{})
        .then(
          [self, key](std::vector<key_state>& states) {
            auto& st = self->state;
            // Every live node gets the new version, not only the replicas:
            // a node that cached the replaced token stops serving it now.
            for (auto& s : states) {
              s.sent_ms = now_ms(self);
              // This write's fencing epoch: the membership revision it was
              // made at (a later owner's writes carry a newer one).
              auto& mine = st.epochs[key];
              mine = std::max(mine, st.members_rev);
              for (auto& [id, peer] : st.peers) {
                self->send(peer, repl_atom::value, s, st.members_rev);
                count(self, "wechat_hub_cluster_replication_sent_total");
              }
            }
          },
          [key](caf::error& err) {
            WH_ERROR("cluster", "cannot read the state of " << key << ": " << to_string(err));
          });
    },
    [=](repl_atom, key_state& s) { on_repl(self, std::move(s), 0); },
    [=](repl_atom, key_state& s, int64_t epoch) { on_repl(self, std::move(s), epoch); },
    [=](park_atom, const std::string& key) {
      flush_parked(self, key, actors::key_actor{},
                   make_detail_error(ec::cluster_unavailable,
                                     key + " is being handed over between nodes; retry"));
    },
    [=](ready_atom) { reconcile(self); },
    // etcd's view (node::on_membership; local only, never sent between nodes).
    [=](ready_atom, std::vector<std::string>& ids, std::vector<std::string>& eps, std::vector<int64_t>& regs,
        std::vector<int64_t>& leases, int64_t rev, bool stale) {
      on_members(self, std::move(ids), std::move(eps), std::move(regs), std::move(leases), rev, stale);
    },
    [=](put_atom, const std::string& method, const std::string& target, const std::string& body,
        const std::string& ctype, bool relayed) {
      auto& st = self->state;
      if (!relayed) {
        for (auto& [id, a] : st.peers)
          self->send(a, put_atom::value, method, target, body, ctype, true);
        return;
      }
      WH_INFO("cluster", st.self_id() << ": applying relayed admin change " << method << " "
                                      << target.substr(0, target.find('?')));
      if (*st.admin)
        (*st.admin)(method, target, body, ctype);
    },
    [=](done_atom, uint64_t id, caf::error& err) {
      auto i = self->state.ops.find(id);
      if (i == self->state.ops.end())
        return;
      if (err)
        i->second.deliver(std::move(err));
      else
        i->second.deliver(done_atom::value);
      self->state.ops.erase(i);
    },
    // -- keys (the router asks) and imports (peers ask the owner) --------------
    [=](activate_atom, const std::string& key, bool create) { return activate_owned(self, key, create); },
    [=](actors::route_atom, const std::string& key) { return route_to_owner(self, key); },
    [=](import_atom, const std::string& component, const std::vector<std::string>& flat) {
      std::vector<std::pair<std::string, std::string>> items;
      for (size_t i = 0; i + 1 < flat.size(); i += 2)
        items.emplace_back(flat[i], flat[i + 1]);
      auto reg = self->state.reg;
      return async_op(self, [reg, component, items = std::move(items)](auto done) mutable {
        reg->import_local(component, std::move(items), done);
      });
    },
  };
  // Until start(): the registry may not know its keys yet (definitions load
  // after the node is published), so a peer's hello or handover would find
  // them unknown. Everything but the first tick waits in the mailbox.
  self->set_default_handler(caf::skip);
  return {
    [=](tick_atom) mutable {
      self->set_default_handler(caf::print_and_drop);
      self->state.started_ms = now_ms(self);
      self->become(running);
      self->send(self, tick_atom::value);
    },
  };
}

} // namespace

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<actors::credential>("wh::credential");
  cfg.add_message_type<actors::authorization>("wh::authorization");
  cfg.add_message_type<key_state>("wh::key_state");
  cfg.add_message_type<std::vector<key_state>>("std::vector<wh::key_state>");
  cfg.add_message_type<std::vector<uint64_t>>("std::vector<uint64_t>");
  cfg.add_message_type<actors::key_router_actor>("wh::key_router_actor");
}

node::node(caf::actor_system& sys, actors::registry& reg, caf::actor store, metrics* stats,
           node_options opts, connector connect)
  : view_(std::make_shared<std::atomic<std::shared_ptr<const view>>>()) {
  auto initial = std::make_shared<view>();
  initial->self = opts.cfg.node_id;
  initial->own.set_nodes({opts.cfg.node_id});
  view_->store(initial);
  auto configured = static_cast<double>(opts.cfg.peers.size() + 1);
  // With etcd the nodes are not listed in the configuration: the most seen
  // live at once stands for them (WeChatHubClusterNodeDown fires when one is lost).
  auto with_etcd = !opts.cfg.etcd.empty();
  actor_ = sys.spawn(node_actor, std::move(opts), &reg, std::move(store), stats, std::move(connect),
                     view_, admin_, lag_ms_, ready_, lease_);
  if (stats) {
    stats->describe("wechat_hub_cluster_failovers_total",
                    "Membership losses this node handled (a peer reported down)");
    stats->describe("wechat_hub_cluster_replication_sent_total", "Key states sent to replicas");
    stats->describe("wechat_hub_cluster_sync_states_sent_total",
                    "Key states handed to peers after membership changes (only keys newer than "
                    "the peer's copy)");
    stats->describe("wechat_hub_cluster_sync_states_received_total",
                    "Key states peers handed to this node after membership changes (a rejoin "
                    "receives only what changed while it was away)");
    stats->describe("wechat_hub_cluster_replication_applied_total",
                    "Replicated key states received, by result (older = not applied)");
    stats->describe("wechat_hub_cluster_forwarded_total",
                    "Key requests this node's key router took from peers, by request and result "
                    "(served, started, not_owner)");
    auto v = view_;
    auto lag = lag_ms_;
    stats->describe("wechat_hub_cluster_replication_lag_seconds",
                    "Owner-to-replica delay of the last replicated state", "gauge");
    stats->describe("wechat_hub_cluster_live_nodes", "Live nodes this node sees (itself included)",
                    "gauge");
    stats->describe("wechat_hub_cluster_owned_keys",
                    "Keys this node owns (their actors run here while they have work)", "gauge");
    stats->describe("wechat_hub_cluster_ready", "1 once this node caught up and runs its keys",
                    "gauge");
    stats->describe("wechat_hub_cluster_configured_nodes",
                    "Nodes in this node's configuration (itself and its peers); with etcd, the "
                    "most nodes it has seen live at once", "gauge");
    stats->add_collector([v, lag, configured, with_etcd](metrics::sink& out) {
      auto cur = v->load();
      out.add("wechat_hub_cluster_replication_lag_seconds", {{"node", cur->self}},
              static_cast<double>(lag->load()) / 1000.0);
      out.add("wechat_hub_cluster_live_nodes", {{"node", cur->self}},
              static_cast<double>(cur->own.nodes().size()));
      out.add("wechat_hub_cluster_owned_keys", {{"node", cur->self}},
              static_cast<double>(cur->owned_keys));
      out.add("wechat_hub_cluster_ready", {{"node", cur->self}}, cur->ready ? 1.0 : 0.0);
      out.add("wechat_hub_cluster_configured_nodes", {{"node", cur->self}},
              with_etcd ? static_cast<double>(cur->most_live) : configured);
    });
  }
}

node::~node() {
  stop();
}

void node::on_membership(const membership_view& v) {
  post_membership(actor_, v);
}

void post_membership(const caf::actor& node_actor, const membership_view& v) {
  std::vector<std::string> ids;
  std::vector<std::string> eps;
  std::vector<int64_t> regs;
  std::vector<int64_t> leases;
  for (auto& m : v.nodes) {
    ids.push_back(m.node_id);
    eps.push_back(m.endpoint);
    regs.push_back(m.create_revision);
    leases.push_back(m.lease);
  }
  caf::anon_send(node_actor, ready_atom::value, std::move(ids), std::move(eps), std::move(regs), std::move(leases),
                 v.revision, v.stale);
}

void node::start() {
  caf::anon_send(actor_, tick_atom::value);
}

actors::key_owner node::owner_of(std::string_view key) const {
  auto v = current();
  auto& id = v->own.owner(key);
  actors::key_owner out;
  out.here = id == v->self;
  if (auto i = v->routers.find(id); !out.here && i != v->routers.end())
    out.router = i->second;
  return out;
}

caf::actor node::owner_node(std::string_view key) const {
  auto v = current();
  auto& id = v->own.owner(key);
  if (auto i = v->actors.find(id); i != v->actors.end())
    return i->second;
  return {};
}

bool node::serves_held() const {
  return ready_->load(std::memory_order_acquire);
}

int64_t node::lease() const {
  return lease_->load(std::memory_order_acquire);
}

void node::relay_admin(const std::string& method, const std::string& target, const std::string& body,
                       const std::string& content_type) const {
  caf::anon_send(actor_, put_atom::value, method, target, body, content_type, false);
}

void node::stop() {
  if (actor_)
    caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
}

} // namespace wh::cluster
