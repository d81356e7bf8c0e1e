#include "actors/app_actor.hpp"

#include <algorithm>

#include <boost/json.hpp>

#include "caf/all.hpp"

#include "actors/app_state.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/store.hpp"
#include "wechat/api.hpp"
#include "wechat/errcodes.hpp"

// The token actor: one per key. Its credentials share one lifecycle
// (credential_slot.cpp); what differs per kind is its kind_policy
// (kind_policy.cpp), chosen at spawn, and the handlers only that kind has
// (component_ops.cpp, authorizer_ops.cpp).

namespace json = boost::json;

namespace wh::actors {

namespace detail {

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
  if (st.pol->forcible && !st.token.fetching) {
    if (spend_force(self))
      return refuse_loop(self);
    auto rp = self->make_response_promise<credential>();
    st.token.waiters.push_back(to_waiter(rp));
    st.token.dead = token;
    fetch(self, st.token, "refresh_loop", true);
    return rp;
  }
  auto rp = self->make_response_promise<credential>();
  st.token.waiters.push_back(to_waiter(rp));
  token_rejected(self, token, "refresh_loop");
  return rp;
}

void check_token(self_ptr self, const std::string& value) {
  auto& st = self->state;
  if (auto err = blocked(self))
    return fail_all(st.check_waiters, err);
  st.checking = true;
  call_upstream(self, to_call(st.pol->probe(self, value)), [self, value](const caf::expected<upstream_reply>& rep) {
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
        st.token.waiters.push_back(std::move(w));
      st.check_waiters.clear();
      return token_rejected(self, value, "stale_report");
    }
    fail_all(st.check_waiters, on_errcode(self, res.errcode, res.errmsg, false, 0));
  });
}

// -- initialization ------------------------------------------------------------

void restore(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  st.budget = st.p.force_budget;
  st.refresh_token = st.p.refresh_token;
  st.status = st.p.status;
  st.status_at = st.p.status_at;
  st.authorized_at = st.p.authorized_at;
  st.p.entry->status.store(st.status);
  st.verify_ticket = st.p.verify_ticket;
  if (st.verify_ticket)
    st.p.entry->verify_ticket_at.store(st.verify_ticket->obtained_at);
  st.pol->start(self);
  if (st.p.token) {
    st.token.last_version = st.p.token->version;
    if (st.p.token->valid_at(t)) {
      st.token.value = st.p.token;
      st.token.published->publish(*st.token.value);
      schedule(self, st.token, refresh_time(self, *st.token.value, false));
    }
  }
  for (auto [slot, stored] : {std::pair{&st.jsapi, &st.p.jsapi}, std::pair{&st.wx_card, &st.p.wx_card}}) {
    if (!*stored)
      continue;
    slot->last_version = (*stored)->version;
    if ((*stored)->valid_at(t)) {
      slot->value = *stored;
      slot->published->publish(*slot->value);
      schedule(self, *slot, refresh_time(self, *slot->value, false));
    } else {
      slot->value = *stored; // its value counts as unchanged if WeChat hands it out again; not served
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
  auto quiet = [](const credential_slot& s) { return !s.fetching && s.waiters.empty(); };
  return st.inflight == 0 && quiet(st.token) && !st.checking && st.check_waiters.empty()
         && quiet(st.jsapi) && quiet(st.wx_card) && !st.listing && st.lookups.empty()
         && st.blocked_until <= t && !(st.escalated_at > 0 && t - st.escalated_at < st.p.loop_window_s)
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

// -- GET /admin/state -----------------------------------------------------------------

json::value credential_json(self_ptr self, const std::optional<credential>& x) {
  if (!x || x->value.empty())
    return nullptr;
  auto t = now(self);
  json::object o;
  o["version"] = x->version;
  o["obtained_at"] = x->obtained_at;
  o["age_s"] = t - x->obtained_at;
  if (x->expires_at != never) {
    o["expires_at"] = x->expires_at;
    o["ttl_s"] = x->expires_at - t;
  }
  return o;
}

/// What an operator may see: times, versions, reasons. Never values.
std::string describe(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  json::object out;
  out["key"] = st.p.entry->key;
  out["kind"] = to_string(st.pol->kind);
  out["access_token"] = credential_json(self, st.token.value);
  if (st.pol->has_tickets) {
    out["jsapi_ticket"] = credential_json(self, st.jsapi.value);
    out["wx_card_ticket"] = credential_json(self, st.wx_card.value);
  }
  st.pol->describe(self, out);
  out["refreshing"] = st.token.fetching;
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
}

// -- message handlers -------------------------------------------------------------

/// What every kind understands.
credential_api::behavior_type credential_handlers(self_ptr self) {
  return {
    [=](get_atom, token_atom) -> caf::result<credential> {
      auto& tok = self->state.token;
      if (tok.value && tok.value->valid_at(now(self)))
        return *tok.value;
      auto rp = self->make_response_promise<credential>();
      want_token(self, to_waiter(rp));
      return rp;
    },
    [=](get_atom, ticket_atom, const std::string& type) -> caf::result<credential> {
      auto slot = slot_of(self, type);
      if (!slot)
        return make_detail_error(ec::invalid_request, "type must be jsapi or wx_card");
      if (!self->state.pol->has_tickets)
        return make_detail_error(ec::invalid_request, "a component has no tickets; ask for an authorizer's");
      if (auto err = self->state.pol->token.cannot_fetch(self); code_of(err) == ec::authorizer_revoked)
        return err;
      if (slot->value && slot->value->valid_at(now(self)))
        return *slot->value;
      auto rp = self->make_response_promise<credential>();
      slot->waiters.push_back(to_waiter(rp));
      fetch(self, *slot, slot->value ? "expired" : "on_demand", false);
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
      auto& tok = st.token.value;
      bool have = tok && tok->valid_at(t);
      if (have && tok->value != failed)
        return *tok; // compare-and-set: a newer token already replaced it
      if (have && st.verified_token == failed && t - st.verified_at < st.p.verify_cache_s) {
        // Verified valid, yet reported again: a client WeChat rejects while
        // the check accepts it. A few are tolerated; a loop is escalated once.
        if (!repeated_report(self, failed))
          return *tok;
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
      auto& tok = self->state.token;
      if (failed.empty())
        return make_detail_error(ec::invalid_request, "access_token must not be empty");
      if (tok.value && tok.value->valid_at(now(self)) && tok.value->value != failed)
        return *tok.value;
      auto rp = self->make_response_promise<credential>();
      tok.waiters.push_back(to_waiter(rp));
      token_rejected(self, failed, "rejected_by_wechat");
      return rp;
    },
    [=](refresh_atom) -> caf::result<credential> {
      auto& st = self->state;
      auto& tok = st.token;
      auto rp = self->make_response_promise<credential>();
      tok.waiters.push_back(to_waiter(rp));
      if (tok.fetching)
        return rp;
      bool force = st.pol->forcible;
      if (force) {
        if (auto err = spend_force(self)) {
          fail_all(tok.waiters, err);
          return rp;
        }
      }
      fetch(self, tok, "admin", force);
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
    [=](wake_atom) {
      // The durable schedule woke the key: restore() armed what is due; a
      // token that expired while the key slept (or the hub was down) is
      // fetched now, so that no client waits for it.
      auto& st = self->state;
      if (!st.pol->wakes || st.token.fetching || st.status != authorizer_status::active)
        return;
      if (!(st.token.value && st.token.value->valid_at(now(self))))
        fetch(self, st.token, "overdue", false);
    },
    [=](state_atom) -> std::string { return describe(self); },
  };
}

/// What only the router and the node send: stops, timer steps, version sync.
key_control::behavior_type control_handlers(self_ptr self) {
  return {
    [=](sync_atom, const key_state& incoming) {
      // Another node's copy of this key (two nodes ran it apart).
      merge_in(self, incoming);
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
    [=](tick_atom, uint8_t kind, uint64_t gen) {
      auto& st = self->state;
      switch (kind) {
        case reconcile_timer: return on_reconcile_timer(self, gen);
        case token_timer: return on_timer(self, st.token, gen);
        case jsapi_timer: return on_timer(self, st.jsapi, gen);
        default: return on_timer(self, st.wx_card, gen);
      }
    },
  };
}

/// What a kind without these handlers answers to the component's messages.
component_api::behavior_type not_a_component() {
  auto no = [] { return make_detail_error(ec::invalid_request, "not a component"); };
  return {
    [=](vticket_atom, const std::string&) -> caf::result<done_atom> { return no(); },
    [=](auth_atom, const std::string&) -> caf::result<authorization> { return no(); },
    [=](auth_atom, const std::string&, const std::string&, int64_t) -> caf::result<authorization> {
      return no();
    },
    [=](import_atom, const std::string&) -> caf::result<credential> { return no(); },
  };
}

/// ... and to the authorizer's.
authorizer_api::behavior_type not_an_authorizer() {
  auto no = [] { return make_detail_error(ec::invalid_request, "not an authorizer"); };
  return {
    [=](auth_atom, const authorization&) -> caf::result<done_atom> { return no(); },
    [=](auth_atom, const credential&) -> caf::result<done_atom> { return no(); },
    [=](revoke_atom) -> caf::result<done_atom> { return no(); },
    [=](revoke_atom, int64_t) -> caf::result<done_atom> { return no(); },
  };
}

key_actor::behavior_type app_actor(self_ptr self, app_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.pol = &policy_of(st.p.kind, st.p.app.api);
  st.key = st.pol->key_of(st.p);
  init_slots(self);
  restore(self);
  // Each part is checked against its interface; together they are key_actor.
  auto part = [](auto&& b) { return caf::message_handler{b.unbox().as_behavior_impl()}; };
  auto all = part(credential_handlers(self))
               .or_else(part(st.pol->as_component(self)))
               .or_else(part(st.pol->as_authorizer(self)))
               .or_else(part(control_handlers(self)))
               .or_else(caf::after(st.p.router && st.p.idle_timeout.count() > 0
                                     ? caf::duration{st.p.idle_timeout}
                                     : caf::duration{caf::infinite})
                        >> [=] {
                             // No message for the idle time: offer to stop (the router decides,
                             // since a request for the key may be on its way here).
                             if (idle(self))
                               self->send(self->state.p.router, idle_atom::value, self->state.p.entry->key);
                           });
  return {key_actor::behavior_type::unsafe_init{}, std::move(all)};
}

} // namespace detail

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

key_actor spawn_app_actor(caf::actor_system& sys, app_params params) {
  return sys.spawn(detail::app_actor, std::move(params));
}

} // namespace wh::actors
