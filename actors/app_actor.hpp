#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

#include "actors/key_protocol.hpp"
#include "actors/kinds.hpp"
#include "actors/membership.hpp"
#include "actors/messages.hpp"
#include "actors/snapshot.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"

namespace wh {
class metrics;
}

namespace wh::actors {

/// Everything a token actor needs: identity, collaborators and the state
/// recovered from storage.
struct app_params {
  key_kind kind = key_kind::app;
  /// appid + secret (+ token_api) of an app or component; for an authorizer
  /// the appid is the authorizer appid and the secret is unused.
  app_config app;
  /// Component appid (components and authorizers).
  std::string component_appid;
  /// Storage prefix of this key (see persistence::keys).
  std::string prefix;
  /// The component's actor, or a forwarder to its owner (authorizers only).
  key_source component;
  /// Gateway to WeChat (see upstream_actor.hpp).
  caf::actor upstream;
  /// Durable writes (see store_actor.hpp).
  caf::actor store;
  /// Where the actor publishes what it serves; never null.
  std::shared_ptr<key_entry> entry;
  /// Wall clock (unix seconds) used for expiry; never null.
  const wh::clock* clock = nullptr;
  metrics* stats = nullptr;
  /// Refresh at expiry - margin - uniform(0, jitter) seconds.
  uint32_t refresh_margin_s = 180;
  uint32_t refresh_jitter_s = 90;
  /// Seed of the jitter generator (tests fix it; production draws it).
  uint64_t seed = 0;
  /// Backstop for one upstream request (the HTTP client has its own deadline).
  caf::timespan upstream_timeout = std::chrono::seconds(15);
  /// Fencing: checked right before every upstream call; while it answers
  /// false the actor serves what it holds and calls nobody (empty = always).
  lease_check may_act;
  /// WeChat's forced-refresh limits for stable_token.
  uint32_t force_per_day = 20;
  uint32_t force_spacing_s = 30;
  /// A verified-valid token is not re-verified within this window.
  uint32_t verify_cache_s = 60;
  /// Refresh-loop guard: a token already verified valid and reported again
  /// more than `loop_reports` times within `loop_window_s` escalates once to
  /// a real refresh; reports that still continue are refused (ec::report_loop).
  uint32_t loop_reports = 3;
  uint32_t loop_window_s = 300;
  /// After the escalation, reports of the replaced token are answered with
  /// the new one (a fleet of instances may all hold it) this many times per
  /// window before they are refused too.
  uint32_t loop_stale_reports = 100;
  /// Components: a complete api_get_authorizer_list walk answers authorizer
  /// lookups for this long (unknown appids cannot make the hub page WeChat's
  /// list in a loop).
  uint32_t recovery_interval_s = 60;
  /// Components: every this many seconds the whole list is walked and handed
  /// to `on_reconcile` (0 = off).
  uint32_t reconcile_interval_s = 0;
  /// Components: receives the complete upstream authorizer list (appid,
  /// refresh token) after each reconciliation walk. Runs on the actor's
  /// thread: must not block.
  std::function<void(std::vector<std::pair<std::string, std::string>>)> on_reconcile;
  /// State recovered from storage (expired values are ignored).
  std::optional<credential> token;
  std::optional<credential> jsapi;
  std::optional<credential> wx_card;
  persistence::force_budget_record force_budget;
  /// Authorizers: the stored refresh token and status.
  std::optional<credential> refresh_token;
  authorizer_status status = authorizer_status::active;
  /// When the status was set (the revocation push's CreateTime), and when
  /// the authorization behind the refresh token happened (0 = not stored):
  /// merges order a revocation against a re-authorization by them.
  int64_t status_at = 0;
  int64_t authorized_at = 0;
  /// Components: the latest verify ticket.
  std::optional<credential> verify_ticket;
  /// Version of this key's whole stored state (persistence::keys::seq); every
  /// persisted change raises it (see next_seq). Replicas keep the newest.
  uint64_t seq = 0;
  /// Multi-node hubs: the local cluster node actor, told `(repl_atom, key,
  /// prefix)` after every persisted change so it can replicate the state.
  caf::actor cluster;
  /// Virtual activation: the node's key router. After
  /// `idle_timeout` without a message and with nothing pending, the actor
  /// asks the router to passivate it (`(idle_atom, key)`); the router then
  /// asks `(stop_atom, idle_atom)`. Without a router the actor stays.
  key_router_actor router;
  caf::timespan idle_timeout{0};
  /// The key's due time in the durable refresh schedule as stored (0 = none).
  int64_t due = 0;
};

/// The version after `prev` at unix-milliseconds `now_ms`: max(prev + 1, now_ms),
/// so versions grow on one owner and still order writes made by two owners
/// on either side of a partition by time.
inline uint64_t next_seq(uint64_t prev, uint64_t now_ms) {
  return std::max(prev + 1, now_ms);
}

/// Spawns the actor owning one official-account app's access_token and its
/// jsapi / wx_card tickets.
///
/// Protocol (declared as `key_actor` in key_protocol.hpp; all answers are
/// `credential` or a `caf::error` of `wh::ec`):
/// - `(get_atom, token_atom)`: the current token; fetched on first use.
/// - `(get_atom, ticket_atom, std::string type)`: "jsapi" or "wx_card".
/// - `(stale_atom, std::string token)`: a client saw `token` fail. A newer
///   token is returned as is; the current one is verified once with
///   get_api_domain_ip before it is replaced, so a confused client cannot burn
///   quota or the force_refresh budget.
///   A token reported again after it was verified valid counts towards the
///   refresh-loop guard (see `loop_reports`); a loop gets one real refresh,
///   then `ec::report_loop` (context: detail, uint32 retry-after seconds,
///   bool first refusal of this loop).
/// - `(stale_atom, force_atom, std::string token)`: the hub's own call with
///   `token` was rejected by WeChat (40001/40014/42001): no check, the token
///   is replaced once if it is still the current one (compare-and-set).
/// - `(refresh_atom)`: an operator-forced refresh (counts against the budget).
/// - `(quota_atom)`: WeChat's clear_quota succeeded; lifts a 45009 pause (no answer).
/// Components only:
/// - `(vticket_atom, std::string ticket)` -> `done_atom` once the verify ticket is durable.
/// - `(auth_atom, std::string authorization_code)` -> `authorization` after
///   api_query_auth, with both tokens durable.
/// - `(auth_atom, std::string code, std::string authorizer, int64_t create_time)`:
///   as above, but the pending authorization is persisted first; a code WeChat
///   refuses as used or expired (61009/61010) is recovered from the list.
/// - `(import_atom, std::string authorizer)` -> `credential`: the authorizer's
///   refresh token from api_get_authorizer_list (500 per page, one walk at a
///   time, answered from the last walk for `recovery_interval_s`);
///   `ec::unknown_key` when WeChat does not list it.
/// Authorizers only:
/// - `(auth_atom, authorization)`: (re-)authorized; resets a revoked status.
/// - `(auth_atom, std::string refresh_token)` -> `done_atom`: imported refresh token, durable.
/// - `(revoke_atom)` -> `done_atom`: deletes tokens and tickets, marks revoked.
/// - `(revoke_atom, int64_t create_time)` -> `done_atom`: the same for an
///   unauthorized push of that CreateTime (merges order it by that time).
/// All kinds:
/// - `(stop_atom, idle_atom)` -> `(bool stopped, int64 due, int64 stored_due)`:
///   quits if nothing is pending (virtual activation); `due` is the earliest
///   armed refresh (0 = none), `stored_due` the schedule entry it replaces.
/// - `(sync_atom, key_state)`: another node's copy of this key's state (two
///   nodes ran it apart): merged by meaning (actors/state_merge.hpp); what
///   the merge changes is applied, persisted and replicated, and so is this
///   actor's state when the other copy was behind.
/// - `(wake_atom)`: the refresh schedule woke the key; an expired token is
///   fetched now.
/// - `(stop_atom)` -> `done_atom`: quits (ownership moved to another node). Every
///   write the actor started was sent to the store actor before this answer.
///
/// Concurrent requests share one upstream call (single-flight); every change
/// is persisted through the store actor before anyone is answered; the token
/// and tickets are refreshed ahead of expiry with jitter.
key_actor spawn_app_actor(caf::actor_system& sys, app_params params);

/// When `x` is refreshed proactively: expiry - margin - jitter, the jitter in
/// [0, jitter_s] drawn from `seed` and the value's version and expiry, so an
/// actor started again (virtual activation, a restart) arrives at the same
/// time the refresh schedule holds.
int64_t refresh_due(const credential& x, uint64_t seed, uint32_t margin_s, uint32_t jitter_s);

/// The jitter seed of a key (stable across restarts of the same binary).
inline uint64_t key_seed(std::string_view key) {
  return std::hash<std::string_view>{}(key) ^ 0x5bd1e995a1b2c3d4ULL;
}

/// Beijing (UTC+8) calendar day of unix time `t`: WeChat's quotas reset then.
inline int64_t beijing_day(int64_t t) {
  return (t + 8 * 3600) / 86400;
}

} // namespace wh::actors
