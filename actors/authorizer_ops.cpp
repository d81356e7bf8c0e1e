// What only an authorizer does: take (re-)authorizations and imported
// refresh tokens, lose its authorization (revoked, 61023).

#include "actors/app_state.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "persistence/store.hpp"

namespace wh::actors::detail {

namespace {

void set_status(self_ptr self, authorizer_status x) {
  self->state.status = x;
  self->state.p.entry->status.store(x);
}

void answer(caf::typed_response_promise<done_atom>& rp, const caf::error& err) {
  if (err)
    rp.deliver(err);
  else
    rp.deliver(done_atom::value);
}

} // namespace

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
      set_status(self, authorizer_status::revoked);
      st.refresh_token.reset();
      for (auto slot : {&st.token, &st.jsapi, &st.wx_card}) {
        slot->value.reset();
        ++slot->timer_gen;
        slot->published->clear();
      }
      auto revoked = make_detail_error(ec::authorizer_revoked, "the authorizer revoked its authorization");
      fail_all(st.jsapi.waiters, revoked);
      fail_all(st.wx_card.waiters, revoked);
      WH_INFO("authorizer", st.p.component_appid << "/" << appid(self) << ": revoked; tokens deleted");
    }
    k(err);
  });
}

void needs_reauthorization(self_ptr self, const char* reason, int errcode) {
  auto& st = self->state;
  set_status(self, authorizer_status::needs_reauthorization);
  st.token.value.reset();
  st.token.published->clear();
  store_write w;
  w.put(persistence::keys::status(prefix(self)), persistence::encode_status("needs_reauthorization", now(self)));
  persist(self, std::move(w), [](caf::error) {});
  WH_ERROR("authorizer", st.p.component_appid << "/" << appid(self)
                                              << ": refresh token rejected (61023); needs re-authorization");
  fail(self, st.token, reason,
       make_upstream_error(ec::needs_reauthorization, errcode,
                           "WeChat rejected the refresh token; the account must authorize again"));
}

void adopt_authorization(self_ptr self, const authorization& a, caf::typed_response_promise<done_atom> rp) {
  auto& st = self->state;
  // Fencing: a node whose cluster lease lapsed never applies an
  // authorization on its own (another node may own the key by now); the
  // push fails, so that WeChat retries it.
  if (auto& may_act = st.p.may_act; may_act && !may_act()) {
    WH_WARN("authorizer", st.p.component_appid << "/" << appid(self)
                                               << ": authorization not applied: this node's cluster lease lapsed");
    rp.deliver(make_detail_error(ec::cluster_unavailable,
                                 "this node's cluster lease has lapsed; it does not apply authorizations"));
    return;
  }
  if (a.access_token.value.empty()) {
    // Recovered from api_get_authorizer_list: only the refresh token is
    // known (durable already); the access token is fetched on first use.
    st.refresh_token = a.refresh_token;
    set_status(self, authorizer_status::active);
    st.blocked_until = 0;
    WH_INFO("authorizer", st.p.component_appid << "/" << appid(self) << ": authorization recovered");
    persist(self, store_write{}, [rp](caf::error err) mutable { answer(rp, err); });
    return;
  }
  credential x = a.access_token;
  x.version = st.token.last_version + 1;
  store_write w;
  w.put(persistence::keys::refresh_token(prefix(self)), persistence::encode(a.refresh_token));
  w.put(persistence::keys::token(prefix(self)), persistence::encode(x));
  w.ops.push_back(store_write::op{persistence::keys::status(prefix(self)), "", true});
  persist(self, std::move(w), [self, x, a, rp](caf::error err) mutable {
    auto& st = self->state;
    if (err)
      return (void) rp.deliver(err);
    set_status(self, authorizer_status::active);
    st.refresh_token = a.refresh_token;
    auto& tok = st.token;
    tok.value = x;
    tok.dead.clear();
    tok.last_version = x.version;
    tok.published->publish(x);
    schedule(self, tok, refresh_time(self, x, false));
    WH_INFO("authorizer", st.p.component_appid << "/" << appid(self) << ": authorized; token v" << x.version);
    deliver_all(tok.waiters, x);
    rp.deliver(done_atom::value);
  });
}

authorizer_api::behavior_type authorizer_handlers(self_ptr self) {
  return {
    [=](auth_atom, const authorization& a) -> caf::result<done_atom> {
      auto rp = self->make_response_promise<done_atom>();
      adopt_authorization(self, a, rp);
      return rp;
    },
    [=](auth_atom, const credential& refresh) -> caf::result<done_atom> {
      // An imported refresh token, already durable (bulk imports batch their writes).
      auto& st = self->state;
      st.refresh_token = refresh;
      set_status(self, authorizer_status::active);
      st.blocked_until = 0;
      if (!st.p.cluster)
        return done_atom::value;
      // In a cluster the import becomes a new state version so it replicates.
      auto rp = self->make_response_promise<done_atom>();
      persist(self, store_write{}, [rp](caf::error err) mutable { answer(rp, err); });
      return rp;
    },
    [=](revoke_atom) -> caf::result<done_atom> {
      auto rp = self->make_response_promise<done_atom>();
      revoke(self, [rp](caf::error err) mutable { answer(rp, err); });
      return rp;
    },
  };
}

} // namespace wh::actors::detail
