#define CAF_SUITE wechat_api

#include "caf/test/dsl.hpp"

#include <string>
#include <vector>

#include "wechat/api.hpp"

using namespace wh::wechat;

namespace {

// Odd credentials: every character class a query string or JSON can trip on.
constexpr const char* odd_appid = "wx a&b=c";
constexpr const char* odd_appid_enc = "wx%20a%26b%3Dc";
constexpr const char* odd_secret = "s+/?#%\xC3\xA9\"\\-_.~";
constexpr const char* odd_secret_enc = "s%2B%2F%3F%23%25%C3%A9%22%5C-_.~";
constexpr const char* odd_secret_json = "s+/?#%\xC3\xA9\\\"\\\\-_.~";

// Marks secrets and tokens in replies: no error detail may ever carry it.
constexpr const char* secret = "S3CR3T-VALUE";

void check_fault(const reply_error& err, reply_fault expected, unsigned status) {
  CAF_CHECK_EQUAL(reply_fault_name(err.fault), std::string{reply_fault_name(expected)});
  CAF_CHECK_EQUAL(err.http_status, status);
  CAF_CHECK(!err.detail.empty());
  CAF_CHECK_EQUAL(err.detail.find(secret), std::string::npos);
}

/// Bodies each parser must refuse, every one holding `secret` somewhere.
struct bad_reply {
  unsigned status;
  std::string body;
  reply_fault fault;
};

std::vector<bad_reply> common_bad_replies() {
  std::string s = secret;
  return {
    {200, "", reply_fault::not_json},
    {200, "not json " + s, reply_fault::not_json},
    {200, "[\"" + s + "\"]", reply_fault::not_json},
    {200, "{\"access_token\":\"" + s + "\"", reply_fault::not_json}, // truncated
    {200, "\"" + s + "\"", reply_fault::not_json},
    {500, "<html><body>" + s + "</body></html>", reply_fault::http_status},
    {502, "{\"access_token\":\"" + s + "\",\"expires_in\":7200}", reply_fault::http_status},
    {200, "{\"errcode\":40001,\"errmsg\":\"invalid credential\",\"access_token\":\"" + s + "\"}",
     reply_fault::errcode},
  };
}

template <class Parse>
void check_common_faults(Parse parse) {
  for (auto& bad : common_bad_replies()) {
    CAF_MESSAGE("status " << bad.status << " body " << bad.body);
    auto res = parse(bad.status, bad.body);
    CAF_REQUIRE(!res);
    check_fault(res.error(), bad.fault, bad.status);
  }
}

} // namespace

// -- requests -------------------------------------------------------------------

CAF_TEST(stable_token posts the credentials as JSON) {
  auto r = stable_token("wx1", "sec", false);
  CAF_CHECK_EQUAL(r.endpoint, "stable_token");
  CAF_CHECK_EQUAL(r.method, "POST");
  CAF_CHECK_EQUAL(r.target, "/cgi-bin/stable_token");
  CAF_CHECK_EQUAL(r.body,
                  R"({"grant_type":"client_credential","appid":"wx1","secret":"sec","force_refresh":false})");
  auto f = stable_token(odd_appid, odd_secret, true);
  CAF_CHECK_EQUAL(f.endpoint, "stable_token_force");
  CAF_CHECK_EQUAL(f.target, "/cgi-bin/stable_token");
  CAF_CHECK_EQUAL(f.body, std::string{R"({"grant_type":"client_credential","appid":")"} + odd_appid
                            + R"(","secret":")" + odd_secret_json + R"(","force_refresh":true})");
}

CAF_TEST(classic token puts the encoded credentials in the query) {
  auto r = classic_token("wx1", "sec");
  CAF_CHECK_EQUAL(r.endpoint, "token");
  CAF_CHECK_EQUAL(r.method, "GET");
  CAF_CHECK_EQUAL(r.target, "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=sec");
  CAF_CHECK_EQUAL(r.body, "");
  auto odd = classic_token(odd_appid, odd_secret);
  CAF_CHECK_EQUAL(odd.target, std::string{"/cgi-bin/token?grant_type=client_credential&appid="}
                                + odd_appid_enc + "&secret=" + odd_secret_enc);
}

CAF_TEST(component endpoints) {
  auto ct = component_token("wxc", odd_secret, "ticket@@@1");
  CAF_CHECK_EQUAL(ct.endpoint, "api_component_token");
  CAF_CHECK_EQUAL(ct.method, "POST");
  CAF_CHECK_EQUAL(ct.target, "/cgi-bin/component/api_component_token");
  CAF_CHECK_EQUAL(ct.body, std::string{R"({"component_appid":"wxc","component_appsecret":")"} + odd_secret_json
                             + R"(","component_verify_ticket":"ticket@@@1"})");

  auto at = authorizer_token(odd_secret, "wxc", "wxa", "refreshtoken@@@x");
  CAF_CHECK_EQUAL(at.endpoint, "api_authorizer_token");
  CAF_CHECK_EQUAL(at.method, "POST");
  CAF_CHECK_EQUAL(at.target, std::string{"/cgi-bin/component/api_authorizer_token?component_access_token="}
                               + odd_secret_enc);
  CAF_CHECK_EQUAL(at.body,
                  R"({"component_appid":"wxc","authorizer_appid":"wxa","authorizer_refresh_token":"refreshtoken@@@x"})");

  auto push = start_push_ticket("wxc", "sec");
  CAF_CHECK_EQUAL(push.endpoint, "api_start_push_ticket");
  CAF_CHECK_EQUAL(push.method, "POST");
  CAF_CHECK_EQUAL(push.target, "/cgi-bin/component/api_start_push_ticket");
  CAF_CHECK_EQUAL(push.body, R"({"component_appid":"wxc","component_secret":"sec"})");

  auto list = authorizer_list("ctok&x", "wxc", 1000, 500);
  CAF_CHECK_EQUAL(list.endpoint, "api_get_authorizer_list");
  CAF_CHECK_EQUAL(list.method, "POST");
  CAF_CHECK_EQUAL(list.target,
                  "/cgi-bin/component/api_get_authorizer_list?component_access_token=ctok%26x");
  CAF_CHECK_EQUAL(list.body, R"({"component_appid":"wxc","offset":1000,"count":500})");

  auto qa = query_auth("ctok=", "wxc", "queryauthcode@@@abc");
  CAF_CHECK_EQUAL(qa.endpoint, "api_query_auth");
  CAF_CHECK_EQUAL(qa.method, "POST");
  CAF_CHECK_EQUAL(qa.target, "/cgi-bin/component/api_query_auth?component_access_token=ctok%3D");
  CAF_CHECK_EQUAL(qa.body, R"({"component_appid":"wxc","authorization_code":"queryauthcode@@@abc"})");
}

CAF_TEST(endpoints called with an access token) {
  auto ip = api_domain_ip("tok/+");
  CAF_CHECK_EQUAL(ip.endpoint, "get_api_domain_ip");
  CAF_CHECK_EQUAL(ip.method, "GET");
  CAF_CHECK_EQUAL(ip.target, "/cgi-bin/get_api_domain_ip?access_token=tok%2F%2B");
  CAF_CHECK_EQUAL(ip.body, "");

  auto js = get_ticket("tok 1", "jsapi");
  CAF_CHECK_EQUAL(js.endpoint, "getticket");
  CAF_CHECK_EQUAL(js.method, "GET");
  CAF_CHECK_EQUAL(js.target, "/cgi-bin/ticket/getticket?access_token=tok%201&type=jsapi");
  CAF_CHECK_EQUAL(get_ticket("t", "wx_card").target, "/cgi-bin/ticket/getticket?access_token=t&type=wx_card");
  CAF_CHECK_EQUAL(js.body, "");

  auto cq = clear_quota("tok#1", odd_appid);
  CAF_CHECK_EQUAL(cq.endpoint, "clear_quota");
  CAF_CHECK_EQUAL(cq.method, "POST");
  CAF_CHECK_EQUAL(cq.target, "/cgi-bin/clear_quota?access_token=tok%231");
  CAF_CHECK_EQUAL(cq.body, std::string{R"({"appid":")"} + odd_appid + R"("})");
}

CAF_TEST(endpoint labels never carry parameters) {
  for (auto& r : {stable_token(secret, secret, true), classic_token(secret, secret),
                  component_token(secret, secret, secret), authorizer_token(secret, secret, secret, secret),
                  start_push_ticket(secret, secret), api_domain_ip(secret), authorizer_list(secret, secret, 0, 1),
                  query_auth(secret, secret, secret), get_ticket(secret, "jsapi"), clear_quota(secret, secret)}) {
    CAF_CHECK_EQUAL(r.endpoint.find(secret), std::string::npos);
    CAF_CHECK_EQUAL(r.endpoint.find_first_of("?&=/"), std::string::npos);
  }
}

// -- replies --------------------------------------------------------------------

CAF_TEST(token replies of each kind) {
  auto oa = parse_token(token_type::access_token, 200, R"({"access_token":"ACCESS_TOKEN","expires_in":7200})");
  CAF_REQUIRE(oa);
  CAF_CHECK_EQUAL(oa->access_token, "ACCESS_TOKEN");
  CAF_CHECK_EQUAL(oa->expires_in, 7200);
  CAF_CHECK_EQUAL(oa->refresh_token, "");
  // The protocol doc's §10 fixtures (wechatpy).
  auto ct = parse_token(token_type::component_access_token, 200,
                        R"({"component_access_token":"1234567890","expires_in":7200})");
  CAF_REQUIRE(ct);
  CAF_CHECK_EQUAL(ct->access_token, "1234567890");
  auto at = parse_token(token_type::authorizer_access_token, 200,
                        R"({"authorizer_access_token":"1234567890","expires_in":7200,"authorizer_refresh_token":"123456789"})");
  CAF_REQUIRE(at);
  CAF_CHECK_EQUAL(at->access_token, "1234567890");
  CAF_CHECK_EQUAL(at->expires_in, 7200);
  CAF_CHECK_EQUAL(at->refresh_token, "123456789");
  // A refresh token is optional and read for authorizers only.
  auto no_rt = parse_token(token_type::authorizer_access_token, 200,
                           R"({"authorizer_access_token":"a","expires_in":10,"authorizer_refresh_token":""})");
  CAF_REQUIRE(no_rt);
  CAF_CHECK_EQUAL(no_rt->refresh_token, "");
  auto oa_rt = parse_token(token_type::access_token, 200,
                           R"({"access_token":"a","expires_in":10,"authorizer_refresh_token":"r"})");
  CAF_REQUIRE(oa_rt);
  CAF_CHECK_EQUAL(oa_rt->refresh_token, "");
  // errcode 0 next to the token is a success (getticket style).
  CAF_CHECK(parse_token(token_type::access_token, 200, R"({"errcode":0,"errmsg":"ok","access_token":"a","expires_in":1})"));
}

CAF_TEST(token replies: the field of another kind is missing) {
  auto res = parse_token(token_type::component_access_token, 200, R"({"access_token":"a","expires_in":7200})");
  CAF_REQUIRE(!res);
  check_fault(res.error(), reply_fault::missing_field, 200);
  CAF_CHECK_EQUAL(res.error().detail, "WeChat's token answer lacks the token or expires_in");
}

CAF_TEST(token replies: missing fields and wrong types) {
  std::string s = secret;
  for (auto body : {std::string{"{}"}, R"({"access_token":")" + s + R"("})", std::string{R"({"expires_in":7200})"},
                    R"({"access_token":")" + s + R"(","expires_in":"7200"})",
                    R"({"access_token":")" + s + R"(","expires_in":0})",
                    R"({"access_token":")" + s + R"(","expires_in":-5})",
                    R"({"access_token":")" + s + R"(","expires_in":7200.5})",
                    R"({"access_token":")" + s + R"(","expires_in":2592001})",
                    R"({"access_token":")" + s + R"(","expires_in":18446744073709551615})",
                    std::string{R"({"access_token":"","expires_in":7200})"},
                    std::string{R"({"access_token":42,"expires_in":7200})"},
                    std::string{R"({"access_token":null,"expires_in":7200})"},
                    R"({"access_token":")" + std::string(2049, 'x') + R"(","expires_in":7200})"}) {
    CAF_MESSAGE(body.substr(0, 80));
    auto res = parse_token(token_type::access_token, 200, body);
    CAF_REQUIRE(!res);
    check_fault(res.error(), reply_fault::missing_field, 200);
  }
  // The limits themselves are accepted.
  CAF_CHECK(parse_token(token_type::access_token, 200,
                        R"({"access_token":")" + std::string(2048, 'x') + R"(","expires_in":2592000})"));
}

CAF_TEST(token replies: errcodes keep errcode and errmsg) {
  auto res = parse_token(token_type::access_token, 200,
                         R"({"errcode":45009,"errmsg":"reach max api daily quota limit rid: 1"})");
  CAF_REQUIRE(!res);
  check_fault(res.error(), reply_fault::errcode, 200);
  CAF_CHECK_EQUAL(res.error().errcode, 45009);
  CAF_CHECK_EQUAL(res.error().errmsg, "reach max api daily quota limit rid: 1");
  CAF_CHECK_EQUAL(res.error().detail, "WeChat errcode 45009");
  auto neg = parse_token(token_type::access_token, 200, R"({"errcode":-1,"errmsg":"system error"})");
  CAF_REQUIRE(!neg);
  CAF_CHECK_EQUAL(neg.error().errcode, -1);
  // errmsg is bounded, and an errcode without errmsg is still an errcode.
  auto longmsg = parse_token(token_type::access_token, 200,
                             R"({"errcode":40013,"errmsg":")" + std::string(500, 'm') + "\"}");
  CAF_REQUIRE(!longmsg);
  CAF_CHECK_EQUAL(longmsg.error().errmsg.size(), 200u);
  auto nomsg = parse_token(token_type::access_token, 200, R"({"errcode":40125})");
  CAF_REQUIRE(!nomsg);
  CAF_CHECK_EQUAL(nomsg.error().errcode, 40125);
  CAF_CHECK_EQUAL(nomsg.error().errmsg, "");
}

CAF_TEST(token replies: non-JSON and HTTP errors) {
  check_common_faults([](unsigned st, std::string_view b) { return parse_token(token_type::access_token, st, b); });
  auto html = parse_token(token_type::access_token, 503, "<html>busy</html>");
  CAF_REQUIRE(!html);
  CAF_CHECK_EQUAL(html.error().detail, "WeChat answered HTTP 503");
  CAF_CHECK_EQUAL(html.error().errcode, 0);
  // A JSON errcode in a non-200 answer is kept, but the fault is the status.
  auto json5xx = parse_token(token_type::access_token, 500, R"({"errcode":-1,"errmsg":"system error"})");
  CAF_REQUIRE(!json5xx);
  check_fault(json5xx.error(), reply_fault::http_status, 500);
  CAF_CHECK_EQUAL(json5xx.error().errcode, -1);
  CAF_CHECK_EQUAL(json5xx.error().errmsg, "system error");
  auto text = parse_token(token_type::access_token, 200, "upstream connect error");
  CAF_REQUIRE(!text);
  CAF_CHECK_EQUAL(text.error().detail, "WeChat answered a body that is not JSON");
}

CAF_TEST(ticket replies) {
  // The protocol doc's §3 example.
  auto ok = parse_ticket(200, R"({"errcode":0,"errmsg":"ok","ticket":"bxLdikRXVbTPdHSM05e5u5sUoXNKd8-41ZO3MhKoyN5OfkWITDGgnr2fwJ0m9E8NYzWKVZvdVtaUgWvsdshFKA","expires_in":7200})");
  CAF_REQUIRE(ok);
  CAF_CHECK_EQUAL(ok->ticket,
                  "bxLdikRXVbTPdHSM05e5u5sUoXNKd8-41ZO3MhKoyN5OfkWITDGgnr2fwJ0m9E8NYzWKVZvdVtaUgWvsdshFKA");
  CAF_CHECK_EQUAL(ok->expires_in, 7200);
  auto err = parse_ticket(200, R"({"errcode":40001,"errmsg":"invalid credential"})");
  CAF_REQUIRE(!err);
  check_fault(err.error(), reply_fault::errcode, 200);
  CAF_CHECK_EQUAL(err.error().errcode, 40001);
  std::string s = secret;
  for (auto body : {std::string{R"({"errcode":0,"errmsg":"ok"})"}, R"({"ticket":")" + s + R"("})",
                    R"({"ticket":")" + s + R"(","expires_in":null})", std::string{R"({"ticket":7,"expires_in":7200})"},
                    std::string{R"({"access_token":"a","expires_in":7200})"}}) {
    auto res = parse_ticket(200, body);
    CAF_REQUIRE(!res);
    check_fault(res.error(), reply_fault::missing_field, 200);
    CAF_CHECK_EQUAL(res.error().detail, "WeChat's getticket answer lacks ticket or expires_in");
  }
  check_common_faults([](unsigned st, std::string_view b) { return parse_ticket(st, b); });
}

CAF_TEST(authorizer list pages) {
  auto page = parse_authorizer_list(200, R"({"total_count":33,"list":[
      {"authorizer_appid":"wxa1","refresh_token":"rt1","auth_time":1558000607},
      {"authorizer_appid":"wxa2","refresh_token":"rt2","auth_time":1558000607}]})");
  CAF_REQUIRE(page);
  CAF_CHECK_EQUAL(page->total_count, 33);
  CAF_CHECK_EQUAL(page->entries, 2);
  CAF_REQUIRE_EQUAL(page->authorizers.size(), 2u);
  CAF_CHECK_EQUAL(page->authorizers[0].appid, "wxa1");
  CAF_CHECK_EQUAL(page->authorizers[0].refresh_token, "rt1");
  CAF_CHECK_EQUAL(page->authorizers[1].appid, "wxa2");
  CAF_CHECK_EQUAL(page->authorizers[1].refresh_token, "rt2");
}

CAF_TEST(authorizer list pages skip malformed entries but count them) {
  auto page = parse_authorizer_list(200, R"({"total_count":9,"list":[
      {"authorizer_appid":"wxa1","refresh_token":""},
      {"authorizer_appid":"wx a","refresh_token":"rt"},
      {"authorizer_appid":7,"refresh_token":"rt"},
      {"authorizer_appid":"wxa4"},
      {"authorizer_appid":"wxa5","refresh_token":")"
                                         + std::string(1025, 'r') + R"("},
      {"authorizer_appid":"wxa6","refresh_token":")" + std::string(1024, 'r') + R"("},
      "wxa7", null,
      {"authorizer_appid":"wxa9","refresh_token":"rt9"}]})");
  CAF_REQUIRE(page);
  CAF_CHECK_EQUAL(page->entries, 9);
  CAF_REQUIRE_EQUAL(page->authorizers.size(), 2u);
  CAF_CHECK_EQUAL(page->authorizers[0].appid, "wxa6");
  CAF_CHECK_EQUAL(page->authorizers[1].appid, "wxa9");
  // The last page: an empty list; total_count absent or of the wrong type reads as 0.
  auto last = parse_authorizer_list(200, R"({"total_count":"9","list":[]})");
  CAF_REQUIRE(last);
  CAF_CHECK_EQUAL(last->total_count, 0);
  CAF_CHECK_EQUAL(last->entries, 0);
  CAF_CHECK(last->authorizers.empty());
}

CAF_TEST(authorizer list faults) {
  for (auto body : {"{}", R"({"total_count":1})", R"({"total_count":1,"list":{}})", R"({"list":null})"}) {
    auto res = parse_authorizer_list(200, body);
    CAF_REQUIRE(!res);
    check_fault(res.error(), reply_fault::missing_field, 200);
    CAF_CHECK_EQUAL(res.error().detail, "api_get_authorizer_list answer lacks list");
  }
  auto err = parse_authorizer_list(200, R"({"errcode":61005,"errmsg":"component ticket is expired"})");
  CAF_REQUIRE(!err);
  CAF_CHECK_EQUAL(err.error().errcode, 61005);
  check_common_faults([](unsigned st, std::string_view b) { return parse_authorizer_list(st, b); });
}

CAF_TEST(query_auth replies) {
  // The protocol doc's §4.5 example (wechatpy fixture).
  auto ok = parse_query_auth(200, R"({"authorization_info":{"authorizer_appid":"wxf8b4f85f3a794e77","authorizer_access_token":"QXjUqNqfYVH0yBE1iIFes0qM","expires_in":7200,"authorizer_refresh_token":"dTo-YCXPL4llX-u1W1pPpnp8Hgm4wpJtlR6iV0doKdY","func_info":[{"funcscope_category":{"id":1}},{"funcscope_category":{"id":2}},{"funcscope_category":{"id":3}}]}})");
  CAF_REQUIRE(ok);
  CAF_CHECK_EQUAL(ok->authorizer_appid, "wxf8b4f85f3a794e77");
  CAF_CHECK_EQUAL(ok->access_token, "QXjUqNqfYVH0yBE1iIFes0qM");
  CAF_CHECK_EQUAL(ok->expires_in, 7200);
  CAF_CHECK_EQUAL(ok->refresh_token, "dTo-YCXPL4llX-u1W1pPpnp8Hgm4wpJtlR6iV0doKdY");
  auto err = parse_query_auth(200, R"({"errcode":61010,"errmsg":"code is expired"})");
  CAF_REQUIRE(!err);
  check_fault(err.error(), reply_fault::errcode, 200);
  CAF_CHECK_EQUAL(err.error().errcode, 61010);
  CAF_CHECK_EQUAL(err.error().errmsg, "code is expired");
  std::string s = secret;
  auto info = [](std::string fields) { return R"({"authorization_info":{)" + fields + "}}"; };
  std::string tok = R"("authorizer_access_token":")" + s + R"(","expires_in":7200)";
  std::string rt = R"("authorizer_refresh_token":")" + s + R"(")";
  for (auto body : {std::string{"{}"}, std::string{R"({"authorization_info":[]})"},
                    info(tok + "," + rt), // no appid
                    info(R"("authorizer_appid":"",)" + tok + "," + rt),
                    info(R"("authorizer_appid":")" + std::string(65, 'a') + "\"," + tok + "," + rt),
                    info(R"("authorizer_appid":7,)" + tok + "," + rt),
                    info(R"("authorizer_appid":"wxa",)" + tok), // no refresh token
                    info(R"("authorizer_appid":"wxa",)" + tok + R"(,"authorizer_refresh_token":"")"),
                    info(R"("authorizer_appid":"wxa",)" + tok + R"(,"authorizer_refresh_token":1)"),
                    info(R"("authorizer_appid":"wxa",)" + rt), // no access token
                    info(R"("authorizer_appid":"wxa","authorizer_access_token":")" + s + R"(",)" + rt),
                    info(R"("authorizer_appid":"wxa","authorizer_access_token":")" + s
                         + R"(","expires_in":"7200",)" + rt)}) {
    CAF_MESSAGE(body);
    auto res = parse_query_auth(200, body);
    CAF_REQUIRE(!res);
    check_fault(res.error(), reply_fault::missing_field, 200);
    CAF_CHECK_EQUAL(res.error().detail, "api_query_auth answer lacks authorization_info fields");
  }
  check_common_faults([](unsigned st, std::string_view b) { return parse_query_auth(st, b); });
}

CAF_TEST(errcode-only replies) {
  CAF_CHECK(parse_ack(200, R"({"errcode":0,"errmsg":"ok"})"));
  CAF_CHECK(parse_ack(200, R"({"ip_list":["1.2.3.4"]})"));
  CAF_CHECK(parse_ack(200, "{}"));
  auto err = parse_ack(200, R"({"errcode":42001,"errmsg":"access_token expired"})");
  CAF_REQUIRE(!err);
  check_fault(err.error(), reply_fault::errcode, 200);
  CAF_CHECK_EQUAL(err.error().errcode, 42001);
  CAF_CHECK_EQUAL(err.error().errmsg, "access_token expired");
  // An errcode of the wrong type is no errcode.
  CAF_CHECK(parse_ack(200, R"({"errcode":"40001"})"));
  check_common_faults([](unsigned st, std::string_view b) { return parse_ack(st, b); });
}

CAF_TEST(fault names are stable) {
  CAF_CHECK_EQUAL(reply_fault_name(reply_fault::http_status), std::string{"http_status"});
  CAF_CHECK_EQUAL(reply_fault_name(reply_fault::not_json), std::string{"not_json"});
  CAF_CHECK_EQUAL(reply_fault_name(reply_fault::errcode), std::string{"errcode"});
  CAF_CHECK_EQUAL(reply_fault_name(reply_fault::missing_field), std::string{"missing_field"});
  CAF_CHECK_EQUAL(token_field(token_type::access_token), std::string{"access_token"});
  CAF_CHECK_EQUAL(token_field(token_type::component_access_token), std::string{"component_access_token"});
  CAF_CHECK_EQUAL(token_field(token_type::authorizer_access_token), std::string{"authorizer_access_token"});
}
