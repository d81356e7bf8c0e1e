#pragma once

// Internals of the token actor (app_actor.cpp), shared by its parts:
// credential_slot.cpp (the lifecycle every credential goes through),
// kind_policy.cpp (what differs per kind) and component_ops.cpp (the
// component's authorizer listing and api_query_auth). Not a public header.

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "caf/all.hpp"

#include "actors/app_actor.hpp"
#include "core/error.hpp"
#include "wechat/api.hpp"

namespace wh::actors::detail {

// -- state ------------------------------------------------------------------

using waiter = std::function<void(const caf::expected<credential>&)>;

enum timer_kind : uint8_t { token_timer = 0, jsapi_timer = 1, wx_card_timer = 2, reconcile_timer = 3 };

/// A refresh token has no expiry of its own.
constexpr int64_t never = std::numeric_limits<int64_t>::max();

struct app_state;
using self_ptr = key_actor::stateful_pointer<app_state>;
struct credential_slot;

/// One fetch of a credential in flight.
struct attempt {
  const char* reason = "";
  /// stable_token's force_refresh (spends the budget).
  bool force = false;
  /// The request was already retried once after its source was replaced.
  bool retried = false;
  /// What the request is made with: the access token for a ticket, the
  /// component token for an authorizer token; empty for none.
  std::string used;
  /// When the request went out: expiry counts from here.
  int64_t sent_at = 0;
};

/// A new value WeChat handed out.
struct fresh_value {
  std::string value;
  int64_t expires_in = 0;
  /// api_authorizer_token: a (possibly new) refresh token; empty otherwise.
  std::string refresh_token;
};

/// A WeChat reply read by one of the wechat::parse_* functions.
template <class T>
struct parsed_reply {
  /// Our error for a transport failure or an answer that is not WeChat's
  /// (HTTP status, not JSON, fields missing).
  caf::error err;
  /// WeChat's non-zero errcode and its errmsg: the caller classifies it.
  int errcode = 0;
  std::string errmsg;
  /// The answer, when neither of the above.
  std::optional<T> value;

  T* operator->() {
    return &*value;
  }
};

/// What differs between credentials: how the request is made and how an
/// errcode in the reply is classified. Everything else (single-flight,
/// backoff, persist, publish, schedule) is credential_slot.cpp.
struct slot_ops {
  /// Why nothing can be fetched right now (a pause, a missing input), or none.
  caf::error (*cannot_fetch)(self_ptr);
  /// Obtains what the request is made with (see attempt::used); nullptr when
  /// the request needs nothing.
  void (*source)(self_ptr, waiter);
  /// `used` was rejected: has it replaced, then calls `k` (error: give up).
  void (*source_dead)(self_ptr, const std::string& used, std::function<void(caf::error)> k);
  /// The upstream request.
  wechat::request (*build)(self_ptr, const credential_slot&, const attempt&);
  /// Reads WeChat's answer.
  parsed_reply<fresh_value> (*parse)(self_ptr, const caf::expected<upstream_reply>&);
  /// WeChat answered a non-zero errcode: ends the attempt (fail or retry).
  void (*on_errcode)(self_ptr, credential_slot&, const attempt&, int errcode, const std::string& errmsg);
};

/// One credential (the access token, a ticket) and its lifecycle state.
struct credential_slot {
  const slot_ops* ops = nullptr;
  /// Metrics label and name in logs: "access_token", "jsapi", ...
  const char* label = "";
  /// Log category and the noun in failure logs ("access_token", "jsapi ticket").
  const char* log_category = "";
  std::string noun;
  /// Getticket's type ("jsapi", "wx_card"); empty for the token.
  std::string type;
  timer_kind timer = token_timer;
  /// The storage key the value is written to.
  std::string store_key;
  /// Where it is published for the front end.
  snapshot_slot* published = nullptr;
  /// stable_token: a rejected value handed back again needs a forced refresh.
  bool forcible = false;
  /// A new value is logged (the token; tickets only count).
  bool log_new = false;
  /// A new value ends a degraded state (components).
  bool clears_degraded = false;

  std::optional<credential> value;
  /// The highest version this actor handed out or restored.
  uint64_t last_version = 0;
  std::vector<waiter> waiters;
  bool fetching = false;
  uint64_t timer_gen = 0;
  uint32_t failures = 0;
  /// A value WeChat rejected: never served again, and a normal stable_token
  /// fetch that hands it back escalates to a forced refresh.
  std::string dead;
};

/// What a kind supplies; one instance per kind, chosen at spawn.
struct kind_policy {
  key_kind kind;
  /// The token it holds (names it in logs and metrics).
  wechat::token_type type;
  /// How the token is requested and its reply classified.
  slot_ops token;
  /// The token is stable_token's: forced refreshes exist and spend the budget.
  bool forcible = false;
  /// The kind serves jsapi / wx_card tickets.
  bool has_tickets = true;
  /// A new token ends a degraded state (WeChat rejected the verify ticket).
  bool degradable = false;
  /// A wake from the refresh schedule fetches an expired token.
  bool wakes = true;
  /// The cheapest call that proves `token` valid.
  wechat::request (*probe)(self_ptr, const std::string& token);
  /// Runs once the stored state is restored.
  void (*start)(self_ptr);
  /// Adds the kind's fields to GET /admin/state.
  void (*describe)(self_ptr, boost::json::object&);
  /// The kind's answers to a component's requests (the component's
  /// handlers, or refusals).
  component_api::behavior_type (*as_component)(self_ptr);
  /// ... and to an authorizer's.
  authorizer_api::behavior_type (*as_authorizer)(self_ptr);
  /// The registry key of the actor's key: a structured log field.
  std::string (*key_of)(const app_params&);
};

/// The policy of `kind` (`api` chooses stable_token or the classic token for apps).
const kind_policy& policy_of(key_kind kind, token_api api);

/// Waits for an authorizer lookup in api_get_authorizer_list.
struct lookup_waiter {
  std::string appid;
  waiter k;
};

struct app_state {
  static inline const char* name = "wh.app";

  app_params p;
  const kind_policy* pol = nullptr;
  /// The registry key ("appid" or "component/authorizer"): a structured log field.
  std::string key;

  credential_slot token;
  credential_slot jsapi;
  credential_slot wx_card;

  bool checking = false;
  std::vector<waiter> check_waiters;
  std::string verified_token;
  int64_t verified_at = 0;

  int64_t blocked_until = 0;
  caf::error blocked_error;
  persistence::force_budget_record budget;

  // authorizers
  std::optional<credential> refresh_token;
  authorizer_status status = authorizer_status::active;
  /// When the status was set; when the authorization behind the refresh
  /// token happened (0 = not stored). See app_params.
  int64_t status_at = 0;
  int64_t authorized_at = 0;

  // components
  std::optional<credential> verify_ticket;
  int64_t push_requested_at = 0;

  /// Authorizers: the refresh token a 61023 recovery was already tried for.
  std::string recovery_tried;

  // refresh-loop guard (see app_params::loop_reports)
  std::string guard_token;
  uint32_t guard_hits = 0;
  int64_t guard_since = 0;
  std::string escalated_token;
  int64_t escalated_at = 0;
  bool refusal_reported = false;

  // components: authorizer recovery from api_get_authorizer_list
  bool listing = false;
  bool reconcile_after = false;
  std::vector<lookup_waiter> lookups;
  /// appid -> refresh token of the last complete walk.
  std::unordered_map<std::string, std::string> listed;
  int64_t listed_at = 0;
  bool listed_ok = false;
  /// A failed walk answers lookups for a few seconds (no retry storm).
  caf::error list_error;
  int64_t list_error_at = 0;
  uint64_t reconcile_gen = 0;

  // observability (GET /admin/state)
  struct event {
    int64_t at = 0;
    std::string what; // "access_token proactive ok" / "jsapi on_demand error: ..."
  };
  event last_refresh;
  std::vector<event> recent_errors; // newest last, at most 5

  // virtual activation (see app_params::router)
  /// When each armed timer fires (0 = not armed); the earliest is the key's
  /// due time in the durable schedule once the actor is passivated.
  std::array<int64_t, 4> armed_at{};
  /// Upstream calls, durable writes and component requests this actor waits for.
  uint32_t inflight = 0;
};

// -- helpers (credential_slot.cpp) ---------------------------------------------

inline int64_t now(self_ptr self) {
  return self->state.p.clock->now();
}

inline const std::string& appid(self_ptr self) {
  return self->state.p.app.appid;
}

inline const std::string& prefix(self_ptr self) {
  return self->state.p.prefix;
}

/// WeChat's errcode in `err`, 0 when it is not an upstream answer.
int errcode_in(const caf::error& err);

void fail_all(std::vector<waiter>& ws, const caf::error& err);
void deliver_all(std::vector<waiter>& ws, const credential& x);
waiter to_waiter(caf::typed_response_promise<credential> rp);

void count_refresh(self_ptr self, const char* kind, const char* reason, const char* result,
                   const caf::error& err = caf::error{});

/// `rep` read by `parse` (one of the wechat::parse_* functions).
template <class Parse>
auto parse_reply(const caf::expected<upstream_reply>& rep, Parse parse);

void block(self_ptr self, int64_t until, caf::error err);
caf::error blocked(self_ptr self);

/// Turns a WeChat errcode into our error and applies the backoff it asks for.
caf::error on_errcode(self_ptr self, int errcode, const std::string& errmsg, bool token_endpoint,
                      uint32_t failures);

/// Sends `call` to WeChat through the upstream actor (counted as in flight).
void call_upstream(self_ptr self, upstream_call call,
                   std::function<void(const caf::expected<upstream_reply>&)> k);

/// Writes `batch` durably together with the key's next state version; in a
/// cluster the node actor then replicates the key's state.
void persist(self_ptr self, store_write batch, std::function<void(caf::error)> k);

caf::error spend_force(self_ptr self);
void set_degraded(self_ptr self, bool degraded);

// -- the lifecycle (credential_slot.cpp) ----------------------------------------

/// The slot of ticket `type`, or nullptr.
credential_slot* slot_of(self_ptr self, std::string_view type);

/// Arms the proactive refresh of `slot` at `at` (cancels the previous one).
void schedule(self_ptr self, credential_slot& slot, int64_t at);

/// When `x` is refreshed proactively. `unchanged` means the last fetch
/// returned the same value (stable_token renews only in the last 5 minutes).
int64_t refresh_time(self_ptr self, const credential& x, bool unchanged);

/// Starts a fetch of `slot` unless one is running (single-flight).
void fetch(self_ptr self, credential_slot& slot, const char* reason, bool force, bool retried = false);

/// Ends the running fetch of `slot` with `err`: answers the waiters and
/// retries in the background while the value is still valid.
void fail(self_ptr self, credential_slot& slot, const char* reason, const caf::error& err);

/// The source of `a` was rejected: replace it once, then fetch again once.
void renew_source(self_ptr self, credential_slot& slot, const attempt& a);

/// Queues `w` for the token and fetches one.
void want_token(self_ptr self, waiter w);

/// Runs `k` with a valid token, fetching one first if needed.
void with_token(self_ptr self, waiter k);

/// WeChat rejected `value`: stop serving it and replace it (compare-and-set).
void token_rejected(self_ptr self, const std::string& value, const char* reason);

/// A timer of `slot` fired.
void on_timer(self_ptr self, credential_slot& slot, uint64_t gen);

/// Sets up the slots for the actor's kind (before restore).
void init_slots(self_ptr self);

// -- components and authorizers (kind_policy.cpp, component_ops.cpp) --------------

/// Asks WeChat to (re)start verify-ticket pushes, at most once a minute.
void request_push_ticket(self_ptr self);

/// What GET /admin/state shows of `x`: times and version, never the value.
boost::json::value credential_json(self_ptr self, const std::optional<credential>& x);

/// WeChat rejected the refresh token (61023) and has no other: the account
/// must authorize again.
void needs_reauthorization(self_ptr self, const char* reason, int errcode);

/// The authorizer's handlers (authorizations, imports, revocation).
authorizer_api::behavior_type authorizer_handlers(self_ptr self);

/// Deletes everything of a revoked authorizer and remembers the revocation
/// (`at`: the unauthorized push's CreateTime; 0 = now).
void revoke(self_ptr self, int64_t at, std::function<void(caf::error)> k);

/// Sets the authorizer's status (`at`: when; ignored for active).
void set_status(self_ptr self, authorizer_status x, int64_t at);

/// The in-memory side of a revocation (revoked at `at`): tokens, tickets and
/// the refresh token forgotten, ticket waiters failed.
void apply_revoked(self_ptr self, int64_t at);

// -- merging another node's copy (merge_ops.cpp) ---------------------------------

/// Merges another node's copy of this key's state into the actor's own by
/// meaning (state_merge.hpp): applies, persists and replicates what changed;
/// persists (to replicate) when the other copy was behind.
void merge_in(self_ptr self, const key_state& incoming);

/// An authorizer took a new authorization: adopt its tokens (persisted first).
void adopt_authorization(self_ptr self, const authorization& a, caf::typed_response_promise<done_atom> rp);

/// The component's handlers (verify tickets, authorizations, lookups).
component_api::behavior_type component_handlers(self_ptr self);

/// What a kind answers to messages of a kind it is not.
component_api::behavior_type not_a_component();
authorizer_api::behavior_type not_an_authorizer();

/// The periodic reconciliation walk of api_get_authorizer_list.
void schedule_reconcile(self_ptr self, int64_t delay);
void on_reconcile_timer(self_ptr self, uint64_t gen);

// -- template definitions -----------------------------------------------------------

template <class Parse>
auto parse_reply(const caf::expected<upstream_reply>& rep, Parse parse) {
  using value_type = std::decay_t<decltype(*parse(0u, std::string_view{}))>;
  parsed_reply<value_type> out;
  if (!rep) {
    out.err = rep.error();
    return out;
  }
  auto res = parse(rep->status, std::string_view{rep->body});
  if (res) {
    out.value = std::move(*res);
  } else if (res.error().fault == wechat::reply_fault::errcode) {
    out.errcode = res.error().errcode;
    out.errmsg = res.error().errmsg;
  } else {
    out.err = make_detail_error(ec::upstream_unavailable, res.error().detail);
  }
  return out;
}

} // namespace wh::actors::detail
