#define CAF_SUITE e2e_reload

#include "caf/test/dsl.hpp"

#include <atomic>
#include <csignal>
#include <thread>

#include "http/auth.hpp"
#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

struct client_key {
  std::string name;
  std::string key = http::generate_client_key();
  std::string scopes = R"(["wxe2e"])";
  bool admin = false;

  std::string toml() const {
    return "[[client]]\nname = \"" + name + "\"\nkey_sha256 = \"" + http::sha256_hex(key)
           + "\"\nscopes = " + scopes + "\nadmin = " + (admin ? "true" : "false") + "\n";
  }
};

std::string app_toml(const std::string& appid, const std::string& secret, const std::string& api) {
  return "[[app]]\nappid = \"" + appid + "\"\nsecret = \"" + secret + "\"\ntoken_api = \"" + api + "\"\n";
}

const std::string wxe2e = app_toml("wxe2e", "e2e-secret-value", "stable");
const std::string wxother = app_toml("wxother", "other-secret", "classic");

struct fixture {
  hub_env env;

  std::string config(const std::string& body, const std::string& hub_extra = {}) {
    return "[hub]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"" + (env.dir / "data")
           + "\"\nrequest_timeout_s = 2\n" + hub_extra + "[wechat]\napi_base = \"http://127.0.0.1:"
           + std::to_string(env.sim_port) + "\"\ntimeout_ms = 1500\n" + body;
  }

  void start(const std::string& body) {
    write_file(env.dir / "hub.toml", config(body));
    env.hub_proc = process::spawn({bin("wechat-hub"), "--config", env.dir / "hub.toml", "--port-file",
                                   env.dir / "hub.port"},
                                  env.dir / "hub.log");
    env.hub_port = wait_for_port(env.dir / "hub.port", env.hub_proc);
    CAF_REQUIRE_NOT_EQUAL(env.hub_port, 0u);
  }

  /// Key for /metrics once [[client]]s exist.
  std::string metrics_key;

  /// wechat_hub_config_reloads_total{result=`result`}.
  int64_t reloads(const std::string& result) {
    env.bearer = metrics_key;
    auto body = env.hub("GET", "/metrics").body;
    env.bearer.clear();
    auto line = "wechat_hub_config_reloads_total{result=\"" + result + "\"} ";
    auto pos = body.find(line);
    if (pos == std::string::npos)
      return -1;
    return std::stoll(body.substr(pos + line.size()));
  }

  /// Writes the file, sends SIGHUP and waits until the hub counted the
  /// outcome. Returns true when the reload was applied.
  bool reload(const std::string& toml) {
    auto ok = reloads("ok"), rejected = reloads("invalid");
    write_file(env.dir / "hub.toml", toml);
    env.hub_proc.signal(SIGHUP);
    for (int i = 0; i < 1000; ++i) {
      if (reloads("ok") > ok)
        return true;
      if (reloads("invalid") > rejected)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CAF_FAIL("the hub did not finish a reload within 10 s: " << env.hub_log());
    return false;
  }

  unsigned status_with(const std::string& key, const std::string& target) {
    env.bearer = key;
    auto res = env.hub("GET", target);
    env.bearer.clear();
    return res.status;
  }

  std::string token_with(const std::string& key, const std::string& appid) {
    env.bearer = key;
    auto res = env.hub("GET", "/client/access_token?appid=" + appid);
    env.bearer.clear();
    if (res.status != 200)
      return "<status " + std::to_string(res.status) + ">";
    return std::string{parse_object(res.body).at("access_token").as_string()};
  }

  int64_t total_upstream_calls() {
    return parse_object(env.sim("GET", "/sim/stats").body).at("total").as_int64();
  }
};

/// Reads a token in a loop on its own connection until stopped.
struct traffic {
  traffic(std::string url, std::string key) : url_(std::move(url)), key_(std::move(key)) {
    thread_ = std::thread([this] { run(); });
  }
  ~traffic() { stop(); }

  void stop() {
    done_ = true;
    if (thread_.joinable())
      thread_.join();
  }

  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::string last_failure;

private:
  void run() {
    net::http_client client;
    while (!done_) {
      net::request req;
      req.method = "GET";
      req.url = url_;
      req.headers.emplace_back("Authorization", "Bearer " + key_);
      req.timeout = std::chrono::seconds(5);
      auto res = client.send(std::move(req));
      if (res && res->status == 200) {
        ++ok;
      } else {
        if (failed++ == 0)
          last_failure = res ? std::to_string(res->status) + " " + res->body : std::string{"no answer"};
      }
    }
  }

  std::string url_;
  std::string key_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// Waits (bounded) until `t` has served `at` reads.
void wait_for_reads(traffic& t, int at) {
  for (int i = 0; i < 2000 && t.ok < at; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CAF_REQUIRE_GREATER_OR_EQUAL(t.ok.load(), at);
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(reload_tests, fixture)

CAF_TEST(a client key rotates under live traffic and no other client sees a failure) {
  client_key alpha{"alpha"}, beta{"beta"}, gamma{"gamma", http::generate_client_key(), R"(["*"])", true};
  metrics_key = gamma.key;
  start(wxe2e + alpha.toml() + beta.toml() + gamma.toml());
  auto token = token_with(beta.key, "wxe2e");
  CAF_REQUIRE_EQUAL(token.rfind("<status", 0), std::string::npos);
  auto url = env.hub_url() + "/client/access_token?appid=wxe2e";
  traffic beta_reads{url, beta.key}, gamma_reads{url, gamma.key};
  // Both readers make progress (bounded wait, no fixed sleep).
  auto progress = [&](int beta_at, int gamma_at) {
    wait_for_reads(beta_reads, beta_at);
    wait_for_reads(gamma_reads, gamma_at);
  };
  progress(20, 20);
  // Rotate alpha's key several times while the others read.
  auto old_key = alpha.key;
  for (int round = 0; round < 5; ++round) {
    alpha.key = http::generate_client_key();
    int beta_at = beta_reads.ok + 20, gamma_at = gamma_reads.ok + 20;
    CAF_REQUIRE(reload(config(wxe2e + alpha.toml() + beta.toml() + gamma.toml())));
    progress(beta_at, gamma_at);
    CAF_CHECK_EQUAL(token_with(alpha.key, "wxe2e"), token);
    CAF_CHECK_EQUAL(status_with(old_key, "/client/access_token?appid=wxe2e"), 401u);
    old_key = alpha.key;
  }
  beta_reads.stop();
  gamma_reads.stop();
  CAF_MESSAGE("reads during 5 rotations: beta " << beta_reads.ok << " ok / " << beta_reads.failed
                                                << " failed, gamma " << gamma_reads.ok << " ok / "
                                                << gamma_reads.failed << " failed");
  CAF_CHECK_GREATER(beta_reads.ok.load(), 0);
  CAF_CHECK_GREATER(gamma_reads.ok.load(), 0);
  CAF_CHECK_EQUAL(beta_reads.failed.load(), 0);
  CAF_CHECK_EQUAL(gamma_reads.failed.load(), 0);
  if (beta_reads.failed || gamma_reads.failed)
    CAF_MESSAGE("first failures: " << beta_reads.last_failure << " / " << gamma_reads.last_failure);
  // Scopes apply from the next request: beta loses wxe2e; a revoked key is
  // refused. The log switches to JSON in the same reload.
  beta.scopes = R"(["wxother"])";
  CAF_REQUIRE(reload(config(wxe2e + beta.toml() + gamma.toml(), "log_format = \"json\"\n")));
  CAF_CHECK_EQUAL(status_with(beta.key, "/client/access_token?appid=wxe2e"), 403u);
  CAF_CHECK_EQUAL(status_with(alpha.key, "/client/access_token?appid=wxe2e"), 401u);
  CAF_CHECK_EQUAL(token_with(gamma.key, "wxe2e"), token);
  // Rotations and revocations never touch WeChat.
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
  // The key never reaches the log; the client's name does.
  auto log = env.hub_log();
  CAF_CHECK_EQUAL(log.find(alpha.key), std::string::npos);
  CAF_CHECK_NOT_EQUAL(log.find("client alpha: key rotated"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(log.find("client alpha removed"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(log.find(R"("level":"info","component":"hub","message":"reload: client beta: scopes or )"
                               R"(permissions changed","client":"beta"})"),
                      std::string::npos);
  CAF_CHECK_EQUAL(reloads("ok"), 6);
  CAF_CHECK_EQUAL(reloads("invalid"), 0);
}

CAF_TEST(an invalid file is rejected and the running config stays in force) {
  client_key alpha{"alpha"};
  metrics_key = alpha.key;
  start(wxe2e + alpha.toml());
  auto token = token_with(alpha.key, "wxe2e");
  CAF_REQUIRE_EQUAL(token.rfind("<status", 0), std::string::npos);
  client_key intruder{"intruder", http::generate_client_key(), R"(["*"])"};
  // The same FILE: KEY: PROBLEM message as at startup, and nothing applied.
  CAF_CHECK(!reload(config(wxe2e + intruder.toml() + "[[app]]\nappid = \"bad id\"\nsecret = \"x\"\n")));
  CAF_CHECK_NOT_EQUAL(env.hub_log().find(env.dir / "hub.toml" + ": app[1].appid: must be 1-64 characters"),
                      std::string::npos);
  CAF_CHECK(!reload(config(wxe2e + alpha.toml(), "listen_port = 1\n")));
  CAF_CHECK_NOT_EQUAL(env.hub_log().find(env.dir / "hub.toml" + ": hub.listen_port: unknown key"),
                      std::string::npos);
  CAF_CHECK(!reload("[hub\n"));
  // --check-config validates a file the same way before anyone reloads it.
  write_file(env.dir / "next.toml", config(wxe2e + alpha.toml(), "listen_port = 1\n"));
  auto check = process::spawn({bin("wechat-hub"), "--check-config", "--config", env.dir / "next.toml"},
                              env.dir / "check.log");
  int code = -1;
  CAF_REQUIRE(check.wait_for(std::chrono::seconds(10), code));
  CAF_CHECK_EQUAL(code, 2);
  CAF_CHECK_NOT_EQUAL(read_file(env.dir / "check.log").find(env.dir / "next.toml" + ": hub.listen_port: unknown key"),
                      std::string::npos);
  CAF_CHECK_EQUAL(status_with(intruder.key, "/client/access_token?appid=wxe2e"), 401u);
  CAF_CHECK_EQUAL(token_with(alpha.key, "wxe2e"), token);
  CAF_CHECK_EQUAL(reloads("invalid"), 3);
  CAF_CHECK_EQUAL(reloads("ok"), 0);
  CAF_CHECK_NOT_EQUAL(env.hub_log().find("reload rejected, the running config stays in force"),
                      std::string::npos);
  // A valid file afterwards applies; restart-only settings are named, not applied.
  CAF_CHECK(reload(config(wxe2e + alpha.toml(), "idle_timeout_s = 30\n")));
  CAF_CHECK_NOT_EQUAL(env.hub_log().find("hub.idle_timeout_s changed; it takes effect after a restart"),
                      std::string::npos);
  CAF_CHECK_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
}

CAF_TEST(apps and components come and go and unchanged keys make no upstream call) {
  start(wxe2e);
  auto e2e_token = token_with("", "wxe2e");
  CAF_REQUIRE_EQUAL(e2e_token.rfind("<status", 0), std::string::npos);
  CAF_CHECK_EQUAL(total_upstream_calls(), 1);
  // Added: an app and a component (its push crypto too). The new component
  // asks WeChat for a verify ticket; wxe2e makes no call.
  CAF_REQUIRE(reload(config(wxe2e + wxother + component_toml())));
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/token", "wxother"), 0);
  auto other_token = token_with("", "wxother");
  CAF_REQUIRE_EQUAL(other_token.rfind("<status", 0), std::string::npos);
  CAF_CHECK_EQUAL(token_with("", "wxe2e"), e2e_token);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), 1);
  std::string comp = component_appid;
  auto push = parse_object(env.sim("POST", "/sim/push",
                                   R"({"component_appid":")" + comp + R"(","info_type":"component_verify_ticket",)"
                                     R"("url":")" + env.hub_url() + "/wechat/component/" + comp + "/events\"}")
                             .body);
  CAF_CHECK_EQUAL(push.at("status").as_int64(), 200);
  auto comp_token = env.hub("GET", "/client/component_access_token?appid=" + comp);
  CAF_CHECK_EQUAL(comp_token.status, 200u);
  auto calls = total_upstream_calls();
  // Removed: wxother answers 404; the rest keep their tokens without a call.
  CAF_REQUIRE(reload(config(wxe2e + component_toml())));
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxother").status, 404u);
  CAF_CHECK_EQUAL(token_with("", "wxe2e"), e2e_token);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/component_access_token?appid=" + comp).body, comp_token.body);
  CAF_CHECK_EQUAL(total_upstream_calls(), calls);
  // Changed under live reads: wxe2e switches its token API and the component
  // gets a new secret; both keep serving their stored tokens, no read fails.
  auto rotated = component_toml();
  rotated.replace(rotated.find(component_secret), std::string{component_secret}.size(), "rotated-comp-secret");
  {
    traffic app_reads{env.hub_url() + "/client/access_token?appid=wxe2e", ""};
    traffic comp_reads{env.hub_url() + "/client/component_access_token?appid=" + comp, ""};
    wait_for_reads(app_reads, 20);
    wait_for_reads(comp_reads, 20);
    int app_at = app_reads.ok + 50, comp_at = comp_reads.ok + 50;
    CAF_REQUIRE(reload(config(app_toml("wxe2e", "e2e-secret-value", "classic") + rotated)));
    wait_for_reads(app_reads, app_at);
    wait_for_reads(comp_reads, comp_at);
    app_reads.stop();
    comp_reads.stop();
    CAF_CHECK_EQUAL(app_reads.failed.load(), 0);
    CAF_CHECK_EQUAL(comp_reads.failed.load(), 0);
    if (app_reads.failed || comp_reads.failed)
      CAF_MESSAGE("first failures: " << app_reads.last_failure << " / " << comp_reads.last_failure);
  }
  CAF_CHECK(env.hub_log().find("changed [wxe2e, " + comp + "]") != std::string::npos);
  CAF_CHECK_NOT_EQUAL(env.hub("GET", "/admin/apps").body.find(R"("token_api":"classic")"), std::string::npos);
  CAF_CHECK_EQUAL(token_with("", "wxe2e"), e2e_token);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/component_access_token?appid=" + comp).body, comp_token.body);
  CAF_CHECK_EQUAL(total_upstream_calls(), calls);
  // Re-added: its stored state was kept, so no new token is needed.
  CAF_REQUIRE(reload(config(app_toml("wxe2e", "e2e-secret-value", "classic") + wxother)));
  CAF_CHECK_EQUAL(token_with("", "wxother"), other_token);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/component_access_token?appid=" + comp).status, 404u);
  CAF_CHECK_EQUAL(env.hub("POST", "/wechat/component/" + comp + "/events", "<xml/>", "text/xml").status, 404u);
  CAF_CHECK_EQUAL(total_upstream_calls(), calls);
  // The log level is reloaded too: at "error" a reload writes nothing.
  auto quiet = config(app_toml("wxe2e", "e2e-secret-value", "classic"), "log_level = \"error\"\n");
  CAF_REQUIRE(reload(quiet));
  auto before = env.hub_log().size();
  CAF_REQUIRE(reload(quiet));
  CAF_CHECK_EQUAL(env.hub_log().size(), before);
  CAF_REQUIRE(reload(config(app_toml("wxe2e", "e2e-secret-value", "classic"))));
  CAF_CHECK_NOT_EQUAL(env.hub_log().substr(before).find("reloaded "), std::string::npos);
  CAF_CHECK_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
}

CAF_TEST_FIXTURE_SCOPE_END()
