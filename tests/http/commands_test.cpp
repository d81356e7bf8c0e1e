#define CAF_SUITE http_commands

#include "caf/test/dsl.hpp"

#include "core/error.hpp"
#include "http/commands.hpp"

using namespace wh;
using namespace wh::http;

namespace {

request json_body(std::string body) {
  request req;
  req.method = "POST";
  req.content_type = "application/json";
  req.body = std::move(body);
  return req;
}

request form_body(std::string body) {
  auto req = json_body(std::move(body));
  req.content_type = "application/x-www-form-urlencoded";
  return req;
}

/// The error detail of a failed parse ("<parsed>" when it succeeded).
template <class T>
std::string problem(const caf::expected<T>& x) {
  if (x)
    return "<parsed>";
  CAF_CHECK(code_of(x.error()) == ec::invalid_request);
  return detail_of(x.error());
}

} // namespace

CAF_TEST(token queries) {
  auto q = parse_token_query({{"appid", "wx1"}, {"authorizer_appid", "wxa"}});
  CAF_REQUIRE(q);
  CAF_CHECK_EQUAL(q->ref.appid, "wx1");
  CAF_CHECK_EQUAL(q->ref.authorizer, "wxa");
  CAF_CHECK_EQUAL(q->ref.key(), "wx1/wxa");
  q = parse_token_query({{"appid", "wx1"}, {"authorizer_appid", ""}});
  CAF_REQUIRE(q);
  CAF_CHECK_EQUAL(q->ref.key(), "wx1");
  CAF_CHECK_EQUAL(problem(parse_token_query({})), "appid is required");
  CAF_CHECK_EQUAL(problem(parse_token_query({{"appid", ""}})), "appid is required");
  CAF_CHECK_EQUAL(problem(parse_token_query({{"appid", "wx 1"}})),
                  "appid must be 1-64 characters of [A-Za-z0-9_-]");
  CAF_CHECK_EQUAL(problem(parse_token_query({{"appid", std::string(65, 'a')}})),
                  "appid must be 1-64 characters of [A-Za-z0-9_-]");
  CAF_CHECK_EQUAL(problem(parse_token_query({{"appid", "wx1"}, {"authorizer_appid", "../x"}})),
                  "authorizer_appid must be 1-64 characters of [A-Za-z0-9_-]");
}

CAF_TEST(refresh commands from JSON and form bodies) {
  auto cmd = parse_refresh(json_body(R"({"appid":"wx1","access_token":"old"})"), true);
  CAF_REQUIRE(cmd);
  CAF_CHECK_EQUAL(cmd->ref.appid, "wx1");
  CAF_CHECK_EQUAL(cmd->stale, "old");
  // null or missing: a GET in disguise.
  cmd = parse_refresh(json_body(R"({"appid":"wx1","access_token":null})"), true);
  CAF_REQUIRE(cmd);
  CAF_CHECK(cmd->stale.empty());
  cmd = parse_refresh(form_body("appid=wx1&authorizer_appid=wxa&access_token=old"), true);
  CAF_REQUIRE(cmd);
  CAF_CHECK_EQUAL(cmd->ref.key(), "wx1/wxa");
  CAF_CHECK_EQUAL(cmd->stale, "old");
  // Components: authorizer_appid is not read.
  cmd = parse_refresh(json_body(R"({"appid":"wxc","authorizer_appid":"bad id"})"), false);
  CAF_REQUIRE(cmd);
  CAF_CHECK(cmd->ref.authorizer.empty());
  CAF_CHECK_EQUAL(problem(parse_refresh(json_body("[1]"), true)), "body must be a JSON object");
  CAF_CHECK_EQUAL(problem(parse_refresh(json_body("{"), true)), "body must be a JSON object");
  CAF_CHECK_EQUAL(problem(parse_refresh(json_body(R"({"appid":1})"), true)), "appid must be a string");
  CAF_CHECK_EQUAL(problem(parse_refresh(form_body("appid=%zz"), true)), "malformed form body");
  CAF_CHECK_EQUAL(problem(parse_refresh(json_body(R"({"access_token":"x"})"), true)), "appid is required");
  CAF_CHECK_EQUAL(problem(parse_refresh(json_body(R"({"appid":"wx1","access_token":")"
                                                  + std::string(2049, 'x') + "\"}"),
                                        true)),
                  "access_token is too long");
}

CAF_TEST(ticket queries) {
  auto q = parse_ticket_query({{"appid", "wx1"}, {"type", "wx_card"}});
  CAF_REQUIRE(q);
  CAF_CHECK_EQUAL(q->type, "wx_card");
  CAF_CHECK_EQUAL(problem(parse_ticket_query({{"appid", "wx1"}})), "type must be jsapi or wx_card");
  CAF_CHECK_EQUAL(problem(parse_ticket_query({{"appid", "wx1"}, {"type", "JSAPI"}})),
                  "type must be jsapi or wx_card");
  // The appid is checked first.
  CAF_CHECK_EQUAL(problem(parse_ticket_query({{"type", "jsapi"}})), "appid is required");
}

CAF_TEST(admin keys and cluster keys) {
  auto ref = parse_admin_key(json_body(R"({"appid":"wx1"})"), {}, true);
  CAF_REQUIRE(ref);
  CAF_CHECK_EQUAL(ref->key(), "wx1");
  ref = parse_admin_key({}, {{"appid", "wxc"}, {"authorizer_appid", "wxa"}}, false);
  CAF_REQUIRE(ref);
  CAF_CHECK_EQUAL(ref->key(), "wxc/wxa");
  // clear_quota takes the appid only, from the body.
  ref = parse_quota_key(json_body(R"({"appid":"wx1","authorizer_appid":"wxa"})"), {}, true);
  CAF_REQUIRE(ref);
  CAF_CHECK_EQUAL(ref->key(), "wx1");
  auto key = parse_cluster_key({});
  CAF_REQUIRE(key);
  CAF_CHECK(key->empty());
  key = parse_cluster_key({{"key", "wxc/wxa"}});
  CAF_REQUIRE(key);
  CAF_CHECK_EQUAL(*key, "wxc/wxa");
  CAF_CHECK_EQUAL(problem(parse_cluster_key({{"key", "wxc/"}})),
                  "key must be an appid or component/authorizer");
  CAF_CHECK_EQUAL(problem(parse_cluster_key({{"key", "a/b/c"}})),
                  "key must be an appid or component/authorizer");
}

CAF_TEST(definitions) {
  auto app = parse_app_definition("wx1", json_body(R"({"secret":"s","token_api":"classic"})"));
  CAF_REQUIRE(app);
  CAF_CHECK_EQUAL(app->appid, "wx1");
  CAF_CHECK_EQUAL(app->secret, "s");
  CAF_CHECK(app->api == token_api::classic);
  app = parse_app_definition("wx1", json_body(R"({"secret":"s"})"));
  CAF_REQUIRE(app);
  CAF_CHECK(app->api == token_api::stable);
  CAF_CHECK_EQUAL(problem(parse_app_definition("wx1", json_body("{}"))), "secret is required");
  CAF_CHECK_EQUAL(problem(parse_app_definition(
                    "wx1", json_body(R"({"secret":")" + std::string(257, 's') + "\"}"))),
                  "secret is required");
  CAF_CHECK_EQUAL(problem(parse_app_definition("wx1", json_body(R"({"secret":"s","token_api":"x"})"))),
                  "token_api must be stable or classic");
  CAF_CHECK_EQUAL(problem(parse_path_appid("a/b")), "malformed appid");
  CAF_CHECK_EQUAL(problem(parse_path_appid("")), "malformed appid");
  auto comp = parse_component_definition(
    "wxc", json_body(R"({"secret":"s","token":"t","encoding_aes_key":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"})"));
  CAF_REQUIRE(comp);
  CAF_CHECK_EQUAL(comp->token, "t");
  CAF_CHECK_EQUAL(problem(parse_component_definition(
                    "wxc", json_body(R"({"secret":"s","token":"t","encoding_aes_key":"short"})"))),
                  "token and a 43-character encoding_aes_key are required");
}

CAF_TEST(authorizer pages imports and grants) {
  auto p = parse_page({});
  CAF_REQUIRE(p);
  CAF_CHECK_EQUAL(p->offset, 0u);
  CAF_CHECK_EQUAL(p->limit, 100u);
  p = parse_page({{"offset", "5"}, {"limit", "5000"}});
  CAF_REQUIRE(p);
  CAF_CHECK_EQUAL(p->offset, 5u);
  CAF_CHECK_EQUAL(p->limit, 1000u);
  CAF_CHECK_EQUAL(problem(parse_page({{"limit", "many"}})), "offset and limit must be numbers");
  auto items = parse_authorizer_import(
    json_body(R"({"authorizers":[{"authorizer_appid":"wxa","refresh_token":"r"}]})"));
  CAF_REQUIRE(items);
  CAF_CHECK_EQUAL(items->size(), 1u);
  CAF_CHECK_EQUAL(problem(parse_authorizer_import(json_body(R"({"authorizers":{}})"))),
                  R"(body must be {"authorizers": [{"authorizer_appid", "refresh_token"}, ...]})");
  CAF_CHECK_EQUAL(problem(parse_authorizer_import(json_body(
                    R"({"authorizers":[{"authorizer_appid":"wxa","refresh_token":"r"},{"authorizer_appid":"wxb"}]})"))),
                  "entry 1 needs a valid authorizer_appid and a non-empty refresh_token");
  std::string many = R"({"authorizers":[)";
  for (int i = 0; i < 10'001; ++i)
    many += std::string{i ? "," : ""} + "1";
  many += "]}";
  CAF_CHECK_EQUAL(problem(parse_authorizer_import(json_body(many))), "at most 10000 authorizers per request");
  auto rt = parse_authorizer_grant(json_body(R"({"refresh_token":"r"})"));
  CAF_REQUIRE(rt);
  CAF_CHECK_EQUAL(*rt, "r");
  CAF_CHECK_EQUAL(problem(parse_authorizer_grant(json_body("{}"))), "refresh_token is required");
  // An empty authorizer in the path is no path at all; a malformed one is bad input.
  auto a = parse_path_authorizer("");
  CAF_REQUIRE(!a);
  CAF_CHECK(code_of(a.error()) == ec::not_found);
  CAF_CHECK_EQUAL(problem(parse_path_authorizer("a/b")), "malformed authorizer appid");
}

CAF_TEST(push queries) {
  auto q = parse_push_query({{"timestamp", "1"}, {"nonce", "n"}, {"msg_signature", "s"}, {"signature", "x"}});
  CAF_CHECK_EQUAL(q.timestamp, "1");
  CAF_CHECK_EQUAL(q.nonce, "n");
  CAF_CHECK_EQUAL(q.signature, "s");
  CAF_CHECK(parse_push_query({}).signature.empty());
}
