#include "actors/authorizations.hpp"

#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "caf/all.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/records.hpp"

namespace wh::actors {

authorizations::authorizations(caf::actor_system& sys, registry& reg, key_client& keys)
                               : sys_(sys), reg_(reg), keys_(keys) {
  registry::component_hooks hooks;
  hooks.started = [this](const std::string& component) { recover_pending(component); };
  hooks.reconciled = [this](const std::string& component,
                            std::vector<std::pair<std::string, std::string>> listed) {
    reconciled(component, std::move(listed));
  };
  reg_.set_component_hooks(std::move(hooks));
}

void authorizations::recover_pending(const std::string& component) {
  auto pre = persistence::keys::component_prefix(component) + "pending_auth/";
  std::vector<std::string> pending;
  auto err = reg_.db()->scan(pre, [&](std::string_view key, std::string_view) {
    pending.emplace_back(key.substr(pre.size()));
    return true;
  });
  if (err || pending.empty())
    return;
  for (auto& aid : pending) {
    WH_WARN("registry", component << "/" << aid << ": an authorization was in flight when the hub stopped; "
                                     "recovering it from api_get_authorizer_list");
    auto key = pre + aid;
    recover_authorizer(component, aid, [this, component, aid, key](caf::error err) {
      if (err && code_of(err) != ec::unknown_key) {
        WH_WARN("registry", component << "/" << aid << ": recovery failed: " << detail_of(err)
                                      << "; WeChat's retry of the push recovers it");
        return;
      }
      if (err)
        WH_WARN("registry", component << "/" << aid << ": WeChat does not list it; the authorization "
                                         "did not complete");
      store_write w;
      w.ops.push_back(store_write::op{key, "", true});
      reg_.write(std::move(w), [](caf::error) {});
    });
  }
}

void authorizations::recover_authorizer(const std::string& component, const std::string& authorizer,
                                        done_callback cb) {
  auto comp = reg_.find(component);
  if (!comp || comp->kind != key_kind::component)
    return cb(make_detail_error(ec::unknown_key, "component " + component + " is not configured"));
  auto dst = comp->actor();
  if (!dst)
    return cb(make_detail_error(ec::cluster_unavailable,
                                "authorizer recovery runs on the component's owner"));
  ask_then<credential>(
    sys_, dst, keys_.timeout(),
    [this, component, authorizer, cb](credential rt) {
      WH_INFO("registry", component << "/" << authorizer << ": recovered from api_get_authorizer_list");
      if (reg_.stats())
        reg_.stats()->inc("wechat_hub_authorizers_recovered_total", {{"component", component}});
      reg_.import_local(component, {{authorizer, rt.value}}, cb);
    },
    [cb](caf::error err) { cb(std::move(err)); }, import_atom::value, authorizer);
}

void authorizations::reconciled(const std::string& component,
                                std::vector<std::pair<std::string, std::string>> listed) {
  std::vector<std::pair<std::string, std::string>> missing;
  std::set<std::string> upstream;
  for (auto& [aid, rt] : listed) {
    upstream.insert(aid);
    auto e = reg_.find(component + "/" + aid);
    if (!e || e->shadow)
      missing.emplace_back(aid, rt);
  }
  std::vector<std::string> absent;
  auto pre = component + "/";
  for (auto& e : reg_.entries())
    if (!e->shadow && e->key.compare(0, pre.size(), pre) == 0 && e->status.load() != authorizer_status::revoked
        && !upstream.count(e->key.substr(pre.size())))
      absent.push_back(e->key.substr(pre.size()));
  if (reg_.stats()) {
    reg_.stats()->counter("wechat_hub_reconcile_imported_total", {{"component", component}}) += missing.size();
    reg_.stats()->counter("wechat_hub_authorizers_absent_upstream", {{"component", component}})
      .store(absent.size());
    reg_.stats()->inc("wechat_hub_reconciliations_total", {{"component", component}});
  }
  if (!absent.empty()) {
    std::string sample;
    for (size_t i = 0; i < absent.size() && i < 10; ++i)
      sample += (i ? ", " : "") + absent[i];
    WH_WARN("registry", component << ": reconciliation: " << absent.size()
                                  << " authorizer(s) held here are not listed by WeChat (kept; e.g. "
                                  << sample << ")");
  }
  WH_INFO("registry", component << ": reconciliation: " << listed.size() << " listed upstream, "
                                << missing.size() << " imported, " << absent.size() << " absent upstream");
  if (missing.empty())
    return;
  reg_.import_local(component, std::move(missing), [component](caf::error err) {
    if (err)
      WH_ERROR("registry", component << ": reconciliation import failed: " << detail_of(err));
  });
}

void authorizations::deliver_verify_ticket(const std::string& component, std::string ticket,
                                           done_callback cb) {
  auto e = reg_.find(component);
  if (!e || e->kind != key_kind::component)
    return cb(make_detail_error(ec::unknown_key, "component " + component + " is not configured"));
  keys_.ask<done_atom>(
    *e, [cb](done_atom) { cb(caf::none); }, [cb](caf::error err) { cb(std::move(err)); },
    std::tuple{vticket_atom::value}, std::move(ticket));
}

void authorizations::authorize(const std::string& component, std::string code, done_callback cb) {
  auto e = reg_.find(component);
  if (!e || e->kind != key_kind::component)
    return cb(make_detail_error(ec::unknown_key, "component " + component + " is not configured"));
  auto fail = [cb](caf::error err) { cb(std::move(err)); };
  // api_query_auth on the component's owner (the router delivers it there),
  // then the authorizer's owner adopts the result.
  keys_.ask<authorization>(
    *e, [this, component, cb](authorization a) { adopt_authorization(component, std::move(a), cb); },
    fail, std::tuple{auth_atom::value}, std::move(code));
}

void authorizations::authorize(const std::string& component, std::string code, std::string authorizer,
                               int64_t create_time, done_callback cb) {
  auto e = reg_.find(component);
  if (!e || e->kind != key_kind::component || (!reg_.clustered() && !e->actor()))
    return authorize(component, std::move(code), std::move(cb));
  keys_.ask<authorization>(
    *e, [this, component, cb](authorization a) { adopt_authorization(component, std::move(a), cb); },
    [cb](caf::error err) { cb(std::move(err)); }, std::tuple{auth_atom::value}, std::move(code),
    std::move(authorizer), create_time);
}

void authorizations::adopt_authorization(const std::string& component, authorization a, done_callback cb) {
  auto key = component + "/" + a.authorizer_appid;
  if (reg_.clustered()) {
    // The authorizer's owner adopts it (possibly this node): the router
    // delivers it there, and the owner creates the entry if it is new.
    return ask_then<done_atom>(
      sys_, reg_.router(), keys_.timeout(), [cb](done_atom) { cb(caf::none); },
      [cb](caf::error err) { cb(std::move(err)); }, auth_atom::value, key, std::move(a));
  }
  auto entry = reg_.ensure_authorizer(component, a.authorizer_appid);
  if (reg_.virtual_key(*entry))
    return ask_then<done_atom>(
      sys_, reg_.router(), keys_.timeout(), [cb](done_atom) { cb(caf::none); },
      [cb](caf::error err) { cb(std::move(err)); }, auth_atom::value, entry->key, std::move(a));
  ask_then<done_atom>(
    sys_, entry->actor(), keys_.timeout(), [cb](done_atom) { cb(caf::none); },
    [cb](caf::error err) { cb(std::move(err)); }, auth_atom::value, std::move(a));
}

void authorizations::revoke(const std::string& component, const std::string& authorizer,
                            done_callback cb) {
  auto key = component + "/" + authorizer;
  auto e = reg_.find(key);
  if (!e && reg_.clustered()) {
    // Only the owner and its replicas store an authorizer: ask the owner.
    e = std::make_shared<key_entry>();
    e->key = key;
    e->kind = key_kind::authorizer;
    e->shadow = true;
  }
  if (!e)
    return cb(make_detail_error(ec::unknown_key,
                                "authorizer " + authorizer + " of " + component + " is not known"));
  keys_.ask<done_atom>(
    *e, [cb](done_atom) { cb(caf::none); }, [cb](caf::error err) { cb(std::move(err)); },
    std::tuple{revoke_atom::value});
}

void authorizations::import_authorizers(const std::string& component,
                                        std::vector<std::pair<std::string, std::string>> refresh_tokens,
                                        done_callback cb) {
  auto e = reg_.find(component);
  if (!e || e->kind != key_kind::component)
    return cb(make_detail_error(ec::unknown_key, "component " + component + " is not configured"));
  if (!reg_.clustered())
    return reg_.import_local(component, std::move(refresh_tokens), std::move(cb));
  // Each owner imports its share: group by owner node, then fan out.
  std::map<caf::actor, std::vector<std::string>> shares;
  for (auto& [aid, rt] : refresh_tokens) {
    auto owner = reg_.cluster().owner_node(component + "/" + aid);
    if (!owner)
      return cb(make_detail_error(ec::cluster_unavailable, "no live owner for " + component + "/"
                                                             + aid + "; retry"));
    auto& flat = shares[owner];
    flat.push_back(aid);
    flat.push_back(rt);
  }
  struct fan_in {
    std::mutex mtx;
    size_t left = 0;
    caf::error first;
    done_callback cb;
  };
  auto state = std::make_shared<fan_in>();
  state->left = shares.size();
  state->cb = std::move(cb);
  if (shares.empty())
    return state->cb(caf::none);
  auto finish = [state](caf::error err) {
    std::unique_lock<std::mutex> guard{state->mtx};
    if (err && !state->first)
      state->first = std::move(err);
    if (--state->left > 0)
      return;
    auto result = std::move(state->first);
    guard.unlock();
    state->cb(std::move(result));
  };
  for (auto& [owner, flat] : shares)
    ask_then<done_atom>(
      sys_, owner, keys_.timeout(), [finish](done_atom) { finish(caf::none); }, finish,
      import_atom::value, component, std::move(flat));
}

std::vector<authorizations::authorizer_info>
authorizations::list_authorizers(const std::string& component, size_t offset, size_t limit,
                                 size_t& total) const {
  auto pre = component + "/";
  auto all = reg_.with_prefix(pre);
  std::erase_if(all, [](auto& e) { return e->shadow; });
  total = all.size();
  std::vector<authorizer_info> out;
  auto t = reg_.clock().now();
  for (size_t i = offset; i < all.size() && out.size() < limit; ++i) {
    authorizer_info info;
    info.appid = all[i]->key.substr(pre.size());
    auto x = all[i]->token.load();
    info.status = to_string(all[i]->status.load());
    if (x && x->valid_at(t))
      info.token_expires_at = x->expires_at;
    out.push_back(std::move(info));
  }
  return out;
}

} // namespace wh::actors
