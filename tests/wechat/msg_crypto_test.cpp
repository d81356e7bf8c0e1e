#define CAF_SUITE wechat_msg_crypto

#include "caf/test/dsl.hpp"

#include <memory>
#include <random>

#include <openssl/evp.h>

#include "core/error.hpp"
#include "tests/wechat/vectors.hpp"
#include "wechat/msg_crypto.hpp"

using namespace wh;
using namespace wh::wechat;
using wh::test::all_vectors;
using wh::test::vec;
using wh::test::vector_entry;

namespace {

std::string to_hex(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += hex[c >> 4];
    out += hex[c & 0x0f];
  }
  return out;
}

msg_crypto crypto_of(const vector_entry& v) {
  auto c = msg_crypto::make(v.at("encoding_aes_key"), v.at("token"), v.at("appid"));
  if (!c) {
    CAF_FAIL("vector " << v.id << ": key rejected: " << detail_of(c.error()));
  }
  return std::move(*c);
}

// The raw 32-byte key, derived independently of msg_crypto.
std::string raw_key(const std::string& encoding_aes_key) {
  auto k = base64_decode(encoding_aes_key + "=");
  CAF_REQUIRE(k);
  CAF_REQUIRE_EQUAL(k->size(), 32u);
  return *k;
}

// AES-256-CBC (IV = key[0..16]) without any padding, for crafting bad plaintexts.
std::string raw_encrypt(const std::string& key, const std::string& plain) {
  CAF_REQUIRE_EQUAL(plain.size() % 16, 0u);
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx{EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free};
  auto k = reinterpret_cast<const unsigned char*>(key.data());
  CAF_REQUIRE_EQUAL(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr, k, k), 1);
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  std::string out(plain.size() + 32, '\0');
  int n1 = 0, n2 = 0;
  auto o = reinterpret_cast<unsigned char*>(out.data());
  CAF_REQUIRE_EQUAL(EVP_EncryptUpdate(ctx.get(), o, &n1,
                                      reinterpret_cast<const unsigned char*>(plain.data()),
                                      static_cast<int>(plain.size())),
                    1);
  CAF_REQUIRE_EQUAL(EVP_EncryptFinal_ex(ctx.get(), o + n1, &n2), 1);
  out.resize(static_cast<std::size_t>(n1 + n2));
  return base64_encode(out);
}

// CAF_CHECK_EQUAL binds its arguments to references, so `*f()` would dangle
// once the temporary expected dies; copy the value out instead.
std::string ok(caf::expected<std::string> x) {
  if (!x)
    return "<error: " + detail_of(x.error()) + ">";
  return std::move(*x);
}

std::string random_of(caf::expected<decrypted_message> x) {
  return x ? x->random : "<error>";
}

std::string be32(uint32_t n) {
  std::string s;
  s += static_cast<char>(n >> 24);
  s += static_cast<char>((n >> 16) & 0xff);
  s += static_cast<char>((n >> 8) & 0xff);
  s += static_cast<char>(n & 0xff);
  return s;
}

// A plaintext buffer with arbitrary (possibly wrong) padding.
std::string buffer(const std::string& msg, const std::string& appid) {
  return std::string(16, 'r') + be32(static_cast<uint32_t>(msg.size())) + msg + appid;
}

constexpr const char* key_a = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
constexpr const char* key_abc = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

struct fixture {
  msg_crypto crypto = *msg_crypto::make(key_abc, "pamtest", "wxb11529c136998cb6");
  std::string key = raw_key(key_abc);

  std::string problem(const std::string& encrypt) {
    auto res = crypto.decrypt(encrypt);
    if (res)
      return "<no error>";
    CAF_CHECK_EQUAL(code_of(res.error()), ec::invalid_request);
    auto d = detail_of(res.error());
    // Details must never carry key material.
    CAF_CHECK_EQUAL(d.find(key_abc), std::string::npos);
    CAF_CHECK_EQUAL(d.find(to_hex(key)), std::string::npos);
    return d;
  }
};

} // namespace

CAF_TEST(key derivation from non-canonical EncodingAESKey) {
  CAF_CHECK_EQUAL(to_hex(raw_key(key_abc)),
                  "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051");
  CAF_CHECK_EQUAL(to_hex(raw_key(key_a)), std::string(64, '0'));
}

CAF_TEST(base64 round trips and padding arithmetic) {
  CAF_CHECK_EQUAL(base64_encode(""), "");
  CAF_CHECK_EQUAL(base64_encode("f"), "Zg==");
  CAF_CHECK_EQUAL(base64_encode("fo"), "Zm8=");
  CAF_CHECK_EQUAL(base64_encode("foo"), "Zm9v");
  CAF_CHECK_EQUAL(ok(base64_decode("Zg==")), "f");
  CAF_CHECK_EQUAL(ok(base64_decode("Zm8=")), "fo");
  CAF_CHECK_EQUAL(ok(base64_decode("Zm9v")), "foo");
  CAF_CHECK_EQUAL(ok(base64_decode("+/+/")), "\xfb\xff\xbf");
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  CAF_CHECK_EQUAL(ok(base64_decode(base64_encode(all))), all);
}

CAF_TEST(bad base64 is rejected) {
  for (auto s : {"", "Z", "Zg=", "Zg===", "Z===", "====", "Zm9v\n", " Zm9v", "Zm9v ", "Zm-v",
                 "Zm_v", "Z=gA", "Zg==Zm9v"}) {
    CAF_MESSAGE("input " << s);
    auto res = base64_decode(s);
    CAF_REQUIRE(!res);
    CAF_CHECK_EQUAL(code_of(res.error()), ec::invalid_request);
    CAF_CHECK_EQUAL(detail_of(res.error()), "bad base64");
  }
  // An embedded NUL (string_view keeps it).
  CAF_CHECK(!base64_decode(std::string_view{"Zm9v\0AAA", 8}));
}

CAF_TEST(encrypt vectors) {
  int n = 0;
  for (const auto& v : all_vectors()) {
    if (v.kind != "encrypt")
      continue;
    ++n;
    CAF_MESSAGE("vector " << v.id);
    auto c = crypto_of(v);
    auto enc = c.encrypt(v.at("msg"), v.at("random"));
    CAF_CHECK_EQUAL(enc, v.at("encrypt"));
    CAF_CHECK_EQUAL(c.signature(v.at("timestamp"), v.at("nonce"), enc), v.at("msg_signature"));
    CAF_CHECK(c.verify(v.at("msg_signature"), v.at("timestamp"), v.at("nonce"), enc));
    auto parts = c.decrypt_parts(v.at("encrypt"));
    CAF_REQUIRE(parts);
    CAF_CHECK_EQUAL(parts->random, v.at("random"));
    CAF_CHECK_EQUAL(parts->msg, v.at("msg"));
    CAF_CHECK_EQUAL(parts->appid, v.at("appid"));
  }
  CAF_CHECK_EQUAL(n, 6);
}

CAF_TEST(V1 plaintext layout and byte-length prefix) {
  const auto& v = vec("V1");
  auto c = crypto_of(v);
  // 我是中文abcd123 is 19 UTF-8 bytes.
  CAF_CHECK_EQUAL(v.at("msg").size(), 19u);
  auto plain = buffer(v.at("msg"), v.at("appid"));
  plain.replace(0, 16, v.at("random"));
  plain.append(7, '\x07');
  CAF_CHECK_EQUAL(raw_encrypt(raw_key(v.at("encoding_aes_key")), plain), v.at("encrypt"));
}

CAF_TEST(V13 full 32-byte padding block) {
  const auto& v = vec("V13");
  auto c = crypto_of(v);
  auto cipher = base64_decode(v.at("encrypt"));
  CAF_REQUIRE(cipher);
  CAF_CHECK_EQUAL(cipher->size(), 96u);
  CAF_CHECK_EQUAL(ok(c.decrypt(v.at("encrypt"))), "abcdefghijklmnopqrstuvwxyz");
}

CAF_TEST(decrypt vectors verify and decrypt) {
  int n = 0;
  for (const auto& v : all_vectors()) {
    if (v.kind != "decrypt")
      continue;
    ++n;
    CAF_MESSAGE("vector " << v.id);
    auto c = crypto_of(v);
    CAF_CHECK(c.verify(v.at("msg_signature"), v.at("timestamp"), v.at("nonce"), v.at("encrypt")));
    CAF_CHECK_EQUAL(c.signature(v.at("timestamp"), v.at("nonce"), v.at("encrypt")),
                    v.at("msg_signature"));
    auto parts = c.decrypt_parts(v.at("encrypt"));
    CAF_REQUIRE(parts);
    CAF_CHECK_EQUAL(parts->random, v.at("random"));
    CAF_CHECK_EQUAL(parts->msg, v.at("msg"));
    CAF_CHECK_EQUAL(parts->appid, v.at("appid"));
    CAF_CHECK_EQUAL(ok(c.decrypt(v.at("encrypt"))), v.at("msg"));
    // Re-encrypting with the published random prefix gives the published ciphertext.
    CAF_CHECK_EQUAL(c.encrypt(v.at("msg"), v.at("random")), v.at("encrypt"));
  }
  CAF_CHECK_EQUAL(n, 4);
}

CAF_TEST(V8a with another nonce fails the signature check) {
  const auto& v = vec("V8a");
  auto c = crypto_of(v);
  CAF_CHECK(c.verify(v.at("msg_signature"), v.at("timestamp"), "437374425", v.at("encrypt")));
  CAF_CHECK(!c.verify(v.at("msg_signature"), v.at("timestamp"), "437374424", v.at("encrypt")));
  CAF_CHECK(!c.verify("", v.at("timestamp"), v.at("nonce"), v.at("encrypt")));
  CAF_CHECK(!c.verify(v.at("msg_signature").substr(1), v.at("timestamp"), v.at("nonce"),
                      v.at("encrypt")));
  auto upper = v.at("msg_signature");
  for (auto& ch : upper)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  CAF_CHECK(!c.verify(upper, v.at("timestamp"), v.at("nonce"), v.at("encrypt")));
}

CAF_TEST(V8b reply envelope) {
  const auto& v = vec("V8b");
  auto c = crypto_of(v);
  CAF_CHECK_EQUAL(c.envelope_xml(v.at("encrypt"), v.at("timestamp"), v.at("nonce")),
                  "<xml><Encrypt><![CDATA[" + v.at("encrypt")
                    + "]]></Encrypt><MsgSignature><![CDATA[" + v.at("msg_signature")
                    + "]]></MsgSignature><TimeStamp>" + v.at("timestamp")
                    + "</TimeStamp><Nonce><![CDATA[" + v.at("nonce") + "]]></Nonce></xml>");
}

CAF_TEST(V6d with the wrong appid) {
  const auto& v = vec("V6d");
  auto c = msg_crypto::make(v.at("encoding_aes_key"), v.at("token"), "wx134c8103faa5a59e");
  CAF_REQUIRE(c);
  auto res = c->decrypt(v.at("encrypt"));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(code_of(res.error()), ec::invalid_request);
  CAF_CHECK_EQUAL(detail_of(res.error()), "appid mismatch");
}

CAF_TEST(encryption with a fresh random prefix) {
  auto c = *msg_crypto::make(key_a, "AAAAA", "wxba5fad812f8e6fb9");
  auto a = c.encrypt("hello");
  auto b = c.encrypt("hello");
  CAF_CHECK_NOT_EQUAL(a, b);
  CAF_CHECK_EQUAL(ok(c.decrypt(a)), "hello");
  CAF_CHECK_EQUAL(ok(c.decrypt(b)), "hello");
  CAF_CHECK_NOT_EQUAL(random_of(c.decrypt_parts(a)), random_of(c.decrypt_parts(b)));
  // A wrongly sized prefix is replaced, never copied.
  auto d = c.encrypt("x", "short");
  CAF_CHECK_EQUAL(ok(c.decrypt(d)), "x");
  CAF_CHECK_EQUAL(c.decrypt_parts(d)->random.size(), 16u);
  CAF_CHECK_NOT_EQUAL(c.decrypt_parts(d)->random.substr(0, 5), "short");
  // Empty messages and messages at every length modulo 32 round-trip.
  for (std::size_t len = 0; len <= 70; ++len) {
    std::string msg(len, static_cast<char>('a' + len % 26));
    auto enc = c.encrypt(msg);
    CAF_CHECK_EQUAL(base64_decode(enc)->size() % 32, 0u);
    CAF_CHECK_EQUAL(ok(c.decrypt(enc)), msg);
  }
}

CAF_TEST(wrong key lengths and characters are config errors) {
  auto bad_key = [](std::string key) {
    auto res = msg_crypto::make(key, "token", "wx1");
    if (res)
      return std::string{"<no error>"};
    CAF_CHECK_EQUAL(code_of(res.error()), ec::invalid_config);
    auto d = detail_of(res.error());
    if (!key.empty())
      CAF_CHECK_EQUAL(d.find(key), std::string::npos);
    return d;
  };
  CAF_CHECK_EQUAL(bad_key(""), "EncodingAESKey must be 43 characters");
  CAF_CHECK_EQUAL(bad_key(std::string{key_a}.substr(1)), "EncodingAESKey must be 43 characters");
  CAF_CHECK_EQUAL(bad_key(std::string{key_a} + "A"), "EncodingAESKey must be 43 characters");
  CAF_CHECK_EQUAL(bad_key(std::string{key_a} + "="), "EncodingAESKey must be 43 characters");
  CAF_CHECK_EQUAL(bad_key(std::string(42, 'A') + "="),
                  "EncodingAESKey contains non-base64 characters");
  CAF_CHECK_EQUAL(bad_key(std::string(42, 'A') + "!"),
                  "EncodingAESKey contains non-base64 characters");
  auto no_token = msg_crypto::make(key_a, "", "wx1");
  CAF_REQUIRE(!no_token);
  CAF_CHECK_EQUAL(detail_of(no_token.error()), "message token must not be empty");
}

CAF_TEST_FIXTURE_SCOPE(crafted_ciphertexts, fixture)

CAF_TEST(decrypt errors are precise) {
  const auto& v = vec("V1");
  auto cipher = *base64_decode(v.at("encrypt"));
  CAF_CHECK_EQUAL(problem("not base64!"), "bad base64");
  CAF_CHECK_EQUAL(problem(v.at("encrypt").substr(1)), "bad base64");
  CAF_CHECK_EQUAL(problem(base64_encode(cipher.substr(0, cipher.size() - 5))),
                  "ciphertext length not a multiple of 16");
  CAF_CHECK_EQUAL(problem(base64_encode(cipher.substr(0, 48))),
                  "ciphertext length not a multiple of 32");
  CAF_CHECK_EQUAL(problem(base64_encode(cipher.substr(0, 16))),
                  "ciphertext length not a multiple of 32");
  CAF_CHECK_EQUAL(problem(base64_encode(cipher + std::string(32, '\0'))), "bad padding");
  CAF_CHECK_EQUAL(problem(v.at("encrypt")), "<no error>");
}

CAF_TEST(padding is checked strictly) {
  const std::string appid = "wxb11529c136998cb6";
  auto plain = buffer("hello", appid); // 16 + 4 + 5 + 18 = 43 bytes -> pad 21
  CAF_REQUIRE_EQUAL(plain.size(), 43u);
  // The correct padding decrypts.
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, plain + std::string(21, '\x15'))), "<no error>");
  CAF_CHECK_EQUAL(ok(crypto.decrypt(raw_encrypt(key, plain + std::string(21, '\x15')))), "hello");
  // One pad byte tampered.
  auto tampered = plain + std::string(21, '\x15');
  tampered[50] = '\x14';
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, tampered)), "bad padding");
  // Pad value 0.
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, plain + std::string(20, '\x15') + '\0')), "bad padding");
  // Pad value 33 (> block of 32) in a 96-byte buffer whose last 33 bytes are all 33.
  auto p33 = buffer(std::string(10, 'm'), appid); // 48 bytes
  CAF_REQUIRE_EQUAL(p33.size(), 48u);
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, p33 + std::string(48, '\x21'))), "bad padding");
  // Pad 0xff.
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, p33 + std::string(48, '\xff'))), "bad padding");
  // A 16-byte-style pad (PKCS#7 with K = 16) is not accepted: 43 -> 48 needs 5.
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, plain + std::string(5, '\x05') + std::string(16, 'z'))),
                  "bad padding");
  // Pad 32 when a whole extra block was required: all 32 bytes must be 0x20.
  auto p32 = buffer(std::string(26, 'a'), appid); // 64 bytes
  CAF_CHECK_EQUAL(ok(crypto.decrypt(raw_encrypt(key, p32 + std::string(32, '\x20')))),
                  std::string(26, 'a'));
  auto bad32 = p32 + std::string(32, '\x20');
  bad32[64] = '\x1f';
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, bad32)), "bad padding");
}

CAF_TEST(message length must fit) {
  const std::string appid = "wxb11529c136998cb6";
  // Claimed length larger than the buffer.
  auto plain = std::string(16, 'r') + be32(1000) + "hello" + appid; // 43 bytes
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, plain + std::string(21, '\x15'))),
                  "message length out of range");
  plain = std::string(16, 'r') + be32(0xffffffffu) + "hello" + appid;
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, plain + std::string(21, '\x15'))),
                  "message length out of range");
  // Claimed length one past the end.
  plain = std::string(16, 'r') + be32(5 + 18 + 1) + "hello" + appid;
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, plain + std::string(21, '\x15'))),
                  "message length out of range");
  // Fewer than 20 bytes after unpadding: 32 bytes of which 16 are padding.
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, std::string(16, 'r') + std::string(16, '\x10'))),
                  "message length out of range");
  // Exactly the whole rest: the appid becomes empty -> mismatch.
  plain = std::string(16, 'r') + be32(5 + 18) + "hello" + appid;
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, plain + std::string(21, '\x15'))), "appid mismatch");
}

CAF_TEST(wrong trailing appid) {
  auto other = buffer("hello", "wxb11529c136998cb7");
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, other + std::string(21, '\x15'))), "appid mismatch");
  auto prefix = buffer("hello", "wxb11529c136998cb"); // 42 bytes -> pad 22
  CAF_CHECK_EQUAL(problem(raw_encrypt(key, prefix + std::string(22, '\x16'))), "appid mismatch");
  // Ciphertext made under another key decrypts to noise: padding or length fails.
  auto c2 = *msg_crypto::make(key_a, "pamtest", "wxb11529c136998cb6");
  CAF_CHECK_NOT_EQUAL(problem(c2.encrypt("hello", "aaaabbbbccccdddd")), "<no error>");
}

CAF_TEST(random garbage never crashes) {
  std::mt19937 rng{20240517};
  static constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    auto len = rng() % 200;
    for (std::size_t j = 0; j < len; ++j)
      s += (i % 2 == 0) ? alphabet[rng() % 65] : static_cast<char>(rng() & 0xff);
    if (crypto.decrypt(s))
      ++accepted;
    // Valid base64 of random ciphertext of 32-byte multiples.
    std::string raw(32 * (1 + rng() % 4), '\0');
    for (auto& ch : raw)
      ch = static_cast<char>(rng() & 0xff);
    if (crypto.decrypt(base64_encode(raw)))
      ++accepted;
  }
  // Accepting random data would require guessing the appid suffix.
  CAF_CHECK_EQUAL(accepted, 0);
  // Every single-bit flip of a valid ciphertext is detected or changes the output.
  const auto& v = vec("V1");
  auto cipher = *base64_decode(v.at("encrypt"));
  for (std::size_t bit = 0; bit < cipher.size() * 8; ++bit) {
    auto flipped = cipher;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    auto res = crypto.decrypt(base64_encode(flipped));
    CAF_CHECK(!res || *res != v.at("msg"));
  }
}

CAF_TEST_FIXTURE_SCOPE_END()
