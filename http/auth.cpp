#include "http/auth.hpp"

#include "core/hex.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <boost/asio/ip/address.hpp>

namespace wh::http {

namespace {

/// SHA-256 on the request path: the algorithm is fetched from the provider
/// once (an implicit fetch per call takes a lock and compares names), and
/// each thread reuses one digest context (no allocation per request).
std::array<unsigned char, 32> sha256(std::string_view data) {
  struct fetched {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    ~fetched() { EVP_MD_free(md); }
  };
  struct context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~context() { EVP_MD_CTX_free(ctx); }
  };
  static const fetched algorithm;
  thread_local const context local;
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (algorithm.md == nullptr || local.ctx == nullptr
      || EVP_DigestInit_ex2(local.ctx, algorithm.md, nullptr) != 1
      || EVP_DigestUpdate(local.ctx, data.data(), data.size()) != 1
      || EVP_DigestFinal_ex(local.ctx, out.data(), &len) != 1 || len != out.size())
    throw std::runtime_error("SHA-256 failed (OpenSSL EVP)");
  return out;
}

/// The 32 bytes of a hex SHA-256, or false if `hex` is not one.
bool parse_digest(std::string_view hex, std::array<unsigned char, 32>& out) {
  if (hex.size() != out.size() * 2)
    return false;
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_digit(hex[2 * i]);
    int lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

} // namespace

std::string sha256_hex(std::string_view data) {
  auto md = sha256(data);
  return to_hex(md.data(), md.size());
}

std::string generate_client_key() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  unsigned char b64[64];
  auto n = EVP_EncodeBlock(b64, raw, sizeof(raw));
  std::string key = "whk_";
  for (int i = 0; i < n; ++i) {
    char c = static_cast<char>(b64[i]);
    if (c == '=')
      break;
    key += c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return key;
}

namespace {

/// Parses an address as 16 bytes (IPv4 in the first 4); false if malformed.
bool parse_address(std::string_view text, bool& v4, std::array<unsigned char, 16>& out) {
  boost::system::error_code err;
  auto addr = boost::asio::ip::make_address(std::string{text}, err);
  if (err)
    return false;
  out.fill(0);
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    addr = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
  v4 = addr.is_v4();
  if (v4) {
    auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.begin());
  } else {
    auto b = addr.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), out.begin());
  }
  return true;
}

bool prefix_equal(const std::array<unsigned char, 16>& a, const std::array<unsigned char, 16>& b,
                  unsigned bits) {
  for (unsigned i = 0; i < 16 && bits > 0; ++i) {
    unsigned take = bits >= 8 ? 8 : bits;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - take));
    if ((a[i] & mask) != (b[i] & mask))
      return false;
    bits -= take;
  }
  return true;
}

} // namespace

size_t authenticator::digest_hash::operator()(const digest& d) const noexcept {
  // A SHA-256 is uniformly distributed: its first bytes are a good hash.
  size_t h = 0;
  std::memcpy(&h, d.data(), sizeof(h));
  return h;
}

authenticator::table::table(std::vector<client_config> cs) : clients(std::move(cs)) {
  for (size_t i = 0; i < clients.size(); ++i) {
    if (digest d; parse_digest(clients[i].key_sha256, d))
      by_digest[d] = i;
    for (auto& cidr : clients[i].networks) {
      auto slash = cidr.find('/');
      network n;
      n.client = i;
      if (slash == std::string::npos || !parse_address(cidr.substr(0, slash), n.v4, n.bytes))
        continue; // config validation refuses these
      n.bits = static_cast<unsigned>(std::stoul(cidr.substr(slash + 1)));
      networks.push_back(n);
    }
  }
}

authenticator::authenticator(std::vector<client_config> clients)
  : table_(std::make_shared<const table>(std::move(clients))) {
}

void authenticator::replace(std::vector<client_config> clients) {
  table_.store(std::make_shared<const table>(std::move(clients)));
}

template <class Pred>
std::shared_ptr<const client_config> authenticator::match_key(std::string_view key,
                                                              Pred eligible) const {
  // One SHA-256 and one hash lookup, whatever the number of clients. Only
  // the digest steers the lookup, and a digest reveals nothing about the
  // key; the candidate is then compared in constant time.
  auto d = sha256(key);
  auto t = table_.load();
  auto it = t->by_digest.find(d);
  if (it == t->by_digest.end())
    return nullptr;
  const auto& c = t->clients[it->second];
  if (CRYPTO_memcmp(it->first.data(), d.data(), d.size()) != 0 || !eligible(c))
    return nullptr;
  return {std::move(t), &c};
}

std::shared_ptr<const client_config> authenticator::authenticate(std::string_view authorization) const {
  static constexpr std::string_view scheme = "Bearer ";
  if (authorization.size() <= scheme.size() || authorization.size() > 512)
    return nullptr;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i]))
        != std::tolower(static_cast<unsigned char>(scheme[i])))
      return nullptr;
  return match_key(authorization.substr(scheme.size()), [](const client_config&) { return true; });
}

std::shared_ptr<const client_config> authenticator::authenticate_path_key(std::string_view key) const {
  if (key.empty() || key.size() > 512)
    return nullptr;
  return match_key(key, [](const client_config& c) { return c.path_key; });
}

std::shared_ptr<const client_config> authenticator::authenticate_network(std::string_view address) const {
  auto t = table_.load();
  if (t->networks.empty())
    return nullptr;
  bool v4 = true;
  std::array<unsigned char, 16> bytes{};
  if (!parse_address(address, v4, bytes))
    return nullptr;
  for (auto& n : t->networks)
    if (n.v4 == v4 && prefix_equal(n.bytes, bytes, n.bits))
      return {t, &t->clients[n.client]};
  return nullptr;
}

bool authenticator::allows(const client_config& client, std::string_view appid,
                           std::string_view authorizer) {
  for (auto& s : client.scopes) {
    if (s == "*")
      return true;
    auto slash = s.find('/');
    std::string_view head{s.data(), slash == std::string::npos ? s.size() : slash};
    std::string_view tail = slash == std::string::npos ? std::string_view{}
                                                       : std::string_view{s}.substr(slash + 1);
    if (head != appid)
      continue;
    if (authorizer.empty() && (tail.empty() || tail == "*"))
      return true; // the app itself, or the component's own token
    if (!authorizer.empty() && (tail == "*" || tail == authorizer))
      return true;
  }
  return false;
}

} // namespace wh::http
