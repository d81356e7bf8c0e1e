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

/// Runs a command to completion; returns its exit code.
int run_to_file(const std::vector<std::string>& argv, const std::string& out) {
  std::remove(out.c_str());
  auto p = process::spawn(argv, out);
  int code = -1;
  p.wait_for(std::chrono::seconds(10), code);
  return code;
}

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

CAF_TEST(path keys and networks pass the same matrix) {
  // The same clients, now allowed to put their key in the path; plus a
  // key-less client identified by the loopback network with the app's scope.
  auto with_path = [](const key_pair& k, const std::string& name, const std::string& scopes) {
    return k.toml(name, scopes) + "path_key = true\n";
  };
  env.kill_hub();
  env.start_hub(component_toml() + with_path(app_key, "billing", R"(["wxe2e"])")
                + with_path(comp_key, "platform", "[\"" + comp + "/*\"]")
                + with_path(auth_key, "one-shop", "[\"" + comp + "/wxauthorizer0009\"]")
                + admin_key.toml("ops", R"(["*"])", true)
                + "[[client]]\nname = \"lan\"\nnetworks = [\"127.0.0.0/8\", \"::1/128\"]\nscopes = [\"wxe2e\"]\n");
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
    {"GET", "/client/ticket?appid=" + comp + "&authorizer_appid=wxauthorizer0009&type=wx_card", "", &auth_key},
  };
  auto in_path = [](const key_pair& k, const std::string& target) { return "/k/" + k.key + target; };
  for (auto& e : endpoints) {
    CAF_MESSAGE(e.method << " " << e.target);
    CAF_CHECK_EQUAL(status_with("", e.method, in_path(wrong, e.target), e.body), 401u);
    CAF_CHECK_EQUAL(status_with("", e.method, in_path(*e.allowed, e.target), e.body), 200u);
    for (auto* k : {&app_key, &comp_key, &auth_key}) {
      if (k == e.allowed)
        continue;
      bool covers = k == &comp_key && e.allowed == &auth_key;
      CAF_CHECK_EQUAL(status_with("", e.method, in_path(*k, e.target), e.body), covers ? 200u : 403u);
    }
    // admin_key has no path_key: refused in the path, accepted as a header.
    CAF_CHECK_EQUAL(status_with("", e.method, in_path(admin_key, e.target), e.body), 401u);
    CAF_CHECK_EQUAL(status_with(admin_key.key, e.method, e.target, e.body), 200u);
    // No key at all: the loopback network client and its scope.
    CAF_CHECK_EQUAL(status_with("", e.method, e.target, e.body), e.allowed == &app_key ? 200u : 403u);
  }
  // Admin routes take neither a path key nor a network identity.
  CAF_CHECK_EQUAL(status_with("", "GET", in_path(app_key, "/admin/apps")), 404u);
  CAF_CHECK_EQUAL(status_with("", "GET", "/admin/apps"), 403u);
  CAF_CHECK(env.hub_log().find(app_key.key) == std::string::npos);
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

CAF_TEST(every admin endpoint needs an admin key) {
  struct endpoint {
    std::string method, target, body;
  };
  std::vector<endpoint> endpoints{
    {"GET", "/admin/apps", ""},
    {"PUT", "/admin/apps/wxtmp", R"({"secret":"s"})"},
    {"DELETE", "/admin/apps/wxtmp", ""},
    {"GET", "/admin/components", ""},
    {"PUT", "/admin/components/wxctmp",
     R"({"secret":"s","token":"t","encoding_aes_key":")" + std::string(component_aes_key) + "\"}"},
    {"DELETE", "/admin/components/wxctmp", ""},
    {"GET", "/admin/components/" + comp + "/authorizers", ""},
    {"PUT", "/admin/components/" + comp + "/authorizers/wxtmpauth", R"({"refresh_token":"r"})"},
    {"POST", "/admin/components/" + comp + "/authorizers",
     R"({"authorizers":[{"authorizer_appid":"wxtmpauth2","refresh_token":"r"}]})"},
    {"DELETE", "/admin/components/" + comp + "/authorizers/wxtmpauth", ""},
    {"GET", "/admin/state?appid=wxe2e", ""},
    {"GET", "/admin/quota?appid=wxe2e", ""},
    {"POST", "/admin/clear_quota", R"({"appid":"wxe2e"})"},
  };
  for (auto& e : endpoints) {
    CAF_MESSAGE(e.method << " " << e.target);
    CAF_CHECK_EQUAL(status_with("", e.method, e.target, e.body), 401u);
    CAF_CHECK_EQUAL(status_with(wrong.key, e.method, e.target, e.body), 401u);
    CAF_CHECK_EQUAL(status_with(comp_key.key, e.method, e.target, e.body), 403u);
    CAF_CHECK_EQUAL(status_with(admin_key.key, e.method, e.target, e.body), 200u);
  }
}

CAF_TEST(keygen prints a key whose digest authenticates) {
  auto out = env.dir / "keygen.out";
  CAF_REQUIRE_EQUAL(run_to_file({bin("wechat-hub"), "keygen", "--name", "new-service"}, out), 0);
  auto text = read_file(out);
  auto k = text.find("whk_");
  CAF_REQUIRE(k != std::string::npos);
  auto key = text.substr(k, text.find('\n', k) - k);
  CAF_CHECK(text.find("key_sha256 = \"" + http::sha256_hex(key) + "\"") != std::string::npos);
  CAF_CHECK(text.find("name = \"new-service\"") != std::string::npos);
  CAF_CHECK_NOT_EQUAL(run_to_file({bin("wechat-hub"), "keygen"}, out), 0);
}

CAF_TEST(admin refresh state and the audit log) {
  env.bearer = app_key.key;
  auto token = std::string{parse_object(env.hub("GET", "/client/access_token?appid=wxe2e").body)
                             .at("access_token").as_string()};
  env.bearer = admin_key.key;
  auto first = env.hub("POST", "/admin/refresh", R"({"appid":"wxe2e"})");
  CAF_CHECK_EQUAL(first.status, 200u);
  CAF_CHECK_EQUAL(std::string{parse_object(first.body).at("status").as_string()}, "refreshed");
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 2); // forced
  // The force budget refuses a second forced refresh within 30 s, and says so.
  auto second = env.hub("POST", "/admin/refresh", R"({"appid":"wxe2e"})");
  CAF_CHECK_EQUAL(second.status, 503u);
  CAF_CHECK_EQUAL(std::string{parse_object(second.body).at("reason").as_string()},
                  "force_refresh_budget_exhausted");
  auto state = env.hub("GET", "/admin/state?appid=wxe2e");
  CAF_REQUIRE_EQUAL(state.status, 200u);
  auto obj = parse_object(state.body);
  CAF_CHECK_EQUAL(obj.at("force_refresh_budget").as_object().at("used").as_int64(), 1);
  CAF_CHECK(obj.at("access_token").is_object());
  CAF_CHECK(obj.at("recent_errors").is_array());
  CAF_CHECK(state.body.find(token) == std::string::npos);
  CAF_CHECK(state.body.find("e2e-secret-value") == std::string::npos);
  auto astate = env.hub("GET", "/admin/state?appid=" + comp + "&authorizer_appid=wxauthorizer0009");
  CAF_CHECK_EQUAL(astate.status, 200u);
  CAF_CHECK_EQUAL(std::string{parse_object(astate.body).at("status").as_string()}, "active");
  CAF_CHECK(astate.body.find("refreshtoken@@@") == std::string::npos);
  env.bearer = comp_key.key;
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/state?appid=wxe2e").status, 403u);
  env.bearer.clear();
  auto audit = read_file(env.dir / "data/audit.log");
  CAF_CHECK(audit.find(R"("client":"ops","action":"POST","target":"/admin/refresh","status":200)")
            != std::string::npos);
  CAF_CHECK(audit.find(R"("client":"ops","action":"POST","target":"/admin/refresh","status":503)")
            != std::string::npos);
  CAF_CHECK(audit.find(R"("client":"platform","action":"GET","target":"/admin/state","status":403)")
            != std::string::npos);
  CAF_CHECK(audit.find(admin_key.key) == std::string::npos);
}

CAF_TEST(admin manages apps and components at runtime) {
  env.bearer = admin_key.key;
  auto apps = env.hub("GET", "/admin/apps");
  CAF_REQUIRE_EQUAL(apps.status, 200u);
  CAF_CHECK(apps.body.find(R"({"appid":"wxe2e","source":"config","token_api":"stable"})") != std::string::npos);
  CAF_CHECK(apps.body.find("e2e-secret-value") == std::string::npos);
  // Config-file apps cannot be changed through the API.
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/apps/wxe2e", R"({"secret":"x"})").status, 409u);
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/apps/wxe2e").status, 409u);
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/apps/wxnew", R"({"token_api":"stable"})").status, 400u);
  // A runtime app (the simulator knows wxother with this secret).
  auto put = env.hub("PUT", "/admin/apps/wxruntime", R"({"secret":"other-secret","token_api":"classic"})");
  CAF_CHECK_EQUAL(put.status, 200u);
  auto listed = env.hub("GET", "/admin/apps").body;
  CAF_CHECK(listed.find(R"({"appid":"wxruntime","source":"admin","token_api":"classic"})") != std::string::npos);
  CAF_CHECK(listed.find("other-secret") == std::string::npos);
  // Survives a restart.
  env.bearer.clear();
  CAF_CHECK_EQUAL(env.stop_hub(std::chrono::seconds(10)), 0);
  env.start_hub(component_toml() + app_key.toml("billing", R"(["wxe2e"])")
                + admin_key.toml("ops", R"(["*"])", true));
  env.bearer = admin_key.key;
  CAF_CHECK(env.hub("GET", "/admin/apps").body.find("wxruntime") != std::string::npos);
  // The simulator does not know wxruntime: the hub reaches WeChat and reports its errcode.
  auto tok = env.hub("GET", "/client/access_token?appid=wxruntime");
  CAF_CHECK_EQUAL(tok.status, 502u);
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/apps/wxruntime").status, 200u);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxruntime").status, 404u);
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/apps/wxruntime").status, 404u);
  // Components: listed, guarded, and a runtime one gets a push receiver.
  auto comps = env.hub("GET", "/admin/components").body;
  CAF_CHECK(comps.find(comp) != std::string::npos);
  CAF_CHECK(comps.find(component_secret) == std::string::npos);
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/components/wxcompnew",
                          R"({"secret":"s","token":"t","encoding_aes_key":"short"})")
                    .status,
                  400u);
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/components/wxcompnew",
                          R"({"secret":"s","token":"t","encoding_aes_key":")" + std::string(component_aes_key)
                            + "\"}")
                    .status,
                  200u);
  CAF_CHECK_EQUAL(env.hub("POST", "/wechat/component/wxcompnew/events?timestamp=1&nonce=1&msg_signature=x",
                          "<xml/>")
                    .status,
                  400u); // known now, so the envelope is parsed (it was 404 before)
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/components/wxcompnew").status, 200u);
  CAF_CHECK_EQUAL(env.hub("POST", "/wechat/component/wxcompnew/events?timestamp=1&nonce=1", "<xml/>").status,
                  404u);
  auto audit = read_file(env.dir / "data/audit.log");
  CAF_CHECK(audit.find(R"("action":"PUT","target":"/admin/apps/wxruntime","status":200)") != std::string::npos);
  CAF_CHECK(audit.find("other-secret") == std::string::npos);
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
