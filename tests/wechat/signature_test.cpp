#define CAF_SUITE wechat_signature

#include "caf/test/dsl.hpp"

#include <chrono>

#include "tests/wechat/vectors.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/signature.hpp"

using namespace wh::wechat;
using wh::test::all_vectors;
using wh::test::vec;

namespace {

bool alnum(const std::string& s) {
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

int64_t now_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

CAF_TEST(the vector file holds every published vector) {
  CAF_CHECK_EQUAL(all_vectors().size(), 29u);
  std::map<std::string, int> kinds;
  for (const auto& v : all_vectors())
    kinds[v.kind]++;
  CAF_CHECK_EQUAL(kinds["encrypt"], 6);
  CAF_CHECK_EQUAL(kinds["decrypt"], 4);
  CAF_CHECK_EQUAL(kinds["sig"], 9);
  CAF_CHECK_EQUAL(kinds["sha1"], 1);
  CAF_CHECK_EQUAL(kinds["jssdk"], 4);
  CAF_CHECK_EQUAL(kinds["card"], 5);
}

CAF_TEST(sha1 of known inputs) {
  CAF_CHECK_EQUAL(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CAF_CHECK_EQUAL(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  const auto& v = vec("V10e");
  CAF_CHECK_EQUAL(sha1_hex(v.at("input")), v.at("digest"));
}

CAF_TEST(sorted sha1 reproduces every sig vector) {
  int n = 0;
  for (const auto& v : all_vectors()) {
    if (v.kind != "sig")
      continue;
    ++n;
    CAF_MESSAGE("vector " << v.id);
    CAF_CHECK_EQUAL(sorted_sha1(v.lists.at("values")), v.at("signature"));
  }
  CAF_CHECK_EQUAL(n, 9);
}

CAF_TEST(plain url signatures of the official examples) {
  for (auto id : {"V6a", "V6b", "V6c", "V7a", "V10a"}) {
    const auto& v = vec(id);
    const auto& vals = v.lists.at("values");
    CAF_MESSAGE("vector " << id);
    // Token first, then timestamp, nonce: the order the vectors list them.
    CAF_CHECK_EQUAL(url_signature(vals[0], vals[1], vals[2]), v.at("signature"));
    CAF_CHECK(verify_url_signature(v.at("signature"), vals[0], vals[1], vals[2]));
  }
  // V10a: changing the last hex digit must fail.
  CAF_CHECK(!verify_url_signature("f21891de399b4e33a1a93c9a7b8a8fffb5a443fe", "test",
                                  "1410685589", "test"));
  CAF_CHECK(!verify_url_signature("", "test", "1410685589", "test"));
  CAF_CHECK(!verify_url_signature("f21891de399b4e33a1a93c9a7b8a8fffb5a443ff", "test",
                                  "1410685589", "tesu"));
}

CAF_TEST(jssdk vectors) {
  int n = 0;
  for (const auto& v : all_vectors()) {
    if (v.kind != "jssdk")
      continue;
    ++n;
    CAF_MESSAGE("vector " << v.id);
    auto ts = std::stoll(v.at("timestamp"));
    auto sig = sign_jssdk(v.at("jsapi_ticket"), v.at("url"), v.at("noncestr"), ts);
    CAF_CHECK_EQUAL(sig.signature, v.at("signature"));
    CAF_CHECK_EQUAL(sig.noncestr, v.at("noncestr"));
    CAF_CHECK_EQUAL(sig.timestamp, ts);
    // The fragment is not part of the signed URL.
    auto frag = sign_jssdk(v.at("jsapi_ticket"), v.at("url") + "#/page?x=1", v.at("noncestr"), ts);
    CAF_CHECK_EQUAL(frag.signature, v.at("signature"));
  }
  CAF_CHECK_EQUAL(n, 4);
}

CAF_TEST(jssdk string to sign of V11a) {
  const auto& v = vec("V11a");
  auto plain = "jsapi_ticket=" + v.at("jsapi_ticket") + "&noncestr=" + v.at("noncestr")
               + "&timestamp=" + v.at("timestamp") + "&url=" + v.at("url");
  CAF_CHECK_EQUAL(sha1_hex(plain), "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
}

CAF_TEST(jssdk defaults pick a random nonce and the current time) {
  auto before = now_s();
  auto a = sign_jssdk("ticket", "https://example.com/");
  auto b = sign_jssdk("ticket", "https://example.com/");
  auto after = now_s();
  CAF_CHECK_EQUAL(a.noncestr.size(), 16u);
  CAF_CHECK(alnum(a.noncestr));
  CAF_CHECK_NOT_EQUAL(a.noncestr, b.noncestr);
  CAF_CHECK(a.timestamp >= before && a.timestamp <= after);
  auto again = sign_jssdk("ticket", "https://example.com/", a.noncestr, a.timestamp);
  CAF_CHECK_EQUAL(again.signature, a.signature);
}

CAF_TEST(card vectors) {
  int n = 0;
  for (const auto& v : all_vectors()) {
    if (v.kind != "card")
      continue;
    ++n;
    CAF_MESSAGE("vector " << v.id);
    CAF_CHECK_EQUAL(card_sign_values(v.lists.at("values")), v.at("signature"));
    // Empty values (omitted code/openid) contribute nothing.
    auto with_empty = v.lists.at("values");
    with_empty.insert(with_empty.begin(), "");
    with_empty.push_back("");
    CAF_CHECK_EQUAL(card_sign_values(with_empty), v.at("signature"));
  }
  CAF_CHECK_EQUAL(n, 5);
}

CAF_TEST(sign_card adds nonce and timestamp) {
  // V12a split into signed fields: code, card_id, api_ticket + nonce/timestamp.
  auto sig = sign_card({"1434008071", "pjZ8Yt1XGILfi-FUsewpnnolGgZk", "ojZ8YtyVyr30HheH3CM73y7h4jJE",
                        "" /* openid omitted */},
                       "123", 1404896688);
  CAF_CHECK_EQUAL(sig.signature, "f137ab68b7f8112d20ee528ab6074564e2796250");
  CAF_CHECK_EQUAL(sig.nonce_str, "123");
  CAF_CHECK_EQUAL(sig.timestamp, 1404896688);
  // V12b: api_ticket, card_id with wechatpy's nonce/timestamp.
  auto b = sign_card({"sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
                      "random_card_id"},
                     "Wm3WZYTPz0wzccnW", 1414587457);
  CAF_CHECK_EQUAL(b.signature, "22dce6bad4db532d4a2ef82ca2ca7bbe1e10ef28");
  auto before = now_s();
  auto r = sign_card({"ticket", "card"});
  CAF_CHECK_EQUAL(r.nonce_str.size(), 16u);
  CAF_CHECK(alnum(r.nonce_str));
  CAF_CHECK(r.timestamp >= before && r.timestamp <= now_s());
  CAF_CHECK_EQUAL(r.signature, card_sign_values({"ticket", "card", r.nonce_str,
                                                 std::to_string(r.timestamp)}));
}

CAF_TEST(random nonces) {
  CAF_CHECK_EQUAL(random_nonce(0), "");
  auto a = random_nonce(1000);
  CAF_CHECK_EQUAL(a.size(), 1000u);
  CAF_CHECK(alnum(a));
  // Every class of character shows up in 1000 draws (probability of failure ~1e-100).
  CAF_CHECK(a.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos);
  CAF_CHECK(a.find_first_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos);
  CAF_CHECK(a.find_first_of("0123456789") != std::string::npos);
  CAF_CHECK_NOT_EQUAL(random_nonce(32), random_nonce(32));
}

CAF_TEST(constant time equality) {
  CAF_CHECK(constant_time_equal("", ""));
  CAF_CHECK(constant_time_equal("abc", "abc"));
  CAF_CHECK(!constant_time_equal("abc", "abd"));
  CAF_CHECK(!constant_time_equal("abc", "ab"));
  CAF_CHECK(!constant_time_equal("", "a"));
}
