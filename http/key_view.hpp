#pragma once

// The front end's reads of a key's directory entry, in one place, so that a
// change of actors/snapshot.hpp's key_entry is retargeted here only.

#include <memory>
#include <string>

#include "actors/snapshot.hpp"

namespace wh::http::keys {

/// "appid" or "component/authorizer".
inline std::string key_of(const std::string& appid, const std::string& authorizer) {
  return authorizer.empty() ? appid : appid + "/" + authorizer;
}

inline bool is_app(const actors::key_entry& e) {
  return e.kind == actors::key_kind::app;
}

inline bool is_component(const actors::key_entry& e) {
  return e.kind == actors::key_kind::component;
}

/// An authorizer that revoked its authorization (an unauthorized push or 61003).
inline bool is_revoked(const actors::key_entry& e) {
  return e.status.load(std::memory_order_relaxed) == actors::authorizer_status::revoked;
}

/// Known here only from remote answers (multi-node hubs); not listed.
inline bool is_shadow(const actors::key_entry& e) {
  return e.shadow;
}

/// Defined by the admin API (not by the config file).
inline bool is_runtime(const actors::key_entry& e) {
  return e.runtime;
}

/// Components: WeChat refuses their verify ticket.
inline bool is_degraded(const actors::key_entry& e) {
  return e.degraded.load(std::memory_order_relaxed);
}

/// Apps: "stable" or "classic".
inline const std::string& token_api_of(const actors::key_entry& e) {
  return e.token_api;
}

/// A stand-in for an authorizer this node does not store (multi-node hubs):
/// key_client's asks forward it to the key's owner, which answers 404
/// itself if it does not know the authorizer either.
inline std::shared_ptr<actors::key_entry> shadow_authorizer(const std::string& key) {
  auto e = std::make_shared<actors::key_entry>();
  e->key = key;
  e->kind = actors::key_kind::authorizer;
  e->shadow = true;
  return e;
}

} // namespace wh::http::keys
