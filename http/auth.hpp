#pragma once

#include <atomic>
#include <memory>
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
  bool enabled() const { return !clients_.load()->empty(); }

  /// The client presenting `authorization` ("Bearer <key>"), or nullptr.
  /// The pointer keeps the table it came from alive across a replace().
  std::shared_ptr<const client_config> authenticate(std::string_view authorization) const;

  /// Swaps the whole client table at once (config reload): the next request
  /// sees the new keys and scopes; requests in flight keep the old entry.
  void replace(std::vector<client_config> clients);

  /// Whether `client` may read/refresh `appid` (an app or a component's own
  /// token) or, with `authorizer`, that authorizer of component `appid`.
  static bool allows(const client_config& client, std::string_view appid,
                     std::string_view authorizer);

private:
  using table = std::vector<client_config>;
  std::atomic<std::shared_ptr<const table>> clients_;
};

/// Lowercase hex SHA-256 (OpenSSL EVP).
std::string sha256_hex(std::string_view data);

/// A new random client key ("whk_" + 43 base64url characters, 256 bits).
std::string generate_client_key();

} // namespace wh::http
