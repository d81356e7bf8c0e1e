#pragma once

// Where the client gets its tokens: the analogue of elixir_wechat's storage
// behaviours. Implementations: hub_token_source (a WeChat Hub over HTTP(S))
// and direct_token_source (own appid + secret). Users can write their own.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "client/error.hpp"

namespace wh {
class clock;
} // namespace wh

namespace wh::client {

/// Which token a WeChat call needs.
enum class token_kind {
  /// `access_token`: the official account's, or the authorizer's.
  access_token,
  /// `component_access_token`: the third-party platform's own token.
  component_access_token,
};

/// A stable name of `kind`.
const char* to_string(token_kind kind);

/// Which account a token source serves.
enum class account_type {
  /// An official account (appid + secret on the hub or here).
  app,
  /// A third-party platform ("component") acting for itself.
  component,
  /// An account authorized to a component: appid = component appid.
  authorizer,
};

/// The account behind a token source.
struct account {
  account_type type = account_type::app;
  /// The official account appid, or the component appid.
  std::string appid;
  /// The authorizer's appid (account_type::authorizer only).
  std::string authorizer_appid;

  /// An official account.
  static account app(std::string appid);
  /// A component acting for itself.
  static account component(std::string component_appid);
  /// An authorizer of `component_appid`.
  static account authorizer(std::string component_appid, std::string authorizer_appid);

  /// The token kind WeChat wants for `path` (a path or full URL): component
  /// paths (/cgi-bin/component/*, /sns/component/*, /sns/oauth2/component/*)
  /// take the component token for components and authorizers.
  token_kind kind_for(std::string_view path) const;
};

/// A token value and when it expires.
struct token {
  std::string value;
  /// Unix seconds (`timestamp + expires_in`); 0 = unknown.
  int64_t expires_at = 0;
};

/// Completion of a token request; runs exactly once, on the calling thread
/// (cache hit) or on an I/O thread. Must not block.
using token_callback = std::function<void(result<token>)>;

/// A source of tokens for one account. Thread-safe.
class token_source {
public:
  virtual ~token_source();

  /// The account this source serves.
  virtual const client::account& account() const = 0;

  /// Gets a token of `kind`, from cache when still valid.
  virtual void async_get(token_kind kind, token_callback cb) = 0;

  /// Reports that WeChat rejected `stale` (40001/40014/42001) and gets a
  /// fresh token. Concurrent reports of one stale token share one refresh.
  virtual void async_report_stale(token_kind kind, std::string stale, token_callback cb) = 0;

  /// Blocking form of async_get(); not from an I/O thread of this source.
  result<token> get(token_kind kind);

  /// Blocking form of async_report_stale().
  result<token> report_stale(token_kind kind, std::string stale);
};

/// Options shared by the built-in sources.
struct source_options {
  /// Deadline of one HTTP exchange.
  std::chrono::milliseconds timeout{10'000};
  /// Cached tokens are treated as expired this long before they do expire
  /// (capped at half the lifetime), so no call goes out with a dying token.
  std::chrono::seconds safety_margin{60};
  /// Extra CA bundle (PEM) for https.
  std::string ca_file;
  /// Verify certificates and host names (only tests may disable).
  bool verify_peer = true;
  /// Time source for cache expiry; null = the system clock.
  std::shared_ptr<const wh::clock> clock;
};

/// Options of hub_token_source.
struct hub_options : source_options {
  /// Base URL of the hub, e.g. "https://hub.internal:4100".
  std::string hub_url;
  /// Bearer key sent as `Authorization: Bearer <key>`; empty = none.
  std::string key;
};

/// Gets tokens from a WeChat Hub (wire-compatible with elixir_wechat's hub
/// API). Caches per kind honouring `timestamp + expires_in`; concurrent cache
/// misses share one hub request (single-flight). A hub answering garbage
/// (HTML, 5xx, dropped connections) yields an error, never a crash.
class hub_token_source final : public token_source {
public:
  hub_token_source(client::account acc, hub_options opts);
  ~hub_token_source() override;

  const client::account& account() const override;
  void async_get(token_kind kind, token_callback cb) override;
  void async_report_stale(token_kind kind, std::string stale, token_callback cb) override;

  /// Gets a JS-SDK ticket (`type` = "jsapi" or "wx_card") from the hub,
  /// cached like tokens.
  void async_ticket(std::string type, token_callback cb);

  /// Blocking form of async_ticket().
  result<token> ticket(std::string type);

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

/// Options of direct_token_source.
struct direct_options : source_options {
  /// Base URL of the WeChat API (tests point it at wechat-sim).
  std::string api_base = "https://api.weixin.qq.com";
  /// The official account's AppSecret.
  std::string secret;
};

/// Fetches an official account's token itself through /cgi-bin/stable_token,
/// for users without a hub: a single process per appid. Single-flight, cached
/// in-process. A reported stale token triggers a normal stable_token call and
/// only if that returns the same token a forced refresh (which WeChat limits
/// to 20 a day), so a token rejected by mistake cannot burn the budget.
class direct_token_source final : public token_source {
public:
  direct_token_source(std::string appid, direct_options opts);
  ~direct_token_source() override;

  const client::account& account() const override;
  void async_get(token_kind kind, token_callback cb) override;
  void async_report_stale(token_kind kind, std::string stale, token_callback cb) override;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace wh::client
