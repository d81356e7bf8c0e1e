#pragma once

// Pushes to the authorization event URL (protocol doc §5): the outer XML
// envelope, the decrypted event, and open/seal helpers combining both with
// msg_crypto.
//
// Error contract of this header:
// - malformed input (bad XML, DOCTYPE/entity declarations, oversized body,
//   missing fields, undecryptable ciphertext, bad padding, wrong appid) is
//   `ec::invalid_request` with a safe detail -> HTTP 400;
// - a missing or wrong msg_signature (open_push only) is the distinct error
//   `push_failure::bad_signature` (its own CAF error category "wechatpush")
//   -> HTTP 401.
// Use push_failure_of() to tell them apart without inspecting categories.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "caf/make_message.hpp"
#include "caf/message.hpp"

#include "wechat/msg_crypto.hpp"

namespace wh::wechat {

/// Pushes larger than this are rejected before parsing (real ones are < 2 KiB).
inline constexpr std::size_t max_push_bytes = 64 * 1024;

/// Why a push was refused; see the header comment for the HTTP mapping.
enum class push_failure : uint8_t {
  /// Not a push error (no error, or an unrelated one).
  none = 0,
  /// msg_signature, timestamp or nonce missing, or the signature is wrong.
  bad_signature,
  /// The push is not well-formed (reported as ec::invalid_request).
  malformed,
};

/// A stable snake_case name of `x`.
const char* to_string(push_failure x);

/// Maps an error returned by this header to its push_failure class.
push_failure push_failure_of(const caf::error& err);

/// The outer (unencrypted) push XML.
struct push_envelope {
  /// `AppId` (authorization events) or `ToUserName` (proxied messages).
  /// Not covered by the signature: informational only.
  std::string appid;
  /// The base64 ciphertext of `Encrypt`.
  std::string encrypt;
};

/// A decrypted authorization event. Fields an InfoType does not carry are
/// empty / zero.
struct push_event {
  /// component_verify_ticket, authorized, updateauthorized, unauthorized, ...
  std::string info_type;
  /// `AppId`: the component appid.
  std::string appid;
  /// `CreateTime`, unix seconds.
  int64_t create_time = 0;
  /// `ComponentVerifyTicket` (component_verify_ticket).
  std::string component_verify_ticket;
  /// `AuthorizerAppid` ((update)authorized, unauthorized).
  std::string authorizer_appid;
  /// `AuthorizationCode` ((update)authorized).
  std::string authorization_code;
  /// `AuthorizationCodeExpiredTime` ((update)authorized); observed as an
  /// absolute unix time, documented as seconds — kept verbatim.
  int64_t authorization_code_expired_time = 0;
  /// `PreAuthCode` ((update)authorized).
  std::string pre_auth_code;
};

/// Parses the outer push XML: root `<xml>`, `Encrypt` required, appid from
/// `AppId` or else `ToUserName` (one of them required).
/// Errors: ec::invalid_request.
caf::expected<push_envelope> parse_envelope(std::string_view xml);

/// Parses a decrypted event. `InfoType`, `AppId` and `CreateTime` are required,
/// plus the fields a known InfoType needs (ComponentVerifyTicket;
/// AuthorizerAppid + AuthorizationCode; AuthorizerAppid). Unknown InfoTypes are
/// returned with only the common fields so callers can ignore them.
/// Errors: ec::invalid_request.
caf::expected<push_event> parse_event(std::string_view xml);

/// Renders `ev` as WeChat sends it (text in CDATA, numbers bare), emitting the
/// fields of its InfoType (all non-empty ones for unknown InfoTypes).
std::string build_event_xml(const push_event& ev);

/// Authenticates, decrypts and parses a push POSTed to the authorization event
/// URL. Order: missing timestamp/nonce/msg_signature -> bad_signature; envelope
/// parse -> malformed; signature over Encrypt -> bad_signature; decrypt (incl.
/// trailing appid) and event parse -> malformed; the event's AppId must equal
/// `crypto.appid()` -> malformed ("appid mismatch").
caf::expected<push_event> open_push(const msg_crypto& crypto, std::string_view body,
                                    std::string_view timestamp, std::string_view nonce,
                                    std::string_view msg_signature);

/// A push as WeChat would POST it.
struct sealed_push {
  /// `<xml><AppId>..</AppId><Encrypt>..</Encrypt></xml>`.
  std::string body;
  /// Query parameter `timestamp`.
  std::string timestamp;
  /// Query parameter `nonce`.
  std::string nonce;
  /// Query parameter `msg_signature` (over token, timestamp, nonce, Encrypt).
  std::string msg_signature;
  /// Query parameter `signature` (plain, over token, timestamp, nonce).
  std::string signature;
};

/// Encrypts and signs `ev` for delivery (simulator / CLI). Empty `timestamp`
/// means now, empty `nonce` a random decimal number, and an empty `random16` a
/// fresh random prefix (pass 16 bytes for reproducible output).
sealed_push seal_push(const msg_crypto& crypto, const push_event& ev, std::string timestamp = {},
                      std::string nonce = {}, std::string_view random16 = {});

} // namespace wh::wechat

CAF_ERROR_CODE_ENUM(wh::wechat::push_failure, "wechatpush")
