// What only a component does: verify-ticket pushes, api_query_auth for new
// authorizations (with the pending-code recovery of 61009/61010), and the
// api_get_authorizer_list walks that recover and reconcile authorizers.

#include <boost/json.hpp>

#include "actors/app_state.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/store.hpp"
#include "wechat/errcodes.hpp"

namespace json = boost::json;

namespace wh::actors::detail {

/// Asks WeChat to (re)start verify-ticket pushes, at most once a minute.
void request_push_ticket(self_ptr self) {
  auto& st = self->state;
  auto t = now(self);
  if (st.push_requested_at > 0 && t - st.push_requested_at < 60)
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

namespace {

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

/// Starts a walk of the whole list unless one is running.
void start_walk(self_ptr self) {
  auto& st = self->state;
  if (st.listing)
    return;
  st.listing = true;
  if (auto m = st.p.stats)
    m->inc("wechat_hub_authorizer_list_walks_total", {{"component", appid(self)}});
  list_page(self, 0, 0, std::make_shared<std::unordered_map<std::string, std::string>>(), false);
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
  start_walk(self);
}

/// The periodic reconciliation: one walk whose result goes to on_reconcile.
void reconcile(self_ptr self) {
  auto& st = self->state;
  st.reconcile_after = true;
  start_walk(self);
}

} // namespace

void on_reconcile_timer(self_ptr self, uint64_t gen) {
  auto& st = self->state;
  if (gen == st.reconcile_gen) {
    reconcile(self);
    schedule_reconcile(self, st.p.reconcile_interval_s);
  }
}

void schedule_reconcile(self_ptr self, int64_t delay) {
  auto& st = self->state;
  if (st.p.reconcile_interval_s == 0)
    return;
  self->delayed_send(self, std::chrono::seconds(std::max<int64_t>(1, delay)), tick_atom::value,
                     static_cast<uint8_t>(reconcile_timer), ++st.reconcile_gen);
}

namespace {

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
    // WeChat lists it as authorized now: the refresh token's time stands
    // for the authorization (state_merge.hpp).
    w.ops.push_back(store_write::op{persistence::keys::authorized_at(pre), "", true});
    w.ops.push_back(store_write::op{pending_key(self, authorizer), "", true});
    persist(self, std::move(w), [rp, a](caf::error err) mutable {
      if (err)
        return (void) rp.deliver(err);
      rp.deliver(a);
    });
  });
}

void query_auth(self_ptr self, std::string code, caf::typed_response_promise<authorization> rp,
                bool retried, std::string authorizer = {}, int64_t create_time = 0) {
  with_token(self, [self, code, rp, retried, authorizer, create_time](const caf::expected<credential>& tok) mutable {
    if (!tok)
      return (void) rp.deliver(tok.error());
    auto used = tok->value;
    auto sent_at = now(self);
    call_upstream(self, to_call(wechat::query_auth(used, appid(self), code)),
                  [self, code, rp, retried, used, sent_at, authorizer,
                   create_time](const caf::expected<upstream_reply>& rep) mutable {
                    auto res = parse_reply(rep, wechat::parse_query_auth);
                    if (res.err)
                      return (void) rp.deliver(res.err);
                    if (res.errcode != 0) {
                      if (wechat::classify(res.errcode) == wechat::errclass::token_invalid && !retried) {
                        token_rejected(self, used, "query_auth_token_rejected");
                        return query_auth(self, code, rp, true, authorizer, create_time);
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
                    a.create_time = create_time;
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

} // namespace

component_api::behavior_type component_handlers(self_ptr self) {
  return {
    [=](vticket_atom, const std::string& ticket) -> caf::result<done_atom> {
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
        if (!st.token.waiters.empty() && !st.token.fetching)
          fetch(self, st.token, "verify_ticket", false);
        else if (self->state.p.entry->degraded.load() && !st.token.fetching)
          fetch(self, st.token, "verify_ticket", false);
        rp.deliver(done_atom::value);
      });
      return rp;
    },
    [=](auth_atom, std::string& code) -> caf::result<authorization> {
      if (code.empty() || code.size() > 512)
        return make_detail_error(ec::invalid_request, "malformed authorization code");
      auto rp = self->make_response_promise<authorization>();
      query_auth(self, std::move(code), rp, false);
      return rp;
    },
    [=](auth_atom, std::string& code, std::string& authorizer,
        int64_t create_time) -> caf::result<authorization> {
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
                                   rp, create_time](caf::error err) mutable {
        if (err)
          return (void) rp.deliver(err);
        query_auth(self, std::move(code), rp, false, std::move(authorizer), create_time);
      });
      return rp;
    },
    [=](import_atom, std::string& authorizer) -> caf::result<credential> {
      if (!valid_appid(authorizer))
        return make_detail_error(ec::invalid_request, "malformed authorizer appid");
      auto rp = self->make_response_promise<credential>();
      lookup_authorizer(self, std::move(authorizer), false, to_waiter(rp));
      return rp;
    },
  };
}

} // namespace wh::actors::detail
