#pragma once

#include <optional>
#include <string>

#include "sim/state.hpp"

namespace wh::sim {

/// An encrypted authorization-event push ready to POST.
struct push_http {
  /// Absolute http:// URL including timestamp, nonce, encrypt_type,
  /// msg_signature and signature query parameters.
  std::string url;
  /// `<xml><AppId>..</AppId><Encrypt>..</Encrypt></xml>`.
  std::string body;
};

/// The decrypted event XML exactly as WeChat builds it (AppId, CreateTime,
/// InfoType, then the info-type specific fields).
std::string event_xml(const push_event& ev);

/// Encrypts and signs `ev` with the component's token and EncodingAESKey
/// (trailing appid = component appid). Returns nullopt and sets `error` if
/// the key is unusable or the sim was built without message crypto.
std::optional<push_http> build_push(const push_event& ev, std::string& error);

} // namespace wh::sim
