#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "core/clock.hpp"

namespace wh::sim {

/// A WeChat-style JSON answer; failures carry `errcode` and `errmsg`.
using answer = boost::json::object;

/// Makes `{"errcode":code,"errmsg":msg}`.
answer make_error(int code, std::string_view msg);

/// The WeChat answer for a token check failure (40001, 41001 or 42001).
answer token_error(int code);

/// The errcode of `a`, 0 when absent.
int64_t errcode_of(const answer& a);

/// Most authorizers one POST /sim/authorizers call creates.
inline constexpr int64_t max_bulk_authorizers = 1'000'000;

/// Credentials of one simulated official account.
struct app_account {
  std::string appid;
  std::string secret;
};

/// Credentials of one simulated third-party platform ("component").
struct component_account {
  std::string appid;
  std::string secret;
  /// Message-verification token used to sign pushes.
  std::string token;
  /// 43-character EncodingAESKey used to encrypt pushes.
  std::string encoding_aes_key;
};

/// Lifetimes and limits, mirroring the CLI flags.
struct limits {
  int64_t token_lifetime = 7200;
  int64_t ticket_lifetime = 7200;
  /// Token calls (classic + stable, successful or not) per app per sim-day.
  int64_t daily_quota = 2000;
  /// Forced stable refreshes per app per sim-day.
  int64_t force_limit = 20;
};

/// One file received by media/upload or material/add_material.
struct media_record {
  std::string media_id;
  std::string owner;
  std::string type;
  std::string filename;
  std::string content_type;
  std::string md5_hex;
  std::size_t size = 0;
  /// add_material video description (JSON text); empty otherwise.
  std::string description;
  bool permanent = false;
  int64_t created_at = 0;
};

/// An uploaded file as the server extracted it from multipart/form-data.
struct media_file {
  std::string filename;
  std::string content_type;
  std::string data;
};

/// A decrypted authorization event the sim owes a component, plus what is
/// needed to encrypt and deliver it (see push.hpp).
struct push_event {
  std::string url;
  std::string component_appid;
  std::string token;
  std::string encoding_aes_key;
  std::string info_type;
  int64_t create_time = 0;
  std::string verify_ticket;
  std::string authorizer_appid;
  std::string authorization_code;
  int64_t code_expired_time = 0;
  std::string pre_auth_code;
};

/// Result of validating a token presented to a business API.
struct token_check {
  /// 0, 41001 (missing), 40001 (unknown / invalidated) or 42001 (expired).
  int errcode = 0;
  /// Owner appid when the token is known (even if expired), else "".
  std::string owner;
};

/// The simulated WeChat state machine: accounts, token pools, tickets,
/// quotas, components and authorizers. A plain class so tests drive it
/// directly with a manual clock; every public member is thread-safe (one
/// mutex: the sim is never the bottleneck of what it simulates).
class state {
public:
  /// `base` supplies real time; the sim clock is `base.now() + offset`.
  state(const wh::clock& base, limits lim, std::vector<app_account> apps,
        std::vector<component_account> components);

  state(const state&) = delete;
  state& operator=(const state&) = delete;

  // -- clock --------------------------------------------------------------

  /// Sim time in unix seconds.
  int64_t now() const;

  /// Moves the sim clock forward (negative values move it back).
  void advance(int64_t seconds);

  // -- official account ---------------------------------------------------

  /// GET /cgi-bin/token. Empty strings count as missing parameters.
  answer classic_token(std::string_view grant_type, std::string_view appid,
                       std::string_view secret);

  /// POST /cgi-bin/stable_token.
  answer stable_token(std::string_view grant_type, std::string_view appid,
                      std::string_view secret, bool force_refresh);

  /// Validates a token for business APIs (apps and authorizers only).
  token_check check_token(std::string_view token) const;

  /// Owner appid of any known token (component tokens included), else "".
  std::string token_owner(std::string_view token) const;

  /// GET /cgi-bin/ticket/getticket.
  answer get_ticket(std::string_view access_token, std::string_view type);

  /// GET /cgi-bin/get_api_domain_ip.
  answer api_domain_ip(std::string_view access_token);

  /// POST /cgi-bin/clear_quota {"appid"}: resets the daily quota of the
  /// token's own account; 10 resets per account and month (Beijing time),
  /// then 48006.
  answer clear_quota(std::string_view access_token, std::string_view appid);

  /// POST /cgi-bin/material/batchget_material.
  answer batchget_material(std::string_view access_token);

  /// POST /cgi-bin/media/upload (`permanent` = false) or
  /// /cgi-bin/material/add_material (`permanent` = true). `file` is null
  /// when the form had no "media" part.
  answer upload_media(std::string_view access_token, std::string_view type, const media_file* file,
                      bool permanent, std::optional<std::string> description);

  // -- component ----------------------------------------------------------

  /// POST /cgi-bin/component/api_start_push_ticket. On success, `push`
  /// receives a fresh verify-ticket event when a push URL is registered.
  answer start_push_ticket(std::string_view component_appid, std::string_view component_secret,
                           std::optional<push_event>& push);

  /// POST /cgi-bin/component/api_component_token. An unknown, empty or
  /// stale (older than 12 h) verify ticket answers 61005, as WeChat does for
  /// a platform whose pushes stopped; 61006 is left to injected faults.
  answer component_token(std::string_view component_appid, std::string_view component_secret,
                         std::string_view verify_ticket);

  /// POST /cgi-bin/component/api_create_preauthcode.
  answer create_preauthcode(std::string_view component_token, std::string_view component_appid);

  /// POST /cgi-bin/component/api_query_auth.
  answer query_auth(std::string_view component_token, std::string_view component_appid,
                    std::string_view authorization_code);

  /// POST /cgi-bin/component/api_authorizer_token.
  answer authorizer_token(std::string_view component_token, std::string_view component_appid,
                          std::string_view authorizer_appid, std::string_view refresh_token);

  /// POST /cgi-bin/component/api_get_authorizer_list.
  answer authorizer_list(std::string_view component_token, std::string_view component_appid,
                         int64_t offset, int64_t count);

  // -- control (test helpers) ---------------------------------------------

  /// Registers the authorization-event URL of a component; false if unknown.
  bool register_push(std::string_view component_appid, std::string url);

  /// Builds a push event and applies its side effects (issues a verify
  /// ticket, creates/updates/revokes an authorizer). `url_override` replaces
  /// the registered URL. Returns nullopt and sets `error` on bad input.
  std::optional<push_event> make_push(std::string_view component_appid, std::string_view info_type,
                                      std::string_view authorizer_appid,
                                      std::string_view url_override, std::string& error);

  /// The latest authorized / updateauthorized event of a component, as
  /// WeChat would retry it (same code and CreateTime; sealed afresh on
  /// delivery). `url_override` replaces its URL.
  std::optional<push_event> last_grant(std::string_view component_appid,
                                       std::string_view url_override) const;

  /// Issues a fresh verify ticket for every component with a registered
  /// push URL and returns the events to deliver (the periodic pusher's
  /// "what to push"; the server's timer only decides when).
  std::vector<push_event> verify_ticket_pushes();

  /// Creates `count` authorized authorizers of `component_appid`, named
  /// `prefix` + the 1-based index zero-padded to 9 digits, and appends
  /// (appid, refresh token) pairs to `out`. An authorizer that is already
  /// authorized by this component keeps its refresh token, so repeating a
  /// call is idempotent. Returns false and sets `error` on bad input.
  bool create_authorizers(std::string_view component_appid, int64_t count,
                          std::string_view prefix,
                          std::vector<std::pair<std::string, std::string>>& out,
                          std::string& error);

  /// Kills every token of `appid` (app, authorizer or component); false if
  /// the appid is unknown.
  bool invalidate(std::string_view appid);

  /// Sets the remaining daily token quota of an app; false if unknown.
  bool set_quota(std::string_view appid, int64_t remaining);

  /// Current tokens and tickets of any appid, nullopt if unknown.
  std::optional<boost::json::object> describe(std::string_view appid) const;

  /// Every file received so far, oldest first.
  std::vector<media_record> media() const;

private:
  enum class token_kind { classic, stable, component, authorizer };

  struct token_info {
    std::string owner;
    token_kind kind;
    int64_t expires_at;
    bool revoked = false;
  };

  struct ticket_info {
    std::string value;
    int64_t expires_at = 0;
  };

  struct app_state {
    std::string secret;
    std::string classic_current;
    std::string classic_grace;
    std::string stable_current;
    std::string stable_grace;
    int64_t day = -1;
    int64_t quota_remaining = 0;
    int64_t force_count = 0;
    std::optional<int64_t> last_force_refresh;
    /// clear_quota resets in `clear_month` (YYYYMM, Beijing time).
    int64_t clear_month = 0;
    int64_t clears = 0;
  };

  struct component_state {
    component_account account;
    std::string push_url;
    /// Every verify ticket issued, with its issue time.
    std::unordered_map<std::string, int64_t> tickets;
    std::string latest_ticket;
    std::string token_current;
    std::string token_grace;
    std::unordered_map<std::string, int64_t> pre_auth_codes;
    /// The latest authorized / updateauthorized event (WeChat retries it).
    std::optional<push_event> last_grant;
  };

  struct authorizer_state {
    std::string component_appid;
    std::string refresh_token;
    bool authorized = true;
    int64_t auth_time = 0;
    std::string token_current;
    std::string token_grace;
  };

  struct auth_code_info {
    std::string component_appid;
    std::string authorizer_appid;
    int64_t expires_at = 0;
    bool used = false;
  };

  int64_t now_locked() const;
  std::string random_string(std::size_t len);
  /// Issues a token and retires `current` into `grace` with the given grace
  /// period; an older grace token is revoked.
  std::string rotate(std::string& current, std::string& grace, const std::string& owner,
                     token_kind kind, int64_t lifetime, int64_t grace_period);
  std::string issue_token(const std::string& owner, token_kind kind, int64_t lifetime);
  void revoke(const std::string& token);
  int64_t remaining(const std::string& token) const;
  /// Resolves app + quota for a token call; returns an error answer or null.
  std::optional<answer> admit_token_call(std::string_view grant_type, std::string_view appid,
                                         std::string_view secret, app_state*& app);
  void roll_day(app_state& app);
  token_check check_locked(std::string_view token) const;
  /// Validates a component token for `component_appid`; error or null.
  std::optional<answer> check_component(std::string_view token, std::string_view component_appid,
                                        component_state*& comp);
  void maybe_prune();

  const wh::clock& base_;
  limits limits_;
  mutable std::mutex mtx_;
  int64_t offset_ = 0;
  std::mt19937_64 rng_;
  uint64_t issued_ = 0;
  std::unordered_map<std::string, token_info> tokens_;
  std::map<std::string, app_state, std::less<>> apps_;
  std::map<std::string, component_state, std::less<>> components_;
  std::map<std::string, authorizer_state, std::less<>> authorizers_;
  std::map<std::pair<std::string, std::string>, ticket_info> tickets_;
  std::unordered_map<std::string, auth_code_info> auth_codes_;
  std::vector<media_record> media_;
};

} // namespace wh::sim
