#include "wechat/msg_crypto.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/error.hpp"
#include "wechat/detail/random.hpp"
#include "wechat/detail/xml_text.hpp"

namespace wh::wechat {

namespace {

// WXBizMsgCrypt pads to 32 bytes although AES blocks are 16: the official
// samples chose K = 32 and every peer follows them.
constexpr std::size_t pad_block = 32;
constexpr std::size_t random_len = 16;
constexpr std::size_t len_field = 4;

caf::error bad_request(const char* detail) {
  return make_detail_error(ec::invalid_request, detail);
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* bytes(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}

bool is_b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+'
         || c == '/';
}

struct cipher_ctx_deleter {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

// Raw AES-256-CBC without cipher padding; `in.size()` must be a multiple of 16.
// Returns false only on an OpenSSL failure.
bool aes_cbc(bool enc, const std::string& key, std::string_view in, std::string& out) {
  cipher_ctx_ptr ctx{EVP_CIPHER_CTX_new()};
  if (!ctx)
    return false;
  // WeChat uses the first 16 key bytes as the IV.
  if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr, bytes(key), bytes(key), enc ? 1 : 0)
      != 1)
    return false;
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  out.assign(in.size() + 16, '\0');
  int n1 = 0;
  int n2 = 0;
  if (EVP_CipherUpdate(ctx.get(), bytes(out), &n1, bytes(in), static_cast<int>(in.size())) != 1)
    return false;
  if (EVP_CipherFinal_ex(ctx.get(), bytes(out) + n1, &n2) != 1)
    return false;
  out.resize(static_cast<std::size_t>(n1 + n2));
  return out.size() == in.size();
}

} // namespace

namespace detail {

// Without randomness we cannot produce safe nonces or prefixes; failing
// loudly beats emitting predictable values.
void random_or_die(unsigned char* out, std::size_t n) {
  if (n > 0 && RAND_bytes(out, static_cast<int>(n)) != 1) {
    std::fputs("wechat: RAND_bytes failed\n", stderr);
    std::abort();
  }
}

} // namespace detail

// -- free helpers -------------------------------------------------------------

std::string sha1_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) != 1) {
    std::fputs("wechat: EVP_Digest(sha1) failed\n", stderr);
    std::abort();
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0x0f];
  }
  return out;
}

std::string sorted_sha1(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  std::string joined;
  for (const auto& v : values)
    joined += v;
  return sha1_hex(joined);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(bytes(out), bytes(data), static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

caf::expected<std::string> base64_decode(std::string_view text) {
  // EVP_DecodeBlock skips surrounding whitespace and is vague about '='
  // placement, so validate the shape here and let it do only the arithmetic.
  if (text.empty() || text.size() % 4 != 0)
    return bad_request("bad base64");
  std::size_t pad = 0;
  if (text.back() == '=')
    pad = text[text.size() - 2] == '=' ? 2 : 1;
  for (std::size_t i = 0; i < text.size() - pad; ++i)
    if (!is_b64_char(text[i]))
      return bad_request("bad base64");
  std::string out(text.size() / 4 * 3, '\0');
  auto n = EVP_DecodeBlock(bytes(out), bytes(text), static_cast<int>(text.size()));
  if (n < 0 || static_cast<std::size_t>(n) != out.size())
    return bad_request("bad base64");
  // EVP_DecodeBlock counts the bytes the '=' stand for; drop them.
  out.resize(out.size() - pad);
  return out;
}

// -- msg_crypto ---------------------------------------------------------------

caf::expected<msg_crypto> msg_crypto::make(std::string_view encoding_aes_key, std::string token,
                                           std::string appid) {
  // Published keys are 43 chars whose last char often carries non-zero
  // trailing bits; decode key + "=" leniently, like the official samples do.
  if (encoding_aes_key.size() != 43)
    return make_detail_error(ec::invalid_config, "EncodingAESKey must be 43 characters");
  if (!std::all_of(encoding_aes_key.begin(), encoding_aes_key.end(), is_b64_char))
    return make_detail_error(ec::invalid_config,
                             "EncodingAESKey contains non-base64 characters");
  std::string padded{encoding_aes_key};
  padded += '=';
  auto key = base64_decode(padded);
  if (!key || key->size() != 32)
    return make_detail_error(ec::invalid_config, "EncodingAESKey does not decode to 32 bytes");
  if (token.empty())
    return make_detail_error(ec::invalid_config, "message token must not be empty");
  msg_crypto result;
  result.key_ = std::move(*key);
  result.token_ = std::move(token);
  result.appid_ = std::move(appid);
  return result;
}

std::string msg_crypto::signature(std::string_view timestamp, std::string_view nonce,
                                  std::string_view encrypt) const {
  return sorted_sha1(
    {token_, std::string{timestamp}, std::string{nonce}, std::string{encrypt}});
}

bool msg_crypto::verify(std::string_view msg_signature, std::string_view timestamp,
                        std::string_view nonce, std::string_view encrypt) const {
  return constant_time_equal(signature(timestamp, nonce, encrypt), msg_signature);
}

caf::expected<decrypted_message> msg_crypto::decrypt_parts(std::string_view encrypt) const {
  auto cipher = base64_decode(encrypt);
  if (!cipher)
    return std::move(cipher.error());
  if (cipher->size() % 16 != 0)
    return bad_request("ciphertext length not a multiple of 16");
  if (cipher->size() % pad_block != 0)
    return bad_request("ciphertext length not a multiple of 32");
  if (cipher->size() < pad_block)
    return bad_request("ciphertext too short");
  std::string plain;
  if (!aes_cbc(false, key_, *cipher, plain))
    return bad_request("AES decryption failed");
  // Strict PKCS#7 with K = 32: 1..32 bytes, all equal to the count.
  auto pad = static_cast<unsigned char>(plain.back());
  if (pad < 1 || pad > pad_block)
    return bad_request("bad padding");
  unsigned char diff = 0;
  for (std::size_t i = plain.size() - pad; i < plain.size(); ++i)
    diff |= static_cast<unsigned char>(plain[i]) ^ pad;
  if (diff != 0)
    return bad_request("bad padding");
  plain.resize(plain.size() - pad);
  if (plain.size() < random_len + len_field)
    return bad_request("message length out of range");
  auto p = bytes(std::string_view{plain}) + random_len;
  uint64_t msg_len = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8)
                     | uint64_t{p[3]};
  auto body = plain.size() - random_len - len_field;
  if (msg_len > body)
    return bad_request("message length out of range");
  decrypted_message out;
  out.random = plain.substr(0, random_len);
  out.msg = plain.substr(random_len + len_field, msg_len);
  out.appid = plain.substr(random_len + len_field + msg_len);
  if (out.appid != appid_)
    return bad_request("appid mismatch");
  return out;
}

caf::expected<std::string> msg_crypto::decrypt(std::string_view encrypt) const {
  auto parts = decrypt_parts(encrypt);
  if (!parts)
    return std::move(parts.error());
  return std::move(parts->msg);
}

std::string msg_crypto::encrypt(std::string_view msg, std::string_view random16) const {
  std::string plain;
  if (random16.size() == random_len) {
    plain.assign(random16);
  } else {
    plain.assign(random_len, '\0');
    detail::random_or_die(bytes(plain), random_len);
  }
  auto n = static_cast<uint32_t>(msg.size());
  plain += static_cast<char>((n >> 24) & 0xff);
  plain += static_cast<char>((n >> 16) & 0xff);
  plain += static_cast<char>((n >> 8) & 0xff);
  plain += static_cast<char>(n & 0xff);
  plain += msg;
  plain += appid_;
  auto pad = pad_block - plain.size() % pad_block; // 1..32
  plain.append(pad, static_cast<char>(pad));
  std::string cipher;
  if (!aes_cbc(true, key_, plain, cipher)) {
    std::fputs("wechat: AES encryption failed\n", stderr);
    std::abort();
  }
  return base64_encode(cipher);
}

std::string msg_crypto::encrypt(std::string_view msg) const {
  return encrypt(msg, std::string_view{});
}

std::string msg_crypto::envelope_xml(std::string_view encrypt, std::string_view timestamp,
                                     std::string_view nonce) const {
  std::string out;
  out += "<xml>";
  detail::append_cdata_element(out, "Encrypt", encrypt);
  detail::append_cdata_element(out, "MsgSignature", signature(timestamp, nonce, encrypt));
  // WeChat's own envelopes carry TimeStamp as bare text, not CDATA.
  out += "<TimeStamp>";
  detail::append_escaped(out, timestamp);
  out += "</TimeStamp>";
  detail::append_cdata_element(out, "Nonce", nonce);
  out += "</xml>";
  return out;
}

} // namespace wh::wechat
