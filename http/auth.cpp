#include "http/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace wh::http {

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP_Digest(sha256) failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xf];
  }
  return out;
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

authenticator::authenticator(std::vector<client_config> clients)
  : clients_(std::make_shared<const table>(std::move(clients))) {}

void authenticator::replace(std::vector<client_config> clients) {
  clients_.store(std::make_shared<const table>(std::move(clients)));
}

std::shared_ptr<const client_config> authenticator::authenticate(std::string_view authorization) const {
  static constexpr std::string_view scheme = "Bearer ";
  if (authorization.size() <= scheme.size() || authorization.size() > 512)
    return nullptr;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i]))
        != std::tolower(static_cast<unsigned char>(scheme[i])))
      return nullptr;
  auto digest = sha256_hex(authorization.substr(scheme.size()));
  // Compare against every client so timing does not depend on which matched.
  auto clients = clients_.load();
  const client_config* found = nullptr;
  for (auto& c : *clients)
    if (CRYPTO_memcmp(c.key_sha256.data(), digest.data(), digest.size()) == 0)
      found = &c;
  if (!found)
    return nullptr;
  return {std::move(clients), found};
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
