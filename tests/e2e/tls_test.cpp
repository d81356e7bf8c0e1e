#define CAF_SUITE e2e_tls

#include "caf/test/dsl.hpp"

#include <cstdio>
#include <string>

#include <sys/wait.h>

#include "tests/e2e/hub_env.hpp"

// HTTPS and mTLS against a real hub, with certificates from scripts/dev-certs.
// The clients are curl and `openssl s_client`, so what is checked is what a
// real client sees, not what our own client library accepts.

using namespace wh;
using namespace wh::test;

namespace {

struct run_result {
  int code = -1;
  std::string out;
};

/// Runs `cmd` through the shell and returns its exit code and stdout+stderr.
run_result run(const std::string& cmd) {
  run_result res;
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    return res;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    res.out.append(buf, n);
  int status = ::pclose(pipe);
  res.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// A hub env plus a fresh dev CA, server and client certificates.
struct tls_fixture {
  hub_env env;
  std::string certs = env.dir / "certs";

  tls_fixture() {
    auto made = run(std::string{WH_TEST_DATA_DIR} + "/../../scripts/dev-certs " + certs);
    if (made.code != 0)
      CAF_FAIL("scripts/dev-certs failed: " << made.out);
  }

  std::string cert(const std::string& name) const { return certs + "/" + name; }

  std::string tls_toml(bool mtls) const {
    std::string out = "[hub.tls]\ncert = \"" + cert("server.crt") + "\"\nkey = \"" + cert("server.key")
                      + "\"\n";
    if (mtls)
      out += "client_ca = \"" + cert("ca.crt") + "\"\n";
    return out;
  }

  std::string url(const std::string& target, const std::string& host = "127.0.0.1") const {
    return "https://" + host + ":" + std::to_string(env.hub_port) + target;
  }

  /// curl with the dev CA trusted; prints the body, then the status on its own line.
  run_result curl(const std::string& args) const {
    return run("curl -sS --max-time 10 --cacert " + cert("ca.crt") + " -w '\\n%{http_code}' " + args);
  }

  run_result s_client(const std::string& args, const std::string& input = "") const {
    return run("printf '" + input + "' | timeout 10 openssl s_client -connect 127.0.0.1:"
               + std::to_string(env.hub_port) + " -CAfile " + cert("ca.crt") + " " + args);
  }
};

/// The status curl printed last (see tls_fixture::curl).
std::string status_of(const run_result& res) {
  auto nl = res.out.rfind('\n');
  return nl == std::string::npos ? res.out : res.out.substr(nl + 1);
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(e2e_tls_tests, tls_fixture)

CAF_TEST(https serves health and tokens and keeps connections alive) {
  env.start_hub(tls_toml(false));
  auto health = curl(url("/healthz"));
  CAF_CHECK_EQUAL(health.code, 0);
  CAF_CHECK_EQUAL(status_of(health), "200");
  CAF_CHECK(contains(health.out, R"("status":"ok")"));
  auto by_name = curl(url("/healthz", "localhost"));
  CAF_CHECK_EQUAL(by_name.code, 0);
  CAF_CHECK_EQUAL(status_of(by_name), "200");
  auto token = curl(url("/client/access_token?appid=wxe2e"));
  CAF_CHECK_EQUAL(status_of(token), "200");
  CAF_CHECK(contains(token.out, "\"access_token\""));
  // Two requests in one curl run share one connection (keep-alive over TLS).
  auto reuse = run("curl -sS --max-time 10 --cacert " + cert("ca.crt")
                   + " -o /dev/null -o /dev/null -w '%{num_connects} ' " + url("/healthz") + " "
                   + url("/healthz"));
  CAF_CHECK_EQUAL(reuse.code, 0);
  CAF_CHECK_EQUAL(reuse.out, "1 0 ");
  // Errors the server detects itself still reach the client over TLS.
  auto large = run("head -c 200000 /dev/zero | tr '\\0' a | curl -sS --max-time 10 --cacert "
                   + cert("ca.crt") + " -H 'Expect:' -H 'Content-Type: application/json' "
                   + "--data-binary @- -w '\\n%{http_code}' " + url("/refresh/access_token"));
  CAF_CHECK_EQUAL(status_of(large), "413");
  CAF_CHECK(contains(large.out, "body_too_large"));
}

CAF_TEST(https rejects untrusted clients and plain http) {
  env.start_hub(tls_toml(false));
  // Without the dev CA, curl does not trust the hub.
  auto untrusted = run("curl -sS --max-time 10 -o /dev/null " + url("/healthz"));
  CAF_CHECK_NOT_EQUAL(untrusted.code, 0);
  // Plain HTTP to the TLS port gets no HTTP answer.
  auto plain = run("curl -sS --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:"
                   + std::to_string(env.hub_port) + "/healthz");
  CAF_CHECK_NOT_EQUAL(plain.code, 0);
  CAF_CHECK(contains(plain.out, "000"));
  // The hub is still healthy afterwards.
  CAF_CHECK_EQUAL(status_of(curl(url("/healthz"))), "200");
}

CAF_TEST(only tls 1.2 and 1.3 are accepted) {
  env.start_hub(tls_toml(false));
  // SECLEVEL=0 makes the client willing to offer TLS 1.1, so the refusal is the hub's.
  auto v11 = s_client("-tls1_1 -cipher DEFAULT@SECLEVEL=0 -brief");
  CAF_CHECK_NOT_EQUAL(v11.code, 0);
  CAF_CHECK(!contains(v11.out, "Protocol version: TLSv1.1"));
  auto v10 = s_client("-tls1 -cipher DEFAULT@SECLEVEL=0 -brief");
  CAF_CHECK_NOT_EQUAL(v10.code, 0);
  auto v12 = s_client("-tls1_2 -verify_return_error -brief");
  CAF_CHECK_EQUAL(v12.code, 0);
  CAF_CHECK(contains(v12.out, "Protocol version: TLSv1.2"));
  CAF_CHECK(contains(v12.out, "Verification: OK"));
  auto v13 = s_client("-tls1_3 -verify_return_error -brief");
  CAF_CHECK_EQUAL(v13.code, 0);
  CAF_CHECK(contains(v13.out, "Protocol version: TLSv1.3"));
  // A non-forward-secret TLS 1.2 suite is refused.
  auto rsa_kx = s_client("-tls1_2 -cipher AES128-GCM-SHA256 -brief");
  CAF_CHECK_NOT_EQUAL(rsa_kx.code, 0);
}

CAF_TEST(sessions resume from tickets and aes gcm is preferred) {
  env.start_hub(tls_toml(false));
  auto session = env.dir / "tls.session";
  // The client stays half a second after its request, to read the answer
  // and (TLS 1.3) the session ticket that follows the handshake.
  auto connect = [&](const std::string& args) {
    return run("(printf 'GET /healthz HTTP/1.1\\r\\nHost: hub\\r\\n\\r\\n'; sleep 0.5) | timeout 10 "
               "openssl s_client -connect 127.0.0.1:" + std::to_string(env.hub_port) + " -CAfile "
               + cert("ca.crt") + " " + args);
  };
  for (std::string version : {"-tls1_3", "-tls1_2"}) {
    CAF_MESSAGE(version);
    std::remove(session.c_str());
    // A client that lists AES-256 first still gets AES-128-GCM: the hub's order.
    auto suites = version == "-tls1_3"
                    ? " -ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"
                    : " -cipher ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256";
    auto first = connect(version + suites + " -sess_out " + session);
    CAF_CHECK_EQUAL(first.code, 0);
    CAF_CHECK(contains(first.out, "New, TLSv1."));
    CAF_CHECK(contains(first.out, version == "-tls1_3" ? "Cipher is TLS_AES_128_GCM_SHA256"
                                                       : "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"));
    CAF_CHECK(contains(first.out, "HTTP/1.1 200 OK"));
    auto again = connect(version + suites + " -sess_in " + session);
    CAF_CHECK_EQUAL(again.code, 0);
    CAF_CHECK(contains(again.out, "Reused, TLSv1."));
    CAF_CHECK(contains(again.out, "HTTP/1.1 200 OK"));
  }
  // A client that prefers ChaCha20 (one without AES hardware) gets it.
  auto chacha = connect("-tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
  CAF_CHECK(contains(chacha.out, "Cipher is TLS_CHACHA20_POLY1305_SHA256"));
}

CAF_TEST(mtls requires a client certificate signed by the configured ca) {
  env.start_hub(tls_toml(true));
  // No client certificate: no HTTP answer, over TLS 1.3 and 1.2.
  auto anonymous = curl(url("/healthz"));
  CAF_CHECK_NOT_EQUAL(anonymous.code, 0);
  CAF_CHECK_EQUAL(status_of(anonymous), "000");
  auto anonymous12 = curl("--tls-max 1.2 " + url("/healthz"));
  CAF_CHECK_NOT_EQUAL(anonymous12.code, 0);
  CAF_CHECK_EQUAL(status_of(anonymous12), "000");
  auto handshake12 = s_client("-tls1_2 -brief");
  CAF_CHECK_NOT_EQUAL(handshake12.code, 0);
  auto raw13 = s_client("-tls1_3 -quiet", "GET /healthz HTTP/1.0\\r\\n\\r\\n");
  CAF_CHECK(!contains(raw13.out, "HTTP/1.1"));
  // The client certificate from the same dev CA is accepted.
  auto client = "--cert " + cert("client.crt") + " --key " + cert("client.key") + " ";
  auto health = curl(client + url("/healthz"));
  CAF_CHECK_EQUAL(health.code, 0);
  CAF_CHECK_EQUAL(status_of(health), "200");
  CAF_CHECK(contains(health.out, R"("status":"ok")"));
  auto token = curl(client + url("/client/access_token?appid=wxe2e"));
  CAF_CHECK_EQUAL(status_of(token), "200");
  CAF_CHECK(contains(token.out, "\"access_token\""));
  auto health12 = curl("--tls-max 1.2 " + client + url("/healthz"));
  CAF_CHECK_EQUAL(status_of(health12), "200");
  auto with_cert = s_client("-tls1_2 -brief -cert " + cert("client.crt") + " -key " + cert("client.key"));
  CAF_CHECK_EQUAL(with_cert.code, 0);
  // A client certificate from another CA is refused.
  auto other = env.dir / "other-ca";
  CAF_REQUIRE_EQUAL(run(std::string{WH_TEST_DATA_DIR} + "/../../scripts/dev-certs " + other).code, 0);
  auto foreign = curl("--cert " + other + "/client.crt --key " + other + "/client.key "
                      + url("/healthz"));
  CAF_CHECK_NOT_EQUAL(foreign.code, 0);
  CAF_CHECK_EQUAL(status_of(foreign), "000");
}

CAF_TEST(bad tls files stop the hub with a message naming the file) {
  // A valid start first, for a config to vary (hub_env reaps a hub that
  // exits at start, so the failing ones are spawned here to see their status).
  env.start_hub(tls_toml(false));
  env.kill_hub();
  auto base = read_file(env.dir / "hub.toml");
  base.resize(base.find("[hub.tls]"));
  auto expect_failure = [&](const std::string& tls, const std::string& path,
                            const std::string& problem) {
    auto cfg = env.dir / "bad.toml";
    auto log_path = env.dir / "bad.log";
    write_file(cfg, base + tls);
    write_file(log_path, "");
    auto hub = process::spawn({bin("wechat-hub"), "--config", cfg}, log_path);
    int code = -1;
    CAF_REQUIRE(hub.wait_for(std::chrono::seconds(20), code));
    CAF_CHECK_NOT_EQUAL(code, 0);
    auto log = read_file(log_path);
    if (!contains(log, path) || !contains(log, problem))
      CAF_FAIL("expected " << path << " and '" << problem << "' in the hub log: " << log);
  };
  auto missing = env.dir / "no-such.crt";
  expect_failure("[hub.tls]\ncert = \"" + missing + "\"\nkey = \"" + cert("server.key") + "\"\n",
                 missing, "No such file");
  expect_failure("[hub.tls]\ncert = \"" + cert("server.crt") + "\"\nkey = \"" + cert("client.key")
                   + "\"\n",
                 cert("client.key"), "does not match");
  auto garbage = env.dir / "garbage.pem";
  write_file(garbage, "not a certificate\n");
  expect_failure("[hub.tls]\ncert = \"" + garbage + "\"\nkey = \"" + cert("server.key") + "\"\n",
                 garbage, "certificate");
  expect_failure("[hub.tls]\ncert = \"" + cert("server.crt") + "\"\nkey = \"" + garbage + "\"\n",
                 garbage, "private key");
  expect_failure("[hub.tls]\ncert = \"" + cert("server.crt") + "\"\nkey = \"" + cert("server.key")
                   + "\"\nclient_ca = \"" + garbage + "\"\n",
                 garbage, "client CA");
}

CAF_TEST_FIXTURE_SCOPE_END()
