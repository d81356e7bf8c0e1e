#define CAF_SUITE e2e_secrets

#include "caf/test/dsl.hpp"

#include <filesystem>
#include <sstream>

#include <sys/stat.h>

#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

constexpr const char* authorizer = "wxauthorizer0001";

struct fixture {
  hub_env env;
  std::string comp = component_appid;

  std::string events_url() const { return env.hub_url() + "/wechat/component/" + comp + "/events"; }

  void sim_push(const std::string& info_type, const std::string& aid = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type
                       + R"(","url":")" + events_url() + "\"";
    if (!aid.empty())
      body += R"(,"authorizer_appid":")" + aid + "\"";
    body += "}";
    auto res = parse_object(env.sim("POST", "/sim/push", body).body);
    CAF_REQUIRE_EQUAL(res.at("status").as_int64(), 200);
  }

  /// `field` of a hub answer to GET `target`, or "<status N>".
  std::string served(const std::string& target, const char* field) {
    auto res = env.hub("GET", target);
    if (res.status != 200)
      return "<status " + std::to_string(res.status) + ">";
    return std::string{parse_object(res.body).at(field).as_string()};
  }

  /// Everything the hub serves, in a fixed order.
  std::vector<std::string> served_all() {
    return {served("/client/access_token?appid=wxe2e", "access_token"),
            served("/client/access_token?appid=wxother", "access_token"),
            served("/client/ticket?appid=wxe2e&type=jsapi", "ticket"),
            served("/client/ticket?appid=wxe2e&type=wx_card", "ticket"),
            served("/client/component_access_token?appid=" + comp, "access_token"),
            served("/client/access_token?appid=" + comp + "&authorizer_appid=" + authorizer, "access_token"),
            served("/client/ticket?appid=" + comp + "&authorizer_appid=" + authorizer + "&type=jsapi",
                   "ticket")};
  }

  /// Every string value of the simulator's state for `appid` that is a credential.
  void collect_sim_state(const std::string& appid, std::vector<std::string>& out) {
    auto st = parse_object(env.sim("GET", "/sim/state?appid=" + appid).body);
    for (auto field : {"stable_token", "classic_token", "component_token", "verify_ticket",
                       "authorizer_token", "refresh_token"})
      if (auto v = st.if_contains(field); v && v->is_string() && !v->as_string().empty())
        out.emplace_back(v->as_string());
    if (auto t = st.if_contains("tickets"); t && t->is_object())
      for (auto& kv : t->as_object())
        if (kv.value().is_string())
          out.emplace_back(kv.value().as_string());
  }

  /// Every byte of every file under the hub's data dir.
  std::string data_bytes() {
    std::string out;
    for (auto& e : std::filesystem::recursive_directory_iterator(env.dir / "data"))
      if (e.is_regular_file())
        out += read_file(e.path().string());
    return out;
  }

  void check_no_leaks();

  int rotate(const std::string& log) {
    auto proc = process::spawn({bin("wechat-hub"), "rotate-master-key", "--config", env.dir / "hub.toml"},
                               env.dir / log);
    int code = -1;
    if (!proc.wait_for(std::chrono::seconds(30), code))
      proc.kill_now();
    return code;
  }
};

} // namespace

/// Obtains one of everything, rotates the master key and restarts: no secret
/// or token ever reaches the data dir or the log (in the current log format).
void fixture::check_no_leaks() {
  env.start_hub(component_toml());
  auto key_file = env.dir / "data/master.key";
  struct stat st {};
  CAF_REQUIRE_EQUAL(::stat(key_file.c_str(), &st), 0);
  CAF_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  CAF_CHECK_NOT_EQUAL(env.hub_log().find("keep it elsewhere (hub.master_key_file)"), std::string::npos);
  // Obtain one of everything: app tokens and tickets, a verify ticket, the
  // component token, an authorizer (refresh token, token, ticket).
  sim_push("component_verify_ticket");
  sim_push("authorized", authorizer);
  auto before = served_all();
  for (auto& v : before)
    CAF_CHECK_EQUAL(v.rfind("<status", 0), std::string::npos);
  std::vector<std::string> secrets{"e2e-secret-value", "other-secret", component_secret, component_aes_key,
                                   component_token};
  secrets.insert(secrets.end(), before.begin(), before.end());
  for (auto appid : {"wxe2e", "wxother", component_appid, authorizer})
    collect_sim_state(appid, secrets);
  CAF_CHECK_GREATER_OR_EQUAL(secrets.size(), 14u);
  // Secrets added at runtime through the admin API are stored too. They are
  // removed again (WeChat does not know them), but the WAL saw them written.
  std::string runtime_aes_key = "zyxwvutsrqponmlkjihgfedcba9876543210ZYXWVUT";
  secrets.insert(secrets.end(), {"runtime-app-secret-0001", "runtime-comp-secret-0002",
                                 "runtimepushtoken0003", runtime_aes_key});
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/apps/wxruntime", R"({"secret":"runtime-app-secret-0001"})").status,
                  200u);
  CAF_CHECK_EQUAL(env.hub("PUT", "/admin/components/wxcompruntime",
                          R"({"secret":"runtime-comp-secret-0002","token":"runtimepushtoken0003",)"
                          R"("encoding_aes_key":")" + runtime_aes_key + "\"}")
                    .status,
                  200u);
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/apps/wxruntime").status, 200u);
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/components/wxcompruntime").status, 200u);
  CAF_REQUIRE_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
  auto check_clean = [&](const char* when) {
    auto disk = data_bytes();
    auto log = env.hub_log();
    // Sanity: the grep looks at the right bytes (key names are plaintext).
    CAF_CHECK_NOT_EQUAL(disk.find("app/wxe2e/access_token"), std::string::npos);
    for (auto& s : secrets) {
      if (disk.find(s) != std::string::npos)
        CAF_FAIL(when << ": a secret or token is in the data dir: " << s);
      if (log.find(s) != std::string::npos)
        CAF_FAIL(when << ": a secret or token is in the hub log: " << s);
    }
  };
  check_clean("after stop");
  // Sanity: the runtime definitions did reach the disk (their key names are plaintext).
  CAF_CHECK_NOT_EQUAL(data_bytes().find("wxcompruntime"), std::string::npos);
  // Rotation: refused while a hub runs, then with the hub stopped it re-seals
  // every value with a new key.
  auto old_key = read_file(key_file);
  env.start_hub(component_toml());
  CAF_CHECK_NOT_EQUAL(rotate("rotate-busy.log"), 0);
  CAF_CHECK_EQUAL(read_file(key_file), old_key);
  CAF_REQUIRE_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
  CAF_REQUIRE_EQUAL(rotate("rotate.log"), 0);
  CAF_CHECK_NOT_EQUAL(read_file(key_file), old_key);
  CAF_CHECK(!std::filesystem::exists(key_file + ".old"));
  CAF_REQUIRE_EQUAL(::stat(key_file.c_str(), &st), 0);
  CAF_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  check_clean("after rotation");
  // The restarted hub opens everything with the new key: same values, no
  // upstream call.
  env.sim("POST", "/sim/reset");
  env.start_hub(component_toml());
  auto after = served_all();
  CAF_CHECK_EQUAL(after.size(), before.size());
  for (size_t i = 0; i < before.size() && i < after.size(); ++i)
    CAF_CHECK_EQUAL(after[i], before[i]);
  auto total = parse_object(env.sim("GET", "/sim/stats").body).at("total").as_int64();
  CAF_CHECK_EQUAL(total, 0);
  CAF_CHECK_EQUAL(env.hub_log().find("keep it elsewhere"), env.hub_log().rfind("keep it elsewhere"));
  CAF_REQUIRE_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
  check_clean("after restart");
}

CAF_TEST_FIXTURE_SCOPE(secrets_tests, fixture)

CAF_TEST(no secret or token reaches the disk or the log and rotation loses nothing) {
  check_no_leaks();
}

CAF_TEST(json logs carry no secret either and every line is one json object) {
  env.hub_settings = "log_format = \"json\"\n";
  check_no_leaks();
  size_t lines = 0;
  std::istringstream in{env.hub_log()};
  for (std::string line; std::getline(in, line); ++lines) {
    auto o = parse_object(line);
    if (o.empty() || !o.contains("time") || !o.contains("level") || !o.contains("component")
        || !o.contains("message"))
      CAF_FAIL("not a JSON log record: " << line);
  }
  CAF_CHECK_GREATER(lines, 3u);
  // Structured fields: token records name their key.
  CAF_CHECK_NOT_EQUAL(env.hub_log().find(R"("key":"wxe2e")"), std::string::npos);
}

CAF_TEST(a key file outside data_dir and refusals for a wrong lost or readable key) {
  // Production layout: hub.master_key_file outside data_dir.
  auto key_file = env.dir / "hub.key";
  env.start_hub();
  CAF_REQUIRE_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
  std::filesystem::remove_all(env.dir / "data");
  auto cfg = read_file(env.dir / "hub.toml");
  auto at = cfg.find("[hub]\n");
  CAF_REQUIRE(at != std::string::npos);
  cfg.insert(at + 6, "master_key_file = \"" + key_file + "\"\n");
  auto start = [&]() -> int {
    std::remove((env.dir / "hub.port").c_str());
    std::remove((env.dir / "hub.log").c_str());
    write_file(env.dir / "hub.toml", cfg);
    env.hub_proc = process::spawn({bin("wechat-hub"), "--config", env.dir / "hub.toml", "--port-file",
                                   env.dir / "hub.port"},
                                  env.dir / "hub.log");
    env.hub_port = wait_for_port(env.dir / "hub.port", env.hub_proc);
    if (env.hub_port != 0)
      return 0;
    int code = -1;
    env.hub_proc.wait_for(std::chrono::seconds(10), code);
    return code;
  };
  CAF_REQUIRE_EQUAL(start(), 0);
  CAF_CHECK_EQUAL(env.hub_log().find("keep it elsewhere"), std::string::npos);
  CAF_CHECK(!std::filesystem::exists(env.dir / "data/master.key"));
  struct stat st {};
  CAF_REQUIRE_EQUAL(::stat(key_file.c_str(), &st), 0);
  CAF_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  auto token = served("/client/access_token?appid=wxe2e", "access_token");
  CAF_REQUIRE_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
  auto good = read_file(key_file);
  // A group-readable key file: refused, naming the file.
  ::chmod(key_file.c_str(), 0640);
  CAF_CHECK_NOT_EQUAL(start(), 0);
  CAF_CHECK_NOT_EQUAL(env.hub_log().find(key_file + ": is accessible by group or others"), std::string::npos);
  // Another valid key: refused before anything is rewritten.
  write_file(key_file, std::string(64, 'a') + "\n");
  ::chmod(key_file.c_str(), 0600);
  CAF_CHECK_NOT_EQUAL(start(), 0);
  CAF_CHECK_NOT_EQUAL(env.hub_log().find("cannot be opened with master key " + key_file), std::string::npos);
  // A lost key: refused, not replaced by a fresh one.
  std::filesystem::remove(key_file);
  CAF_CHECK_NOT_EQUAL(start(), 0);
  CAF_CHECK_NOT_EQUAL(env.hub_log().find("missing, but"), std::string::npos);
  CAF_CHECK(!std::filesystem::exists(key_file));
  // The right key again: the same token, no upstream call.
  write_file(key_file, good);
  ::chmod(key_file.c_str(), 0600);
  env.sim("POST", "/sim/reset");
  CAF_REQUIRE_EQUAL(start(), 0);
  CAF_CHECK_EQUAL(served("/client/access_token?appid=wxe2e", "access_token"), token);
  CAF_CHECK_EQUAL(parse_object(env.sim("GET", "/sim/stats").body).at("total").as_int64(), 0);
  CAF_REQUIRE_EQUAL(env.stop_hub(std::chrono::seconds(15)), 0);
}

CAF_TEST_FIXTURE_SCOPE_END()
