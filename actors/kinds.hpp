#pragma once

#include <cstdint>

namespace wh::actors {

/// What a token actor manages.
enum class key_kind : uint8_t {
  /// An official-account app (`[[app]]`): access_token + tickets.
  app,
  /// A third-party platform (`[[component]]`): component_access_token, fed
  /// by pushed verify tickets; performs api_query_auth for authorizations.
  component,
  /// An account authorized to a component: authorizer_access_token from its
  /// refresh token + tickets.
  authorizer,
};

/// An authorizer's lifecycle.
enum class authorizer_status : uint8_t { active, revoked, needs_reauthorization };

/// A stable name of `x` ("app", "component", "authorizer").
constexpr const char* to_string(key_kind x) {
  switch (x) {
    case key_kind::component: return "component";
    case key_kind::authorizer: return "authorizer";
    default: return "app";
  }
}

/// A stable name of `x` ("active", "revoked", "needs_reauthorization").
constexpr const char* to_string(authorizer_status x) {
  switch (x) {
    case authorizer_status::revoked: return "revoked";
    case authorizer_status::needs_reauthorization: return "needs_reauthorization";
    default: return "active";
  }
}

} // namespace wh::actors
