#pragma once

#include <optional>
#include <string>

#include "sim/state.hpp"

namespace wh::sim {

/// An encrypted authorization-event push ready to POST.
struct push_http {
  /// Absolute http:// URL including timestamp, nonce, encrypt_type=aes,
  /// msg_signature and signature query parameters.
  std::string url;
  /// `<xml><AppId><![CDATA[..]]></AppId><Encrypt><![CDATA[..]]></Encrypt></xml>`.
  std::string body;
};

/// Encrypts and signs `ev` with the component's token and EncodingAESKey
/// (trailing appid = component appid), via wechat::seal_push. Returns
/// nullopt and sets `error` if the key or URL is unusable.
std::optional<push_http> build_push(const push_event& ev, std::string& error);

} // namespace wh::sim
