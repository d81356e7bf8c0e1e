#include "actors/app_actor.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <random>
#include <unordered_map>
#include <vector>

#include <boost/json.hpp>

#include "caf/all.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/store.hpp"
#include "wechat/api.hpp"
#include "wechat/errcodes.hpp"

namespace json = boost::json;

namespace wh::actors {

namespace {

// -- state ------------------------------------------------------------------

using waiter = std::function<void(const caf::expected<credential>&)>;

enum timer_kind : uint8_t { token_timer = 0, jsapi_timer = 1, wx_card_timer = 2, reconcile_timer = 3 };

/// Waits for an authorizer lookup in api_get_authorizer_list.
struct lookup_waiter {
  std::string appid;
  std::function<void(const caf::expected<credential>&)> k;
};

struct ticket_slot {
  std::string type;
  timer_kind timer;
  std::optional<credential> value;
  std::vector<waiter> waiters;
  bool fetching = false;
  uint64_t timer_gen = 0;
  uint32_t failures = 0;
};

struct app_state {
  static inline const char* name = "wh.app";

  app_params p;

  std::optional<credential> token;
  uint64_t last_version = 0;
  std::vector<waiter> token_waiters;
  bool fetching = false;
  /// A token WeChat rejected: never served again, and a normal stable_token
  /// fetch that hands it back escalates to a forced refresh.
  std::string dead_token;
  uint64_t token_timer_gen = 0;
  uint32_t token_failures = 0;

  bool checking = false;
  std::vector<waiter> check_waiters;
  std::string verified_token;
  int64_t verified_at = 0;

  ticket_slot jsapi{"jsapi", jsapi_timer, {}, {}, false, 0, 0};
  ticket_slot wx_card{"wx_card", wx_card_timer, {}, {}, false, 0, 0};

  int64_t blocked_until = 0;
  caf::error blocked_error;
  persistence::force_budget_record budget;

  // authorizers
  std::optional<credential> refresh_token;
  authorizer_status status = authorizer_status::active;

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
  /// Upstream calls and durable writes this actor waits for.
  uint32_t inflight = 0;
};

using self_ptr = caf::stateful_actor<app_state>*;

// -- small helpers -----------------------------------------------------------

int64_t now(self_ptr self) {
  return self->state.p.clock->now();
}

const std::string& appid(self_ptr self) {
  return self->state.p.app.appid;
}

/// The registry key ("appid" or "component/authorizer"): a structured log field.
std::string key_of(self_ptr self) {
  auto& p = self->state.p;
  return p.kind == key_kind::authorizer ? p.component_appid + "/" + p.app.appid : p.app.appid;
}

/// WeChat's errcode in `err`, 0 when it is not an upstream answer.
int errcode_in(const caf::error& err) {
  int code = 0;
  return wechat_errcode_of(err, code) ? code : 0;
}

const std::string& prefix(self_ptr self) {
  return self->state.p.prefix;
}

key_kind kind(self_ptr self) {
  return self->state.p.kind;
}


/// A refresh token has no expiry of its own.
constexpr int64_t never = std::numeric_limits<int64_t>::max();

ticket_slot* slot_of(self_ptr self, std::string_view type) {
  if (type == "jsapi")
    return &self->state.jsapi;
  if (type == "wx_card")
    return &self->state.wx_card;
  return nullptr;
}

snapshot_slot& published(self_ptr self, const ticket_slot& slot) {
  return slot.timer == jsapi_timer ? self->state.p.entry->jsapi : self->state.p.entry->wx_card;
}

void fail_all(std::vector<waiter>& ws, const caf::error& err) {
  auto xs = std::move(ws);
  ws.clear();
  for (auto& w : xs)
    w(err);
}

void deliver_all(std::vector<waiter>& ws, const credential& x) {
  auto xs = std::move(ws);
  ws.clear();
  for (auto& w : xs)
    w(x);
}

waiter to_waiter(caf::typed_response_promise<credential> rp) {
  return [rp](const caf::expected<credential>& x) mutable {
    if (x)
      rp.deliver(*x);
    else
      rp.deliver(x.error());
  };
}

void count_refresh(self_ptr self, const char* kind, const char* reason, const char* result,
                   const caf::error& err = caf::error{}) {
  auto& st = self->state;
  if (auto m = st.p.stats)
    m->inc("wechat_hub_refreshes_total", {{"kind", kind}, {"reason", reason}, {"result", result}});
  auto t = st.p.clock->now();
  std::string what = std::string{kind} + " " + reason + " " + result;
  if (err) {
    what += ": " + std::string{to_string(code_of(err))} + " " + detail_of(err);
    st.recent_errors.push_back({t, what});
    if (st.recent_errors.size() > 5)
      st.recent_errors.erase(st.recent_errors.begin());
  }
  st.last_refresh = {t, std::move(what)};
}

// -- upstream replies ----------------------------------------------------------

/// WeChat's answer as one of the wechat::parse_* functions reads it.
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

void block(self_ptr self, int64_t until, caf::error err) {
  auto& st = self->state;
  if (until > st.blocked_until) {
    st.blocked_until = until;
    st.blocked_error = std::move(err);
  }
}

caf::error blocked(self_ptr self) {
  auto& st = self->state;
  if (now(self) < st.blocked_until)
    return st.blocked_error;
  return caf::none;
}

/// Turns a WeChat errcode into our error and applies the backoff it asks for.
caf::error on_errcode(self_ptr self, int errcode, const std::string& errmsg, bool token_endpoint,
                      uint32_t failures) {
  auto t = now(self);
  auto suffix = errmsg.empty() ? std::string{} : " (" + errmsg + ")";
  auto cls = wechat::classify(errcode);
  if (token_endpoint && cls == wechat::errclass::token_invalid)
    cls = wechat::errclass::credentials; // 40001 from the token API = wrong secret
  switch (cls) {
    case wechat::errclass::transient: {
      int64_t backoff = std::min<int64_t>(32, int64_t{1} << std::min<uint32_t>(failures, 5));
      auto err = make_upstream_error(ec::upstream_unavailable, errcode,
                                     "WeChat is busy; retrying in " + std::to_string(backoff)
                                       + " s" + suffix);
      block(self, t + backoff, err);
      return err;
    }
    case wechat::errclass::minute_limited: {
      auto err = make_upstream_error(ec::rate_limited, errcode,
                                     "WeChat minute quota reached; paused for 60 s" + suffix);
      block(self, t + 60, err);
      return err;
    }
    case wechat::errclass::daily_quota: {
      auto reset = (beijing_day(t) + 1) * 86400 - 8 * 3600;
      auto err = make_upstream_error(ec::quota_exhausted, errcode,
                                     "WeChat daily quota reached; calls for this app are paused "
                                     "until 00:00 Beijing time"
                                       + suffix);
      block(self, reset, err);
      WH_ERROR("app", appid(self) << ": daily quota exhausted (45009); paused until " << reset);
      return err;
    }
    case wechat::errclass::credentials:
    case wechat::errclass::needs_confirmation: {
      auto err = make_upstream_error(ec::bad_credentials, errcode,
                                     "WeChat rejected this app's credentials or caller" + suffix);
      block(self, t + 60, err);
      WH_ERROR_F("app", appid(self) << ": credentials rejected by WeChat, errcode " << errcode,
                 {"key", key_of(self)}, {"errcode", errcode});
      return err;
    }
    default:
      return make_upstream_error(ec::upstream_error, errcode,
                                 "WeChat errcode " + std::to_string(errcode) + suffix);
  }
}

void call_upstream(self_ptr self, upstream_call call,
                   std::function<void(const caf::expected<upstream_reply>&)> k) {
  if (call.key.empty() && self->state.p.entry)
    call.key = self->state.p.entry->key;
  ++self->state.inflight;
  self->request(self->state.p.upstream, self->state.p.upstream_timeout, call_atom::value,
                std::move(call))
    .then([self, k](upstream_reply& rep) {
            --self->state.inflight;
            k(rep);
          },
          [self, k](caf::error& err) {
            --self->state.inflight;
            if (code_of(err) == ec::none) // e.g. CAF's request_timeout
              k(make_detail_error(ec::timeout, "no answer from WeChat in time"));
            else
              k(err);
          });
}

/// Writes `batch` durably together with the key's next state version; in a
/// cluster the node actor then replicates the key's state.
void persist(self_ptr self, store_write batch,
             std::function<void(caf::error)> k) {
  auto& st = self->state;
  st.p.seq = next_seq(st.p.seq, static_cast<uint64_t>(now(self)) * 1000);
  batch.put(persistence::keys::seq(prefix(self)), std::to_string(st.p.seq));
  ++st.inflight;
  self->request(st.p.store, caf::infinite, put_atom::value, std::move(batch))
    .then(
      [self, k](done_atom) {
        --self->state.inflight;
        auto& p = self->state.p;
        if (p.cluster)
          self->send(p.cluster, repl_atom::value, p.entry->key, p.prefix);
        k(caf::none);
      },
      [self, k](caf::error& err) {
        --self->state.inflight;
        k(err);
      });
}

// -- scheduling ----------------------------------------------------------------

/// The jitter of `x`'s refresh: drawn from the key's seed and the value's
/// version, so an actor started again (virtual activation) arrives at the
/// same refresh time as the one it replaced and the schedule stays exact.


/// Sends the next tick of timer `kind`. A virtual actor's ticks go through
/// the router in steps of at most twice the idle time: a pending delayed
/// message would keep a stopped actor in memory until it fires (hours for a
/// token refresh), and the router drops ticks of an actor that stopped (the
/// durable schedule wakes the key instead).
void send_tick(self_ptr self, timer_kind kind, uint64_t gen) {
  auto& st = self->state;
  auto delay = std::max<int64_t>(1, st.armed_at[kind] - now(self));
  if (!st.p.router)
    return self->delayed_send(self, std::chrono::seconds(delay), tick_atom::value,
                              static_cast<uint8_t>(kind), gen);
  auto hop = std::max<int64_t>(
    60, 2 * std::chrono::duration_cast<std::chrono::seconds>(st.p.idle_timeout).count());
  // Anonymous: a sender field would be a strong reference as well.
  caf::delayed_anon_send(st.p.router, std::chrono::seconds(std::min(delay, hop)), tick_atom::value,
                         st.p.entry->key, self->address(), static_cast<uint8_t>(kind), gen);
}

void arm(self_ptr self, timer_kind kind, uint64_t gen, int64_t at) {
  self->state.armed_at[kind] = now(self) + std::max<int64_t>(1, at - now(self));
  send_tick(self, kind, gen);
}

/// A tick of timer `kind` arrived: true when it is due; a step of a longer
/// wait sends the next step instead.
bool tick_due(self_ptr self, timer_kind kind, uint64_t gen) {
  auto at = self->state.armed_at[kind];
  if (at > now(self)) {
    send_tick(self, kind, gen);
    return false;
  }
  self->state.armed_at[kind] = 0;
  return true;
}

/// Schedules the proactive refresh of `x`. `unchanged` means the last fetch
/// returned the same value (stable_token renews only in the last 5 minutes).
int64_t refresh_time(self_ptr self, const credential& x, bool unchanged) {
  auto& p = self->state.p;
  auto at = refresh_due(x, p.seed, p.refresh_margin_s, p.refresh_jitter_s);
  if (unchanged)
    at = std::max({at, x.expires_at - 290, now(self) + 30});
  return at;
}

/// Schedules a retry after a failed background refresh while the value is
/// still valid: exponential, never past expiry, never before a block lifts.
bool retry_time(self_ptr self, const std::optional<credential>& x, uint32_t failures,
                int64_t& at) {
  auto t = now(self);
  if (!x || !x->valid_at(t))
    return false;
  auto delay = std::min<int64_t>(300, int64_t{15} << std::min<uint32_t>(failures, 5));
  at = std::max(t + delay, self->state.blocked_until);
  if (at >= x->expires_at)
    at = std::max(t + 1, x->expires_at - 5);
  return true;
}

void schedule_token(self_ptr self, int64_t at) {
  arm(self, token_timer, ++self->state.token_timer_gen, at);
}

void schedule_ticket(self_ptr self, ticket_slot& slot, int64_t at) {
  arm(self, slot.timer, ++slot.timer_gen, at);
}

// -- token lifecycle ---------------------------------------------------------

wechat::token_type token_type(key_kind k) {
  switch (k) {
    case key_kind::component: return wechat::token_type::component_access_token;
    case key_kind::authorizer: return wechat::token_type::authorizer_access_token;
    default: return wechat::token_type::access_token;
  }
}

const char* kind_label(key_kind k) {
  switch (k) {
    case key_kind::component: return "component_access_token";
    case key_kind::authorizer: return "authorizer_access_token";
    default: return "access_token";
  }
}

/// The call that obtains a new token. `component_token` is used by authorizers.
upstream_call token_call(self_ptr self, bool force, const std::string& component_token) {
  auto& p = self->state.p;
  auto& app = p.app;
  auto& st = self->state;
  if (p.kind == key_kind::component)
    return to_call(wechat::component_token(app.appid, app.secret, st.verify_ticket ? st.verify_ticket->value : ""));
  if (p.kind == key_kind::authorizer)
    return to_call(wechat::authorizer_token(component_token, p.component_appid, app.appid,
                                            st.refresh_token ? st.refresh_token->value : ""));
  if (app.api == token_api::stable)
    return to_call(wechat::stable_token(app.appid, app.secret, force));
  return to_call(wechat::classic_token(app.appid, app.secret));
}

caf::error spend_force(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  auto day = beijing_day(t);
  if (st.budget.day != day) {
    st.budget.day = day;
    st.budget.used = 0;
  }
  auto refused = [&](const char* limit) {
    if (auto m = st.p.stats)
      m->inc("wechat_hub_force_refresh_refused_total", {{"appid", appid(self)}, {"limit", limit}});
  };
  if (st.budget.used >= st.p.force_per_day) {
    refused("daily");
    return make_detail_error(ec::force_budget_exhausted,
                             "the daily force_refresh budget ("
                               + std::to_string(st.p.force_per_day) + ") is spent");
  }
  if (st.budget.last_at > 0 && t - st.budget.last_at < st.p.force_spacing_s) {
    refused("spacing");
    return make_detail_error(ec::force_budget_exhausted,
                             "forced refreshes must be at least "
                               + std::to_string(st.p.force_spacing_s) + " s apart");
  }
  st.budget.used++;
  st.budget.last_at = t;
  return caf::none;
}

/// Asks WeChat to (re)start verify-ticket pushes, at most once a minute.
void request_push_ticket(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  if (st.p.kind != key_kind::component || (st.push_requested_at > 0 && t - st.push_requested_at < 60))
    return;
  st.push_requested_at = t;
  WH_INFO("component", appid(self) << ": asking WeChat to push a component_verify_ticket");
  call_upstream(self, to_call(wechat::start_push_ticket(st.p.app.appid, st.p.app.secret)),
                [self](const caf::expected<upstream_reply>& rep) {
                  auto res = parse_reply(rep, wechat::parse_ack);
                  if (res.err || res.errcode != 0)
                    WH_WARN("component", appid(self) << ": api_start_push_ticket failed");
                });
}

void set_degraded(self_ptr self, bool degraded) {
  self->state.p.entry->degraded.store(degraded, std::memory_order_relaxed);
}

/// Why no token can be fetched right now, if anything.
caf::error cannot_fetch(self_ptr self) {
  auto& st = self->state;
  if (auto err = blocked(self))
    return err;
  if (st.p.kind == key_kind::authorizer) {
    if (st.status == authorizer_status::revoked)
      return make_detail_error(ec::authorizer_revoked, "the authorizer revoked its authorization");
    if (st.status == authorizer_status::needs_reauthorization)
      return make_detail_error(ec::needs_reauthorization,
                               "WeChat rejected the refresh token (61023); the account must authorize again");
    if (!st.refresh_token)
      return make_detail_error(ec::needs_reauthorization, "no refresh token is known for this authorizer");
  }
  if (st.p.kind == key_kind::component && !st.verify_ticket) {
    request_push_ticket(self);
    return make_detail_error(ec::verify_ticket_invalid,
                             "no component_verify_ticket received yet; WeChat was asked to push one");
  }
  return caf::none;
}

void fetch_token(self_ptr self, const char* reason, bool force, bool retried = false);

void after_token_failure(self_ptr self, const char* reason, const caf::error& err) {
  auto& st = self->state;
  st.fetching = false;
  st.token_failures++;
  count_refresh(self, kind_label(kind(self)), reason, "error", err);
  WH_WARN_F("token", appid(self) << ": " << kind_label(kind(self)) << " " << reason
                                 << " refresh failed: " << to_string(code_of(err)) << " " << detail_of(err),
            {"key", key_of(self)}, {"errcode", errcode_in(err)}, {"reason", to_string(code_of(err))});
  fail_all(st.token_waiters, err);
  int64_t at = 0;
  if (retry_time(self, st.token, st.token_failures, at))
    schedule_token(self, at);
}

/// Deletes everything of a revoked authorizer and remembers the revocation.
void revoke(self_ptr self, std::function<void(caf::error)> k) {
  store_write w;
  for (auto key : {persistence::keys::token(prefix(self)), persistence::keys::ticket(prefix(self), "jsapi"),
                   persistence::keys::ticket(prefix(self), "wx_card"),
                   persistence::keys::refresh_token(prefix(self))})
    w.ops.push_back(store_write::op{key, "", true});
  w.put(persistence::keys::status(prefix(self)), persistence::encode_status("revoked", now(self)));
  persist(self, std::move(w), [self, k](caf::error err) {
    auto& st = self->state;
    if (!err) {
      st.status = authorizer_status::revoked;
      st.p.entry->status.store(static_cast<uint8_t>(st.status));
      st.token.reset();
      st.refresh_token.reset();
      st.jsapi.value.reset();
      st.wx_card.value.reset();
      ++st.token_timer_gen;
      ++st.jsapi.timer_gen;
      ++st.wx_card.timer_gen;
      st.p.entry->token.clear();
      st.p.entry->jsapi.clear();
      st.p.entry->wx_card.clear();
      auto revoked = make_detail_error(ec::authorizer_revoked, "the authorizer revoked its authorization");
      fail_all(st.jsapi.waiters, revoked);
      fail_all(st.wx_card.waiters, revoked);
      WH_INFO("authorizer", st.p.component_appid << "/" << appid(self) << ": revoked; tokens deleted");
    }
    k(err);
  });
}

/// WeChat rejected the refresh token (61023) and has no other: the account
/// must authorize again.
void needs_reauthorization(self_ptr self, const char* reason, int errcode) {
  auto& st = self->state;
  st.status = authorizer_status::needs_reauthorization;
  st.p.entry->status.store(static_cast<uint8_t>(st.status));
  st.token.reset();
  st.p.entry->token.clear();
  store_write w;
  w.put(persistence::keys::status(prefix(self)), persistence::encode_status("needs_reauthorization", now(self)));
  persist(self, std::move(w), [](caf::error) {});
  WH_ERROR("authorizer", st.p.component_appid << "/" << appid(self)
                                              << ": refresh token rejected (61023); needs re-authorization");
  after_token_failure(self, reason,
                      make_upstream_error(ec::needs_reauthorization, errcode,
                                          "WeChat rejected the refresh token; the account must authorize again"));
}

void on_token_reply(self_ptr self, const caf::expected<upstream_reply>& rep, int64_t sent_at,
                    const char* reason, bool force, bool retried, const std::string& component_token) {
  auto& st = self->state;
  auto res = parse_reply(rep, [self](unsigned status, std::string_view body) {
    return wechat::parse_token(token_type(kind(self)), status, body);
  });
  if (res.err)
    return after_token_failure(self, reason, res.err);
  if (res.errcode != 0) {
    auto cls = wechat::classify(res.errcode);
    if (kind(self) == key_kind::authorizer) {
      if (cls == wechat::errclass::token_invalid && !retried) {
        // The *component* token is dead: have it replaced once, then retry once.
        st.fetching = false;
        ++st.inflight;
        self->request(st.p.component, st.p.upstream_timeout, stale_atom::value, force_atom::value,
                      component_token)
          .then(
            [self, reason, force](const credential&) {
              --self->state.inflight;
              fetch_token(self, reason, force, true);
            },
            [self, reason](caf::error& err) {
              --self->state.inflight;
              after_token_failure(self, reason, err);
            });
        return;
      }
      if (cls == wechat::errclass::refresh_token_invalid && st.refresh_token
          && st.recovery_tried != st.refresh_token->value) {
        // WeChat may still list the authorizer with a newer refresh token
        // (re-authorized while this hub missed the push): ask the component.
        // `fetching` stays set so concurrent requests wait for the outcome.
        st.recovery_tried = st.refresh_token->value;
        WH_WARN("authorizer", st.p.component_appid << "/" << appid(self)
                                                   << ": refresh token rejected (61023); looking it up in "
                                                      "api_get_authorizer_list");
        auto rejected = st.refresh_token->value;
        self->request(st.p.component, st.p.upstream_timeout, import_atom::value, appid(self))
          .then(
            [self, reason, force, rejected](const credential& rt) {
              auto& st = self->state;
              if (rt.value == rejected)
                return needs_reauthorization(self, reason, 61023); // WeChat lists the rejected one
              st.fetching = false;
              credential x{rt.value, now(self), never, st.refresh_token ? st.refresh_token->version + 1 : 1};
              store_write w;
              w.put(persistence::keys::refresh_token(prefix(self)), persistence::encode(x));
              persist(self, std::move(w), [self, x, reason, force](caf::error err) {
                if (err)
                  return after_token_failure(self, reason, err);
                self->state.refresh_token = x;
                WH_INFO("authorizer", self->state.p.component_appid << "/" << appid(self)
                                                                    << ": refresh token recovered");
                fetch_token(self, reason, force, true);
              });
            },
            [self, reason](caf::error&) { needs_reauthorization(self, reason, 61023); });
        return;
      }
      if (cls == wechat::errclass::refresh_token_invalid)
        return needs_reauthorization(self, reason, res.errcode);
      if (cls == wechat::errclass::revoked) {
        st.fetching = false;
        auto err = make_upstream_error(ec::authorizer_revoked, res.errcode,
                                       "the authorizer revoked its authorization");
        return revoke(self, [self, reason, err](caf::error) { after_token_failure(self, reason, err); });
      }
    }
    if (kind(self) == key_kind::component && cls == wechat::errclass::verify_ticket) {
      set_degraded(self, true);
      request_push_ticket(self);
      auto err = make_upstream_error(ec::verify_ticket_invalid, res.errcode,
                                     "WeChat rejected the component_verify_ticket; waiting for the next push");
      block(self, now(self) + 10, err);
      return after_token_failure(self, reason, err);
    }
    return after_token_failure(self, reason,
                               on_errcode(self, res.errcode, res.errmsg, kind(self) != key_kind::authorizer,
                                          st.token_failures));
  }
  auto& value = res->access_token;
  auto expires_in = res->expires_in;
  if (!st.dead_token.empty() && value == st.dead_token && kind(self) == key_kind::app
      && st.p.app.api == token_api::stable) {
    // stable_token's normal mode handed back the token WeChat just rejected:
    // only a forced refresh replaces it, and only if the budget allows.
    st.fetching = false;
    if (force)
      return after_token_failure(self, reason,
                                 make_detail_error(ec::upstream_error,
                                                   "a forced refresh returned the rejected token"));
    if (auto err = spend_force(self))
      return after_token_failure(self, reason, err);
    return fetch_token(self, "forced", true);
  }
  bool unchanged = st.token && st.token->value == value;
  credential x{value, now(self), sent_at + expires_in, unchanged ? st.token->version : st.last_version + 1};
  store_write batch;
  std::optional<credential> new_refresh;
  if (kind(self) == key_kind::authorizer) {
    // A refresh token that comes back is written with the token, atomically.
    auto& rt = res->refresh_token;
    if (!rt.empty() && (!st.refresh_token || st.refresh_token->value != rt)) {
      new_refresh = credential{rt, now(self), never,
                               st.refresh_token ? st.refresh_token->version + 1 : 1};
      batch.put(persistence::keys::refresh_token(prefix(self)), persistence::encode(*new_refresh));
    }
  }
  batch.put(persistence::keys::token(prefix(self)), persistence::encode(x));
  if (force)
    batch.put(persistence::keys::force(prefix(self)), persistence::encode(st.budget));
  std::string why = reason;
  persist(self, std::move(batch), [self, x, unchanged, why, new_refresh](caf::error err) {
    auto& st = self->state;
    if (err)
      return after_token_failure(self, "persist", err);
    st.fetching = false;
    st.token = x;
    if (new_refresh)
      st.refresh_token = new_refresh;
    st.last_version = std::max(st.last_version, x.version);
    st.token_failures = 0;
    st.dead_token.clear();
    st.p.entry->token.publish(x);
    if (kind(self) == key_kind::component)
      set_degraded(self, false);
    if (!unchanged) {
      count_refresh(self, kind_label(kind(self)), why.c_str(), "ok");
      WH_INFO_F("token", appid(self) << ": new " << kind_label(kind(self)) << " v" << x.version << " ("
                                     << why << "), valid " << (x.expires_at - x.obtained_at) << " s",
                {"key", key_of(self)}, {"version", x.version});
    }
    schedule_token(self, refresh_time(self, x, unchanged));
    deliver_all(st.token_waiters, x);
  });
}

void fetch_token(self_ptr self, const char* reason, bool force, bool retried) {
  auto& st = self->state;
  if (st.fetching)
    return;
  if (auto err = cannot_fetch(self)) {
    fail_all(st.token_waiters, err);
    int64_t at = 0;
    if (code_of(err) != ec::authorizer_revoked && retry_time(self, st.token, st.token_failures, at))
      schedule_token(self, at);
    return;
  }
  st.fetching = true;
  auto sent_at = now(self);
  auto go = [self, sent_at, reason, force, retried](const std::string& component_token) {
    call_upstream(self, token_call(self, force, component_token),
                  [self, sent_at, reason, force, retried,
                   component_token](const caf::expected<upstream_reply>& rep) {
                    on_token_reply(self, rep, sent_at, reason, force, retried, component_token);
                  });
  };
  if (kind(self) != key_kind::authorizer)
    return go({});
  self->request(st.p.component, st.p.upstream_timeout, get_atom::value, token_atom::value)
    .then([go](const credential& ct) { go(ct.value); },
          [self, reason](caf::error& err) { after_token_failure(self, reason, err); });
}

void want_token(self_ptr self, waiter w) {
  auto& st = self->state;
  st.token_waiters.push_back(std::move(w));
  if (!st.fetching)
    fetch_token(self, st.token ? "expired" : "on_demand", false);
}

/// Runs `k` with a valid token, fetching one first if needed.
void with_token(self_ptr self, waiter k) {
  auto& st = self->state;
  if (st.token && st.token->valid_at(now(self)))
    k(*st.token);
  else
    want_token(self, std::move(k));
}

/// WeChat rejected `value`: stop serving it and replace it.
void token_rejected(self_ptr self, const std::string& value, const char* reason) {
  auto& st = self->state;
  if (st.token && st.token->value != value && st.token->valid_at(now(self))) {
    // Compare-and-set: a newer token already replaced the rejected one.
    deliver_all(st.token_waiters, *st.token);
    return;
  }
  if (st.token && st.token->value == value) {
    st.token.reset();
    st.p.entry->token.clear();
    ++st.token_timer_gen; // cancels the proactive refresh of the dead token
  }
  st.dead_token = value;
  WH_WARN_F("token", appid(self) << ": WeChat rejected the current " << kind_label(kind(self)) << " ("
                                 << reason << "); replacing it",
            {"key", key_of(self)});
  if (!st.fetching)
    fetch_token(self, reason, false);
}

// -- stale-token reports -----------------------------------------------------

bool in_loop_window(self_ptr self) {
  auto& st = self->state;
  return st.escalated_at > 0 && now(self) - st.escalated_at < static_cast<int64_t>(st.p.loop_window_s);
}

/// Counts a report of a token already verified valid; true once it exceeds
/// the tolerated number within the loop window.
bool repeated_report(self_ptr self, const std::string& token) {
  auto& st = self->state;
  auto t = now(self);
  if (st.guard_token != token || t - st.guard_since >= static_cast<int64_t>(st.p.loop_window_s)) {
    st.guard_token = token;
    st.guard_since = t;
    st.guard_hits = 0;
  }
  return ++st.guard_hits > st.p.loop_reports;
}

void count_loop(self_ptr self, const char* action) {
  if (auto m = self->state.p.stats)
    m->inc("wechat_hub_refresh_loops_total", {{"appid", self->state.p.entry->key}, {"action", action}});
}

caf::error refuse_loop(self_ptr self) {
  auto& st = self->state;
  auto retry = std::max<int64_t>(1, st.escalated_at + st.p.loop_window_s - now(self));
  bool first = !st.refusal_reported;
  st.refusal_reported = true;
  count_loop(self, "refused");
  if (first)
    WH_WARN("token", st.p.entry->key << ": refresh loop continues after a real refresh; refusing "
                                     << "reports of the same token for " << retry << " s");
  return caf::make_error(ec::report_loop,
                         std::string{"this token was reported again and again although the hub "
                                     "verified and refreshed it; stop retrying"},
                         static_cast<uint32_t>(retry), first);
}

/// A refresh loop: one real refresh (forced within the budget for
/// stable_token), then further reports of the same token are refused.
caf::result<credential> escalate_loop(self_ptr self, const std::string& token) {
  auto& st = self->state;
  st.escalated_token = token;
  st.escalated_at = now(self);
  st.refusal_reported = false;
  st.guard_token = token;
  st.guard_since = st.escalated_at;
  st.guard_hits = 0;
  count_loop(self, "escalated");
  WH_WARN("token", st.p.entry->key << ": the same token was reported " << (st.p.loop_reports + 1)
                                   << " times after it was verified valid (refresh loop); "
                                   << "escalating to one real refresh");
  if (kind(self) == key_kind::app && st.p.app.api == token_api::stable && !st.fetching) {
    if (spend_force(self))
      return refuse_loop(self);
    auto rp = self->make_response_promise<credential>();
    st.token_waiters.push_back(to_waiter(rp));
    st.dead_token = token;
    fetch_token(self, "refresh_loop", true);
    return rp;
  }
  auto rp = self->make_response_promise<credential>();
  st.token_waiters.push_back(to_waiter(rp));
  token_rejected(self, token, "refresh_loop");
  return rp;
}

void check_token(self_ptr self, const std::string& value) {
  auto& st = self->state;
  if (auto err = blocked(self))
    return fail_all(st.check_waiters, err);
  st.checking = true;
  // The cheapest call that proves a component token: one list entry.
  auto call = kind(self) == key_kind::component ? wechat::authorizer_list(value, appid(self), 0, 1)
                                                 : wechat::api_domain_ip(value);
  call_upstream(self, to_call(std::move(call)), [self, value](const caf::expected<upstream_reply>& rep) {
    auto& st = self->state;
    st.checking = false;
    auto res = parse_reply(rep, wechat::parse_ack);
    if (res.err)
      return fail_all(st.check_waiters, res.err);
    if (res.errcode == 0) {
      // The client was wrong: the token works. Hand it back unchanged.
      st.verified_token = value;
      st.verified_at = now(self);
      WH_INFO("token", appid(self) << ": reported token verified valid; not refreshed");
      auto ws = std::move(st.check_waiters);
      st.check_waiters.clear();
      for (auto& w : ws)
        with_token(self, std::move(w));
      return;
    }
    if (wechat::classify(res.errcode) == wechat::errclass::token_invalid) {
      for (auto& w : st.check_waiters)
        st.token_waiters.push_back(std::move(w));
      st.check_waiters.clear();
      return token_rejected(self, value, "stale_report");
    }
    fail_all(st.check_waiters, on_errcode(self, res.errcode, res.errmsg, false, 0));
  });
}

// -- tickets -------------------------------------------------------------------

void fetch_ticket(self_ptr self, ticket_slot& slot, bool retried, const char* reason);

void after_ticket_failure(self_ptr self, ticket_slot& slot, const char* reason,
                          const caf::error& err) {
  slot.fetching = false;
  slot.failures++;
  count_refresh(self, slot.type.c_str(), reason, "error", err);
  WH_WARN_F("app", appid(self) << ": " << slot.type << " ticket " << reason << " refresh failed: "
                               << to_string(code_of(err)) << " " << detail_of(err),
            {"key", key_of(self)}, {"errcode", errcode_in(err)}, {"reason", to_string(code_of(err))});
  fail_all(slot.waiters, err);
  int64_t at = 0;
  if (retry_time(self, slot.value, slot.failures, at))
    schedule_ticket(self, slot, at);
}

void on_ticket_reply(self_ptr self, const std::string& type, const std::string& used_token,
                     const caf::expected<upstream_reply>& rep, int64_t sent_at, bool retried,
                     const char* reason) {
  auto& slot = *slot_of(self, type);
  auto res = parse_reply(rep, wechat::parse_ticket);
  if (res.err)
    return after_ticket_failure(self, slot, reason, res.err);
  if (res.errcode != 0) {
    if (wechat::classify(res.errcode) == wechat::errclass::token_invalid) {
      if (!retried) {
        // The token is dead: replace it once, then retry the ticket once.
        slot.fetching = false;
        token_rejected(self, used_token, "ticket_token_rejected");
        return fetch_ticket(self, slot, true, reason);
      }
      return after_ticket_failure(self, slot, reason,
                                  make_upstream_error(ec::upstream_error, res.errcode,
                                                      "getticket rejected a freshly refreshed token"));
    }
    return after_ticket_failure(self, slot, reason,
                                on_errcode(self, res.errcode, res.errmsg, false, slot.failures));
  }
  auto& value = res->ticket;
  auto expires_in = res->expires_in;
  bool unchanged = slot.value && slot.value->value == value;
  credential x{value, now(self), sent_at + expires_in,
               unchanged ? slot.value->version : (slot.value ? slot.value->version + 1 : 1)};
  std::string why = reason;
  store_write batch;
  batch.put(persistence::keys::ticket(prefix(self), type), persistence::encode(x));
  persist(self, std::move(batch),
          [self, type, x, unchanged, why](caf::error err) {
            auto& slot = *slot_of(self, type);
            if (err)
              return after_ticket_failure(self, slot, "persist", err);
            slot.fetching = false;
            slot.failures = 0;
            slot.value = x;
            published(self, slot).publish(x);
            if (!unchanged)
              count_refresh(self, slot.type.c_str(), why.c_str(), "ok");
            schedule_ticket(self, slot, refresh_time(self, x, unchanged));
            deliver_all(slot.waiters, x);
          });
}

void fetch_ticket(self_ptr self, ticket_slot& slot, bool retried, const char* reason) {
  if (slot.fetching)
    return;
  if (auto err = blocked(self)) {
    fail_all(slot.waiters, err);
    int64_t at = 0;
    if (retry_time(self, slot.value, slot.failures, at))
      schedule_ticket(self, slot, at);
    return;
  }
  slot.fetching = true;
  auto type = slot.type;
  with_token(self, [self, type, retried, reason](const caf::expected<credential>& tok) {
    auto& slot = *slot_of(self, type);
    if (!tok)
      return after_ticket_failure(self, slot, reason, tok.error());
    auto used = tok->value;
    auto sent_at = now(self);
    call_upstream(self, to_call(wechat::get_ticket(used, type)),
                  [self, type, used, sent_at, retried, reason](const caf::expected<upstream_reply>& rep) {
                    on_ticket_reply(self, type, used, rep, sent_at, retried, reason);
                  });
  });
}

// -- components and authorizers ----------------------------------------------

/// One api_get_authorizer_list walk may read at most this many pages.
constexpr int64_t max_list_pages = 2000;

void finish_listing(self_ptr self, const caf::error& err,
                    std::shared_ptr<std::unordered_map<std::string, std::string>> found) {
  auto& st = self->state;
  st.listing = false;
  st.list_error = err;
  st.list_error_at = now(self);
  if (!err) {
    st.listed = std::move(*found);
    st.listed_at = now(self);
    st.listed_ok = true;
  }
  auto ws = std::move(st.lookups);
  st.lookups.clear();
  for (auto& w : ws) {
    if (err) {
      w.k(err);
      continue;
    }
    auto i = st.listed.find(w.appid);
    if (i == st.listed.end())
      w.k(make_detail_error(ec::unknown_key, "WeChat does not list authorizer " + w.appid + " for component "
                                               + appid(self)));
    else
      w.k(credential{i->second, now(self), never, 1});
  }
  bool reconcile = st.reconcile_after;
  st.reconcile_after = false;
  if (err) {
    WH_WARN("component", appid(self) << ": api_get_authorizer_list walk failed: "
                                     << to_string(code_of(err)) << " " << detail_of(err));
    return;
  }
  WH_INFO("component", appid(self) << ": api_get_authorizer_list lists " << st.listed.size()
                                   << " authorizer(s)");
  if (reconcile && st.p.on_reconcile) {
    std::vector<std::pair<std::string, std::string>> all(st.listed.begin(), st.listed.end());
    st.p.on_reconcile(std::move(all));
  }
}

/// Reads one page (500 entries) of api_get_authorizer_list, then the next.
void list_page(self_ptr self, int64_t offset, int64_t pages,
               std::shared_ptr<std::unordered_map<std::string, std::string>> found, bool retried) {
  with_token(self, [self, offset, pages, found, retried](const caf::expected<credential>& tok) {
    if (!tok)
      return finish_listing(self, tok.error(), found);
    auto used = tok->value;
    call_upstream(self, to_call(wechat::authorizer_list(used, appid(self), offset, 500)),
                  [self, offset, pages, found, retried, used](const caf::expected<upstream_reply>& rep) {
                    auto res = parse_reply(rep, wechat::parse_authorizer_list);
                    if (res.err)
                      return finish_listing(self, res.err, found);
                    if (res.errcode != 0) {
                      if (wechat::classify(res.errcode) == wechat::errclass::token_invalid && !retried) {
                        token_rejected(self, used, "authorizer_list_token_rejected");
                        return list_page(self, offset, pages, found, true);
                      }
                      return finish_listing(self,
                                            make_upstream_error(ec::upstream_error, res.errcode,
                                                                "api_get_authorizer_list failed with errcode "
                                                                  + std::to_string(res.errcode)),
                                            found);
                    }
                    for (auto& a : res->authorizers)
                      (*found)[std::move(a.appid)] = std::move(a.refresh_token);
                    auto next = offset + res->entries;
                    if (res->entries == 0 || next >= res->total_count || pages + 1 >= max_list_pages)
                      return finish_listing(self, caf::none, found);
                    list_page(self, next, pages + 1, found, false);
                  });
  });
}

/// Finds `authorizer` in WeChat's list: one walk at a time per component;
/// the last walk answers for `recovery_interval_s` unless `fresh`.
void lookup_authorizer(self_ptr self, std::string authorizer, bool fresh,
                       std::function<void(const caf::expected<credential>&)> k) {
  auto& st = self->state;
  auto t = now(self);
  if (!st.listing && !fresh && st.listed_ok
      && t - st.listed_at < static_cast<int64_t>(st.p.recovery_interval_s)) {
    auto i = st.listed.find(authorizer);
    if (i == st.listed.end())
      return k(make_detail_error(ec::unknown_key, "WeChat does not list authorizer " + authorizer
                                                    + " for component " + appid(self)));
    return k(credential{i->second, t, never, 1});
  }
  if (!st.listing && !fresh && st.list_error && t - st.list_error_at < 10)
    return k(st.list_error);
  st.lookups.push_back(lookup_waiter{std::move(authorizer), std::move(k)});
  if (st.listing)
    return;
  st.listing = true;
  if (auto m = st.p.stats)
    m->inc("wechat_hub_authorizer_list_walks_total", {{"component", appid(self)}});
  list_page(self, 0, 0, std::make_shared<std::unordered_map<std::string, std::string>>(), false);
}

/// The periodic reconciliation: one walk whose result goes to on_reconcile.
void reconcile(self_ptr self) {
  auto& st = self->state;
  st.reconcile_after = true;
  if (st.listing)
    return;
  st.listing = true;
  if (auto m = st.p.stats)
    m->inc("wechat_hub_authorizer_list_walks_total", {{"component", appid(self)}});
  list_page(self, 0, 0, std::make_shared<std::unordered_map<std::string, std::string>>(), false);
}

void schedule_reconcile(self_ptr self, int64_t delay) {
  auto& st = self->state;
  if (st.p.reconcile_interval_s == 0)
    return;
  self->delayed_send(self, std::chrono::seconds(std::max<int64_t>(1, delay)), tick_atom::value,
                     static_cast<uint8_t>(reconcile_timer), ++st.reconcile_gen);
}

/// api_query_auth with the component token; a dead component token is
/// replaced once and the call retried once. Persists the refresh token
/// before anything that depends on it sees the result.
std::string pending_key(self_ptr self, const std::string& authorizer) {
  return prefix(self) + "pending_auth/" + authorizer;
}

/// api_query_auth refused the code as used or expired (61009/61010), e.g.
/// after a crash while it was in flight: WeChat still lists the authorizer
/// if the account is authorized, so its refresh token is recovered from there.
void recover_authorization(self_ptr self, const std::string& authorizer, int errcode,
                           caf::typed_response_promise<authorization> rp) {
  WH_WARN("component", appid(self) << ": api_query_auth refused the code for " << authorizer << " ("
                                   << errcode << "); recovering it from api_get_authorizer_list");
  lookup_authorizer(self, authorizer, true, [self, authorizer, errcode, rp](const caf::expected<credential>& rt) mutable {
    if (!rt) {
      if (code_of(rt.error()) == ec::unknown_key)
        return (void) rp.deliver(make_upstream_error(ec::upstream_error, errcode,
                                                     "api_query_auth refused the code and WeChat does not "
                                                     "list the authorizer"));
      return (void) rp.deliver(rt.error());
    }
    authorization a;
    a.authorizer_appid = authorizer;
    a.refresh_token = credential{rt->value, now(self), never, 1};
    auto pre = persistence::keys::authorizer_prefix(appid(self), authorizer);
    store_write w;
    w.put(persistence::keys::refresh_token(pre), persistence::encode(a.refresh_token));
    w.ops.push_back(store_write::op{persistence::keys::status(pre), "", true});
    w.ops.push_back(store_write::op{pending_key(self, authorizer), "", true});
    persist(self, std::move(w), [rp, a](caf::error err) mutable {
      if (err)
        return (void) rp.deliver(err);
      rp.deliver(a);
    });
  });
}

void query_auth(self_ptr self, std::string code, caf::typed_response_promise<authorization> rp,
                bool retried, std::string authorizer = {}) {
  with_token(self, [self, code, rp, retried, authorizer](const caf::expected<credential>& tok) mutable {
    if (!tok)
      return (void) rp.deliver(tok.error());
    auto used = tok->value;
    auto sent_at = now(self);
    call_upstream(self, to_call(wechat::query_auth(used, appid(self), code)),
                  [self, code, rp, retried, used, sent_at, authorizer](const caf::expected<upstream_reply>& rep) mutable {
                    auto res = parse_reply(rep, wechat::parse_query_auth);
                    if (res.err)
                      return (void) rp.deliver(res.err);
                    if (res.errcode != 0) {
                      if (wechat::classify(res.errcode) == wechat::errclass::token_invalid && !retried) {
                        token_rejected(self, used, "query_auth_token_rejected");
                        return query_auth(self, code, rp, true, authorizer);
                      }
                      if ((res.errcode == 61009 || res.errcode == 61010) && !authorizer.empty())
                        return recover_authorization(self, authorizer, res.errcode, rp);
                      return (void) rp.deliver(make_upstream_error(ec::upstream_error, res.errcode,
                                                            "api_query_auth failed with errcode "
                                                              + std::to_string(res.errcode)));
                    }
                    authorization a;
                    a.authorizer_appid = std::move(res->authorizer_appid);
                    a.access_token.value = std::move(res->access_token);
                    a.access_token.obtained_at = now(self);
                    a.access_token.expires_at = sent_at + res->expires_in;
                    a.refresh_token = credential{std::move(res->refresh_token), now(self), never, 1};
                    // The refresh token is durable before anyone can depend on it.
                    auto pre = persistence::keys::authorizer_prefix(appid(self), a.authorizer_appid);
                    store_write w;
                    w.put(persistence::keys::refresh_token(pre), persistence::encode(a.refresh_token));
                    w.ops.push_back(store_write::op{persistence::keys::status(pre), "", true});
                    w.ops.push_back(store_write::op{pending_key(self, a.authorizer_appid), "", true});
                    if (!authorizer.empty() && authorizer != a.authorizer_appid)
                      w.ops.push_back(store_write::op{pending_key(self, authorizer), "", true});
                    persist(self, std::move(w), [rp, a](caf::error err) mutable {
                      if (err)
                        return (void) rp.deliver(err);
                      rp.deliver(a);
                    });
                  });
  });
}

/// An authorizer took a new authorization: adopt its tokens (persisted first).
void adopt_authorization(self_ptr self, const authorization& a, caf::typed_response_promise<done_atom> rp) {
  auto& st = self->state;
  if (a.access_token.value.empty()) {
    // Recovered from api_get_authorizer_list: only the refresh token is
    // known (durable already); the access token is fetched on first use.
    st.refresh_token = a.refresh_token;
    st.status = authorizer_status::active;
    st.p.entry->status.store(static_cast<uint8_t>(st.status));
    st.blocked_until = 0;
    WH_INFO("authorizer", st.p.component_appid << "/" << appid(self) << ": authorization recovered");
    persist(self, store_write{}, [rp](caf::error err) mutable {
      if (err)
        rp.deliver(err);
      else
        rp.deliver(done_atom::value);
    });
    return;
  }
  credential x = a.access_token;
  x.version = st.last_version + 1;
  store_write w;
  w.put(persistence::keys::refresh_token(prefix(self)), persistence::encode(a.refresh_token));
  w.put(persistence::keys::token(prefix(self)), persistence::encode(x));
  w.ops.push_back(store_write::op{persistence::keys::status(prefix(self)), "", true});
  persist(self, std::move(w), [self, x, a, rp](caf::error err) mutable {
    auto& st = self->state;
    if (err)
      return (void) rp.deliver(err);
    st.status = authorizer_status::active;
    st.p.entry->status.store(static_cast<uint8_t>(st.status));
    st.refresh_token = a.refresh_token;
    st.token = x;
    st.dead_token.clear();
    st.last_version = x.version;
    st.p.entry->token.publish(x);
    schedule_token(self, refresh_time(self, x, false));
    WH_INFO("authorizer", st.p.component_appid << "/" << appid(self) << ": authorized; token v" << x.version);
    deliver_all(st.token_waiters, x);
    rp.deliver(done_atom::value);
  });
}

// -- initialization ------------------------------------------------------------

void restore(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  st.budget = st.p.force_budget;
  st.refresh_token = st.p.refresh_token;
  st.status = st.p.status;
  st.p.entry->status.store(static_cast<uint8_t>(st.status));
  st.verify_ticket = st.p.verify_ticket;
  if (st.verify_ticket)
    st.p.entry->verify_ticket_at.store(st.verify_ticket->obtained_at);
  if (st.p.kind == key_kind::component && !st.verify_ticket)
    request_push_ticket(self);
  if (st.p.kind == key_kind::component)
    schedule_reconcile(self, st.p.reconcile_interval_s);
  if (st.p.token) {
    st.last_version = st.p.token->version;
    if (st.p.token->valid_at(t)) {
      st.token = st.p.token;
      st.p.entry->token.publish(*st.token);
      schedule_token(self, refresh_time(self, *st.token, false));
    }
  }
  for (auto [slot, stored] : {std::pair{&st.jsapi, &st.p.jsapi}, std::pair{&st.wx_card, &st.p.wx_card}}) {
    if (*stored && (*stored)->valid_at(t)) {
      slot->value = *stored;
      published(self, *slot).publish(*slot->value);
      schedule_ticket(self, *slot, refresh_time(self, *slot->value, false));
    } else if (*stored) {
      slot->value = *stored; // keeps the version monotonic; not served
      slot->value->expires_at = 0;
    }
  }
}

// -- virtual activation ----------------------------------------------------------

/// Nothing in flight and nobody waiting: stopping the actor loses nothing
/// (every change was persisted before anyone was answered). A pause (45009,
/// a missing verify ticket) or a refresh-loop window keeps the actor, since
/// that state lives only here.
bool idle(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  auto quiet = [](const ticket_slot& s) { return !s.fetching && s.waiters.empty(); };
  return st.inflight == 0 && !st.fetching && !st.checking && st.token_waiters.empty()
         && st.check_waiters.empty() && quiet(st.jsapi) && quiet(st.wx_card) && !st.listing
         && st.lookups.empty() && st.blocked_until <= t
         && !(st.escalated_at > 0 && t - st.escalated_at < st.p.loop_window_s)
         && !(st.guard_hits > 0 && t - st.guard_since < st.p.loop_window_s);
}

/// The earliest armed refresh (token or ticket): where the schedule wakes the
/// key once it is passivated. 0 = nothing to refresh.
int64_t next_due(self_ptr self) {
  int64_t due = 0;
  for (auto k : {token_timer, jsapi_timer, wx_card_timer})
    if (auto at = self->state.armed_at[k]; at > 0 && (due == 0 || at < due))
      due = at;
  return due;
}

caf::behavior app_actor(self_ptr self, app_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  restore(self);
  return {
    [=](get_atom, token_atom) -> caf::result<credential> {
      auto& st = self->state;
      if (st.token && st.token->valid_at(now(self)))
        return *st.token;
      auto rp = self->make_response_promise<credential>();
      want_token(self, to_waiter(rp));
      return rp;
    },
    [=](get_atom, ticket_atom, const std::string& type) -> caf::result<credential> {
      auto slot = slot_of(self, type);
      if (!slot)
        return make_detail_error(ec::invalid_request, "type must be jsapi or wx_card");
      if (kind(self) == key_kind::component)
        return make_detail_error(ec::invalid_request, "a component has no tickets; ask for an authorizer's");
      if (auto err = cannot_fetch(self); code_of(err) == ec::authorizer_revoked)
        return err;
      if (slot->value && slot->value->valid_at(now(self)))
        return *slot->value;
      auto rp = self->make_response_promise<credential>();
      slot->waiters.push_back(to_waiter(rp));
      fetch_ticket(self, *slot, false, slot->value ? "expired" : "on_demand");
      return rp;
    },
    [=](stale_atom, const std::string& failed) -> caf::result<credential> {
      auto& st = self->state;
      if (failed.empty())
        return make_detail_error(ec::invalid_request, "access_token must not be empty");
      auto t = now(self);
      // A loop already escalated once: its token is refused after a few
      // more reports, so a looping client ends with an error.
      if (failed == st.escalated_token && failed == st.guard_token && in_loop_window(self)
          && ++st.guard_hits > st.p.loop_stale_reports)
        return refuse_loop(self);
      bool have = st.token && st.token->valid_at(t);
      if (have && st.token->value != failed)
        return *st.token; // compare-and-set: a newer token already replaced it
      if (have && st.verified_token == failed && t - st.verified_at < st.p.verify_cache_s) {
        // Verified valid, yet reported again: a client WeChat rejects while
        // the check accepts it. A few are tolerated; a loop is escalated once.
        if (!repeated_report(self, failed))
          return *st.token;
        if (in_loop_window(self))
          return refuse_loop(self);
        return escalate_loop(self, failed);
      }
      // Note: once a response promise exists, the answer must go through it.
      auto rp = self->make_response_promise<credential>();
      if (!have) {
        want_token(self, to_waiter(rp));
        return rp;
      }
      // The current token: one cheap upstream check (shared by concurrent
      // reports) decides whether it is replaced.
      st.check_waiters.push_back(to_waiter(rp));
      if (!st.checking)
        check_token(self, failed);
      return rp;
    },
    [=](stale_atom, force_atom, const std::string& failed) -> caf::result<credential> {
      // The hub's own call with `failed` was rejected: proof enough, no check.
      auto& st = self->state;
      if (failed.empty())
        return make_detail_error(ec::invalid_request, "access_token must not be empty");
      if (st.token && st.token->valid_at(now(self)) && st.token->value != failed)
        return *st.token;
      auto rp = self->make_response_promise<credential>();
      st.token_waiters.push_back(to_waiter(rp));
      token_rejected(self, failed, "rejected_by_wechat");
      return rp;
    },
    [=](refresh_atom) -> caf::result<credential> {
      auto& st = self->state;
      auto rp = self->make_response_promise<credential>();
      st.token_waiters.push_back(to_waiter(rp));
      if (st.fetching)
        return rp;
      bool force = kind(self) == key_kind::app && st.p.app.api == token_api::stable;
      if (force) {
        if (auto err = spend_force(self)) {
          fail_all(st.token_waiters, err);
          return rp;
        }
      }
      fetch_token(self, "admin", force);
      return rp;
    },
    // -- components ------------------------------------------------------------
    [=](vticket_atom, const std::string& ticket) -> caf::result<done_atom> {
      if (kind(self) != key_kind::component)
        return make_detail_error(ec::invalid_request, "not a component");
      if (ticket.empty() || ticket.size() > 1024)
        return make_detail_error(ec::invalid_request, "malformed component_verify_ticket");
      auto rp = self->make_response_promise<done_atom>();
      credential x{ticket, now(self), now(self) + 12 * 3600, 0};
      x.version = self->state.verify_ticket ? self->state.verify_ticket->version + 1 : 1;
      store_write w;
      w.put(persistence::keys::verify_ticket(prefix(self)), persistence::encode(x));
      persist(self, std::move(w), [self, x, rp](caf::error err) mutable {
        auto& st = self->state;
        if (err)
          return (void) rp.deliver(err);
        bool first = !st.verify_ticket;
        st.verify_ticket = x;
        st.p.entry->verify_ticket_at.store(x.obtained_at);
        if (st.blocked_until > now(self) && code_of(st.blocked_error) == ec::verify_ticket_invalid)
          st.blocked_until = 0; // a fresh ticket lifts the wait
        if (first || code_of(st.blocked_error) == ec::verify_ticket_invalid)
          WH_INFO("component", appid(self) << ": component_verify_ticket received");
        if (!st.token_waiters.empty() && !st.fetching)
          fetch_token(self, "verify_ticket", false);
        else if (self->state.p.entry->degraded.load() && !st.fetching)
          fetch_token(self, "verify_ticket", false);
        rp.deliver(done_atom::value);
      });
      return rp;
    },
    [=](auth_atom, std::string& code) -> caf::result<authorization> {
      if (kind(self) != key_kind::component)
        return make_detail_error(ec::invalid_request, "not a component");
      if (code.empty() || code.size() > 512)
        return make_detail_error(ec::invalid_request, "malformed authorization code");
      auto rp = self->make_response_promise<authorization>();
      query_auth(self, std::move(code), rp, false);
      return rp;
    },
    [=](auth_atom, std::string& code, std::string& authorizer,
        int64_t create_time) -> caf::result<authorization> {
      if (kind(self) != key_kind::component)
        return make_detail_error(ec::invalid_request, "not a component");
      if (code.empty() || code.size() > 512 || !valid_appid(authorizer))
        return make_detail_error(ec::invalid_request, "malformed authorization code or authorizer appid");
      auto rp = self->make_response_promise<authorization>();
      // The code is single-use: if the hub dies while api_query_auth is in
      // flight, this record says which authorizer to recover.
      json::object rec;
      rec["code"] = code;
      rec["create_time"] = create_time;
      store_write w;
      w.put(pending_key(self, authorizer), json::serialize(rec));
      persist(self, std::move(w), [self, code = std::move(code), authorizer = std::move(authorizer),
                                   rp](caf::error err) mutable {
        if (err)
          return (void) rp.deliver(err);
        query_auth(self, std::move(code), rp, false, std::move(authorizer));
      });
      return rp;
    },
    [=](import_atom, std::string& authorizer) -> caf::result<credential> {
      if (kind(self) != key_kind::component)
        return make_detail_error(ec::invalid_request, "not a component");
      if (!valid_appid(authorizer))
        return make_detail_error(ec::invalid_request, "malformed authorizer appid");
      auto rp = self->make_response_promise<credential>();
      lookup_authorizer(self, std::move(authorizer), false, to_waiter(rp));
      return rp;
    },
    // -- authorizers -----------------------------------------------------------
    [=](auth_atom, const authorization& a) -> caf::result<done_atom> {
      if (kind(self) != key_kind::authorizer)
        return make_detail_error(ec::invalid_request, "not an authorizer");
      auto rp = self->make_response_promise<done_atom>();
      adopt_authorization(self, a, rp);
      return rp;
    },
    [=](quota_atom) {
      // An operator's clear_quota succeeded: a 45009 pause is over.
      auto& st = self->state;
      if (st.blocked_until > 0 && code_of(st.blocked_error) == ec::quota_exhausted) {
        st.blocked_until = 0;
        WH_INFO("app", appid(self) << ": daily quota cleared; WeChat calls resume");
      }
    },
    [=](auth_atom, const credential& refresh) -> caf::result<done_atom> {
      // An imported refresh token, already durable (bulk imports batch their writes).
      auto& st = self->state;
      if (kind(self) != key_kind::authorizer)
        return make_detail_error(ec::invalid_request, "not an authorizer");
      st.refresh_token = refresh;
      st.status = authorizer_status::active;
      st.p.entry->status.store(0);
      st.blocked_until = 0;
      if (!st.p.cluster)
        return done_atom::value;
      // In a cluster the import becomes a new state version so it replicates.
      auto rp = self->make_response_promise<done_atom>();
      persist(self, store_write{}, [rp](caf::error err) mutable {
        if (err)
          rp.deliver(err);
        else
          rp.deliver(done_atom::value);
      });
      return rp;
    },
    [=](sync_atom, uint64_t seen) {
      // Another node held a version up to `seen` of this key (two nodes ran
      // it apart): persist this actor's state above it so it replicates as newest.
      auto& st = self->state;
      if (seen < st.p.seq)
        return;
      st.p.seq = seen;
      persist(self, store_write{}, [](caf::error) {});
    },
    [=](stop_atom) {
      self->quit();
      return done_atom::value;
    },
    [=](stop_atom, idle_atom) -> caf::result<bool, int64_t, int64_t> {
      // The router passivates the key: only when nothing is pending. Answers
      // (stopped, due time for the schedule, the due time stored before).
      if (!idle(self))
        return {false, int64_t{0}, int64_t{0}};
      // The clock's pending timeouts (the idle timeout, request deadlines)
      // hold strong references: a stopped actor would stay in memory until
      // they fire.
      self->clock().cancel_timeouts(self);
      self->quit();
      return {true, next_due(self), self->state.p.due};
    },
    [=](wake_atom) {
      // The durable schedule woke the key: restore() armed what is due; a
      // token that expired while the key slept (or the hub was down) is
      // fetched now, so that no client waits for it.
      auto& st = self->state;
      if (st.p.kind == key_kind::component || st.fetching || st.status != authorizer_status::active)
        return;
      if (!(st.token && st.token->valid_at(now(self))))
        fetch_token(self, "overdue", false);
    },
    [=](revoke_atom) -> caf::result<done_atom> {
      if (kind(self) != key_kind::authorizer)
        return make_detail_error(ec::invalid_request, "not an authorizer");
      auto rp = self->make_response_promise<done_atom>();
      revoke(self, [rp](caf::error err) mutable {
        if (err)
          rp.deliver(err);
        else
          rp.deliver(done_atom::value);
      });
      return rp;
    },
    [=](state_atom) -> std::string {
      // What an operator may see: times, versions, reasons. Never values.
      auto& st = self->state;
      auto t = now(self);
      auto cred = [t](const std::optional<credential>& x) -> json::value {
        if (!x || x->value.empty())
          return nullptr;
        json::object o;
        o["version"] = x->version;
        o["obtained_at"] = x->obtained_at;
        o["age_s"] = t - x->obtained_at;
        if (x->expires_at != never) {
          o["expires_at"] = x->expires_at;
          o["ttl_s"] = x->expires_at - t;
        }
        return o;
      };
      json::object out;
      static constexpr const char* kinds[] = {"app", "component", "authorizer"};
      out["key"] = st.p.entry->key;
      out["kind"] = kinds[static_cast<int>(kind(self))];
      out["access_token"] = cred(st.token);
      if (kind(self) != key_kind::component) {
        out["jsapi_ticket"] = cred(st.jsapi.value);
        out["wx_card_ticket"] = cred(st.wx_card.value);
      }
      if (kind(self) == key_kind::authorizer) {
        static constexpr const char* statuses[] = {"active", "revoked", "needs_reauthorization"};
        out["status"] = statuses[static_cast<int>(st.status)];
        out["refresh_token"] = cred(st.refresh_token);
      }
      if (kind(self) == key_kind::component) {
        out["verify_ticket"] = cred(st.verify_ticket);
        out["degraded"] = st.p.entry->degraded.load();
      }
      if (kind(self) == key_kind::app) {
        json::object b;
        b["day"] = st.budget.day;
        b["used"] = st.budget.used;
        b["limit"] = st.p.force_per_day;
        out["force_refresh_budget"] = std::move(b);
      }
      out["refreshing"] = st.fetching;
      out["blocked_until"] = st.blocked_until > t ? json::value(st.blocked_until) : json::value(nullptr);
      if (st.last_refresh.at > 0) {
        json::object lr;
        lr["at"] = st.last_refresh.at;
        lr["what"] = st.last_refresh.what;
        out["last_refresh"] = std::move(lr);
      } else {
        out["last_refresh"] = nullptr;
      }
      json::array errs;
      for (auto& e : st.recent_errors) {
        json::object o;
        o["at"] = e.at;
        o["what"] = e.what;
        errs.push_back(std::move(o));
      }
      out["recent_errors"] = std::move(errs);
      return json::serialize(out);
    },
    [=](tick_atom, uint8_t kind, uint64_t gen) {
      auto& st = self->state;
      if (kind == reconcile_timer) {
        if (gen == st.reconcile_gen) {
          reconcile(self);
          schedule_reconcile(self, st.p.reconcile_interval_s);
        }
        return;
      }
      if (kind == token_timer) {
        if (gen == st.token_timer_gen && tick_due(self, token_timer, gen) && !st.fetching)
          fetch_token(self, "proactive", false);
        return;
      }
      if (kind != jsapi_timer && kind != wx_card_timer)
        return;
      auto& slot = kind == jsapi_timer ? st.jsapi : st.wx_card;
      if (gen == slot.timer_gen && tick_due(self, slot.timer, gen) && !slot.fetching)
        fetch_ticket(self, slot, false, "proactive");
    },
    caf::after(st.p.router && st.p.idle_timeout.count() > 0 ? caf::duration{st.p.idle_timeout}
                                                            : caf::duration{caf::infinite})
      >> [=] {
           // No message for the idle time: offer to stop (the router decides,
           // since a request for the key may be on its way here).
           if (idle(self))
             self->send(self->state.p.router, idle_atom::value, self->state.p.entry->key);
         },
  };
}

} // namespace

int64_t refresh_due(const credential& x, uint64_t seed, uint32_t margin_s, uint32_t jitter_s) {
  int64_t jitter = 0;
  if (jitter_s > 0) {
    // splitmix64 of the seed, the version and the expiry.
    auto z = seed ^ (x.version * 0x9e3779b97f4a7c15ULL) ^ static_cast<uint64_t>(x.expires_at);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    jitter = static_cast<int64_t>(z % (jitter_s + 1));
  }
  return x.expires_at - static_cast<int64_t>(margin_s) - jitter;
}

caf::actor spawn_app_actor(caf::actor_system& sys, app_params params) {
  return sys.spawn(app_actor, std::move(params));
}

} // namespace wh::actors
