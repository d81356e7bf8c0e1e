#pragma once

// JS-SDK, card and plain URL signatures (SHA-1 hex, see protocol doc §6.3, §7).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wh::wechat {

/// `n` random characters from [A-Za-z0-9] (RAND_bytes, unbiased).
std::string random_nonce(std::size_t n);

/// The values a page passes to `wx.config` besides appId.
struct jssdk_signature {
  /// The nonce that was signed (`nonceStr` in wx.config).
  std::string noncestr;
  /// The unix timestamp (seconds) that was signed.
  int64_t timestamp = 0;
  /// Lowercase hex SHA-1.
  std::string signature;
};

/// Signs `jsapi_ticket=..&noncestr=..&timestamp=..&url=..` (fixed field order,
/// raw values). Everything from the first '#' in `url` on is dropped. An empty
/// `noncestr` becomes 16 random alphanumerics; `timestamp == 0` means now.
jssdk_signature sign_jssdk(std::string_view ticket, std::string_view url, std::string noncestr = {},
                           int64_t timestamp = 0);

/// The values of a card extension (`cardExt`) besides the signed fields.
struct card_signature {
  /// The nonce that was signed (`nonce_str` in cardExt).
  std::string nonce_str;
  /// The unix timestamp (seconds) that was signed.
  int64_t timestamp = 0;
  /// Lowercase hex SHA-1.
  std::string signature;
};

/// Card signature (addCard `cardExt.signature`, chooseCard `cardSign`): SHA-1
/// over the byte-sorted concatenation of `values` (api_ticket, card_id, code,
/// openid, ... — empty ones are skipped), `nonce_str` and `timestamp`. An empty
/// `nonce_str` becomes 16 random alphanumerics; `timestamp == 0` means now.
card_signature sign_card(std::vector<std::string> values, std::string nonce_str = {},
                         int64_t timestamp = 0);

/// The raw card signature over `values` that already include timestamp and
/// nonce: empty values are skipped, the rest sorted and concatenated.
std::string card_sign_values(std::vector<std::string> values);

/// The plain `signature` query parameter: SHA-1 of sorted {token, timestamp,
/// nonce}. Used for URL verification (GET with echostr) and plain-mode pushes.
std::string url_signature(std::string_view token, std::string_view timestamp,
                          std::string_view nonce);

/// Checks a plain `signature` in constant time.
bool verify_url_signature(std::string_view signature, std::string_view token,
                          std::string_view timestamp, std::string_view nonce);

} // namespace wh::wechat
