#define CAF_SUITE config

#include "caf/test/dsl.hpp"

#include "core/config.hpp"
#include "core/error.hpp"

using namespace wh;

namespace {

std::optional<std::string> fake_env(const std::string& name) {
  if (name == "APP_SECRET")
    return std::string{"s3cr3t-from-env"};
  return std::nullopt;
}

caf::expected<hub_config> parse(const std::string& text) {
  return parse_config(text, "test.toml", fake_env);
}

std::string problem(const std::string& text) {
  auto res = parse(text);
  if (res)
    return "<no error>";
  return detail_of(res.error());
}

} // namespace

CAF_TEST(full config parses) {
  auto res = parse(R"(
[hub]
listen = "0.0.0.0:4100"
data_dir = "/tmp/x"
refresh_margin_s = 200

[wechat]
api_base = "http://127.0.0.1:9000/"

[[app]]
appid = "wx1234567890"
secret = "abc"

[[app]]
appid = "wx2"
secret_env = "APP_SECRET"
token_api = "classic"
)");
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->listen_host, "0.0.0.0");
  CAF_CHECK_EQUAL(res->listen_port, 4100u);
  CAF_CHECK_EQUAL(res->data_dir, "/tmp/x");
  CAF_CHECK_EQUAL(res->refresh_margin_s, 200u);
  CAF_CHECK_EQUAL(res->api_base, "http://127.0.0.1:9000");
  CAF_REQUIRE_EQUAL(res->apps.size(), 2u);
  CAF_CHECK_EQUAL(res->apps[0].secret, "abc");
  CAF_CHECK(res->apps[0].api == token_api::stable);
  CAF_CHECK_EQUAL(res->apps[1].secret, "s3cr3t-from-env");
  CAF_CHECK(res->apps[1].api == token_api::classic);
}

CAF_TEST(defaults apply to an empty file) {
  auto res = parse("");
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->listen_port, 4000u);
  CAF_CHECK_EQUAL(res->data_dir, "var/hub");
  CAF_CHECK_EQUAL(res->api_base, "https://api.weixin.qq.com");
  // ≈5 KiB per running actor: 5,000 keep a cold pass over a million keys
  // within the 1 GiB budget (issue 10).
  CAF_CHECK_EQUAL(res->max_active_actors, 5000u);
  CAF_CHECK_EQUAL(res->actor_idle_s, 60u);
}

CAF_TEST(errors name file key and problem) {
  CAF_CHECK_EQUAL(problem("[hub]\nlisten = 4000\n"), "test.toml: hub.listen: expected a string");
  CAF_CHECK_EQUAL(problem("[hub]\nlisten = \"nohost\"\n"),
                  "test.toml: hub.listen: expected \"host:port\", got \"nohost\"");
  CAF_CHECK_EQUAL(problem("[[app]]\nsecret = \"x\"\n"), "test.toml: app[0].appid: missing required key");
  CAF_CHECK_EQUAL(problem("[[app]]\nappid = \"wx1\"\n"), "test.toml: app[0].secret: missing required key");
  CAF_CHECK_EQUAL(problem("[[app]]\nappid = \"wx1\"\nsecret = \"a\"\n[[app]]\nappid = \"wx1\"\nsecret = \"b\"\n"),
                  "test.toml: app[1].appid: duplicate appid \"wx1\"");
  CAF_CHECK_EQUAL(problem("[[app]]\nappid = \"wx1\"\nsecret_env = \"MISSING\"\n"),
                  "test.toml: app[0].secret_env: environment variable MISSING is not set or empty");
  CAF_CHECK_EQUAL(problem("[[app]]\nappid = \"wx1\"\nsecret = \"a\"\ntoken_api = \"fast\"\n"),
                  "test.toml: app[0].token_api: expected \"stable\" or \"classic\"");
  CAF_CHECK_EQUAL(problem("[hub]\nlisten_port = 1\n"), "test.toml: hub.listen_port: unknown key");
  CAF_CHECK_EQUAL(problem("[cluster]\nnode_id = \"n1\"\n"), "test.toml: cluster.listen: missing required key");
  CAF_CHECK_EQUAL(problem("[cluster]\nnode_id = \"n 1\"\nlisten = \"127.0.0.1:7101\"\n"),
                  "test.toml: cluster.node_id: must be 1-32 characters of [A-Za-z0-9_-]");
  CAF_CHECK_EQUAL(problem("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:0\"\n"),
                  "test.toml: cluster.listen: expected \"host:port\" with a fixed port, got \"127.0.0.1:0\"");
  CAF_CHECK_EQUAL(problem("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\npeers = [\"127.0.0.1:7101\"]\n"),
                  "test.toml: cluster.peers[0]: duplicate endpoint (or this node's own listen) \"127.0.0.1:7101\"");
  CAF_CHECK_EQUAL(problem("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\nreplicas = 3\n"
                          "peers = [\"127.0.0.1:7102\"]\n"),
                  "test.toml: cluster.replicas: must be between 1 and the number of nodes (2)");
  CAF_CHECK_EQUAL(problem("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\ntls = { cert = \"c\" }\n"),
                  "test.toml: cluster.tls.key: missing required key");
  CAF_CHECK_EQUAL(problem("[wechat]\napi_base = \"ftp://x\"\n"),
                  "test.toml: wechat.api_base: must start with http:// or https://");
  CAF_CHECK_EQUAL(problem("[hub]\nrefresh_margin_s = -5\n"), "test.toml: hub.refresh_margin_s: integer out of range");
  auto syntax = problem("[hub\n");
  CAF_CHECK(syntax.rfind("test.toml:1:", 0) == 0);
}

CAF_TEST(cluster table) {
  auto cfg = parse_config("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\n"
                          "peers = [\"127.0.0.1:7102\", \"127.0.0.1:7103\"]\n",
                          "test.toml", fake_env);
  CAF_REQUIRE(cfg);
  CAF_CHECK(cfg->cluster.enabled());
  CAF_CHECK_EQUAL(cfg->cluster.listen_port, 7101u);
  CAF_CHECK_EQUAL(cfg->cluster.peers.size(), 2u);
  CAF_CHECK_EQUAL(cfg->cluster.replicas, 2u); // default
  CAF_CHECK_EQUAL(cfg->cluster.join_grace_ms, 1500u);
  auto alone = parse_config("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\n", "test.toml", fake_env);
  CAF_REQUIRE(alone);
  CAF_CHECK_EQUAL(alone->cluster.replicas, 1u);
  auto plain = parse_config("", "test.toml", fake_env);
  CAF_REQUIRE(plain);
  CAF_CHECK(!plain->cluster.enabled());
}

CAF_TEST(secrets never appear in messages) {
  // Each config is invalid next to (or in) a secret: the parse must fail,
  // name the offending key or position, and never echo the secret's value.
  struct probe {
    const char* text;
    const char* names;
  };
  const probe probes[] = {
    {"[[app]]\nappid = \"wx1\"\nsecret = \"topsecretvalue\"\ntoken_api = 3\n", "app[0].token_api"},
    {"[[app]]\nappid = \"wx1\"\nsecret = \"topsecretvalue\"\ntoken_api = \"topsecretvalue\"\n",
     "app[0].token_api"},
    {"[[app]]\nappid = \"wx1\"\nsecrte = \"topsecretvalue\"\n", "app[0].secrte: unknown key"},
    {"[[app]]\nappid = \"wx1\"\nsecret = \"topsecretvalue\nx = 1\n", "test.toml:3:"},
    {"[[app]]\nappid = \"wx1\"\nsecret = \"topsecretvalue\"\nsecret = \"topsecretvalue\"\n",
     "test.toml:4:"},
    {"[[component]]\nappid = \"wxc\"\nsecret = \"s\"\ntoken = \"t\"\n"
     "encoding_aes_key = \"topsecretvalue\"\n",
     "component[0].encoding_aes_key"},
  };
  for (auto& p : probes) {
    auto res = parse(p.text);
    CAF_REQUIRE(!res);
    auto msg = detail_of(res.error());
    CAF_MESSAGE(msg);
    CAF_CHECK(msg.find(p.names) != std::string::npos);
    CAF_CHECK(msg.find("topsecretvalue") == std::string::npos);
  }
}

CAF_TEST(unreadable file is an error naming the path) {
  auto res = load_config("/nonexistent/dir/hub.toml");
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(detail_of(res.error()), "/nonexistent/dir/hub.toml: cannot read file");
  CAF_CHECK(code_of(res.error()) == ec::invalid_config);
}

CAF_TEST(host port splitting) {
  std::string host;
  uint16_t port = 0;
  CAF_CHECK(split_host_port("127.0.0.1:0", host, port));
  CAF_CHECK_EQUAL(port, 0u);
  CAF_CHECK(split_host_port("[::1]:80", host, port));
  CAF_CHECK_EQUAL(host, "::1");
  CAF_CHECK(!split_host_port("host:99999", host, port));
  CAF_CHECK(!split_host_port("host:", host, port));
  CAF_CHECK(!split_host_port(":80", host, port));
}

CAF_TEST(clients tls and security keys) {
  auto res = parse(R"(
[hub]
allow_open = true
master_key_file = "/etc/hub/master.key"
[hub.tls]
cert = "c.pem"
key = "k.pem"
client_ca = "ca.pem"
[[client]]
name = "billing"
key_sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
scopes = ["wx1", "wxcomp/*", "wxcomp/wxauth", "*"]
admin = true
)");
  CAF_REQUIRE(res);
  CAF_CHECK(res->allow_open);
  CAF_CHECK(res->tls.enabled());
  CAF_CHECK_EQUAL(res->tls.client_ca, "ca.pem");
  CAF_REQUIRE_EQUAL(res->clients.size(), 1u);
  CAF_CHECK_EQUAL(res->clients[0].key_sha256,
                  "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  CAF_CHECK_EQUAL(res->clients[0].scopes.size(), 4u);
  CAF_CHECK(res->clients[0].admin);
  CAF_CHECK_EQUAL(problem("[[client]]\nname = \"a\"\nkey_sha256 = \"xyz\"\n"),
                  "test.toml: client[0].key_sha256: expected 64 hex digits (SHA-256 of the key)");
  CAF_CHECK_EQUAL(problem("[[client]]\nname = \"a\"\nkey_sha256 = \"" + std::string(64, 'a')
                          + "\"\nscopes = [\"bad scope\"]\n"),
                  "test.toml: client[0].scopes[0]: expected \"*\", \"appid\", \"component/*\" or "
                  "\"component/authorizer\"");
  CAF_CHECK_EQUAL(problem("[hub.tls]\ncert = \"c.pem\"\n"), "test.toml: hub.tls.key: missing required key");
}

