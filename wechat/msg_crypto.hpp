#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "caf/expected.hpp"

namespace wh::wechat {

/// Lowercase hex SHA-1 of `data` (OpenSSL EVP).
std::string sha1_hex(std::string_view data);

/// WeChat's generic signature: sort `values` (byte order), concatenate, SHA-1 hex.
std::string sorted_sha1(std::vector<std::string> values);

/// Constant-time equality of two strings (CRYPTO_memcmp; length leaks only).
bool constant_time_equal(std::string_view a, std::string_view b);

/// Standard base64 (`+/` alphabet, `=` padding) of `data`.
std::string base64_encode(std::string_view data);

/// Strict standard base64 decoding: length a multiple of 4, no whitespace,
/// at most two trailing `=`. Non-zero trailing bits are tolerated like in the
/// official samples: most published EncodingAESKeys rely on it (doc §6.1).
/// Errors: ec::invalid_request ("bad base64").
caf::expected<std::string> base64_decode(std::string_view text);

/// The three parts of a decrypted WXBizMsgCrypt buffer.
struct decrypted_message {
  /// The 16 random prefix bytes (raw).
  std::string random;
  /// The message bytes (XML or JSON).
  std::string msg;
  /// The trailing appid (equal to msg_crypto::appid() when returned).
  std::string appid;
};

/// WXBizMsgCrypt: AES-256-CBC message crypto of WeChat pushes (PKCS#7 with a
/// 32-byte block, random16 || len32be || msg || appid), msg_signature SHA-1.
class msg_crypto {
public:
  /// Validates the 43-char EncodingAESKey (non-canonical base64 accepted) and
  /// requires a non-empty token. Errors: ec::invalid_config (details name the
  /// problem, never the key).
  static caf::expected<msg_crypto> make(std::string_view encoding_aes_key, std::string token,
                                        std::string appid);

  /// msg_signature over sorted {token, timestamp, nonce, encrypt}.
  std::string signature(std::string_view timestamp, std::string_view nonce,
                        std::string_view encrypt) const;

  /// Verifies `msg_signature` in constant time.
  bool verify(std::string_view msg_signature, std::string_view timestamp, std::string_view nonce,
              std::string_view encrypt) const;

  /// Decrypts base64 `encrypt`, checks padding strictly and the trailing appid.
  /// Errors: ec::invalid_request with a detail naming the problem: "bad base64",
  /// "ciphertext length not a multiple of 16", "ciphertext length not a multiple
  /// of 32", "ciphertext too short", "bad padding", "message length out of
  /// range", "appid mismatch". Details never contain key material.
  caf::expected<std::string> decrypt(std::string_view encrypt) const;

  /// Like decrypt(), but also returns the random prefix and trailing appid.
  caf::expected<decrypted_message> decrypt_parts(std::string_view encrypt) const;

  /// Encrypts `msg` with the given 16-byte random prefix; returns base64.
  /// Precondition: `random16.size() == 16`; any other size is replaced by a
  /// fresh random prefix so that the output is always well-formed.
  std::string encrypt(std::string_view msg, std::string_view random16) const;

  /// Encrypts with a fresh random prefix (RAND_bytes).
  std::string encrypt(std::string_view msg) const;

  /// The encrypted XML reply envelope (Encrypt, MsgSignature, TimeStamp, Nonce).
  std::string envelope_xml(std::string_view encrypt, std::string_view timestamp,
                           std::string_view nonce) const;

  /// The receiver id bound to this instance (component appid / corp id).
  const std::string& appid() const { return appid_; }
  /// The message token (the `Token` configured on the WeChat side).
  const std::string& token() const { return token_; }

private:
  msg_crypto() = default;
  std::string key_; // 32 raw bytes
  std::string token_;
  std::string appid_;
};

} // namespace wh::wechat
