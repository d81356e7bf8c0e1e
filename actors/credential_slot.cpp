// The lifecycle every credential of a token actor goes through (the access
// token, the jsapi and wx_card tickets): single-flight fetch -> reply ->
// persist -> publish -> schedule, one failure and backoff path, one retry
// timer path. What differs per credential is in its slot_ops.

#include <algorithm>

#include "actors/app_state.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/store.hpp"
#include "wechat/errcodes.hpp"

namespace wh::actors::detail {

// -- small helpers -----------------------------------------------------------

int errcode_in(const caf::error& err) {
  int code = 0;
  return wechat_errcode_of(err, code) ? code : 0;
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
                   const caf::error& err) {
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
                 {"key", self->state.key}, {"errcode", errcode});
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
  // Fencing: a node whose lease lapsed (etcd unreachable, or the process
  // was paused) must not act as the owner; it keeps serving what it holds.
  if (auto& may_act = self->state.p.may_act; may_act && !may_act()) {
    if (auto m = self->state.p.stats)
      m->inc("wechat_hub_upstream_fenced_total", {});
    return k(make_detail_error(ec::cluster_unavailable,
                               "this node's cluster lease has lapsed; it does not call WeChat"));
  }
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

void persist(self_ptr self, store_write batch, std::function<void(caf::error)> k) {
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
          caf::anon_send(p.cluster, repl_atom::value, p.entry->key, p.prefix);
        k(caf::none);
      },
      [self, k](caf::error& err) {
        --self->state.inflight;
        k(err);
      });
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

void set_degraded(self_ptr self, bool degraded) {
  self->state.p.entry->degraded.store(degraded, std::memory_order_relaxed);
}

// -- scheduling ----------------------------------------------------------------

/// Sends the next tick of `slot`'s timer. A virtual actor's ticks go through
/// the router in steps of at most twice the idle time: a pending delayed
/// message would keep a stopped actor in memory until it fires (hours for a
/// token refresh), and the router drops ticks of an actor that stopped (the
/// durable schedule wakes the key instead).
void send_tick(self_ptr self, const credential_slot& slot) {
  auto& st = self->state;
  auto delay = std::max<int64_t>(1, st.armed_at[slot.timer] - now(self));
  if (!st.p.router)
    return self->delayed_send(self, std::chrono::seconds(delay), tick_atom::value,
                              static_cast<uint8_t>(slot.timer), slot.timer_gen);
  auto hop = std::max<int64_t>(
    60, 2 * std::chrono::duration_cast<std::chrono::seconds>(st.p.idle_timeout).count());
  // Anonymous: a sender field would be a strong reference as well. The
  // actor's id, not its address: an address is a weak reference, and CAF
  // frees an actor's memory block (~3 KiB) only once no weak reference is
  // left, so a cold pass over a million keys would keep every actor that
  // stopped in the last `hop` seconds (hundreds of MiB).
  caf::delayed_anon_send(st.p.router, std::chrono::seconds(std::min(delay, hop)), tick_atom::value,
                         st.p.entry->key, self->id(), static_cast<uint8_t>(slot.timer), slot.timer_gen);
}

void schedule(self_ptr self, credential_slot& slot, int64_t at) {
  ++slot.timer_gen;
  self->state.armed_at[slot.timer] = now(self) + std::max<int64_t>(1, at - now(self));
  send_tick(self, slot);
}

int64_t refresh_time(self_ptr self, const credential& x, bool unchanged) {
  auto& p = self->state.p;
  auto at = refresh_due(x, p.seed, p.refresh_margin_s, p.refresh_jitter_s);
  if (unchanged)
    at = std::max({at, x.expires_at - 290, now(self) + 30});
  return at;
}

namespace {

/// Schedules a retry after a failed background refresh while the value is
/// still valid: exponential, never past expiry, never before a block lifts.
void schedule_retry(self_ptr self, credential_slot& slot) {
  auto t = now(self);
  auto& x = slot.value;
  if (!x || !x->valid_at(t))
    return;
  auto delay = std::min<int64_t>(300, int64_t{15} << std::min<uint32_t>(slot.failures, 5));
  auto at = std::max(t + delay, self->state.blocked_until);
  if (at >= x->expires_at)
    at = std::max(t + 1, x->expires_at - 5);
  schedule(self, slot, at);
}

/// Persists and publishes a value WeChat handed out, then answers the waiters.
void store(self_ptr self, credential_slot& slot, const attempt& a, fresh_value& v) {
  auto& st = self->state;
  if (slot.forcible && !slot.dead.empty() && v.value == slot.dead) {
    // stable_token's normal mode handed back the token WeChat just rejected:
    // only a forced refresh replaces it, and only if the budget allows.
    slot.fetching = false;
    if (a.force)
      return fail(self, slot, a.reason,
                  make_detail_error(ec::upstream_error, "a forced refresh returned the rejected token"));
    if (auto err = spend_force(self))
      return fail(self, slot, a.reason, err);
    return fetch(self, slot, "forced", true);
  }
  bool unchanged = slot.value && slot.value->value == v.value;
  credential x{v.value, now(self), a.sent_at + v.expires_in,
               unchanged ? slot.value->version : slot.last_version + 1};
  store_write batch;
  std::optional<credential> new_refresh;
  // A refresh token that comes back is written with the token, atomically.
  if (!v.refresh_token.empty() && (!st.refresh_token || st.refresh_token->value != v.refresh_token)) {
    new_refresh = credential{v.refresh_token, now(self), never,
                             st.refresh_token ? st.refresh_token->version + 1 : 1};
    batch.put(persistence::keys::refresh_token(prefix(self)), persistence::encode(*new_refresh));
  }
  batch.put(slot.store_key, persistence::encode(x));
  if (a.force)
    batch.put(persistence::keys::force(prefix(self)), persistence::encode(st.budget));
  std::string why = a.reason;
  auto sp = &slot;
  persist(self, std::move(batch), [self, sp, x, unchanged, why, new_refresh](caf::error err) {
    auto& st = self->state;
    auto& slot = *sp;
    if (err)
      return fail(self, slot, "persist", err);
    slot.fetching = false;
    slot.value = x;
    if (new_refresh)
      st.refresh_token = new_refresh;
    slot.last_version = std::max(slot.last_version, x.version);
    slot.failures = 0;
    slot.dead.clear();
    slot.published->publish(x);
    if (slot.clears_degraded)
      set_degraded(self, false);
    if (!unchanged) {
      count_refresh(self, slot.label, why.c_str(), "ok");
      if (slot.log_new)
        WH_INFO_F(slot.log_category, appid(self) << ": new " << slot.label << " v" << x.version << " ("
                                                 << why << "), valid " << (x.expires_at - x.obtained_at)
                                                 << " s",
                  {"key", st.key}, {"version", x.version});
    }
    schedule(self, slot, refresh_time(self, x, unchanged));
    deliver_all(slot.waiters, x);
  });
}

void on_reply(self_ptr self, credential_slot& slot, const attempt& a,
              const caf::expected<upstream_reply>& rep) {
  auto res = slot.ops->parse(self, rep);
  if (res.err)
    return fail(self, slot, a.reason, res.err);
  if (res.errcode != 0)
    return slot.ops->on_errcode(self, slot, a, res.errcode, res.errmsg);
  store(self, slot, a, *res.value);
}

/// Sends the request of `slot` (made with `a.used`).
void send_request(self_ptr self, credential_slot& slot, attempt a) {
  auto sp = &slot;
  a.sent_at = now(self);
  auto req = to_call(slot.ops->build(self, slot, a));
  call_upstream(self, std::move(req), [self, sp, a](const caf::expected<upstream_reply>& rep) {
    on_reply(self, *sp, a, rep);
  });
}

} // namespace

// -- the lifecycle ---------------------------------------------------------------

credential_slot* slot_of(self_ptr self, std::string_view type) {
  if (type == "jsapi")
    return &self->state.jsapi;
  if (type == "wx_card")
    return &self->state.wx_card;
  return nullptr;
}

void fail(self_ptr self, credential_slot& slot, const char* reason, const caf::error& err) {
  slot.fetching = false;
  slot.failures++;
  count_refresh(self, slot.label, reason, "error", err);
  WH_WARN_F(slot.log_category, appid(self) << ": " << slot.noun << " " << reason << " refresh failed: "
                                           << to_string(code_of(err)) << " " << detail_of(err),
            {"key", self->state.key}, {"errcode", errcode_in(err)}, {"reason", to_string(code_of(err))});
  fail_all(slot.waiters, err);
  schedule_retry(self, slot);
}

void fetch(self_ptr self, credential_slot& slot, const char* reason, bool force, bool retried) {
  if (slot.fetching)
    return;
  if (auto err = slot.ops->cannot_fetch(self)) {
    fail_all(slot.waiters, err);
    if (code_of(err) != ec::authorizer_revoked)
      schedule_retry(self, slot);
    return;
  }
  slot.fetching = true;
  attempt a;
  a.reason = reason;
  a.force = force;
  a.retried = retried;
  if (!slot.ops->source)
    return send_request(self, slot, std::move(a));
  auto sp = &slot;
  slot.ops->source(self, [self, sp, a](const caf::expected<credential>& used) mutable {
    if (!used)
      return fail(self, *sp, a.reason, used.error());
    a.used = used->value;
    send_request(self, *sp, std::move(a));
  });
}

void renew_source(self_ptr self, credential_slot& slot, const attempt& a) {
  slot.fetching = false;
  auto sp = &slot;
  auto reason = a.reason;
  auto force = a.force;
  slot.ops->source_dead(self, a.used, [self, sp, reason, force](caf::error err) {
    if (err)
      return fail(self, *sp, reason, err);
    fetch(self, *sp, reason, force, true);
  });
}

void on_timer(self_ptr self, credential_slot& slot, uint64_t gen) {
  if (gen != slot.timer_gen)
    return;
  if (self->state.armed_at[slot.timer] > now(self))
    return send_tick(self, slot); // one step of a longer wait
  self->state.armed_at[slot.timer] = 0;
  if (!slot.fetching)
    fetch(self, slot, "proactive", false);
}

// -- the token -------------------------------------------------------------------

void want_token(self_ptr self, waiter w) {
  auto& tok = self->state.token;
  tok.waiters.push_back(std::move(w));
  if (!tok.fetching)
    fetch(self, tok, tok.value ? "expired" : "on_demand", false);
}

void with_token(self_ptr self, waiter k) {
  auto& tok = self->state.token;
  if (tok.value && tok.value->valid_at(now(self)))
    k(*tok.value);
  else
    want_token(self, std::move(k));
}

void token_rejected(self_ptr self, const std::string& value, const char* reason) {
  auto& tok = self->state.token;
  if (tok.value && tok.value->value != value && tok.value->valid_at(now(self))) {
    // Compare-and-set: a newer token already replaced the rejected one.
    deliver_all(tok.waiters, *tok.value);
    return;
  }
  if (tok.value && tok.value->value == value) {
    tok.value.reset();
    tok.published->clear();
    ++tok.timer_gen; // cancels the proactive refresh of the dead token
  }
  tok.dead = value;
  WH_WARN_F("token", appid(self) << ": WeChat rejected the current " << tok.label << " (" << reason
                                 << "); replacing it",
            {"key", self->state.key});
  if (!tok.fetching)
    fetch(self, tok, reason, false);
}

// -- tickets -------------------------------------------------------------------------

namespace {

void ticket_errcode(self_ptr self, credential_slot& slot, const attempt& a, int errcode,
                    const std::string& errmsg) {
  if (wechat::classify(errcode) == wechat::errclass::token_invalid) {
    // The token is dead: replace it once, then retry the ticket once.
    if (!a.retried)
      return renew_source(self, slot, a);
    return fail(self, slot, a.reason,
                make_upstream_error(ec::upstream_error, errcode, "getticket rejected a freshly refreshed token"));
  }
  fail(self, slot, a.reason, on_errcode(self, errcode, errmsg, false, slot.failures));
}

const slot_ops ticket_ops{
  // cannot_fetch
  [](self_ptr self) { return blocked(self); },
  // source: the access token
  [](self_ptr self, waiter k) { with_token(self, std::move(k)); },
  // source_dead
  [](self_ptr self, const std::string& used, std::function<void(caf::error)> k) {
    token_rejected(self, used, "ticket_token_rejected");
    k(caf::none);
  },
  // build
  [](self_ptr, const credential_slot& slot, const attempt& a) { return wechat::get_ticket(a.used, slot.type); },
  // parse
  [](self_ptr, const caf::expected<upstream_reply>& rep) {
    auto res = parse_reply(rep, wechat::parse_ticket);
    parsed_reply<fresh_value> out{std::move(res.err), res.errcode, std::move(res.errmsg), std::nullopt};
    if (res.value)
      out.value = fresh_value{std::move(res.value->ticket), res.value->expires_in, {}};
    return out;
  },
  ticket_errcode,
};

void init_ticket(self_ptr self, credential_slot& slot, std::string type, timer_kind timer,
                 snapshot_slot& published) {
  slot.ops = &ticket_ops;
  slot.type = std::move(type);
  slot.label = slot.type == "jsapi" ? "jsapi" : "wx_card";
  slot.log_category = "app";
  slot.noun = slot.type + " ticket";
  slot.timer = timer;
  slot.store_key = persistence::keys::ticket(prefix(self), slot.type);
  slot.published = &published;
}

} // namespace

void init_slots(self_ptr self) {
  auto& st = self->state;
  auto& tok = st.token;
  tok.ops = &st.pol->token;
  tok.label = wechat::token_field(st.pol->type);
  tok.log_category = "token";
  tok.noun = tok.label;
  tok.timer = token_timer;
  tok.store_key = persistence::keys::token(prefix(self));
  tok.published = &st.p.entry->token;
  tok.forcible = st.pol->forcible;
  tok.log_new = true;
  tok.clears_degraded = st.pol->degradable;
  init_ticket(self, st.jsapi, "jsapi", jsapi_timer, st.p.entry->jsapi);
  init_ticket(self, st.wx_card, "wx_card", wx_card_timer, st.p.entry->wx_card);
}

} // namespace wh::actors::detail
