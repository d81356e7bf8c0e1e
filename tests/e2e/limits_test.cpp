// The hub as an outsider attacks it: few file descriptors and many idle
// connections, refused admin requests, a large bulk import (issue 14).
#define CAF_SUITE e2e_limits

#include "caf/test/dsl.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <csignal>
#include <unistd.h>

#include "http/auth.hpp"
#include "tests/e2e/hub_env.hpp"
#include "tests/support/raw_client.hpp"

using namespace std::chrono_literals;
using namespace wh;
using namespace wh::test;
using clk = std::chrono::steady_clock;

namespace {

/// utime + stime of `pid` in seconds (/proc/PID/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in{stat.substr(stat.rfind(')') + 2)};
  std::string field;
  double ticks = 0;
  // After the command: state is field 3, utime 14, stime 15.
  for (int i = 3; i <= 15 && in >> field; ++i)
    if (i >= 14)
      ticks += std::stod(field);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

/// GET /healthz over a fresh connection; 0 when refused or unanswered.
unsigned healthz(uint16_t port) {
  int fd = make_socket();
  connect_to(fd, port);
  send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  auto status = read_status(fd, 300ms);
  ::close(fd);
  return status;
}

struct fixture {
  hub_env env;

  /// Starts the hub with `ulimit -n files` (soft and hard: it cannot raise it).
  process start_limited(int files, const std::string& extra_hub = {}) {
    auto cfg = "[hub]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"" + (env.dir / "data") + "\"\n" + extra_hub
               + "[wechat]\napi_base = \"http://127.0.0.1:" + std::to_string(env.sim_port)
               + "\"\n[[app]]\nappid = \"wxe2e\"\nsecret = \"e2e-secret-value\"\n";
    write_file(env.dir / "limited.toml", cfg);
    std::remove((env.dir / "limited.port").c_str());
    auto proc = process::spawn({"/bin/sh", "-c", "ulimit -n " + std::to_string(files) + " && exec \"$0\" \"$@\"",
                                bin("wechat-hub"), "--config", env.dir / "limited.toml", "--port-file",
                                env.dir / "limited.port"},
                               env.dir / "limited.log");
    env.hub_port = wait_for_port(env.dir / "limited.port", proc);
    if (env.hub_port == 0)
      CAF_FAIL("hub did not start: " << read_file(env.dir / "limited.log"));
    return proc;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(limits_tests, fixture)

CAF_TEST(400 idle connections against ulimit -n 256 keep logs and CPU bounded) {
  auto hub = start_limited(256);
  CAF_REQUIRE_EQUAL(healthz(env.hub_port), 200u);
  auto log_path = env.dir / "limited.log";
  CAF_CHECK(read_file(log_path).find("accepting at most 64 connections") != std::string::npos);
  auto lines_before = count(read_file(log_path), "\n");
  std::vector<int> idle;
  for (int i = 0; i < 400; ++i) {
    idle.push_back(make_socket());
    connect_to(idle.back(), env.hub_port);
  }
  auto cpu_before = cpu_seconds(hub.pid());
  std::this_thread::sleep_for(2s);
  auto cpu_used = cpu_seconds(hub.pid()) - cpu_before;
  auto log = read_file(log_path);
  auto new_lines = count(log, "\n") - lines_before;
  CAF_MESSAGE("hub CPU over 2 s with 400 idle connections: " << cpu_used << " s; new log lines: "
                                                             << new_lines);
  CAF_CHECK_LESS(cpu_used, 0.5);
  CAF_CHECK_LESS_OR_EQUAL(new_lines, 4u);
  CAF_CHECK(log.find("connection limit 64 reached") != std::string::npos);
  for (int fd : idle)
    ::close(fd);
  auto closed = clk::now();
  unsigned status = 0;
  while (status != 200 && clk::now() - closed < 2s)
    status = healthz(env.hub_port);
  CAF_MESSAGE("served again after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - closed).count() << " ms");
  CAF_CHECK_EQUAL(status, 200u);
  hub.signal(SIGTERM);
  int code = -1;
  CAF_CHECK(hub.wait_for(10s, code));
  CAF_CHECK_EQUAL(code, 0);
}

CAF_TEST(refused admin requests are audited with a normalised path and an unknown client) {
  auto admin_key = http::generate_client_key();
  env.start_hub("[[client]]\nname = \"ops\"\nkey_sha256 = \"" + http::sha256_hex(admin_key)
                + "\"\nscopes = [\"*\"]\nadmin = true\n");
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/apps").status, 401u);
  env.bearer = "not-a-key";
  CAF_CHECK_EQUAL(env.hub("DELETE", "/admin/apps/wxe2e").status, 401u);
  env.bearer.clear();
  // Encoded and dotted paths reach the same route; the audit names it plainly.
  int fd = make_socket();
  connect_to(fd, env.hub_port);
  send_all(fd, "GET /%61dmin/apps HTTP/1.1\r\nHost: x\r\n\r\n");
  CAF_CHECK_EQUAL(read_status(fd, 3s), 401u);
  send_all(fd, "PUT /admin/x/../apps/wxnew HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  CAF_CHECK_EQUAL(read_status(fd, 3s), 401u);
  ::close(fd);
  env.bearer = admin_key;
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/apps").status, 200u);
  env.bearer.clear();
  auto audit = read_file(env.dir / "data/audit.log");
  CAF_MESSAGE("audit log:\n" << audit);
  CAF_CHECK_EQUAL(count(audit, R"x("client":"(unknown)")x"), 4u);
  CAF_CHECK(audit.find(R"x("client":"(unknown)","action":"GET","target":"/admin/apps","status":401)x")
            != std::string::npos);
  CAF_CHECK(audit.find(R"x("client":"(unknown)","action":"DELETE","target":"/admin/apps/wxe2e","status":401)x")
            != std::string::npos);
  CAF_CHECK(audit.find(R"x("client":"(unknown)","action":"PUT","target":"/admin/apps/wxnew","status":401)x")
            != std::string::npos);
  CAF_CHECK(audit.find(R"x("client":"ops","action":"GET","target":"/admin/apps","status":200)x") != std::string::npos);
  CAF_CHECK(audit.find("%61") == std::string::npos);
  CAF_CHECK(audit.find("not-a-key") == std::string::npos);
}

CAF_TEST(a bulk import of 10000 authorizers fits the default limits) {
  env.start_hub(component_toml());
  std::string body = R"({"authorizers":[)";
  for (int i = 0; i < 10'000; ++i) {
    if (i > 0)
      body += ',';
    // Refresh tokens as WeChat issues them: about 80 characters.
    body += R"({"authorizer_appid":"wxbulk)" + std::to_string(100000 + i) + R"(","refresh_token":"refreshtoken@@@)"
            + std::string(64, 'r') + "\"}";
  }
  body += "]}";
  CAF_MESSAGE("import body: " << body.size() << " bytes");
  CAF_REQUIRE_GREATER(body.size(), 64u * 1024);
  auto res = env.hub("POST", "/admin/components/" + std::string{component_appid} + "/authorizers", body);
  CAF_CHECK_EQUAL(res.status, 200u);
  CAF_CHECK_EQUAL(res.body, R"({"imported":10000})");
  // Other routes keep the small limit.
  auto other = env.hub("PUT", "/admin/apps/wxbig", body);
  CAF_CHECK_EQUAL(other.status, 413u);
}

CAF_TEST(toml++ 3.3.0 bug inputs make the hub exit 2 with a syntax error) {
  // The inputs live with the config fuzz target's crash reproducers.
  auto dir = std::string{WH_TEST_DATA_DIR} + "/../fuzz/crashes/config/";
  size_t ran = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    if (name.rfind("tomlpp-", 0) != 0)
      continue;
    ++ran;
    auto out = env.dir / ("toml-" + name + ".log");
    auto proc = process::spawn({bin("wechat-hub"), "--config", e.path().string()}, out);
    int code = -1;
    CAF_CHECK(proc.wait_for(10s, code));
    CAF_MESSAGE(name << ": exit " << code << ": " << read_file(out));
    CAF_CHECK_EQUAL(code, 2);
    CAF_CHECK(read_file(out).find("TOML syntax error") != std::string::npos);
  }
  CAF_CHECK_EQUAL(ran, 2u);
}

CAF_TEST_FIXTURE_SCOPE_END()
