#pragma once
// What a component's authorizers go through outside their own actors:
// verify tickets and authorization pushes, revocations, imports, recovery
// from WeChat's authorizer list and reconciliation with it.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "caf/actor_system.hpp"

#include "actors/key_client.hpp"
#include "actors/registry.hpp"

namespace wh::actors {

class authorizations {
public:
  /// Completion (empty error = success); may run on any thread, must not block.
  using done_callback = registry::done_callback;

  /// Registers itself with `reg` for what a component's start and its
  /// reconciliation hand over (recovery of pending authorizations, imports).
  authorizations(caf::actor_system& sys, registry& reg, key_client& keys);

  /// Stores a pushed verify ticket durably and hands it to the component.
  void deliver_verify_ticket(const std::string& component, std::string ticket, done_callback cb);

  /// An `authorized` / `updateauthorized` event: api_query_auth, then both
  /// tokens durable and the authorizer's actor running.
  void authorize(const std::string& component, std::string code, done_callback cb);

  /// As above with the authorizer and the push's CreateTime known: the
  /// pending authorization is durable before api_query_auth, and a code
  /// WeChat refuses as used or expired is recovered from the authorizer list.
  void authorize(const std::string& component, std::string code, std::string authorizer,
                 int64_t create_time, done_callback cb);

  /// An authorizer this hub does not know: looked up in WeChat's
  /// api_get_authorizer_list (one walk per component at a time, rate-limited)
  /// and imported when listed. `ec::unknown_key` when WeChat does not list it.
  void recover_authorizer(const std::string& component, const std::string& authorizer,
                          done_callback cb);

  /// An `unauthorized` event or an admin delete: tokens deleted, marked revoked.
  void revoke(const std::string& component, const std::string& authorizer, done_callback cb);

  /// Imports authorizers' refresh tokens (migration): one durable batch, then
  /// actors. Errors: unknown component, malformed entries.
  void import_authorizers(const std::string& component,
                          std::vector<std::pair<std::string, std::string>> refresh_tokens,
                          done_callback cb);

  /// api_query_auth's result: handed to the authorizer's actor (its owner's).
  void adopt_authorization(const std::string& component, authorization a, done_callback cb);

  /// Authorizers of a component in appid order.
  struct authorizer_info {
    std::string appid;
    std::string status;
    int64_t token_expires_at = 0;
  };
  std::vector<authorizer_info> list_authorizers(const std::string& component, size_t offset,
                                                size_t limit, size_t& total) const;

private:
  /// Reconciliation result of a component: imports authorizers missing
  /// here, reports (never deletes) those WeChat no longer lists.
  void reconciled(const std::string& component,
                  std::vector<std::pair<std::string, std::string>> listed);

  /// Recovers authorizations left pending by a crash during api_query_auth.
  void recover_pending(const std::string& component);

  caf::actor_system& sys_;
  registry& reg_;
  key_client& keys_;
};

} // namespace wh::actors
