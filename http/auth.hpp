#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"

namespace wh::http {

/// Bearer-key authentication and per-key scopes of hub clients. Keys are
/// never stored, only their SHA-256; comparisons are constant time.
class authenticator {
public:
  explicit authenticator(std::vector<client_config> clients);

  /// Whether any [[client]] is configured (otherwise the hub runs open).
  bool enabled() const { return !clients_.empty(); }

  /// The client presenting `authorization` ("Bearer <key>"), or nullptr.
  const client_config* authenticate(std::string_view authorization) const;

  /// The `path_key = true` client whose key is `key` (from `/k/<key>/...`), or nullptr.
  const client_config* authenticate_path_key(std::string_view key) const;

  /// The client whose `networks` contain `address` (textual IPv4/IPv6;
  /// IPv4-mapped IPv6 counts as IPv4), or nullptr. First match in config order.
  const client_config* authenticate_network(std::string_view address) const;

  /// Whether `client` may read/refresh `appid` (an app or a component's own
  /// token) or, with `authorizer`, that authorizer of component `appid`.
  static bool allows(const client_config& client, std::string_view appid,
                     std::string_view authorizer);

private:
  /// Finds the client with `digest` among those `eligible`, in constant time.
  template <class Pred>
  const client_config* match_key(std::string_view key, Pred eligible) const;

  struct network {
    size_t client = 0;
    bool v4 = true;
    std::array<unsigned char, 16> bytes{};
    unsigned bits = 0;
  };

  std::vector<client_config> clients_;
  std::vector<network> networks_;
};

/// Lowercase hex SHA-256 (OpenSSL EVP).
std::string sha256_hex(std::string_view data);

/// A new random client key ("whk_" + 43 base64url characters, 256 bits).
std::string generate_client_key();

} // namespace wh::http
