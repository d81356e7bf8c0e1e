#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
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
#include "http/server.hpp"

namespace wh {
class clock;
class histogram;
class metrics;
} // namespace wh

namespace wh::actors {
class quota_book;
class registry;
}
namespace wh::cluster {
class node;
}

namespace wh::http {

/// Renders the elixir_wechat-compatible error body: exactly the four keys
/// errcode (int or null), message, reason and http_status.
response error_response(unsigned status, std::string_view reason, std::string_view message,
                        const int* errcode = nullptr);

/// Maps an actor error to its HTTP status and error body.
response error_response(const caf::error& err);

/// HTTP status of an error code.
unsigned status_of(const caf::error& err);

/// `{"access_token","expires_in","timestamp"}`.
std::string render_token(const actors::credential& x);

/// `{"ticket","type","expires_in","timestamp"}`.
std::string render_ticket(const actors::credential& x, std::string_view type);

/// The hub's HTTP API (wire-compatible with elixir_wechat's default client).
/// Cached tokens are served straight from the published snapshots; misses,
/// stale-token reports and tickets go to the key's actor.
class hub_api {
public:
  /// `cfg` supplies the components' push crypto and the push time window.
  hub_api(actors::registry& reg, wh::metrics& stats, const wh::clock& clk,
          const hub_config& cfg);
  ~hub_api();

  /// Entry point for the server.
  void handle(request&& req, responder respond);

  /// Counts a response the server produced itself (413, 400 from the parser).
  void count(std::string_view route, unsigned status);

  /// Multi-node hubs: /healthz reports the node's cluster state (503 while
  /// joining) and GET /admin/cluster shows membership and key ownership.
  void set_cluster(const cluster::node* node) { cluster_ = node; }

  /// Enables GET /admin/quota and POST /admin/clear_quota: `quota` counts
  /// upstream calls, `upstream` makes the clear_quota call, `store` keeps
  /// the monthly clear_quota budget durable (see http/quota_api.cpp).
  void set_quota(actors::quota_book* quota, caf::actor upstream, caf::actor store);

  /// Config reload: swaps the client table (keys and scopes apply from the
  /// next request) and the push crypto of the file's
  /// components; `dropped` are components no longer served.
  void reload(const hub_config& cfg, const std::vector<std::string>& dropped);

private:
  enum route_id : uint8_t {
    r_access_token,
    r_refresh,
    r_ticket,
    r_component_token,
    r_component_refresh,
    r_healthz,
    r_metrics,
    r_push,
    r_admin,
    r_other,
    route_count,
  };

  /// Counts the response by route and status, and observes the request's
  /// latency when `respond` is the timed responder `handle` made.
  void respond_counted(route_id r, const responder& respond, response res);
  /// Creates the per-route latency histograms (once, in the constructor).
  void init_latency();
  std::atomic<uint64_t>& counter(route_id r, unsigned status);

  using params = std::vector<std::pair<std::string, std::string>>;

  /// The authenticated caller (nullptr when the hub runs open).
  using caller = const client_config*;

  /// `may_recover`: an unknown authorizer is looked up upstream (once).
  void get_access_token(const params& q, const responder& respond, caller who,
                        bool may_recover = true);
  void post_refresh(const request& req, const responder& respond, caller who,
                    bool may_recover = true);
  void get_ticket(const params& q, const responder& respond, caller who, bool may_recover = true);
  /// The current token, fetched if needed (a GET, also for refresh requests
  /// without a token).
  void serve_current(route_id r, const actors::key_entry& entry, const responder& respond);
  /// Counts and logs (once per loop) a refresh-loop refusal with the client.
  void note_loop(const caf::error& err, const std::string& key, caller who);
  void get_component_token(const params& q, const responder& respond, caller who);
  void post_component_refresh(const request& req, const responder& respond, caller who);
  /// 403 unless `who` may use the key; true when allowed.
  bool in_scope(route_id r, caller who, const std::string& appid, const std::string& authorizer,
                const responder& respond);
  void post_push(const std::string& component, const request& req, const params& q,
                 const responder& respond);
  void admin(const std::string& path, const request& req, const params& q,
             const responder& respond, caller who);
  /// GET /admin/quota and POST /admin/clear_quota (http/quota_api.cpp).
  void admin_quota(const std::string& path, const request& req, const params& q,
                   const responder& respond);
  /// Answers 404/410 for unknown or revoked keys; returns the entry otherwise.
  /// With `recover`, an authorizer this hub does not know but WeChat's list
  /// may have is not answered: `*recover` is set (nullptr returned) and the
  /// caller hands a retry to `recover_authorizer`. The retry is built only
  /// then, so a served read pays nothing for it.
  std::shared_ptr<actors::key_entry> lookup(route_id r, const std::string& appid,
                                            const std::string& authorizer,
                                            const responder& respond, caller who,
                                            bool* recover = nullptr);
  /// Recovers `authorizer` from WeChat's authorizer list, then runs `retry`
  /// (or answers 404 unknown_authorizer / the error).
  void recover_authorizer(route_id r, const std::string& appid, const std::string& authorizer,
                          const responder& respond, std::function<void()> retry);

  struct push_state;
  static std::unique_ptr<push_state> make_push_state(const hub_config& cfg);

  actors::registry& reg_;
  wh::metrics& stats_;
  const wh::clock& clock_;
  static constexpr std::array<unsigned, 13> statuses_{200, 400, 401, 403, 404, 405, 410,
                                                      413, 431, 500, 502, 503, 504};
  std::array<std::array<std::atomic<std::atomic<uint64_t>*>, statuses_.size()>, route_count> cache_{};
  /// wechat_hub_http_request_duration_seconds{route}, by route id.
  std::array<wh::histogram*, route_count> latency_{};
  std::unique_ptr<push_state> push_;
  authenticator auth_;
  audit_log audit_;
  const cluster::node* cluster_ = nullptr;
  actors::quota_book* quota_ = nullptr;
  caf::actor upstream_;
  caf::actor store_;
};

} // namespace wh::http
