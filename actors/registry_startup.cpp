#include "actors/registry.hpp"

// The registry's start with virtual activation: the first start writes every
// stored key's due time into the refresh schedule; later starts read
// authorizers by key only and load their stored tokens in the background.

#include <algorithm>
#include <chrono>

#include "caf/all.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

namespace wh::actors {

void registry::schedule_stored(const key_entry& e, const app_params& p) {
  if (p.status != authorizer_status::active)
    return;
  auto t = clock_.now();
  int64_t due = 0;
  for (auto* x : {&p.token, &p.jsapi, &p.wx_card})
    if (*x && (*x)->valid_at(t)) {
      auto at = refresh_due(**x, key_seed(e.key), opts_.refresh_margin_s, opts_.refresh_jitter_s);
      due = due == 0 ? at : std::min(due, at);
    }
  if (due == 0)
    return;
  std::lock_guard<std::mutex> guard{migration_mtx_};
  migration_.emplace_back(persistence::keys::schedule(due, e.key), std::string{});
  migration_.emplace_back(persistence::keys::due(prefix_of(e)), std::to_string(due));
}

void registry::flush_migration() {
  std::vector<persistence::batch_entry> batch;
  {
    std::lock_guard<std::mutex> guard{migration_mtx_};
    batch.swap(migration_);
  }
  if (batch.empty())
    return;
  if (auto err = db_->write(batch))
    WH_ERROR("registry", "cannot write the refresh schedule of stored keys: " << detail_of(err)
                                                                              << " (they refresh on demand)");
}

void registry::finish_startup() {
  if (!router_)
    return;
  caf::anon_send(router_, ready_atom::value);
  // A cluster node writes schedule entries only for the keys it stops; it
  // starts every key it owns when it takes it over.
  if (cluster_.node)
    return;
  if (schedule_ready_)
    return;
  flush_migration();
  if (auto err = db_->put(std::string{persistence::keys::schedule_marker}, "1"))
    WH_ERROR("registry", "cannot mark the refresh schedule complete: " << detail_of(err));
  else
    WH_INFO("registry", "refresh schedule written for every stored key (later starts read keys only)");
  schedule_ready_ = true;
}

void registry::warm_snapshots(const std::string& component) {
  // Tokens of authorizers loaded by key only are published in the
  // background (a thread of its own), so warm reads after a restart need no
  // activation; a request that comes first starts the key's actor instead.
  sys_.spawn([this, component](caf::blocking_actor*) {
    auto t0 = std::chrono::steady_clock::now();
    auto all = persistence::keys::authorizers_of(component);
    auto now = clock_.now();
    size_t published = 0;
    std::shared_ptr<key_entry> e;
    auto err = db_->scan(all, [&](std::string_view key, std::string_view value) {
      auto rest = key.substr(all.size());
      auto slash = rest.find('/');
      if (slash == std::string_view::npos)
        return true;
      auto field = rest.substr(slash + 1);
      if (field != "access_token" && field != "ticket/jsapi" && field != "ticket/wx_card")
        return true;
      auto k = component + "/" + std::string{rest.substr(0, slash)};
      if (!e || e->key != k)
        e = find(k);
      if (!e || e->status.load() != authorizer_status::active)
        return true;
      auto x = persistence::decode_credential(value);
      if (!x || !x->valid_at(now))
        return true;
      auto slot = field == "access_token" ? &e->token : e->ticket(field.substr(7));
      if (slot) {
        slot->publish_if_empty(*x);
        ++published;
      }
      return true;
    });
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    if (err)
      WH_WARN("registry", component << ": loading stored tokens stopped: " << detail_of(err)
                                    << " (the rest load on first use)");
    WH_INFO("registry", component << ": " << published << " stored token(s) and ticket(s) loaded in "
                                  << ms.count() << " ms");
  });
}

caf::error registry::load_authorizer_keys(const std::string& component, const std::string& all) {
  std::vector<std::shared_ptr<key_entry>> entries;
  std::vector<std::shared_ptr<key_entry>> with_status;
  auto err = db_->scan_keys(all, [&](std::string_view key) {
    auto rest = key.substr(all.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos)
      return true;
    auto aid = rest.substr(0, slash);
    if (entries.empty() || std::string_view{entries.back()->key}.substr(component.size() + 1) != aid) {
      auto e = std::make_shared<key_entry>();
      e->key.reserve(component.size() + 1 + aid.size());
      e->key.append(component).append("/").append(aid);
      e->kind = key_kind::authorizer;
      entries.push_back(std::move(e));
    }
    if (rest.substr(slash + 1) == "status")
      with_status.push_back(entries.back());
    return true;
  });
  if (err)
    return err;
  for (auto& e : with_status) {
    auto raw = db_->get(persistence::keys::status(prefix_of(*e)));
    if (!raw || !*raw)
      continue;
    auto st = persistence::decode_status(**raw);
    if (!st) {
      WH_ERROR("registry", "ignoring corrupt record " << e->key << "/status");
      continue;
    }
    e->status.store(*st == "revoked" ? authorizer_status::revoked : authorizer_status::needs_reauthorization);
  }
  WH_INFO("registry", component << ": component with " << entries.size() << " stored authorizer(s)");
  insert(std::move(entries));
  return caf::none;
}

} // namespace wh::actors
