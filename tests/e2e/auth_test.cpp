#define CAF_SUITE e2e_auth

#include "caf/test/dsl.hpp"

#include "http/auth.hpp"
#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

struct key_pair {
  std::string key = http::generate_client_key();
  std::string toml(const std::string& name, const std::string& scopes, bool admin = false) const {
    return "[[client]]\nname = \"" + name + "\"\nkey_sha256 = \"" + http::sha256_hex(key)
           + "\"\nscopes = " + scopes + (admin ? "\nadmin = true\n" : "\n");
  }
};

struct fixture {
  hub_env env;
  key_pair app_key, comp_key, auth_key, admin_key, wrong;
  std::string comp = component_appid;

  fixture() {
    env.start_hub(component_toml() + app_key.toml("billing", R"(["wxe2e"])")
                  + comp_key.toml("platform", "[\"" + comp + "/*\"]")
                  + auth_key.toml("one-shop", "[\"" + comp + "/wxauthorizer0009\"]")
                  + admin_key.toml("ops", R"(["*"])", true));
    // Tokens for the component flow (the push receiver needs no key).
    env.sim("POST", "/sim/push",
            R"({"component_appid":")" + comp + R"(","info_type":"component_verify_ticket","url":")"
              + env.hub_url() + "/wechat/component/" + comp + "/events\"}");
    env.sim("POST", "/sim/push",
            R"({"component_appid":")" + comp
              + R"(","info_type":"authorized","authorizer_appid":"wxauthorizer0009","url":")" + env.hub_url()
              + "/wechat/component/" + comp + "/events\"}");
  }

  unsigned status_with(const std::string& key, const std::string& method, const std::string& target,
                       const std::string& body = {}) {
    env.bearer = key;
    auto res = env.hub(method, target, body);
    env.bearer.clear();
    if (res.status == 401 || res.status == 403) {
      auto obj = parse_object(res.body);
      CAF_CHECK_EQUAL(obj.size(), 4u);
      CAF_CHECK(res.body.find(key.empty() ? "no-key" : key) == std::string::npos);
    }
    return res.status;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(auth_tests, fixture)

CAF_TEST(every token endpoint checks key and scope) {
  struct endpoint {
    std::string method, target, body;
    const key_pair* allowed;
  };
  std::vector<endpoint> endpoints{
    {"GET", "/client/access_token?appid=wxe2e", "", &app_key},
    {"POST", "/refresh/access_token", R"({"appid":"wxe2e","access_token":"OLD"})", &app_key},
    {"GET", "/client/ticket?appid=wxe2e&type=jsapi", "", &app_key},
    {"GET", "/client/component_access_token?appid=" + comp, "", &comp_key},
    {"POST", "/client/refresh_component_access_token", R"({"appid":")" + comp + R"(","access_token":"OLD"})",
     &comp_key},
    {"GET", "/client/access_token?appid=" + comp + "&authorizer_appid=wxauthorizer0009", "", &auth_key},
    {"POST", "/refresh/access_token",
     R"({"appid":")" + comp + R"(","authorizer_appid":"wxauthorizer0009","access_token":"OLD"})", &auth_key},
    {"GET", "/client/ticket?appid=" + comp + "&authorizer_appid=wxauthorizer0009&type=wx_card", "", &auth_key},
  };
  for (auto& e : endpoints) {
    CAF_MESSAGE(e.method << " " << e.target);
    CAF_CHECK_EQUAL(status_with("", e.method, e.target, e.body), 401u);
    CAF_CHECK_EQUAL(status_with(wrong.key, e.method, e.target, e.body), 401u);
    CAF_CHECK_EQUAL(status_with(e.allowed->key, e.method, e.target, e.body), 200u);
    // Some other (valid) key out of scope.
    for (auto* k : {&app_key, &comp_key, &auth_key}) {
      if (k == e.allowed)
        continue;
      // The component key's "C/*" also covers the authorizer.
      bool covers = k == &comp_key && e.allowed == &auth_key;
      CAF_CHECK_EQUAL(status_with(k->key, e.method, e.target, e.body), covers ? 200u : 403u);
    }
    CAF_CHECK_EQUAL(status_with(admin_key.key, e.method, e.target, e.body), 200u); // "*"
  }
  // Out of scope is 403 even for appids that do not exist (no probing).
  CAF_CHECK_EQUAL(status_with(app_key.key, "GET", "/client/access_token?appid=wxnothere"), 403u);
}

CAF_TEST(admin metrics health and push routes) {
  auto list = "/admin/components/" + comp + "/authorizers";
  CAF_CHECK_EQUAL(status_with("", "GET", list), 401u);
  CAF_CHECK_EQUAL(status_with(wrong.key, "GET", list), 401u);
  CAF_CHECK_EQUAL(status_with(comp_key.key, "GET", list), 403u); // valid but not admin
  CAF_CHECK_EQUAL(status_with(admin_key.key, "GET", list), 200u);
  // /metrics needs any valid key; /healthz stays open.
  CAF_CHECK_EQUAL(status_with("", "GET", "/metrics"), 401u);
  CAF_CHECK_EQUAL(status_with(wrong.key, "GET", "/metrics"), 401u);
  CAF_CHECK_EQUAL(status_with(app_key.key, "GET", "/metrics"), 200u);
  CAF_CHECK_EQUAL(status_with("", "GET", "/healthz"), 200u);
  // The push receiver needs no key, only a valid signature.
  CAF_CHECK_EQUAL(status_with("", "POST", "/wechat/component/" + comp + "/events?timestamp=1&nonce=1", "<xml/>"),
                  401u);
  auto log = env.hub_log();
  for (auto* k : {&app_key, &comp_key, &auth_key, &admin_key, &wrong})
    CAF_CHECK(log.find(k->key) == std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST(protected mode refuses an open non-loopback listener) {
  temp_dir dir;
  auto cfg = "[hub]\nlisten = \"0.0.0.0:0\"\ndata_dir = \"" + (dir / "data") + "\"\n";
  write_file(dir / "open.toml", cfg);
  auto p = process::spawn({bin("wechat-hub"), "--config", dir / "open.toml"}, dir / "out.log");
  int code = 0;
  CAF_REQUIRE(p.wait_for(std::chrono::seconds(10), code));
  CAF_CHECK_EQUAL(code, 2);
  CAF_CHECK(read_file(dir / "out.log").find("refuses to listen on 0.0.0.0") != std::string::npos);
  // allow_open = true starts, with a warning.
  write_file(dir / "open2.toml", "[hub]\nlisten = \"0.0.0.0:0\"\nallow_open = true\ndata_dir = \""
                                   + (dir / "data2") + "\"\n");
  auto q = process::spawn({bin("wechat-hub"), "--config", dir / "open2.toml", "--port-file", dir / "port"},
                          dir / "out2.log");
  CAF_CHECK_NOT_EQUAL(wait_for_port(dir / "port", q), 0);
  CAF_CHECK(read_file(dir / "out2.log").find("running OPEN") != std::string::npos);
}
