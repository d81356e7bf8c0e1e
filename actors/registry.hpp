#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"

#include "actors/app_actor.hpp"
#include "actors/directory.hpp"
#include "actors/key_router.hpp"
#include "actors/membership.hpp"
#include "actors/messages.hpp"
#include "actors/snapshot.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "persistence/store.hpp"

namespace wh {
class metrics;
}

namespace wh::actors {

/// Completion of an ask; may run on any thread, must not block.
using credential_callback = std::function<void(caf::expected<credential>)>;

/// The directory of every key and its snapshots: what the front end reads
/// (published tokens and tickets, status) without an actor hop, each key's
/// stored state, and where a key is served (its actor here, or the router).
/// Lookups take one shard's shared lock (actors/directory.hpp). Asking a key is
/// key_client's job (actors/key_client.hpp); what components' authorizers go
/// through is authorizations' (actors/authorizations.hpp); admin-defined
/// keys are runtime_definitions' (actors/runtime_definitions.hpp).
class registry {
public:
  struct options {
    uint32_t refresh_margin_s = 180;
    uint32_t refresh_jitter_s = 90;
    caf::timespan upstream_timeout = std::chrono::seconds(15);
    /// Fencing of every key actor's upstream calls (app_params::may_act).
    lease_check may_act;
    /// Deadline of one ask from the front end.
    caf::timespan ask_timeout = std::chrono::seconds(30);
    /// Components: a walk of api_get_authorizer_list answers lookups of
    /// unknown authorizers for this long (rate limit of recovery).
    uint32_t recovery_interval_s = 60;
    /// Virtual activation: an app's or authorizer's actor stops after this
    /// long without work (0 = actors stay resident). Components always stay.
    caf::timespan idle_timeout = std::chrono::seconds(60);
    /// The key router's limits and the refresh schedule's rate.
    router_options router;
  };

  registry(caf::actor_system& sys, caf::actor upstream, caf::actor store,
           std::shared_ptr<persistence::store> db, const wh::clock& clk, metrics* stats,
           options opts);
  ~registry();

  /// Spawns the actor of `app`, restoring its persisted state. Corrupt records
  /// are logged and ignored (the app starts cold). Errors: duplicate appid.
  caf::error add_app(const app_config& app, bool runtime = false);

  /// Spawns a component's actor and the actors of all its stored authorizers.
  caf::error add_component(const component_config& comp, bool runtime = false);

  /// Finds the entry of `key` (an appid, a component appid, or
  /// "component/authorizer"), or nullptr.
  std::shared_ptr<key_entry> find(std::string_view key) const;

  /// All entries (for metrics and shutdown).
  std::vector<std::shared_ptr<key_entry>> entries() const;

  /// Calls `fn` for every entry without copying the directory (under a
  /// shard's shared lock: `fn` must not call back into the registry).
  void for_each_entry(const std::function<void(const std::shared_ptr<key_entry>&)>& fn) const {
    dir_.for_each(fn);
  }

  /// Done callback of operations that store (empty error = success).
  using done_callback = std::function<void(caf::error)>;

  // -- config reload (actors/registry_reload.cpp) -----------------------------

  /// What sync_config changed (appids).
  struct sync_report {
    std::vector<std::string> added;
    std::vector<std::string> changed;
    std::vector<std::string> removed;
    /// Components among `removed` (or replaced by an app).
    std::vector<std::string> dropped_components;
    /// "appid: problem" for keys that could not be (re)started.
    std::vector<std::string> failed;
  };

  /// Makes the config-file definitions equal to `apps` and `comps` (SIGHUP).
  /// Unchanged keys keep their running actor and tokens (no upstream call);
  /// changed ones restart from their stored state, their cached credentials
  /// served throughout; removed ones stop (their stored state stays, so a
  /// re-added key needs no new token). The file wins over an admin-defined
  /// key of the same appid, as at startup.
  sync_report sync_config(const std::vector<app_config>& apps,
                          const std::vector<component_config>& comps);

  /// Stops every actor.
  void shutdown();

  /// Call once every configured and stored key is loaded: the first start
  /// with virtual activation wrote every stored key's due time into the
  /// refresh schedule, and marks it complete (later starts read keys only).
  void finish_startup();

  // -- multi-node hubs (cluster/node.hpp) ------------------------------------

  /// How the registry reaches other nodes. Set once, before any add_*.
  struct cluster_link {
    /// This node's node actor: told `(repl_atom, key, prefix)` by owners,
    /// asked `(activate_atom, key, create)` by the router (it decides when
    /// this node may start a key's actor).
    caf::actor node;
    /// The node actor of `key`'s owner (this node's own when it owns the
    /// key), or an invalid handle without a live owner. Thread-safe. For
    /// the registry operations an owner runs (authorize, import).
    std::function<caf::actor(std::string_view)> owner_node;
    /// Who serves a key (the router delegates to the owner's router).
    owner_lookup owner_of;
  };

  /// Switches to multi-node mode: actors run only where the node actor
  /// activates them; the router delivers requests for other keys to their
  /// owner's router.
  void enable_cluster(cluster_link link);

  /// The multi-node link (empty on a single node); set before any key is asked.
  const cluster_link& cluster() const { return cluster_; }

  /// The hub's metrics (may be null).
  metrics* stats() const { return stats_; }

  bool clustered() const { return static_cast<bool>(cluster_.node); }

  /// Spawns `e`'s actor from the stored state (no-op when running).
  key_actor activate(const std::shared_ptr<key_entry>& e);

  /// Forgets `e`'s actor and returns it (the caller stops it).
  key_actor deactivate(key_entry& e);

  /// The stored state of `e` (every record under its prefix) and its version.
  caf::expected<key_state> read_state(const key_entry& e) const;

  /// `owner_running`: this node runs the key's actor (two nodes ran it alone
  /// before they met); the running owner's state wins — the caller tells the
  /// actor to raise its version above the incoming one and re-replicate.
  enum class adopt_result { applied, older, refused, failed, owner_running };

  /// Stores replicated state if it is newer than the local copy (an older
  /// version never overwrites a newer one) and serves it from the snapshots.
  adopt_result adopt(const key_state& s);

  /// A node that is not one of the key's replicas got its owner's new state:
  /// serves its valid credentials in place of older cached ones (stores
  /// nothing; a running actor's own state is left alone). Never blocks.
  void refresh_cached(const key_state& s);

  /// The entry of an authorizer, created (without actor in a cluster) if unknown.
  std::shared_ptr<key_entry> ensure_authorizer(const std::string& component,
                                               const std::string& authorizer);

  /// Storage prefix of a key.
  static std::string prefix_of(const key_entry& e);

  /// Running token actors per kind (app, component, authorizer).
  std::array<size_t, 3> active_actors() const;

  /// The key router: virtual activation on a single node, delivery to the
  /// owner in a cluster; invalid on a single node whose actors stay resident.
  const key_router_actor& router() const { return router_; }

  /// The hub's (sealed) store, for records outside any key (the push journal).
  const std::shared_ptr<persistence::store>& db() const { return db_; }

  /// The hub's clock (tokens' validity).
  const wh::clock& clock() const { return clock_; }

  /// Deadline of one ask from the front end (options::ask_timeout).
  caf::timespan ask_timeout() const { return opts_.ask_timeout; }

  // -- the directory's entries --------------------------------------------------

  /// Entries whose key starts with `prefix`, in key order.
  std::vector<std::shared_ptr<key_entry>> with_prefix(std::string_view prefix) const;

  /// Creates an authorizer's entry (not yet in the directory) from its
  /// stored state `p`, started as add_component starts stored authorizers.
  std::shared_ptr<key_entry> make_authorizer(const std::string& component,
                                             const std::string& authorizer, app_params&& p);

  /// Adds entries with one copy of the map (100,000 authorizers must not be O(n^2)).
  void insert(std::vector<std::shared_ptr<key_entry>> entries);

  /// Removes entries with one copy of the map.
  void erase_entries(const std::vector<std::string>& keys);

  /// Stops a component's actor and its authorizers' and forgets them.
  void stop_component(const std::string& appid);

  /// Serializes changes of definitions (admin API, reload, new authorizers).
  std::mutex& definitions_mutex() { return runtime_mtx_; }

  /// Persists through the store actor from a non-actor thread.
  void write(store_write w, done_callback cb);

  /// Imports refresh tokens of authorizers this node owns: one durable
  /// batch, then their entries and actors (authorizations::import_authorizers
  /// gives each owner its share).
  void import_local(const std::string& component,
                    std::vector<std::pair<std::string, std::string>> refresh_tokens,
                    done_callback cb);

  // -- where a key is served ----------------------------------------------------

  /// A key whose actor the router starts and stops (virtual activation).
  bool virtual_key(const key_entry& e) const;

  /// Where a request for `e` goes: its actor here, or by key to the router
  /// (at most one is set; none: the key has no running actor).
  struct key_route {
    key_actor local;
    key_router_actor router;
  };
  key_route route_of(const key_entry& e) const;

  /// Caches an owner's answer for a key without a local actor (snapshots).
  void remember(const std::string& key, const std::string& slot, const credential& x);

  /// What a component's start hands to the authorizer operations
  /// (actors/authorizations.hpp); set once, before any add_component.
  struct component_hooks {
    /// The component started on this node: recover its pending authorizations.
    std::function<void(const std::string&)> started;
    /// Its reconciliation walked WeChat's list: (appid, refresh token) pairs.
    std::function<void(const std::string&, std::vector<std::pair<std::string, std::string>>)> reconciled;
  };
  void set_component_hooks(component_hooks hooks);

private:
  /// The stored state of `e` as actor parameters.
  app_params load_params(const std::shared_ptr<key_entry>& e) const;
  /// Publishes stored state into the snapshots (keys without a local actor).
  void publish_stored(key_entry& e, const app_params& p) const;
  /// Spawns the actor (single node) or publishes the stored state (cluster).
  void start(const std::shared_ptr<key_entry>& e, app_params&& p);
  /// First start with virtual activation: queues `e`'s due time (from its
  /// stored credentials) for the refresh schedule.
  void schedule_stored(const key_entry& e, const app_params& p);
  void flush_migration();
  /// The directory entries of a component's stored authorizers from their
  /// keys alone (a start with a complete schedule: no value is decrypted).
  caf::error load_authorizer_keys(const std::string& component, const std::string& all);
  /// Publishes the stored tokens and tickets of a component's authorizers
  /// loaded by key only, on a thread of its own.
  void warm_snapshots(const std::string& component);
  key_source component_handle(const std::string& component) const;
  key_source spawn_component_link(const std::string& component);
  app_params base_params(std::shared_ptr<key_entry> entry) const;
  /// sync_config: stops and forgets a file-defined key (state kept).
  void unload(const key_entry& e);
  /// sync_config: runs `app` in place of the entry `old`, keeping its cache.
  void replace_app(const app_config& app, const key_entry& old);
  /// sync_config: restarts a component and its authorizers from stored state,
  /// replacing their entries in place (no lookup ever misses).
  caf::error replace_component(const component_config& comp);
  /// add_component without the duplicate check (its entries replace any
  /// entries of the same keys).
  caf::error start_component(const component_config& comp, bool runtime);

  /// Serializes runtime (admin) changes of definitions.
  std::mutex runtime_mtx_;

  caf::actor_system& sys_;
  caf::actor upstream_;
  caf::actor store_;
  std::shared_ptr<persistence::store> db_;
  const wh::clock& clock_;
  metrics* stats_;
  options opts_;
  directory dir_;
  mutable std::mutex defs_mtx_;
  std::unordered_map<std::string, app_config> app_defs_;
  std::unordered_map<std::string, component_config> comp_defs_;
  /// Cluster: per component, the forwarder authorizer actors ask for its token.
  std::unordered_map<std::string, key_source> comp_links_;
  cluster_link cluster_;
  component_hooks hooks_;
  key_router_actor router_;
  /// The refresh schedule holds every stored key's due time.
  bool schedule_ready_ = false;
  std::mutex migration_mtx_;
  std::vector<persistence::batch_entry> migration_;
};

} // namespace wh::actors
