#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config.hpp"

namespace wh::http {

/// Bearer-key authentication and per-key scopes of hub clients. Keys are
/// never stored, only their SHA-256; comparisons are constant time.
class authenticator {
public:
  explicit authenticator(std::vector<client_config> clients);

  /// Whether any [[client]] is configured (otherwise the hub runs open).
  bool enabled() const { return !table_.load()->clients.empty(); }

  /// The client presenting `authorization` ("Bearer <key>"), or nullptr.
  /// The pointer keeps the table it came from alive across a replace().
  std::shared_ptr<const client_config> authenticate(std::string_view authorization) const;

  /// Swaps the whole client table at once (config reload): the next request
  /// sees the new keys, scopes, path keys and networks; requests in flight
  /// keep the old entry.
  void replace(std::vector<client_config> clients);

  /// The `path_key = true` client whose key is `key` (from `/k/<key>/...`), or nullptr.
  std::shared_ptr<const client_config> authenticate_path_key(std::string_view key) const;

  /// The client whose `networks` contain `address` (textual IPv4/IPv6;
  /// IPv4-mapped IPv6 counts as IPv4), or nullptr. First match in config order.
  std::shared_ptr<const client_config> authenticate_network(std::string_view address) const;

  /// Whether `client` may read/refresh `appid` (an app or a component's own
  /// token) or, with `authorizer`, that authorizer of component `appid`.
  static bool allows(const client_config& client, std::string_view appid,
                     std::string_view authorizer);

private:

  struct network {
    size_t client = 0;
    bool v4 = true;
    std::array<unsigned char, 16> bytes{};
    unsigned bits = 0;
  };

  using digest = std::array<unsigned char, 32>;
  struct digest_hash {
    size_t operator()(const digest& d) const noexcept;
  };
  /// One consistent generation of the configuration: clients and their networks.
  struct table {
    explicit table(std::vector<client_config> cs);
    std::vector<client_config> clients;
    std::vector<network> networks;
    /// Each client key's SHA-256 -> the client (the last one configured with
    /// that key wins, as a scan in config order would).
    std::unordered_map<digest, size_t, digest_hash> by_digest;
  };

  /// Finds the client whose key is `key` among those `eligible`, in constant time.
  template <class Pred>
  std::shared_ptr<const client_config> match_key(std::string_view key, Pred eligible) const;

  std::atomic<std::shared_ptr<const table>> table_;
};

/// Lowercase hex SHA-256 (OpenSSL EVP).
std::string sha256_hex(std::string_view data);

/// A new random client key ("whk_" + 43 base64url characters, 256 bits).
std::string generate_client_key();

} // namespace wh::http
