#define CAF_SUITE client_signature

#include "caf/test/dsl.hpp"

#include <algorithm>
#include <cctype>

#include "client/client.hpp"
#include "tests/wechat/vectors.hpp"

using namespace wh;

namespace {

bool is_timestamp(const std::string& s) {
  return !s.empty() && s[0] != '0'
         && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

} // namespace

CAF_TEST(sign_jssdk reproduces the published vectors) {
  int checked = 0;
  for (auto& v : test::all_vectors()) {
    if (v.kind != "jssdk")
      continue;
    auto ts = std::stoll(v.at("timestamp"));
    auto sig = client::sign_jssdk(v.at("jsapi_ticket"), v.at("url"), v.at("noncestr"), ts);
    CAF_CHECK_EQUAL(sig.signature, v.at("signature"));
    CAF_CHECK_EQUAL(sig.noncestr, v.at("noncestr"));
    CAF_CHECK_EQUAL(sig.timestamp, ts);
    // The fragment is not part of what WeChat signs.
    auto with_fragment = client::sign_jssdk(v.at("jsapi_ticket"), v.at("url") + "#/page?x=1",
                                            v.at("noncestr"), ts);
    CAF_CHECK_EQUAL(with_fragment.signature, v.at("signature"));
    ++checked;
  }
  CAF_CHECK(checked >= 4);
}

CAF_TEST(sign_jssdk fills in nonce and timestamp) {
  auto sig = client::sign_jssdk("ticket", "https://example.com/");
  CAF_CHECK_EQUAL(sig.noncestr.size(), 16u);
  CAF_CHECK(sig.timestamp > 1'600'000'000);
  CAF_CHECK_EQUAL(sig.signature.size(), 40u);
}

CAF_TEST(sign_card reproduces the published vectors) {
  int checked = 0;
  for (auto& v : test::all_vectors()) {
    if (v.kind != "card" || !v.lists.count("values"))
      continue;
    // The card signature sorts all values, so any numeric value can play the
    // timestamp and any other one the nonce.
    auto values = v.lists.at("values");
    auto ts_it = std::find_if(values.begin(), values.end(), is_timestamp);
    if (ts_it == values.end() || values.size() < 2)
      continue;
    auto ts = std::stoll(*ts_it);
    values.erase(ts_it);
    auto nonce = values.front();
    values.erase(values.begin());
    auto sig = client::sign_card(values, nonce, ts);
    CAF_CHECK_EQUAL(sig.signature, v.at("signature"));
    CAF_CHECK_EQUAL(sig.nonce_str, nonce);
    CAF_CHECK_EQUAL(sig.timestamp, ts);
    ++checked;
  }
  CAF_CHECK(checked >= 5);
}

CAF_TEST(sign_card official example) {
  auto sig = client::sign_card({"1434008071", "pjZ8Yt1XGILfi-FUsewpnnolGgZk",
                                "ojZ8YtyVyr30HheH3CM73y7h4jJE"},
                               "123", 1404896688);
  CAF_CHECK_EQUAL(sig.signature, "f137ab68b7f8112d20ee528ab6074564e2796250");
}

CAF_TEST(token kinds follow the path) {
  using client::account;
  using client::token_kind;
  auto app = account::app("wxA");
  auto auth = account::authorizer("wxC", "wxB");
  auto comp = account::component("wxC");
  CAF_CHECK(app.kind_for("/cgi-bin/component/api_query_auth") == token_kind::access_token);
  CAF_CHECK(auth.kind_for("/cgi-bin/component/api_query_auth")
            == token_kind::component_access_token);
  CAF_CHECK(comp.kind_for("https://api.weixin.qq.com/cgi-bin/component/x?a=1")
            == token_kind::component_access_token);
  CAF_CHECK(auth.kind_for("/sns/oauth2/component/access_token")
            == token_kind::component_access_token);
  CAF_CHECK(auth.kind_for("/cgi-bin/message/custom/send") == token_kind::access_token);
  CAF_CHECK(client::is_token_error(40001));
  CAF_CHECK(client::is_token_error(40014));
  CAF_CHECK(client::is_token_error(42001));
  CAF_CHECK(!client::is_token_error(45009));
}
