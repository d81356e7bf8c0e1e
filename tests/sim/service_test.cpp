#define CAF_SUITE sim_service

#include "caf/test/dsl.hpp"

#include <random>

#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

#include "core/clock.hpp"
#include "sim/push.hpp"
#include "sim/service.hpp"
#include "tests/sim/sim_test_util.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/multipart.hpp"
#include "wechat/push.hpp"

using namespace wh;
using namespace wh::sim;
using namespace wh::sim::test;

namespace {

service_options make_options() {
  service_options opts;
  opts.apps = {{"wx1", "s1"}, {"wx2", "s2"}};
  opts.components = {{"wxcomp", "csecret", "ctoken", test_aes_key}};
  return opts;
}

struct fixture {
  manual_clock clk{1'700'000'000};
  service svc{clk, make_options()};

  outcome call(std::string method, std::string target, std::string body = {},
               std::string content_type = "application/json") {
    return svc.handle(http_request{std::move(method), std::move(target), std::move(content_type),
                                   std::move(body)});
  }

  boost::json::object json(std::string method, std::string target, std::string body = {}) {
    auto out = call(std::move(method), std::move(target), std::move(body));
    CAF_REQUIRE_EQUAL(out.reply.status, 200u);
    return boost::json::parse(out.reply.body).as_object();
  }

  std::string token(const std::string& appid = "wx1", const std::string& secret = "s1") {
    auto a = json("GET", "/cgi-bin/token?grant_type=client_credential&appid=" + appid
                           + "&secret=" + secret);
    return str(a, "access_token");
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(sim_service_tests, fixture)

CAF_TEST(token endpoints over the router) {
  CAF_CHECK(!token().empty());
  CAF_CHECK_EQUAL(code(json("GET", "/cgi-bin/token?grant_type=client_credential&appid=wx9&secret=x")),
                  40013);
  CAF_CHECK_EQUAL(code(json("GET", "/cgi-bin/stable_token")), 43002);
  CAF_CHECK_EQUAL(code(json("POST", "/cgi-bin/stable_token", "{not json")), 47001);
  auto a = json("POST", "/cgi-bin/stable_token",
                R"({"grant_type":"client_credential","appid":"wx1","secret":"s1","force_refresh":false})");
  CAF_CHECK_EQUAL(num(a, "expires_in"), 7200);
  auto b = json("POST", "/cgi-bin/stable_token",
                R"({"grant_type":"client_credential","appid":"wx1","secret":"s1"})");
  CAF_CHECK_EQUAL(str(a, "access_token"), str(b, "access_token"));
  auto t = str(a, "access_token");
  CAF_CHECK_EQUAL(code(json("GET", "/cgi-bin/ticket/getticket?access_token=" + t + "&type=jsapi")), 0);
  CAF_CHECK_EQUAL(code(json("POST", "/cgi-bin/material/batchget_material?access_token=" + t,
                            R"({"type":"image","offset":0,"count":20})")),
                  0);
  CAF_CHECK_EQUAL(code(json("POST", "/cgi-bin/material/batchget_material")), 41001);
  auto unknown = call("GET", "/cgi-bin/nope");
  CAF_CHECK_EQUAL(unknown.reply.status, 404u);
  CAF_CHECK_EQUAL(call("GET", "no-slash").reply.status, 404u);
}

CAF_TEST(stats count every upstream call under its appid) {
  auto t = token();
  json("GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=bad");
  json("GET", "/cgi-bin/ticket/getticket?access_token=" + t + "&type=jsapi");
  json("GET", "/cgi-bin/ticket/getticket?access_token=junk&type=jsapi");
  json("POST", "/cgi-bin/component/api_component_token", R"({"component_appid":"wxcomp"})");
  json("GET", "/sim/time");
  auto& st = svc.stats();
  CAF_CHECK_EQUAL(st.get("/cgi-bin/token", "wx1"), 2);
  CAF_CHECK_EQUAL(st.get("/cgi-bin/ticket/getticket", "wx1"), 1);
  CAF_CHECK_EQUAL(st.get("/cgi-bin/ticket/getticket", ""), 1);
  CAF_CHECK_EQUAL(st.get("/cgi-bin/component/api_component_token", "wxcomp"), 1);
  auto stats = json("GET", "/sim/stats");
  CAF_CHECK_EQUAL(num(stats, "total"), 5);
  CAF_CHECK_EQUAL(stats.at("calls").at("/cgi-bin/token").at("wx1").as_int64(), 2);
  CAF_CHECK_EQUAL(code(json("POST", "/sim/reset")), 0);
  CAF_CHECK_EQUAL(num(json("GET", "/sim/stats"), "total"), 0);
  // Tokens survive a reset.
  CAF_CHECK_EQUAL(code(json("GET", "/cgi-bin/get_api_domain_ip?access_token=" + t)), 0);
}

CAF_TEST(faults) {
  CAF_CHECK_EQUAL(code(json("POST", "/sim/fault",
                            R"({"path":"/cgi-bin/token","kind":"errcode","errcode":-1,"times":2})")),
                  0);
  auto q = "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1";
  CAF_CHECK_EQUAL(code(json("GET", q)), -1);
  CAF_CHECK_EQUAL(code(json("GET", q)), -1);
  CAF_CHECK_EQUAL(code(json("GET", q)), 0);
  CAF_CHECK_EQUAL(svc.stats().get("/cgi-bin/token", "wx1"), 3);
  // Appid filter.
  json("POST", "/sim/fault", R"({"path":"*","appid":"wx2","kind":"http500","times":-1})");
  CAF_CHECK_EQUAL(code(json("GET", q)), 0);
  auto q2 = "/cgi-bin/token?grant_type=client_credential&appid=wx2&secret=s2";
  CAF_CHECK_EQUAL(call("GET", q2).reply.status, 500u);
  CAF_CHECK_EQUAL(call("GET", q2).reply.status, 500u);
  json("POST", "/sim/clear_faults");
  CAF_CHECK_EQUAL(code(json("GET", q2)), 0);
  // html, drop, latency.
  json("POST", "/sim/fault", R"({"kind":"html"})");
  auto html = call("GET", q);
  CAF_CHECK_EQUAL(html.reply.status, 200u);
  CAF_CHECK(html.reply.content_type.starts_with("text/html"));
  json("POST", "/sim/fault", R"({"kind":"drop"})");
  CAF_CHECK_EQUAL(call("GET", q).reply.status, 0u);
  json("POST", "/sim/fault", R"({"kind":"latency","latency_ms":250})");
  auto p = svc.prepare(http_request{"GET", q, "", ""});
  CAF_CHECK_EQUAL(p.delay_ms, 250);
  CAF_CHECK(!p.fault);
  CAF_CHECK_EQUAL(code(boost::json::parse(svc.execute(p).reply.body).as_object()), 0);
  // Control calls are never faulted.
  json("POST", "/sim/fault", R"({"kind":"drop","times":-1})");
  CAF_CHECK_EQUAL(call("GET", "/sim/time").reply.status, 200u);
  json("POST", "/sim/clear_faults");
  // Bad rules.
  CAF_CHECK_EQUAL(call("POST", "/sim/fault", R"({"kind":"boom"})").reply.status, 400u);
  CAF_CHECK_EQUAL(call("POST", "/sim/fault", R"([1,2])").reply.status, 400u);
  CAF_CHECK_EQUAL(call("POST", "/sim/fault", "{{{").reply.status, 400u);
}

CAF_TEST(clock quota invalidate and state controls) {
  auto now = num(json("GET", "/sim/time"), "now");
  CAF_CHECK_EQUAL(now, 1'700'000'000);
  auto t = token();
  json("POST", "/sim/advance", R"({"seconds":7200})");
  CAF_CHECK_EQUAL(num(json("GET", "/sim/time"), "now"), now + 7200);
  CAF_CHECK_EQUAL(code(json("GET", "/cgi-bin/get_api_domain_ip?access_token=" + t)), 42001);
  CAF_CHECK_EQUAL(call("POST", "/sim/advance", "{}").reply.status, 400u);
  json("POST", "/sim/quota", R"({"appid":"wx1","remaining":0})");
  CAF_CHECK_EQUAL(code(json("GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1")),
                  45009);
  CAF_CHECK_EQUAL(call("POST", "/sim/quota", R"({"appid":"nope","remaining":1})").reply.status,
                  404u);
  auto t2 = token("wx2", "s2");
  CAF_CHECK_EQUAL(code(json("POST", "/sim/invalidate", R"({"appid":"wx2"})")), 0);
  CAF_CHECK_EQUAL(code(json("GET", "/cgi-bin/ticket/getticket?access_token=" + t2 + "&type=jsapi")),
                  40001);
  auto st = json("GET", "/sim/state?appid=wx1");
  CAF_CHECK_EQUAL(str(st, "classic_token"), t);
  CAF_CHECK(st.at("tickets").is_object());
  CAF_CHECK_EQUAL(call("GET", "/sim/state?appid=zzz").reply.status, 404u);
}

CAF_TEST(media upload records the file) {
  auto t = token();
  wechat::form_part media{"media", "pic.jpg", "image/jpeg", std::string("\xff\xd8\xff\0abc", 7)};
  auto boundary = wechat::make_boundary();
  auto body = wechat::build_multipart({media}, boundary);
  auto out = call("POST", "/cgi-bin/media/upload?access_token=" + t + "&type=image", body,
                  wechat::multipart_content_type(boundary));
  auto a = boost::json::parse(out.reply.body).as_object();
  CAF_CHECK_EQUAL(str(a, "type"), "image");
  CAF_CHECK(!str(a, "media_id").empty());
  wechat::form_part desc{"description", "", "", R"({"title":"T","introduction":"I"})"};
  body = wechat::build_multipart({media, desc}, boundary);
  out = call("POST", "/cgi-bin/material/add_material?access_token=" + t + "&type=video", body,
             wechat::multipart_content_type(boundary));
  a = boost::json::parse(out.reply.body).as_object();
  CAF_CHECK_EQUAL(code(a), 0);
  CAF_CHECK(a.contains("url"));
  auto list = json("GET", "/sim/media").at("media").as_array();
  CAF_REQUIRE_EQUAL(list.size(), 2u);
  auto& m = list[1].as_object();
  CAF_CHECK_EQUAL(str(m, "filename"), "pic.jpg");
  CAF_CHECK_EQUAL(str(m, "content_type"), "image/jpeg");
  CAF_CHECK_EQUAL(num(m, "size"), 7);
  CAF_CHECK_EQUAL(str(m, "md5").size(), 32u);
  CAF_CHECK_EQUAL(str(m, "description"), R"({"title":"T","introduction":"I"})");
  // Broken forms and token errors.
  out = call("POST", "/cgi-bin/media/upload?access_token=" + t + "&type=image", "garbage",
             "multipart/form-data; boundary=x");
  CAF_CHECK_EQUAL(code(boost::json::parse(out.reply.body).as_object()), 41005);
  out = call("POST", "/cgi-bin/media/upload?access_token=bad&type=image", body,
             wechat::multipart_content_type(boundary));
  CAF_CHECK_EQUAL(code(boost::json::parse(out.reply.body).as_object()), 40001);
}

CAF_TEST(push requests are sealed like WeChat does) {
  CAF_CHECK_EQUAL(call("POST", "/sim/push", R"({"component_appid":"wxcomp"})").reply.status, 400u);
  CAF_CHECK_EQUAL(code(json("POST", "/sim/register_push",
                            R"({"component_appid":"wxcomp","url":"http://127.0.0.1:1/wechat/component/wxcomp/events"})")),
                  0);
  CAF_CHECK_EQUAL(call("POST", "/sim/register_push",
                       R"({"component_appid":"wxcomp","url":"ftp://x"})").reply.status,
                  400u);
  auto out = call("POST", "/sim/push",
                  R"({"component_appid":"wxcomp","info_type":"component_verify_ticket"})");
  CAF_REQUIRE(out.push);
  CAF_CHECK(out.wait_for_push);
  auto ticket = str(out.push_info, "ticket");
  CAF_CHECK(!ticket.empty());
  std::string error;
  auto sealed = build_push(*out.push, error);
  CAF_REQUIRE(sealed);
  auto url = boost::urls::parse_absolute_uri(sealed->url);
  CAF_REQUIRE(url);
  CAF_CHECK_EQUAL(url->encoded_path(), "/wechat/component/wxcomp/events");
  std::string ts, nonce, sig, plain_sig, encrypt_type;
  for (auto p : url->params()) {
    if (p.key == "timestamp") ts = p.value;
    if (p.key == "nonce") nonce = p.value;
    if (p.key == "msg_signature") sig = p.value;
    if (p.key == "signature") plain_sig = p.value;
    if (p.key == "encrypt_type") encrypt_type = p.value;
  }
  CAF_CHECK_EQUAL(ts, "1700000000");
  CAF_CHECK_EQUAL(encrypt_type, "aes");
  CAF_CHECK_EQUAL(plain_sig, wechat::sorted_sha1({"ctoken", ts, nonce}));
  CAF_CHECK(sealed->body.starts_with("<xml><AppId><![CDATA[wxcomp]]></AppId><Encrypt><![CDATA["));
  auto crypto = wechat::msg_crypto::make(test_aes_key, "ctoken", "wxcomp");
  CAF_REQUIRE(crypto);
  auto ev = wechat::open_push(*crypto, sealed->body, ts, nonce, sig);
  CAF_REQUIRE(ev);
  CAF_CHECK_EQUAL(ev->info_type, "component_verify_ticket");
  CAF_CHECK_EQUAL(ev->component_verify_ticket, ticket);
  // Independent check of the decrypted layout.
  auto env = wechat::parse_envelope(sealed->body);
  CAF_REQUIRE(env);
  auto xml = crypto->decrypt(env->encrypt);
  CAF_REQUIRE(xml);
  CAF_CHECK(xml->find("<InfoType><![CDATA[component_verify_ticket]]></InfoType>")
            != std::string::npos);
  CAF_CHECK(xml->find("<CreateTime>1700000000</CreateTime>") != std::string::npos);
  // The pushed ticket buys a component token.
  auto tok = json("POST", "/cgi-bin/component/api_component_token",
                  R"({"component_appid":"wxcomp","component_appsecret":"csecret","component_verify_ticket":")"
                    + ticket + R"("})");
  auto ctoken = str(tok, "component_access_token");
  CAF_REQUIRE(!ctoken.empty());
  // Authorized event with its code, then the code exchange (access_token= alias).
  out = call("POST", "/sim/push",
             R"({"component_appid":"wxcomp","info_type":"authorized","authorizer_appid":"wxa"})");
  CAF_REQUIRE(out.push);
  auto auth_code = str(out.push_info, "authorization_code");
  sealed = build_push(*out.push, error);
  CAF_REQUIRE(sealed);
  url = boost::urls::parse_absolute_uri(sealed->url);
  for (auto p : url->params()) {
    if (p.key == "nonce") nonce = p.value;
    if (p.key == "msg_signature") sig = p.value;
  }
  ev = wechat::open_push(*crypto, sealed->body, ts, nonce, sig);
  CAF_REQUIRE(ev);
  CAF_CHECK_EQUAL(ev->authorizer_appid, "wxa");
  CAF_CHECK_EQUAL(ev->authorization_code, auth_code);
  CAF_CHECK_EQUAL(ev->authorization_code_expired_time, 1'700'000'600);
  auto q = json("POST", "/cgi-bin/component/api_query_auth?access_token=" + ctoken,
                R"({"component_appid":"wxcomp","authorization_code":")" + auth_code + R"("})");
  CAF_CHECK_EQUAL(str(q.at("authorization_info").as_object(), "authorizer_appid"), "wxa");
  auto list = json("POST", "/cgi-bin/component/api_get_authorizer_list?component_access_token="
                             + ctoken,
                   R"({"component_appid":"wxcomp","offset":0,"count":10})");
  CAF_CHECK_EQUAL(num(list, "total_count"), 1);
  // start_push_ticket yields a fire-and-forget push.
  auto sp = call("POST", "/cgi-bin/component/api_start_push_ticket",
                 R"({"component_appid":"wxcomp","component_secret":"csecret"})");
  CAF_CHECK(sp.push);
  CAF_CHECK(!sp.wait_for_push);
  CAF_CHECK_EQUAL(sp.reply.body, R"({"errcode":0,"errmsg":"ok"})");
}

CAF_TEST(sim authorizers creates a batch the component can refresh) {
  CAF_CHECK_EQUAL(call("GET", "/sim/authorizers", R"({"component_appid":"wxcomp","count":1})")
                    .reply.status,
                  405u);
  CAF_CHECK_EQUAL(call("POST", "/sim/authorizers", R"({"component_appid":"wxcomp"})").reply.status,
                  400u);
  CAF_CHECK_EQUAL(
    call("POST", "/sim/authorizers", R"({"component_appid":"wxcomp","count":0})").reply.status,
    400u);
  CAF_CHECK_EQUAL(
    call("POST", "/sim/authorizers", R"({"component_appid":"wxcomp","count":1000001})").reply.status,
    400u);
  CAF_CHECK_EQUAL(
    call("POST", "/sim/authorizers", R"({"component_appid":"nope","count":1})").reply.status, 404u);
  auto res = json("POST", "/sim/authorizers",
                  R"({"component_appid":"wxcomp","count":100000,"prefix":"wxb"})");
  auto& list = res.at("authorizers").as_array();
  CAF_REQUIRE_EQUAL(list.size(), 100000u);
  auto& last = list.back().as_object();
  CAF_CHECK_EQUAL(str(last, "authorizer_appid"), "wxb000100000");
  // Default prefix.
  auto small = json("POST", "/sim/authorizers", R"({"component_appid":"wxcomp","count":"2"})");
  CAF_CHECK_EQUAL(str(small.at("authorizers").as_array()[1].as_object(), "authorizer_appid"),
                  "wxa000000002");
  // The token chain works for a bulk authorizer, and control calls are not
  // upstream calls.
  CAF_CHECK_EQUAL(num(svc.stats().to_json(), "total"), 0);
  auto push = call("POST", "/sim/push",
                   R"({"component_appid":"wxcomp","url":"http://127.0.0.1:1/x"})");
  auto ticket = str(push.push_info, "ticket");
  auto tok = json("POST", "/cgi-bin/component/api_component_token",
                  R"({"component_appid":"wxcomp","component_appsecret":"csecret","component_verify_ticket":")"
                    + ticket + R"("})");
  auto ctoken = str(tok, "component_access_token");
  auto at = json("POST", "/cgi-bin/component/api_authorizer_token?component_access_token=" + ctoken,
                 R"({"component_appid":"wxcomp","authorizer_appid":"wxb000100000","authorizer_refresh_token":")"
                   + str(last, "refresh_token") + R"("})");
  CAF_CHECK(!str(at, "authorizer_access_token").empty());
}

CAF_TEST(component token answers 61005 for unknown tickets and 61006 by fault) {
  auto body = std::string{
    R"({"component_appid":"wxcomp","component_appsecret":"csecret","component_verify_ticket":"ticket@@@nope"})"};
  CAF_CHECK_EQUAL(code(json("POST", "/cgi-bin/component/api_component_token", body)), 61005);
  json("POST", "/sim/fault",
       R"({"path":"/cgi-bin/component/api_component_token","kind":"errcode","errcode":61006})");
  CAF_CHECK_EQUAL(code(json("POST", "/cgi-bin/component/api_component_token", body)), 61006);
  CAF_CHECK_EQUAL(code(json("POST", "/cgi-bin/component/api_component_token", body)), 61005);
}

CAF_TEST(push urls from the options are registered at startup) {
  auto opts = make_options();
  opts.push_urls = {{"wxcomp", "http://127.0.0.1:1/wechat/component/wxcomp/events"}};
  service svc2{clk, opts};
  CAF_CHECK_EQUAL(str(*svc2.sim().describe("wxcomp"), "push_url"),
                  "http://127.0.0.1:1/wechat/component/wxcomp/events");
  auto pushes = svc2.periodic_pushes();
  CAF_REQUIRE_EQUAL(pushes.size(), 1u);
  CAF_CHECK(pushes[0].verify_ticket.starts_with("ticket@@@"));
  // The service without registrations has nothing to push.
  CAF_CHECK(svc.periodic_pushes().empty());
}

CAF_TEST(random and malformed input never throws) {
  std::mt19937 rng{42}; // fixed seed: reproducible failures
  const std::vector<std::string> paths = {
    "/cgi-bin/token", "/cgi-bin/stable_token", "/cgi-bin/ticket/getticket",
    "/cgi-bin/media/upload", "/cgi-bin/material/add_material",
    "/cgi-bin/component/api_component_token", "/cgi-bin/component/api_query_auth",
    "/cgi-bin/component/api_get_authorizer_list", "/sim/fault", "/sim/push", "/sim/advance",
    "/sim/quota", "/sim/state", "/sim/invalidate", "/sim/register_push", "/sim/authorizers",
    "/%zz", "//", ""};
  const std::vector<std::string> bodies = {
    "", "{", "[]", "null", "{\"appid\":1}", "{\"component_appid\":[1]}",
    "{\"seconds\":\"x\"}", "{\"offset\":-5,\"count\":1e300,\"component_appid\":\"wxcomp\"}",
    std::string(100, '['), "{\"kind\":\"latency\",\"latency_ms\":-1}",
    "{\"info_type\":\"authorized\",\"component_appid\":\"wxcomp\",\"url\":\"http://[::1\"}",
    "{\"component_appid\":\"wxcomp\",\"count\":3,\"prefix\":\"wx\\u0000\"}"};
  for (int i = 0; i < 2000; ++i) {
    std::string target = paths[rng() % paths.size()];
    if (rng() % 2)
      target += "?access_token=%" + std::to_string(rng() % 1000) + "&type=&appid";
    std::string body = bodies[rng() % bodies.size()];
    if (rng() % 4 == 0)
      for (auto& c : body)
        c = static_cast<char>(rng());
    auto out = call(rng() % 2 ? "POST" : "GET", target, body,
                    rng() % 2 ? "multipart/form-data; boundary=\"" : "application/json");
    CAF_CHECK(out.reply.status == 0 || out.reply.status >= 200);
  }
  // The sim still works afterwards.
  CAF_CHECK(!token().empty());
}

CAF_TEST_FIXTURE_SCOPE_END()
