// What differs per kind of key: how its token is requested, how WeChat's
// errcodes in the reply are classified, and what else the kind does. The
// lifecycle itself is credential_slot.cpp.

#include "actors/app_state.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "persistence/store.hpp"
#include "wechat/errcodes.hpp"

namespace json = boost::json;

namespace wh::actors::detail {

namespace {

// -- shared pieces -------------------------------------------------------------

template <wechat::token_type Type>
parsed_reply<fresh_value> parse_token(self_ptr, const caf::expected<upstream_reply>& rep) {
  auto res = parse_reply(rep, [](unsigned status, std::string_view body) {
    return wechat::parse_token(Type, status, body);
  });
  parsed_reply<fresh_value> out{std::move(res.err), res.errcode, std::move(res.errmsg), std::nullopt};
  if (res.value)
    out.value = fresh_value{std::move(res.value->access_token), res.value->expires_in,
                            std::move(res.value->refresh_token)};
  return out;
}

/// The token endpoint's errcodes every kind shares (40001 = wrong secret).
void token_errcode(self_ptr self, credential_slot& slot, const attempt& a, int errcode,
                   const std::string& errmsg) {
  fail(self, slot, a.reason, on_errcode(self, errcode, errmsg, true, slot.failures));
}

wechat::request probe_token(self_ptr, const std::string& token) {
  return wechat::api_domain_ip(token);
}

void nothing(self_ptr) {
  // nop
}

std::string appid_key(const app_params& p) {
  return p.app.appid;
}

// -- official accounts -----------------------------------------------------------

wechat::request stable_call(self_ptr self, const credential_slot&, const attempt& a) {
  auto& app = self->state.p.app;
  return wechat::stable_token(app.appid, app.secret, a.force);
}

wechat::request classic_call(self_ptr self, const credential_slot&, const attempt&) {
  auto& app = self->state.p.app;
  return wechat::classic_token(app.appid, app.secret);
}

void describe_app(self_ptr self, json::object& out) {
  auto& st = self->state;
  json::object b;
  b["day"] = st.budget.day;
  b["used"] = st.budget.used;
  b["limit"] = st.p.force_per_day;
  out["force_refresh_budget"] = std::move(b);
}

const kind_policy stable_app{
  key_kind::app,
  wechat::token_type::access_token,
  {blocked, nullptr, nullptr, stable_call, parse_token<wechat::token_type::access_token>, token_errcode},
  /* forcible */ true,
  /* has_tickets */ true,
  /* degradable */ false,
  /* wakes */ true,
  probe_token,
  nothing,
  describe_app,
  [](self_ptr) { return not_a_component(); },
  [](self_ptr) { return not_an_authorizer(); },
  appid_key,
};

/// The classic /cgi-bin/token: no forced refresh.
const kind_policy classic_app = [] {
  auto x = stable_app;
  x.token.build = classic_call;
  x.forcible = false;
  return x;
}();

// -- components --------------------------------------------------------------------

caf::error component_cannot_fetch(self_ptr self) {
  if (auto err = blocked(self))
    return err;
  if (!self->state.verify_ticket) {
    request_push_ticket(self);
    return make_detail_error(ec::verify_ticket_invalid,
                             "no component_verify_ticket received yet; WeChat was asked to push one");
  }
  return caf::none;
}

wechat::request component_call(self_ptr self, const credential_slot&, const attempt&) {
  auto& st = self->state;
  return wechat::component_token(st.p.app.appid, st.p.app.secret, st.verify_ticket ? st.verify_ticket->value : "");
}

void component_errcode(self_ptr self, credential_slot& slot, const attempt& a, int errcode,
                       const std::string& errmsg) {
  if (wechat::classify(errcode) == wechat::errclass::verify_ticket) {
    set_degraded(self, true);
    request_push_ticket(self);
    auto err = make_upstream_error(ec::verify_ticket_invalid, errcode,
                                   "WeChat rejected the component_verify_ticket; waiting for the next push");
    block(self, now(self) + 10, err);
    return fail(self, slot, a.reason, err);
  }
  token_errcode(self, slot, a, errcode, errmsg);
}

/// The cheapest call that proves a component token: one list entry.
wechat::request probe_component(self_ptr self, const std::string& token) {
  return wechat::authorizer_list(token, appid(self), 0, 1);
}

void start_component(self_ptr self) {
  auto& st = self->state;
  if (!st.verify_ticket)
    request_push_ticket(self);
  schedule_reconcile(self, st.p.reconcile_interval_s);
}

void describe_component(self_ptr self, json::object& out) {
  auto& st = self->state;
  out["verify_ticket"] = credential_json(self, st.verify_ticket);
  out["degraded"] = st.p.entry->degraded.load();
}

const kind_policy component{
  key_kind::component,
  wechat::token_type::component_access_token,
  {component_cannot_fetch, nullptr, nullptr, component_call,
   parse_token<wechat::token_type::component_access_token>, component_errcode},
  /* forcible */ false,
  /* has_tickets */ false,
  /* degradable */ true,
  /* wakes */ false,
  probe_component,
  start_component,
  describe_component,
  component_handlers,
  [](self_ptr) { return not_an_authorizer(); },
  appid_key,
};

// -- authorizers ----------------------------------------------------------------------

caf::error authorizer_cannot_fetch(self_ptr self) {
  auto& st = self->state;
  if (auto err = blocked(self))
    return err;
  if (st.status == authorizer_status::revoked)
    return make_detail_error(ec::authorizer_revoked, "the authorizer revoked its authorization");
  if (st.status == authorizer_status::needs_reauthorization)
    return make_detail_error(ec::needs_reauthorization,
                             "WeChat rejected the refresh token (61023); the account must authorize again");
  if (!st.refresh_token)
    return make_detail_error(ec::needs_reauthorization, "no refresh token is known for this authorizer");
  return caf::none;
}

/// The component's token: api_authorizer_token is called with it.
void component_token(self_ptr self, waiter k) {
  self->request(self->state.p.component, self->state.p.upstream_timeout, get_atom::value, token_atom::value)
    .then([k](const credential& ct) { k(ct); }, [k](caf::error& err) { k(err); });
}

/// The component token was rejected: the component replaces it once if it
/// is still its current one (compare-and-set).
void component_token_dead(self_ptr self, const std::string& used, std::function<void(caf::error)> k) {
  ++self->state.inflight;
  self->request(self->state.p.component, self->state.p.upstream_timeout, stale_atom::value, force_atom::value,
                used)
    .then(
      [self, k](const credential&) {
        --self->state.inflight;
        k(caf::none);
      },
      [self, k](caf::error& err) {
        --self->state.inflight;
        k(err);
      });
}

wechat::request authorizer_call(self_ptr self, const credential_slot&, const attempt& a) {
  auto& st = self->state;
  return wechat::authorizer_token(a.used, st.p.component_appid, st.p.app.appid,
                                  st.refresh_token ? st.refresh_token->value : "");
}

/// WeChat may still list the authorizer with a newer refresh token
/// (re-authorized while this hub missed the push): asks the component.
/// The fetch stays running so concurrent requests wait for the outcome.
void recover_refresh_token(self_ptr self, credential_slot& slot, const attempt& a) {
  auto& st = self->state;
  st.recovery_tried = st.refresh_token->value;
  WH_WARN("authorizer", st.p.component_appid << "/" << appid(self)
                                             << ": refresh token rejected (61023); looking it up in "
                                                "api_get_authorizer_list");
  auto rejected = st.refresh_token->value;
  auto sp = &slot;
  auto reason = a.reason;
  auto force = a.force;
  self->request(st.p.component, st.p.upstream_timeout, import_atom::value, appid(self))
    .then(
      [self, sp, reason, force, rejected](const credential& rt) {
        auto& st = self->state;
        if (rt.value == rejected)
          return needs_reauthorization(self, reason, 61023); // WeChat lists the rejected one
        sp->fetching = false;
        credential x{rt.value, now(self), never, st.refresh_token ? st.refresh_token->version + 1 : 1};
        store_write w;
        w.put(persistence::keys::refresh_token(prefix(self)), persistence::encode(x));
        persist(self, std::move(w), [self, sp, x, reason, force](caf::error err) {
          if (err)
            return fail(self, *sp, reason, err);
          self->state.refresh_token = x;
          WH_INFO("authorizer", self->state.p.component_appid << "/" << appid(self)
                                                              << ": refresh token recovered");
          fetch(self, *sp, reason, force, true);
        });
      },
      [self, reason](caf::error&) { needs_reauthorization(self, reason, 61023); });
}

void authorizer_errcode(self_ptr self, credential_slot& slot, const attempt& a, int errcode,
                        const std::string& errmsg) {
  auto& st = self->state;
  auto cls = wechat::classify(errcode);
  if (cls == wechat::errclass::token_invalid && !a.retried)
    return renew_source(self, slot, a); // the *component* token is dead
  if (cls == wechat::errclass::refresh_token_invalid && st.refresh_token
      && st.recovery_tried != st.refresh_token->value)
    return recover_refresh_token(self, slot, a);
  if (cls == wechat::errclass::refresh_token_invalid)
    return needs_reauthorization(self, a.reason, errcode);
  if (cls == wechat::errclass::revoked) {
    slot.fetching = false;
    auto err = make_upstream_error(ec::authorizer_revoked, errcode, "the authorizer revoked its authorization");
    auto sp = &slot;
    auto reason = a.reason;
    return revoke(self, 0, [self, sp, reason, err](caf::error) { fail(self, *sp, reason, err); });
  }
  fail(self, slot, a.reason, on_errcode(self, errcode, errmsg, false, slot.failures));
}

void describe_authorizer(self_ptr self, json::object& out) {
  auto& st = self->state;
  out["status"] = to_string(st.status);
  out["refresh_token"] = credential_json(self, st.refresh_token);
}

const kind_policy authorizer{
  key_kind::authorizer,
  wechat::token_type::authorizer_access_token,
  {authorizer_cannot_fetch, component_token, component_token_dead, authorizer_call,
   parse_token<wechat::token_type::authorizer_access_token>, authorizer_errcode},
  /* forcible */ false,
  /* has_tickets */ true,
  /* degradable */ false,
  /* wakes */ true,
  probe_token,
  nothing,
  describe_authorizer,
  [](self_ptr) { return not_a_component(); },
  authorizer_handlers,
  [](const app_params& p) { return p.component_appid + "/" + p.app.appid; },
};

} // namespace

const kind_policy& policy_of(key_kind kind, token_api api) {
  switch (kind) {
    case key_kind::component: return component;
    case key_kind::authorizer: return authorizer;
    default: return api == token_api::stable ? stable_app : classic_app;
  }
}

} // namespace wh::actors::detail
