#define CAF_SUITE wechat_push

#include "caf/test/dsl.hpp"

#include <random>

#include "core/error.hpp"
#include "tests/wechat/vectors.hpp"
#include "wechat/push.hpp"
#include "wechat/signature.hpp"

using namespace wh;
using namespace wh::wechat;
using wh::test::vec;

namespace {

constexpr const char* key_a = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
constexpr const char* component = "wx134c8103faa5a59e";

template <class T>
std::string problem(const caf::expected<T>& res) {
  if (res)
    return "<no error>";
  CAF_CHECK_EQUAL(code_of(res.error()), ec::invalid_request);
  CAF_CHECK_EQUAL(push_failure_of(res.error()), push_failure::malformed);
  return detail_of(res.error());
}

push_event ticket_event() {
  push_event ev;
  ev.info_type = "component_verify_ticket";
  ev.appid = component;
  ev.create_time = 1413192605;
  ev.component_verify_ticket = "ticket@@@abcdefg";
  return ev;
}

push_event authorized_event() {
  push_event ev;
  ev.info_type = "authorized";
  ev.appid = component;
  ev.create_time = 1413192760;
  ev.authorizer_appid = "wxba5fad812f8e6fb9";
  ev.authorization_code = "queryauthcode@@@xyz";
  ev.authorization_code_expired_time = 1413196360;
  ev.pre_auth_code = "preauthcode@@@abc";
  return ev;
}

void check_same(const push_event& a, const push_event& b) {
  CAF_CHECK_EQUAL(a.info_type, b.info_type);
  CAF_CHECK_EQUAL(a.appid, b.appid);
  CAF_CHECK_EQUAL(a.create_time, b.create_time);
  CAF_CHECK_EQUAL(a.component_verify_ticket, b.component_verify_ticket);
  CAF_CHECK_EQUAL(a.authorizer_appid, b.authorizer_appid);
  CAF_CHECK_EQUAL(a.authorization_code, b.authorization_code);
  CAF_CHECK_EQUAL(a.authorization_code_expired_time, b.authorization_code_expired_time);
  CAF_CHECK_EQUAL(a.pre_auth_code, b.pre_auth_code);
}

struct fixture {
  msg_crypto crypto = *msg_crypto::make(key_a, "AAAAA", component);
};

} // namespace

CAF_TEST(envelope with AppId or ToUserName) {
  auto a = parse_envelope("<xml><AppId><![CDATA[wx1]]></AppId><Encrypt><![CDATA[abc=]]></Encrypt></xml>");
  CAF_REQUIRE(a);
  CAF_CHECK_EQUAL(a->appid, "wx1");
  CAF_CHECK_EQUAL(a->encrypt, "abc=");
  auto b = parse_envelope("<?xml version=\"1.0\"?>\n<xml>\n  <ToUserName><![CDATA[gh_97417a04a28d]]>"
                          "</ToUserName>\n  <Encrypt>abc</Encrypt>\n</xml>\n");
  CAF_REQUIRE(b);
  CAF_CHECK_EQUAL(b->appid, "gh_97417a04a28d");
  CAF_CHECK_EQUAL(b->encrypt, "abc");
  // AppId wins over ToUserName.
  auto c = parse_envelope("<xml><ToUserName>gh</ToUserName><AppId>wx2</AppId><Encrypt>e</Encrypt></xml>");
  CAF_REQUIRE(c);
  CAF_CHECK_EQUAL(c->appid, "wx2");
}

CAF_TEST(malformed envelopes) {
  CAF_CHECK_EQUAL(problem(parse_envelope("")), "malformed XML: No document element found");
  CAF_CHECK_EQUAL(problem(parse_envelope("<xml><Encrypt>abc</Encrypt>")),
                  "malformed XML: Start-end tags mismatch");
  CAF_CHECK_EQUAL(problem(parse_envelope("<xml><AppId>wx</AppId></xml>")), "missing <Encrypt>");
  CAF_CHECK_EQUAL(problem(parse_envelope("<xml><AppId>wx</AppId><Encrypt></Encrypt></xml>")),
                  "missing <Encrypt>");
  CAF_CHECK_EQUAL(problem(parse_envelope("<xml><Encrypt>abc</Encrypt></xml>")),
                  "missing <AppId> or <ToUserName>");
  CAF_CHECK_EQUAL(problem(parse_envelope("<root><AppId>wx</AppId><Encrypt>e</Encrypt></root>")),
                  "XML root element must be <xml>");
  CAF_CHECK_EQUAL(problem(parse_envelope("<xml><AppId>wx</AppId><Encrypt>e</Encrypt></xml><xml/>")),
                  "XML has more than one root element");
  CAF_CHECK_EQUAL(problem(parse_envelope(
                    "<xml><AppId>wx</AppId><Encrypt>e</Encrypt><Encrypt>f</Encrypt></xml>")),
                  "duplicate <Encrypt>");
  CAF_CHECK_EQUAL(problem(parse_envelope("<xml><AppId>wx</AppId><Encrypt>e<b/></Encrypt></xml>")),
                  "unexpected markup in <Encrypt>");
}

CAF_TEST(DOCTYPE and entity declarations are refused) {
  const char* laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                       "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>"
                       "<xml><AppId>&lol2;</AppId><Encrypt>e</Encrypt></xml>";
  CAF_CHECK_EQUAL(problem(parse_envelope(laughs)),
                  "XML declarations (DOCTYPE/ENTITY) are not accepted");
  const char* xxe = "<!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
                    "<xml><AppId>&xxe;</AppId><Encrypt>e</Encrypt></xml>";
  CAF_CHECK_EQUAL(problem(parse_envelope(xxe)), "XML declarations (DOCTYPE/ENTITY) are not accepted");
  CAF_CHECK_EQUAL(problem(parse_event("<!doctype xml><xml/>")),
                  "XML declarations (DOCTYPE/ENTITY) are not accepted");
  // Comments and CDATA are fine.
  CAF_CHECK(parse_envelope("<!-- hi --><xml><AppId>wx</AppId><Encrypt><![CDATA[e]]></Encrypt></xml>"));
}

CAF_TEST(oversized input is refused before parsing) {
  std::string big = "<xml><AppId>wx</AppId><Encrypt>";
  big += std::string(max_push_bytes, 'A');
  big += "</Encrypt></xml>";
  CAF_CHECK_EQUAL(problem(parse_envelope(big)), "XML larger than 64 KiB");
  CAF_CHECK_EQUAL(problem(parse_event(big)), "XML larger than 64 KiB");
  // Exactly at the limit is parsed.
  std::string head = "<xml><AppId>wx</AppId><Encrypt>";
  std::string tail = "</Encrypt></xml>";
  std::string fit = head + std::string(max_push_bytes - head.size() - tail.size(), 'A') + tail;
  CAF_REQUIRE_EQUAL(fit.size(), max_push_bytes);
  CAF_CHECK(parse_envelope(fit));
}

CAF_TEST(deep nesting and odd but legal XML) {
  std::string deep = "<xml><AppId>wx</AppId><Encrypt>e</Encrypt>";
  for (int i = 0; i < 5000; ++i)
    deep += "<a>";
  for (int i = 0; i < 5000; ++i)
    deep += "</a>";
  deep += "</xml>";
  auto res = parse_envelope(deep);
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->encrypt, "e");
  // Character references are decoded; unknown fields ignored.
  auto esc = parse_envelope("<xml><AppId>w&#120;&amp;</AppId><Encrypt>e</Encrypt><Extra/></xml>");
  CAF_REQUIRE(esc);
  CAF_CHECK_EQUAL(esc->appid, "wx&");
}

CAF_TEST(events as documented) {
  auto t = parse_event("<xml><AppId>some_appid</AppId><CreateTime>1413192605</CreateTime>"
                       "<InfoType>component_verify_ticket</InfoType>"
                       "<ComponentVerifyTicket>some_verify_ticket</ComponentVerifyTicket></xml>");
  CAF_REQUIRE(t);
  CAF_CHECK_EQUAL(t->info_type, "component_verify_ticket");
  CAF_CHECK_EQUAL(t->appid, "some_appid");
  CAF_CHECK_EQUAL(t->create_time, 1413192605);
  CAF_CHECK_EQUAL(t->component_verify_ticket, "some_verify_ticket");
  auto a = parse_event("<xml><AppId>第三方平台appid</AppId><CreateTime>1413192760</CreateTime>"
                       "<InfoType>authorized</InfoType><AuthorizerAppid>公众号appid</AuthorizerAppid>"
                       "<AuthorizationCode>授权码</AuthorizationCode>"
                       "<AuthorizationCodeExpiredTime>1608190715</AuthorizationCodeExpiredTime>"
                       "<PreAuthCode>预授权码</PreAuthCode></xml>");
  CAF_REQUIRE(a);
  CAF_CHECK_EQUAL(a->info_type, "authorized");
  CAF_CHECK_EQUAL(a->appid, "第三方平台appid");
  CAF_CHECK_EQUAL(a->authorizer_appid, "公众号appid");
  CAF_CHECK_EQUAL(a->authorization_code, "授权码");
  CAF_CHECK_EQUAL(a->authorization_code_expired_time, 1608190715);
  CAF_CHECK_EQUAL(a->pre_auth_code, "预授权码");
  auto u = parse_event("<xml><AppId><![CDATA[wxc]]></AppId><CreateTime>1413192760</CreateTime>"
                       "<InfoType><![CDATA[unauthorized]]></InfoType>"
                       "<AuthorizerAppid><![CDATA[wxa]]></AuthorizerAppid></xml>");
  CAF_REQUIRE(u);
  CAF_CHECK_EQUAL(u->info_type, "unauthorized");
  CAF_CHECK_EQUAL(u->authorizer_appid, "wxa");
  CAF_CHECK_EQUAL(u->authorization_code, "");
  // Unknown InfoTypes pass with the common fields only.
  auto x = parse_event("<xml><AppId>wxc</AppId><CreateTime>1</CreateTime>"
                       "<InfoType>notify_third_fasteregister</InfoType><status>0</status></xml>");
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->info_type, "notify_third_fasteregister");
  CAF_CHECK_EQUAL(x->create_time, 1);
}

CAF_TEST(malformed events) {
  CAF_CHECK_EQUAL(problem(parse_event("<xml><AppId>a</AppId><CreateTime>1</CreateTime></xml>")),
                  "missing <InfoType>");
  CAF_CHECK_EQUAL(problem(parse_event("<xml><InfoType>x</InfoType><CreateTime>1</CreateTime></xml>")),
                  "missing <AppId>");
  CAF_CHECK_EQUAL(problem(parse_event("<xml><InfoType>x</InfoType><AppId>a</AppId></xml>")),
                  "missing <CreateTime>");
  for (auto t : {"-1", "12a", "1.5", " 1", "0x10", "9999999999999999999", ""}) {
    CAF_MESSAGE("CreateTime " << t);
    auto xml = std::string{"<xml><InfoType>x</InfoType><AppId>a</AppId><CreateTime>"} + t
               + "</CreateTime></xml>";
    CAF_CHECK_EQUAL(problem(parse_event(xml)),
                    *t ? "<CreateTime> is not a number" : "missing <CreateTime>");
  }
  CAF_CHECK_EQUAL(problem(parse_event("<xml><InfoType>component_verify_ticket</InfoType><AppId>a</AppId>"
                                      "<CreateTime>1</CreateTime></xml>")),
                  "missing <ComponentVerifyTicket>");
  CAF_CHECK_EQUAL(problem(parse_event("<xml><InfoType>authorized</InfoType><AppId>a</AppId>"
                                      "<CreateTime>1</CreateTime><AuthorizerAppid>b</AuthorizerAppid>"
                                      "</xml>")),
                  "missing <AuthorizationCode>");
  CAF_CHECK_EQUAL(problem(parse_event("<xml><InfoType>updateauthorized</InfoType><AppId>a</AppId>"
                                      "<CreateTime>1</CreateTime><AuthorizerAppid>b</AuthorizerAppid>"
                                      "<AuthorizationCode>c</AuthorizationCode>"
                                      "<AuthorizationCodeExpiredTime>soon</AuthorizationCodeExpiredTime>"
                                      "</xml>")),
                  "<AuthorizationCodeExpiredTime> is not a number");
  CAF_CHECK_EQUAL(problem(parse_event("<xml><InfoType>unauthorized</InfoType><AppId>a</AppId>"
                                      "<CreateTime>1</CreateTime></xml>")),
                  "missing <AuthorizerAppid>");
  CAF_CHECK_EQUAL(problem(parse_event("<xml><InfoType>a</InfoType><InfoType>b</InfoType></xml>")),
                  "duplicate <InfoType>");
}

CAF_TEST(event xml is rendered as WeChat sends it) {
  CAF_CHECK_EQUAL(build_event_xml(ticket_event()),
                  "<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>1413192605"
                  "</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType>"
                  "<ComponentVerifyTicket><![CDATA[ticket@@@abcdefg]]></ComponentVerifyTicket></xml>");
  CAF_CHECK_EQUAL(build_event_xml(authorized_event()),
                  "<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>1413192760"
                  "</CreateTime><InfoType><![CDATA[authorized]]></InfoType>"
                  "<AuthorizerAppid><![CDATA[wxba5fad812f8e6fb9]]></AuthorizerAppid>"
                  "<AuthorizationCode><![CDATA[queryauthcode@@@xyz]]></AuthorizationCode>"
                  "<AuthorizationCodeExpiredTime>1413196360</AuthorizationCodeExpiredTime>"
                  "<PreAuthCode><![CDATA[preauthcode@@@abc]]></PreAuthCode></xml>");
  push_event u;
  u.info_type = "unauthorized";
  u.appid = component;
  u.create_time = 7;
  u.authorizer_appid = "wxa";
  u.authorization_code = "ignored";
  CAF_CHECK_EQUAL(build_event_xml(u),
                  "<xml><AppId><![CDATA[wx134c8103faa5a59e]]></AppId><CreateTime>7</CreateTime>"
                  "<InfoType><![CDATA[unauthorized]]></InfoType>"
                  "<AuthorizerAppid><![CDATA[wxa]]></AuthorizerAppid></xml>");
}

CAF_TEST(event xml round trips including CDATA terminators) {
  for (auto ev : {ticket_event(), authorized_event()}) {
    auto parsed = parse_event(build_event_xml(ev));
    CAF_REQUIRE(parsed);
    check_same(*parsed, ev);
  }
  auto ev = ticket_event();
  ev.component_verify_ticket = "a]]>b]]]]>c<&>\"'";
  auto xml = build_event_xml(ev);
  CAF_CHECK_EQUAL(xml.find("a]]>b"), std::string::npos);
  auto parsed = parse_event(xml);
  CAF_REQUIRE(parsed);
  CAF_CHECK_EQUAL(parsed->component_verify_ticket, "a]]>b]]]]>c<&>\"'");
}

CAF_TEST_FIXTURE_SCOPE(push_tests, fixture)

CAF_TEST(seal then open) {
  for (auto ev : {ticket_event(), authorized_event()}) {
    auto sealed = seal_push(crypto, ev, "1714112445", "415670741", "0123456789abcdef");
    CAF_CHECK_EQUAL(sealed.timestamp, "1714112445");
    CAF_CHECK_EQUAL(sealed.nonce, "415670741");
    // The plain signature is V6c's (same token, timestamp, nonce).
    CAF_CHECK_EQUAL(sealed.signature, "6c5c811b55cc85e0e1b54100749188c20beb3f5d");
    auto env = parse_envelope(sealed.body);
    CAF_REQUIRE(env);
    CAF_CHECK_EQUAL(env->appid, component);
    CAF_CHECK_EQUAL(env->encrypt, crypto.encrypt(build_event_xml(ev), "0123456789abcdef"));
    CAF_CHECK_EQUAL(sealed.msg_signature, crypto.signature("1714112445", "415670741", env->encrypt));
    auto opened = open_push(crypto, sealed.body, sealed.timestamp, sealed.nonce, sealed.msg_signature);
    CAF_REQUIRE(opened);
    check_same(*opened, ev);
  }
}

CAF_TEST(seal defaults) {
  auto a = seal_push(crypto, ticket_event());
  auto b = seal_push(crypto, ticket_event());
  CAF_CHECK(!a.timestamp.empty());
  CAF_CHECK(a.nonce.find_first_not_of("0123456789") == std::string::npos);
  CAF_CHECK_NOT_EQUAL(a.body, b.body);
  CAF_CHECK(open_push(crypto, a.body, a.timestamp, a.nonce, a.msg_signature));
  CAF_CHECK(open_push(crypto, b.body, b.timestamp, b.nonce, b.msg_signature));
}

CAF_TEST(bad or missing signatures are a distinct failure) {
  auto s = seal_push(crypto, ticket_event(), "1714112445", "415670741");
  auto sig_failure = [&](std::string_view body, std::string_view ts, std::string_view nonce,
                         std::string_view sig) {
    auto res = open_push(crypto, body, ts, nonce, sig);
    if (res)
      return std::string{"<no error>"};
    CAF_CHECK_EQUAL(code_of(res.error()), ec::none);
    CAF_CHECK_EQUAL(push_failure_of(res.error()), push_failure::bad_signature);
    CAF_CHECK_EQUAL(std::string{to_string(push_failure_of(res.error()))}, "bad_signature");
    return detail_of(res.error());
  };
  CAF_CHECK_EQUAL(sig_failure(s.body, s.timestamp, s.nonce, ""),
                  "missing msg_signature, timestamp or nonce");
  CAF_CHECK_EQUAL(sig_failure(s.body, "", s.nonce, s.msg_signature),
                  "missing msg_signature, timestamp or nonce");
  CAF_CHECK_EQUAL(sig_failure(s.body, s.timestamp, "", s.msg_signature),
                  "missing msg_signature, timestamp or nonce");
  // The plain signature is not accepted in place of msg_signature.
  CAF_CHECK_EQUAL(sig_failure(s.body, s.timestamp, s.nonce, s.signature), "msg_signature mismatch");
  CAF_CHECK_EQUAL(sig_failure(s.body, "1714112446", s.nonce, s.msg_signature),
                  "msg_signature mismatch");
  CAF_CHECK_EQUAL(sig_failure(s.body, s.timestamp, "415670742", s.msg_signature),
                  "msg_signature mismatch");
  // Another token: same key and appid, different signature.
  auto other = *msg_crypto::make(key_a, "BBBBB", component);
  auto res = open_push(other, s.body, s.timestamp, s.nonce, s.msg_signature);
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(push_failure_of(res.error()), push_failure::bad_signature);
  // Tampering with Encrypt breaks the signature before any decryption.
  auto env = *parse_envelope(s.body);
  auto tampered = std::string{"<xml><AppId>"} + component + "</AppId><Encrypt>"
                  + (env.encrypt[0] == 'A' ? "B" : "A") + env.encrypt.substr(1) + "</Encrypt></xml>";
  CAF_CHECK_EQUAL(sig_failure(tampered, s.timestamp, s.nonce, s.msg_signature),
                  "msg_signature mismatch");
  CAF_CHECK_EQUAL(sig_failure(s.body, s.timestamp, s.nonce, s.msg_signature), "<no error>");
}

CAF_TEST(malformed pushes are invalid requests) {
  const std::string ts = "1714112445";
  const std::string nonce = "415670741";
  // Signed correctly but the body is not XML / not decryptable.
  CAF_CHECK_EQUAL(problem(open_push(crypto, "<xml>", ts, nonce, "abc")),
                  "malformed XML: Start-end tags mismatch");
  auto signed_body = [&](const std::string& encrypt) {
    return std::make_pair(std::string{"<xml><AppId>x</AppId><Encrypt>"} + encrypt + "</Encrypt></xml>",
                          crypto.signature(ts, nonce, encrypt));
  };
  auto [b1, s1] = signed_body("!!notbase64!!");
  CAF_CHECK_EQUAL(problem(open_push(crypto, b1, ts, nonce, s1)), "bad base64");
  auto [b2, s2] = signed_body(base64_encode(std::string(32, 'z')));
  CAF_CHECK_EQUAL(problem(open_push(crypto, b2, ts, nonce, s2)), "bad padding");
  // Encrypted for another component appid (trailing appid mismatch).
  auto foreign = *msg_crypto::make(key_a, "AAAAA", "wxba5fad812f8e6fb9");
  auto f = seal_push(foreign, ticket_event(), ts, nonce);
  CAF_CHECK_EQUAL(problem(open_push(crypto, f.body, f.timestamp, f.nonce, f.msg_signature)),
                  "appid mismatch");
  // Trailing appid right but the event names another component.
  auto ev = ticket_event();
  ev.appid = "wxother";
  auto g = seal_push(crypto, ev, ts, nonce);
  CAF_CHECK_EQUAL(problem(open_push(crypto, g.body, g.timestamp, g.nonce, g.msg_signature)),
                  "appid mismatch");
  // Decrypts fine but is not an event.
  auto [b3, s3] = signed_body(crypto.encrypt("hello", "0123456789abcdef"));
  CAF_CHECK_EQUAL(problem(open_push(crypto, b3, ts, nonce, s3)),
                  "malformed XML: No document element found");
  // A decrypted DOCTYPE is refused too.
  auto [b4, s4] = signed_body(crypto.encrypt("<!DOCTYPE x><xml/>"));
  CAF_CHECK_EQUAL(problem(open_push(crypto, b4, ts, nonce, s4)),
                  "XML declarations (DOCTYPE/ENTITY) are not accepted");
}

CAF_TEST(the published third-party example passes signature and decryption) {
  // V7c is the official third-party-platform XML example; its plaintext is a
  // reply, not an event, so open_push gets as far as the event parser.
  const auto& v = vec("V7c");
  auto c = *msg_crypto::make(v.at("encoding_aes_key"), v.at("token"), v.at("appid"));
  auto body = "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA["
              + v.at("encrypt") + "]]></Encrypt></xml>";
  auto res = open_push(c, body, v.at("timestamp"), v.at("nonce"), v.at("msg_signature"));
  CAF_CHECK_EQUAL(problem(res), "missing <InfoType>");
  auto bad = open_push(c, body, v.at("timestamp"), "415670740", v.at("msg_signature"));
  CAF_REQUIRE(!bad);
  CAF_CHECK_EQUAL(push_failure_of(bad.error()), push_failure::bad_signature);
}

CAF_TEST(push_failure classification) {
  CAF_CHECK_EQUAL(push_failure_of(caf::error{}), push_failure::none);
  CAF_CHECK_EQUAL(push_failure_of(make_detail_error(ec::invalid_request, "x")), push_failure::malformed);
  CAF_CHECK_EQUAL(push_failure_of(make_detail_error(ec::timeout, "x")), push_failure::none);
  CAF_CHECK_EQUAL(std::string{to_string(push_failure::malformed)}, "malformed");
  CAF_CHECK_EQUAL(std::string{to_string(push_failure::none)}, "none");
}

CAF_TEST(random and mutated input never crashes) {
  std::mt19937 rng{4242};
  auto s = seal_push(crypto, authorized_event(), "1714112445", "415670741");
  auto plain = build_event_xml(authorized_event());
  int accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string garbage(rng() % 300, '\0');
    for (auto& ch : garbage)
      ch = static_cast<char>(rng() & 0xff);
    CAF_CHECK(!parse_envelope(garbage));
    CAF_CHECK(!parse_event(garbage));
    // Mutate a few bytes of valid inputs.
    auto body = s.body;
    auto event = plain;
    for (int k = 0; k < 3; ++k) {
      body[rng() % body.size()] = static_cast<char>(rng() & 0xff);
      event[rng() % event.size()] = static_cast<char>(rng() & 0xff);
    }
    // Truncations.
    auto cut = plain.substr(0, rng() % plain.size());
    (void) parse_event(event);
    CAF_CHECK(!parse_event(cut));
    if (open_push(crypto, body, s.timestamp, s.nonce, s.msg_signature))
      ++accepted;
  }
  // A mutation inside markup or Encrypt must never yield an accepted push;
  // mutations in the unsigned outer AppId may (it is informational only).
  CAF_MESSAGE("accepted mutated pushes: " << accepted);
  CAF_CHECK_LESS(accepted, 5000 / 10);
}

CAF_TEST_FIXTURE_SCOPE_END()
