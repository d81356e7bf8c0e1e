#define CAF_SUITE e2e_metrics

// /metrics as Prometheus sees it: the real `promtool check metrics` in every
// mode of the hub, a real `prometheus` server scraping a hub, and the shipped
// alert rules checked against the families a hub really exports.

#include "caf/test/dsl.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/cluster_env.hpp"
#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;
using namespace std::chrono_literals;

namespace {

struct shell_result {
  int rc = -1;
  std::string out;
};

/// Runs `cmd` with /bin/sh; stdout and stderr are captured.
shell_result shell(const std::string& cmd) {
  shell_result res;
  auto* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe)
    return res;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
    res.out.append(buf, n);
  auto status = ::pclose(pipe);
  res.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return res;
}

/// Full path of a tool from the Debian package `prometheus` ("" if missing).
std::string tool(const std::string& name) {
  auto res = shell("command -v " + name);
  auto path = res.out.substr(0, res.out.find('\n'));
  if (res.rc != 0 || path.empty())
    CAF_FAIL(name << " not found: run scripts/setup (Debian package prometheus)");
  return path;
}

/// What `promtool check metrics` says about `body` ("" = it parses and lints clean).
std::string promtool_problems(const temp_dir& dir, const std::string& body, const std::string& what) {
  auto path = dir / ("metrics-" + what + ".txt");
  write_file(path, body);
  auto res = shell("'" + tool("promtool") + "' check metrics < '" + path + "'");
  if (res.rc == 0 && res.out.empty())
    return {};
  return "promtool rc " + std::to_string(res.rc) + ": " + res.out;
}

#define CHECK_PROMTOOL(dir, body, what)                                                            \
  do {                                                                                             \
    auto problems_ = promtool_problems(dir, body, what);                                           \
    if (!problems_.empty())                                                                        \
      CAF_TEST_PRINT_ERROR((what) << ": " << problems_);                                           \
    CAF_CHECK(problems_.empty());                                                                  \
  } while (false)

/// Family name -> TYPE, from the `# TYPE` lines of a scrape.
std::map<std::string, std::string> families(const std::string& body) {
  std::map<std::string, std::string> out;
  std::istringstream in{body};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) != 0)
      continue;
    std::istringstream words{line.substr(7)};
    std::string name, type;
    words >> name >> type;
    out[name] = type;
  }
  return out;
}

/// The value of the sample `series` (name plus rendered labels), -1 if absent.
double sample(const std::string& body, const std::string& series) {
  auto pos = body.find("\n" + series + " ");
  if (pos == std::string::npos)
    return -1;
  return std::stod(body.substr(pos + series.size() + 2));
}

/// Sum of every sample whose line starts with `prefix`.
double sum_of(const std::string& body, const std::string& prefix) {
  double total = 0;
  for (auto pos = body.find("\n" + prefix); pos != std::string::npos; pos = body.find("\n" + prefix, pos + 1)) {
    auto eol = body.find('\n', pos + 1);
    auto line = body.substr(pos + 1, eol - pos - 1);
    total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

std::string rules_path() {
  return std::string{WH_TEST_DATA_DIR} + "/../../deploy/prometheus/wechat-hub-rules.yml";
}

/// Every wechat_* metric name the rules' expressions use.
std::set<std::string> rule_metric_names() {
  std::set<std::string> out;
  std::ifstream in{rules_path()};
  CAF_REQUIRE(in.good());
  std::string line;
  std::regex name{"wechat_[a-z_]+"};
  while (std::getline(in, line)) {
    auto text = line.substr(line.find_first_not_of(' ') == std::string::npos ? 0 : line.find_first_not_of(' '));
    if (text.rfind("#", 0) == 0 || text.rfind("summary:", 0) == 0 || text.rfind("- name:", 0) == 0)
      continue;
    for (std::sregex_iterator i{line.begin(), line.end(), name}, end; i != end; ++i)
      out.insert(i->str());
  }
  return out;
}

/// Rule names missing from the families of `body` (histogram series names
/// resolve to their family).
std::vector<std::string> missing_families(const std::set<std::string>& names, const std::string& body) {
  auto fams = families(body);
  std::vector<std::string> missing;
  for (auto& n : names) {
    if (fams.count(n))
      continue;
    bool found = false;
    for (auto suffix : {"_bucket", "_sum", "_count"}) {
      std::string s{suffix};
      if (n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0
          && fams.count(n.substr(0, n.size() - s.size())))
        found = true;
    }
    if (!found)
      missing.push_back(n);
  }
  return missing;
}

bool is_cluster_metric(const std::string& name) {
  return name.rfind("wechat_hub_cluster_", 0) == 0;
}

/// A loopback TCP port nobody listens on, below the ephemeral range.
uint16_t free_port() {
  static std::mt19937 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto wanted = static_cast<uint16_t>(20000 + rng() % 10000);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(wanted);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok)
      return wanted;
  }
  CAF_FAIL("no free port");
  return 0;
}

/// Starts a hub with an arbitrary config (hub_env's own config always has apps).
void start_hub_with(hub_env& env, const std::string& toml) {
  std::remove((env.dir / "hub.port").c_str());
  write_file(env.dir / "hub.toml", toml);
  env.hub_proc = process::spawn({bin("wechat-hub"), "--config", env.dir / "hub.toml", "--port-file",
                                 env.dir / "hub.port"},
                                env.dir / "hub.log");
  env.hub_port = wait_for_port(env.dir / "hub.port", env.hub_proc);
  if (env.hub_port == 0)
    CAF_FAIL("wechat-hub did not start: " << env.hub_log());
}

std::string sim_push(hub_env& env, const std::string& info_type, const std::string& authorizer = {}) {
  std::string body = R"({"component_appid":")" + std::string{component_appid} + R"(","info_type":")"
                     + info_type + R"(","url":")" + env.hub_url() + "/wechat/component/" + component_appid
                     + "/events\"";
  if (!authorizer.empty())
    body += R"(,"authorizer_appid":")" + authorizer + "\"";
  body += "}";
  return env.sim("POST", "/sim/push", body).body;
}

} // namespace

CAF_TEST(promtool accepts metrics of an empty hub and of apps components authorizers and errors) {
  hub_env env;
  auto rule_names = rule_metric_names();
  CAF_REQUIRE(!rule_names.empty());
  // 1. No app, no component.
  start_hub_with(env, "[hub]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"" + (env.dir / "empty")
                        + "\"\n[wechat]\napi_base = \"http://127.0.0.1:" + std::to_string(env.sim_port)
                        + "\"\n");
  auto empty = env.hub("GET", "/metrics");
  CAF_CHECK_EQUAL(empty.status, 200u);
  CHECK_PROMTOOL(env.dir, empty.body, "empty hub");
  env.kill_hub();
  // 2. Apps with tokens and tickets.
  env.start_hub();
  for (auto appid : {"wxe2e", "wxother"}) {
    CAF_CHECK_EQUAL(env.hub("GET", std::string{"/client/access_token?appid="} + appid).status, 200u);
    CAF_CHECK_EQUAL(env.hub("GET", std::string{"/client/ticket?type=jsapi&appid="} + appid).status, 200u);
  }
  for (int i = 0; i < 50; ++i)
    env.hub("GET", "/client/access_token?appid=wxe2e");
  auto apps = env.hub("GET", "/metrics").body;
  CHECK_PROMTOOL(env.dir, apps, "apps");
  // The families the issue names appear exactly once each.
  for (auto fam : {"wechat_hub_token_age_seconds", "wechat_hub_token_ttl_seconds"}) {
    auto help = "# HELP " + std::string{fam} + " ";
    auto first = apps.find(help);
    CAF_CHECK(first != std::string::npos);
    CAF_CHECK_EQUAL(apps.find(help, first + 1), std::string::npos);
  }
  CAF_CHECK_GREATER(sample(apps, "wechat_hub_token_ttl_seconds{appid=\"wxe2e\"}"), 0);
  // Latency histograms: the cached answers resolve below a millisecond, and
  // every upstream call WeChat saw was timed.
  auto fams = families(apps);
  CAF_CHECK_EQUAL(fams["wechat_hub_http_request_duration_seconds"], "histogram");
  CAF_CHECK_EQUAL(fams["wechat_upstream_call_duration_seconds"], "histogram");
  auto served = sample(apps, "wechat_hub_http_request_duration_seconds_count{route=\"/client/access_token\"}");
  CAF_CHECK_EQUAL(served, 52);
  CAF_CHECK_GREATER(sample(apps, "wechat_hub_http_request_duration_seconds_bucket{route=\"/client/access_token\",le=\"0.001\"}"),
                    0);
  CAF_CHECK_GREATER_OR_EQUAL(
    sample(apps, "wechat_hub_http_request_duration_seconds_bucket{route=\"/client/access_token\",le=\"0.0005\"}"), 0);
  CAF_CHECK_EQUAL(sample(apps, "wechat_upstream_call_duration_seconds_count{endpoint=\"stable_token\"}"),
                  static_cast<double>(env.sim_calls("/cgi-bin/stable_token", "wxe2e")));
  CAF_CHECK_EQUAL(sample(apps, "wechat_upstream_call_duration_seconds_count{endpoint=\"token\"}"),
                  static_cast<double>(env.sim_calls("/cgi-bin/token", "wxother")));
  CAF_CHECK_EQUAL(sample(apps, "wechat_upstream_call_duration_seconds_count{endpoint=\"getticket\"}"), 2);
  env.kill_hub();
  // 3. A component with authorizers.
  env.start_hub(component_toml());
  sim_push(env, "component_verify_ticket");
  sim_push(env, "authorized", "wxauthorizer0001");
  sim_push(env, "authorized", "wxauthorizer0002");
  CAF_CHECK_EQUAL(env.hub("GET", std::string{"/client/access_token?appid="} + component_appid
                                   + "&authorizer_appid=wxauthorizer0001")
                    .status,
                  200u);
  auto comp = env.hub("GET", "/metrics").body;
  CHECK_PROMTOOL(env.dir, comp, "component with authorizers");
  CAF_CHECK_EQUAL(sample(comp, "wechat_hub_authorizers{component=\"" + std::string{component_appid}
                                 + "\",status=\"active\"}"),
                  2);
  CAF_CHECK_GREATER_OR_EQUAL(
    sample(comp, "wechat_hub_verify_ticket_age_seconds{component=\"" + std::string{component_appid} + "\"}"), 0);
  // Every metric a rule uses exists here (cluster families: see the cluster test).
  std::set<std::string> hub_rule_names;
  for (auto& n : rule_names)
    if (!is_cluster_metric(n))
      hub_rule_names.insert(n);
  for (auto& n : missing_families(hub_rule_names, comp))
    CAF_ERROR("the alert rules use " << n << ", which the hub does not export");
  // 4. After errors: WeChat failing (45009, HTTP 500, dropped connections),
  // unknown keys, bad requests, a 45009 daily quota.
  env.sim("POST", "/sim/fault", R"({"path":"/cgi-bin/stable_token","kind":"errcode","errcode":45009})");
  env.sim("POST", "/sim/fault", R"({"path":"/cgi-bin/token","kind":"http500"})");
  env.sim("POST", "/sim/fault", R"({"path":"/cgi-bin/ticket/getticket","kind":"drop"})");
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxe2e"})");
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxother"})");
  // A stale report of the token in use makes the hub ask stable_token again.
  auto current = parse_object(env.hub("GET", "/client/access_token?appid=wxe2e").body);
  CAF_REQUIRE(current.contains("access_token"));
  env.hub("POST", "/refresh/access_token",
          R"({"appid":"wxe2e","access_token":")" + std::string{current.at("access_token").as_string()} + "\"}");
  env.hub("POST", "/admin/refresh", R"({"appid":"wxother"})");
  env.hub("GET", "/client/ticket?type=wx_card&appid=wxother");
  env.hub("GET", "/client/access_token?appid=nosuchapp");
  env.hub("GET", "/client/access_token");
  env.hub("DELETE", "/metrics");
  env.hub("GET", "/no/such/path");
  auto errors = env.hub("GET", "/metrics").body;
  CHECK_PROMTOOL(env.dir, errors, "after errors");
  CAF_CHECK_GREATER(sample(errors, "wechat_hub_http_requests_total{route=\"/client/access_token\",status=\"404\"}"), 0);
  CAF_CHECK(errors.find("wechat_hub_refreshes_total{") != std::string::npos
            && errors.find("result=\"error\"}") != std::string::npos);
  CAF_CHECK_EQUAL(sample(errors, "wechat_upstream_calls_total{endpoint=\"stable_token\",errcode=\"45009\"}"), 1);
  // Every answered request of a route was timed, whatever its status (admin
  // answers pass through the audit wrapper).
  for (std::string route : {"/client/access_token", "/refresh/access_token", "/admin", "/client/ticket"}) {
    auto requests = sum_of(errors, "wechat_hub_http_requests_total{route=\"" + route + "\",");
    CAF_CHECK_GREATER(requests, 0);
    CAF_CHECK_EQUAL(sample(errors, "wechat_hub_http_request_duration_seconds_count{route=\"" + route + "\"}"),
                    requests);
  }
  CAF_CHECK_EQUAL(sample(errors, "wechat_hub_daily_quota_exhausted{appid=\"wxe2e\",endpoint=\"stable_token\"}"), 1);
}

CAF_TEST(promtool accepts every node of a three node cluster and the cluster rules use real metrics) {
  std::vector<cluster_app> apps{{"wxmet0000000001", "met-secret-1", false},
                                {"wxmet0000000002", "met-secret-2", true},
                                {"wxmet0000000003", "met-secret-3", false}};
  cluster_options opts{apps};
  opts.component = true;
  cluster_env env{opts};
  env.start_all();
  std::string why;
  CAF_REQUIRE(env.wait_ready(env.all(), 30s, &why));
  for (auto i : env.all())
    for (auto& a : apps)
      env.token(i, a.appid);
  auto rule_names = rule_metric_names();
  for (auto i : env.all()) {
    auto res = env.node(i, "GET", "/metrics");
    CAF_CHECK_EQUAL(res.status, 200u);
    CHECK_PROMTOOL(env.dir, res.body, env.nodes[i].id);
    CAF_CHECK_EQUAL(sample(res.body, "wechat_hub_cluster_configured_nodes{node=\"" + env.nodes[i].id + "\"}"), 3);
    CAF_CHECK_EQUAL(sample(res.body, "wechat_hub_cluster_live_nodes{node=\"" + env.nodes[i].id + "\"}"), 3);
    // A cluster node exports every family the rules use.
    for (auto& n : missing_families(rule_names, res.body))
      CAF_ERROR("the alert rules use " << n << ", which node " << env.nodes[i].id << " does not export");
  }
}

CAF_TEST(a real prometheus scrapes the hub evaluates the rules and answers a query) {
  hub_env env;
  env.start_hub();
  CAF_REQUIRE_EQUAL(env.hub("GET", "/client/access_token?appid=wxe2e").status, 200u);
  auto port = free_port();
  write_file(env.dir / "prometheus.yml",
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "rule_files:\n  - '" + rules_path() + "'\n"
             "scrape_configs:\n  - job_name: wechat-hub\n    static_configs:\n"
             "      - targets: ['127.0.0.1:" + std::to_string(env.hub_port) + "']\n");
  auto prom = process::spawn({tool("prometheus"), "--config.file=" + (env.dir / "prometheus.yml"),
                              "--storage.tsdb.path=" + (env.dir / "tsdb"),
                              "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                             env.dir / "prometheus.log");
  auto api = "http://127.0.0.1:" + std::to_string(port) + "/api/v1/";
  auto get = [&](const std::string& path) -> boost::json::object {
    net::request req;
    req.method = "GET";
    req.url = api + path;
    req.timeout = 5s;
    auto res = env.client.send(std::move(req));
    if (!res || res->status != 200)
      return {};
    return parse_object(res->body);
  };
  // The token's TTL, scraped from the hub, read back through the query API.
  double ttl = -1;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (ttl < 0 && std::chrono::steady_clock::now() < deadline) {
    auto obj = get("query?query=wechat_hub_token_ttl_seconds%7Bappid%3D%22wxe2e%22%2Cjob%3D%22wechat-hub%22%7D");
    if (auto data = obj.if_contains("data"); data && data->is_object())
      if (auto result = data->as_object().if_contains("result"); result && result->is_array()
                                                                  && !result->as_array().empty()) {
        auto& value = result->as_array()[0].as_object().at("value").as_array();
        ttl = std::stod(std::string{value[1].as_string()});
        break;
      }
    std::this_thread::sleep_for(200ms);
  }
  if (ttl < 0)
    CAF_ERROR("prometheus never returned the hub's metric; its log:\n" << read_file(env.dir / "prometheus.log"));
  CAF_CHECK_GREATER(ttl, 0);
  CAF_CHECK_LESS_OR_EQUAL(ttl, 7200);
  // The scrape itself succeeded (a parse error would make up 0).
  auto up = get("query?query=up%7Bjob%3D%22wechat-hub%22%7D");
  CAF_CHECK(boost::json::serialize(up).find("\"1\"]") != std::string::npos);
  // Every shipped rule loads and evaluates without error against real data.
  bool rules_ok = false;
  std::string rules_json;
  deadline = std::chrono::steady_clock::now() + 30s;
  while (!rules_ok && std::chrono::steady_clock::now() < deadline) {
    auto obj = get("rules");
    rules_json = boost::json::serialize(obj);
    size_t total = 0, ok = 0;
    if (auto data = obj.if_contains("data"); data && data->is_object())
      for (auto& group : data->as_object().at("groups").as_array())
        for (auto& rule : group.as_object().at("rules").as_array()) {
          ++total;
          auto& r = rule.as_object();
          if (r.at("health").as_string() == "ok" && r.contains("lastEvaluation")
              && std::string_view{r.at("lastEvaluation").as_string()}.substr(0, 4) != "0001")
            ++ok;
        }
    rules_ok = total > 0 && ok == total;
    if (!rules_ok)
      std::this_thread::sleep_for(200ms);
  }
  if (!rules_ok)
    CAF_ERROR("rules not all healthy: " << rules_json);
  CAF_CHECK(rules_ok);
  prom.signal(SIGTERM);
  int code = 0;
  prom.wait_for(10s, code);
}
