#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/error.hpp"

#include "actors/messages.hpp"
#include "actors/snapshot.hpp"
#include "core/config.hpp"
#include "http/audit.hpp"
#include "http/auth.hpp"
#include "http/commands.hpp"
#include "http/ports.hpp"
#include "http/render.hpp"
#include "http/route.hpp"
#include "http/server.hpp"

namespace wh {
class clock;
class histogram;
class metrics;
} // namespace wh

namespace wh::wechat {
class msg_crypto;
} // namespace wh::wechat

namespace wh::actors {
class quota_book;
class registry;
struct key_services;
} // namespace wh::actors

namespace wh::http {

/// One routed request on its way through parse -> execute -> render.
struct exchange {
  request req;
  params query;
  /// The percent-decoded path (what the audit log records).
  std::string path;
  /// The route pattern's captures.
  path_args args;
  /// The authenticated caller (nullptr when the hub runs open or for
  /// relayed admin changes); `held` keeps it valid across a reload.
  const client_config* who = nullptr;
  std::shared_ptr<const client_config> held;
  responder respond;
  /// Index of the route in hub_api::routes() (metrics cells).
  uint8_t route = 0;
};

/// The hub's HTTP API (wire-compatible with elixir_wechat's default client).
/// A route table (hub_api::routes()) maps each method and path to a scope,
/// a handler and a metric label. Cached tokens are served straight from the
/// published snapshots; misses, stale-token reports and tickets go to the
/// key's actor. Every failure is rendered by http/render.hpp's error_response.
class hub_api {
public:
  /// `cfg` supplies the client keys, the components' push crypto and the
  /// push time window; `ledger` keeps accepted pushes durable.
  hub_api(actors::key_services& keys, wh::metrics& stats, const wh::clock& clk,
          const hub_config& cfg, push_ledger ledger);
  ~hub_api();

  /// Entry point for the server.
  void handle(request&& req, responder respond);

  /// The hot path (server_options::cached_get, http/cached_get.cpp): a GET
  /// of a published, unexpired token or ticket, by a client allowed to read
  /// it, is rendered straight into `out` and counted; anything else (an
  /// error, a miss, an encoded query) is declined and takes `handle`, which
  /// answers it byte for byte as it always did.
  bool serve_cached(const cached_get_request& req, std::string& out);

  /// Counts a response the server produced itself (413, 400 from the parser)
  /// under the route labelled `label` ("other" if none is).
  void count(std::string_view label, unsigned status);

  /// Multi-node hubs: /healthz reports the node's cluster state (503 while
  /// joining), GET /admin/cluster shows membership and key ownership, and
  /// accepted definition changes are relayed.
  void set_cluster(cluster_port port);

  /// Enables GET /admin/quota and POST /admin/clear_quota: `quota` counts
  /// upstream calls, `upstream` makes the clear_quota call, `store` keeps
  /// the monthly clear_quota budget durable (see http/quota_api.cpp).
  void set_quota(actors::quota_book* quota, caf::actor upstream, caf::actor store);

  /// Config reload: swaps the client table (keys and scopes apply from the
  /// next request) and the push crypto of the file's
  /// components; `dropped` are components no longer served.
  void reload(const hub_config& cfg, const std::vector<std::string>& dropped);

  /// The route table: one entry per method and path pattern.
  static std::span<const route> routes();

  /// The metric label of requests no route serves.
  static constexpr std::string_view other_label = "other";
  /// The metric label of every admin route (and of unknown /admin/ paths).
  static constexpr std::string_view admin_label = "/admin";

  /// Where a handler's answer goes: counted under its route, then sent.
  /// Copyable, so asynchronous callbacks hold it.
  struct reply {
    hub_api* api;
    responder respond;
    uint8_t route;
    void ok(response res) const { api->respond_counted(route, respond, std::move(res)); }
    /// The one way a handler answers a failure.
    void fail(const caf::error& err) const { ok(error_response(err)); }
  };

private:
  static reply reply_to(hub_api* self, const exchange& x) { return {self, x.respond, x.route}; }
  using caller = const client_config*;

  /// Metric cells: one per route plus "other", each indexed by route index.
  static constexpr size_t cells = 32;
  uint8_t other_index() const;
  /// The first route labelled `label`, else other_index().
  uint8_t index_of(std::string_view label) const;
  void respond_counted(uint8_t r, const responder& respond, response res);
  void init_metrics();
  std::atomic<uint64_t>& counter(uint8_t r, unsigned status);

  // -- token routes (http/api.cpp) --------------------------------------------
  void get_access_token(exchange& x);
  void post_refresh(exchange& x);
  void get_ticket(exchange& x);
  void get_component_token(exchange& x);
  void post_component_refresh(exchange& x);
  void get_healthz(exchange& x);
  void get_metrics(exchange& x);

  /// `may_recover`: an unknown authorizer is looked up upstream (once).
  void serve_token(const reply& out, const key_ref& ref, std::shared_ptr<const client_config> who,
                   bool may_recover);
  void serve_refresh(const reply& out, const refresh_command& cmd,
                     std::shared_ptr<const client_config> who, bool may_recover);
  void serve_ticket(const reply& out, const ticket_query& q,
                    std::shared_ptr<const client_config> who, bool may_recover);
  /// The current token, fetched if needed.
  void serve_current(const reply& out, const actors::key_entry& entry);
  /// Reports `stale` and answers the fresh token (or the refusal).
  void serve_stale(const reply& out, const actors::key_entry& entry, const std::string& stale,
                   std::shared_ptr<const client_config> who);
  /// Counts and logs (once per loop) a refresh-loop refusal with the client.
  void note_loop(const caf::error& err, const std::string& key, caller who);
  /// forbidden unless `who` may use the key (checked before existence, so
  /// a client cannot probe for other keys).
  caf::error check_scope(caller who, const key_ref& ref) const;
  /// The entry of `ref`, or the error to answer (unknown_key,
  /// unknown_authorizer, authorizer_revoked). With `recover`, an authorizer
  /// this hub does not know but WeChat's list may have is not answered:
  /// `*recover` is set and the caller retries through `recover_authorizer`.
  caf::expected<std::shared_ptr<actors::key_entry>> lookup(const key_ref& ref, caller who,
                                                           bool* recover);
  /// The component `appid`, or unknown_key.
  caf::expected<std::shared_ptr<actors::key_entry>> find_component(const std::string& appid) const;
  /// Recovers the authorizer from WeChat's authorizer list, then runs `retry`
  /// (or answers unknown_authorizer / the error).
  void recover_authorizer(const reply& out, const key_ref& ref, std::function<void()> retry);

  // -- pushes (http/component_api.cpp) ---------------------------------------
  void post_push(exchange& x);

  // -- admin (http/admin_api.cpp, http/quota_api.cpp) -------------------------
  /// Audits every admin request and refuses callers without admin rights;
  /// returns false when it answered.
  bool admit_admin(exchange& x);
  void get_cluster(exchange& x);
  /// The key GET /admin/state (query) or POST /admin/refresh (body) names.
  caf::expected<std::shared_ptr<actors::key_entry>> admin_entry(const exchange& x, bool from_body);
  void get_state(exchange& x);
  void post_force_refresh(exchange& x);
  void list_apps(exchange& x);
  void list_components(exchange& x);
  void put_app(exchange& x);
  void delete_app(exchange& x);
  void put_component(exchange& x);
  void delete_component(exchange& x);
  void list_authorizers(exchange& x);
  void import_authorizers(exchange& x);
  void put_authorizer(exchange& x);
  void delete_authorizer(exchange& x);
  void get_quota(exchange& x);
  void post_clear_quota(exchange& x);
  /// The answer to a definition change: conflict for a refused change,
  /// relayed to the other nodes when accepted here first.
  std::function<void(caf::error)> definition_done(const exchange& x);
  /// The component of an authorizers route, or the error to answer.
  caf::expected<std::string> authorizers_component(const path_args& args) const;
  /// Path checks (see route::check): the appid of /admin/apps/{appid} and
  /// /admin/components/{appid}; the component of an authorizers route; and
  /// the authorizer, then the component, of /authorizers/{authorizer}.
  caf::error check_appid(const path_args& args) const;
  caf::error check_component(const path_args& args) const;
  caf::error check_authorizer(const path_args& args) const;

  /// The push crypto of a component defined (or removed) by the admin API.
  void put_push_crypto(const std::string& appid, const wechat::msg_crypto& crypto);
  void drop_push_crypto(const std::string& appid);

  struct push_state;
  static std::unique_ptr<push_state> make_push_state(const hub_config& cfg);

  actors::key_services& svc_;
  /// The directory (svc_.reg).
  actors::registry& reg_;
  wh::metrics& stats_;
  const wh::clock& clock_;
  static constexpr std::array<unsigned, 14> statuses_{200, 400, 401, 403, 404, 405, 409, 410,
                                                      413, 429, 431, 500, 502, 503};
  std::array<std::array<std::atomic<std::atomic<uint64_t>*>, statuses_.size()>, cells> cache_{};
  /// wechat_hub_http_request_duration_seconds{route}, by route index.
  std::array<wh::histogram*, cells> latency_{};
  std::unique_ptr<push_state> push_;
  authenticator auth_;
  audit_log audit_;
  std::optional<cluster_port> cluster_;
  /// How reads are answered now (cluster_port::reads).
  cluster_port::reads_mode reads() const {
    return cluster_ && cluster_->reads ? cluster_->reads() : cluster_port::reads_mode::serve;
  }
  actors::quota_book* quota_ = nullptr;
  caf::actor upstream_;
  caf::actor store_;
};

} // namespace wh::http
