#include "actors/registry.hpp"

#include <random>

#include "caf/all.hpp"

#include "actors/app_actor.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

namespace wh::actors {

namespace {

/// Reads and decodes one stored credential; corrupt data is logged, not fatal.
std::optional<credential> load_credential(persistence::store& db, const std::string& key) {
  auto raw = db.get(key);
  if (!raw) {
    WH_ERROR("registry", "cannot read " << key << ": " << detail_of(raw.error()));
    return std::nullopt;
  }
  if (!raw->has_value())
    return std::nullopt;
  auto x = persistence::decode_credential(**raw);
  if (!x) {
    WH_ERROR("registry", "ignoring corrupt record " << key << ": " << detail_of(x.error()));
    return std::nullopt;
  }
  return std::move(*x);
}

/// Sends one request from a short-lived bridge actor so that non-actor threads
/// (Asio) never block on the actor system.
template <class... Ts>
void ask(caf::actor_system& sys, caf::actor target, caf::timespan timeout,
         credential_callback cb, Ts... xs) {
  sys.spawn([target, timeout, cb = std::move(cb), xs...](caf::event_based_actor* self) mutable {
    self->request(target, timeout, xs...)
      .then([cb](credential& x) { cb(std::move(x)); },
            [cb](caf::error& err) {
              if (code_of(err) == ec::none)
                cb(make_detail_error(ec::timeout, "the token actor did not answer in time"));
              else
                cb(std::move(err));
            });
  });
}

} // namespace

registry::registry(caf::actor_system& sys, caf::actor upstream, caf::actor store,
                   std::shared_ptr<persistence::store> db, const wh::clock& clk,
                   metrics* stats, options opts)
  : sys_(sys),
    upstream_(std::move(upstream)),
    store_(std::move(store)),
    db_(std::move(db)),
    clock_(clk),
    stats_(stats),
    opts_(opts),
    map_(std::make_shared<const map_type>()) {
  if (stats_) {
    stats_->describe("wechat_hub_token_age_seconds", "Age of the access token served per appid",
                     "gauge");
    stats_->describe("wechat_hub_token_ttl_seconds",
                     "Seconds until the served access token expires per appid", "gauge");
    stats_->describe("wechat_hub_refreshes_total",
                     "Token and ticket refreshes by kind, reason and result");
    stats_->describe("wechat_upstream_calls_total", "Calls to WeChat by endpoint and errcode");
    stats_->add_collector([this](std::string& out) {
      auto t = clock_.now();
      std::string ages = "# HELP wechat_hub_token_age_seconds Age of the served access token\n"
                         "# TYPE wechat_hub_token_age_seconds gauge\n";
      std::string ttls = "# HELP wechat_hub_token_ttl_seconds Seconds until the served access "
                         "token expires\n# TYPE wechat_hub_token_ttl_seconds gauge\n";
      for (auto& e : entries()) {
        if (auto x = e->token.load()) {
          metrics::render_sample(ages, "wechat_hub_token_age_seconds", {{"appid", e->key}},
                                 static_cast<double>(t - x->obtained_at));
          metrics::render_sample(ttls, "wechat_hub_token_ttl_seconds", {{"appid", e->key}},
                                 static_cast<double>(x->expires_at - t));
        }
      }
      out += ages;
      out += ttls;
    });
  }
}

registry::~registry() {
  shutdown();
}

caf::error registry::add_app(const app_config& app) {
  auto cur = map_.load();
  if (cur->count(app.appid) > 0)
    return make_detail_error(ec::invalid_config, "duplicate appid " + app.appid);
  auto entry = std::make_shared<key_entry>();
  entry->key = app.appid;
  app_params p;
  p.app = app;
  p.upstream = upstream_;
  p.store = store_;
  p.entry = entry;
  p.clock = &clock_;
  p.stats = stats_;
  p.refresh_margin_s = opts_.refresh_margin_s;
  p.refresh_jitter_s = opts_.refresh_jitter_s;
  p.upstream_timeout = opts_.upstream_timeout;
  p.seed = std::random_device{}();
  p.token = load_credential(*db_, persistence::keys::app_token(app.appid));
  p.jsapi = load_credential(*db_, persistence::keys::app_ticket(app.appid, "jsapi"));
  p.wx_card = load_credential(*db_, persistence::keys::app_ticket(app.appid, "wx_card"));
  if (auto raw = db_->get(persistence::keys::app_force(app.appid)); raw && raw->has_value()) {
    if (auto b = persistence::decode_force_budget(**raw))
      p.force_budget = *b;
    else
      WH_ERROR("registry", "ignoring corrupt force budget of " << app.appid);
  }
  if (p.token && p.token->valid_at(clock_.now()))
    WH_INFO("registry", app.appid << ": restored access_token v" << p.token->version << ", "
                                  << (p.token->expires_at - clock_.now()) << " s left");
  entry->actor = spawn_app_actor(sys_, std::move(p));
  auto next = std::make_shared<map_type>(*cur);
  next->emplace(app.appid, std::move(entry));
  map_.store(std::move(next));
  return caf::none;
}

std::shared_ptr<key_entry> registry::find(std::string_view key) const {
  auto cur = map_.load(std::memory_order_acquire);
  auto i = cur->find(std::string{key});
  return i == cur->end() ? nullptr : i->second;
}

std::vector<std::shared_ptr<key_entry>> registry::entries() const {
  auto cur = map_.load();
  std::vector<std::shared_ptr<key_entry>> out;
  out.reserve(cur->size());
  for (auto& [k, v] : *cur)
    out.push_back(v);
  return out;
}

void registry::ask_token(const key_entry& e, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), get_atom::value, token_atom::value);
}

void registry::ask_ticket(const key_entry& e, std::string type, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), get_atom::value, ticket_atom::value,
      std::move(type));
}

void registry::report_stale(const key_entry& e, std::string token, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), stale_atom::value, std::move(token));
}

void registry::force_refresh(const key_entry& e, credential_callback cb) {
  ask(sys_, e.actor, opts_.ask_timeout, std::move(cb), refresh_atom::value);
}

void registry::shutdown() {
  auto cur = map_.exchange(std::make_shared<const map_type>());
  for (auto& [k, e] : *cur)
    caf::anon_send_exit(e->actor, caf::exit_reason::user_shutdown);
}

} // namespace wh::actors
