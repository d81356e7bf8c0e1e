#define CAF_SUITE e2e_unchanged_clients

// What unchanged elixir_wechat clients do to a hub, against wechat-sim:
// dead component tokens, refresh loops, null-token refreshes and key-less
// authentication. Upstream calls are counted by the simulator.

#include "caf/test/dsl.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "core/error.hpp"
#include "http/auth.hpp"
#include "net/http_client.hpp"
#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;

namespace {

constexpr const char* list_path = "/cgi-bin/component/api_get_authorizer_list";
constexpr const char* ctoken_path = "/cgi-bin/component/api_component_token";

struct fixture {
  hub_env env;
  std::string comp = component_appid;

  std::string events_url() const { return env.hub_url() + "/wechat/component/" + comp + "/events"; }

  boost::json::object sim_push(const std::string& info_type, const std::string& authorizer = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type
                       + R"(","url":")" + events_url() + "\"";
    if (!authorizer.empty())
      body += R"(,"authorizer_appid":")" + authorizer + "\"";
    body += "}";
    return parse_object(env.sim("POST", "/sim/push", body).body);
  }

  static std::string token_of(const http_result& res) {
    if (res.status != 200)
      return "<status " + std::to_string(res.status) + ">";
    return std::string{parse_object(res.body).at("access_token").as_string()};
  }

  std::string component_token() {
    return token_of(env.hub("GET", "/client/component_access_token?appid=" + comp));
  }

  /// Sends `n` identical requests at once; returns their answers.
  std::vector<http_result> concurrently(int n, const std::string& method, const std::string& target,
                                        const std::string& body) {
    net::client_options opts;
    opts.io_threads = 2;
    net::http_client client{opts};
    std::mutex mtx;
    std::condition_variable cv;
    std::vector<http_result> out;
    for (int i = 0; i < n; ++i) {
      net::request req;
      req.method = method;
      req.url = env.hub_url() + target;
      req.body = body;
      req.content_type = "application/json";
      req.timeout = std::chrono::seconds(10);
      client.async_send(std::move(req), [&](caf::expected<net::response> res) {
        std::lock_guard<std::mutex> guard{mtx};
        out.push_back(res ? http_result{res->status, res->body, res->content_type, res->headers}
                          : http_result{0, detail_of(res.error()), {}, {}});
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait_for(guard, std::chrono::seconds(20), [&] { return out.size() == static_cast<size_t>(n); });
    return out;
  }
};

bool has_four_keys(const std::string& body) {
  auto o = parse_object(body);
  return o.size() == 4 && o.contains("errcode") && o.contains("message") && o.contains("reason")
         && o.contains("http_status");
}

/// The `reason` of an error body (a copy: CAF's check macros keep references).
std::string reason_of(const std::string& body) {
  auto o = parse_object(body);
  auto r = o.if_contains("reason");
  return r && r->is_string() ? std::string{r->as_string()} : std::string{"<none>"};
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(unchanged_clients_tests, fixture)

CAF_TEST(a dead component token is replaced at once and twenty reports cost one refresh) {
  env.start_hub(component_toml());
  sim_push("component_verify_ticket");
  auto c1 = component_token();
  CAF_REQUIRE(c1.rfind("<status", 0) != 0);
  CAF_CHECK_EQUAL(env.sim_calls(ctoken_path, comp), 1);
  // WeChat invalidates it seconds after the hub obtained it (the observed case).
  CAF_REQUIRE_EQUAL(env.sim("POST", "/sim/invalidate", R"({"appid":")" + comp + "\"}").status, 200u);
  auto body = R"({"appid":")" + comp + R"(","access_token":")" + c1 + "\"}";
  auto answers = concurrently(20, "POST", "/client/refresh_component_access_token", body);
  CAF_REQUIRE_EQUAL(answers.size(), 20u);
  std::string c2;
  for (auto& a : answers) {
    CAF_CHECK_EQUAL(a.status, 200u);
    auto t = token_of(a);
    CAF_CHECK_NOT_EQUAL(t, c1);
    if (c2.empty())
      c2 = t;
    CAF_CHECK_EQUAL(t, c2);
  }
  CAF_MESSAGE("20 concurrent reports of a dead component token: " << env.sim_calls(list_path, comp)
                                                                  << " check, "
                                                                  << env.sim_calls(ctoken_path, comp) - 1
                                                                  << " api_component_token");
  CAF_CHECK_EQUAL(env.sim_calls(list_path, comp), 1);
  CAF_CHECK_EQUAL(env.sim_calls(ctoken_path, comp), 2);
  CAF_CHECK_EQUAL(component_token(), c2);
  // A report of a token that still works: one check, the same token back;
  // again within the verify window: no upstream call at all.
  body = R"({"appid":")" + comp + R"(","access_token":")" + c2 + "\"}";
  CAF_CHECK_EQUAL(token_of(env.hub("POST", "/client/refresh_component_access_token", body)), c2);
  CAF_CHECK_EQUAL(token_of(env.hub("POST", "/client/refresh_component_access_token", body)), c2);
  CAF_CHECK_EQUAL(env.sim_calls(list_path, comp), 2);
  CAF_CHECK_EQUAL(env.sim_calls(ctoken_path, comp), 2);
}

CAF_TEST(the hubs own call with a dead component token refreshes it once and retries) {
  env.start_hub(component_toml());
  sim_push("component_verify_ticket");
  auto pushed = sim_push("authorized", "wxauthz00000001");
  CAF_REQUIRE_EQUAL(pushed.at("status").as_int64(), 200);
  auto q = "/client/access_token?appid=" + comp + "&authorizer_appid=wxauthz00000001";
  auto a1 = token_of(env.hub("GET", q));
  CAF_REQUIRE(a1.rfind("<status", 0) != 0);
  // Both the component's and the authorizer's tokens die upstream.
  env.sim("POST", "/sim/invalidate", R"({"appid":")" + comp + "\"}");
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxauthz00000001"})");
  auto before_tok = env.sim_calls(ctoken_path, comp);
  auto before_list = env.sim_calls(list_path, comp);
  auto before_auth = env.sim_calls("/cgi-bin/component/api_authorizer_token", comp);
  auto body = R"({"appid":")" + comp + R"(","authorizer_appid":"wxauthz00000001","access_token":")" + a1
              + "\"}";
  auto res = env.hub("POST", "/refresh/access_token", body);
  CAF_CHECK_EQUAL(res.status, 200u);
  auto a2 = token_of(res);
  CAF_CHECK_NOT_EQUAL(a2, a1);
  // api_authorizer_token got 40001: the component was refreshed once with
  // no check, then the call retried once.
  CAF_CHECK_EQUAL(env.sim_calls(ctoken_path, comp) - before_tok, 1);
  CAF_CHECK_EQUAL(env.sim_calls(list_path, comp) - before_list, 0);
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/component/api_authorizer_token", comp) - before_auth, 2);
}

CAF_TEST(a refresh loop of ten thousand reports costs two upstream calls and ends in 429) {
  auto key = http::generate_client_key();
  env.start_hub("[[client]]\nname = \"looping-svc\"\nkey_sha256 = \"" + http::sha256_hex(key)
                + "\"\nscopes = [\"*\"]\n");
  env.bearer = key;
  auto t1 = token_of(env.hub("GET", "/client/access_token?appid=wxe2e"));
  CAF_REQUIRE(t1.rfind("<status", 0) != 0);
  auto upstream_before = [&] {
    return env.sim_calls("/cgi-bin/stable_token", "wxe2e") + env.sim_calls("/cgi-bin/get_api_domain_ip", "wxe2e");
  };
  auto before = upstream_before();
  auto body = R"({"appid":"wxe2e","access_token":")" + t1 + "\"}";
  http_result last;
  int refused = 0;
  for (int i = 0; i < 10'000; ++i) {
    last = env.hub("POST", "/refresh/access_token", body);
    if (last.status == 429)
      ++refused;
  }
  auto spent = upstream_before() - before;
  CAF_MESSAGE("10000 reports: " << spent << " upstream calls, " << refused << " answered 429");
  CAF_CHECK_LESS_OR_EQUAL(spent, 2);
  CAF_CHECK_EQUAL(last.status, 429u);
  CAF_CHECK(has_four_keys(last.body));
  CAF_CHECK_EQUAL(reason_of(last.body), "refresh_loop");
  CAF_CHECK(!last.header("Retry-After").empty());
  CAF_CHECK_GREATER(refused, 9'800);
  // One log line names the key and the client, never the token.
  auto log = env.hub_log();
  CAF_CHECK(log.find("client looping-svc keeps reporting the same token of wxe2e") != std::string::npos);
  CAF_CHECK(log.find(t1) == std::string::npos);
  size_t lines = 0;
  for (size_t pos = 0; (pos = log.find("keeps reporting", pos)) != std::string::npos; ++pos)
    ++lines;
  CAF_CHECK_EQUAL(lines, 1u);
  auto metrics = env.hub("GET", "/metrics").body;
  CAF_CHECK(metrics.find("wechat_hub_refresh_loop_refusals_total{appid=\"wxe2e\",client=\"looping-svc\"}")
            != std::string::npos);
  // Other clients are unaffected: a GET serves the refreshed token.
  auto now = token_of(env.hub("GET", "/client/access_token?appid=wxe2e"));
  CAF_CHECK_NOT_EQUAL(now, t1);
}

CAF_TEST(null missing or empty access_token in refresh requests behaves like the GET) {
  env.start_hub(component_toml());
  auto t1 = token_of(env.hub("GET", "/client/access_token?appid=wxe2e"));
  auto calls = env.sim_calls("/cgi-bin/stable_token", "wxe2e");
  for (auto body : {std::string{R"({"appid":"wxe2e","access_token":null})"}, std::string{R"({"appid":"wxe2e"})"},
                    std::string{R"({"appid":"wxe2e","access_token":""})"}}) {
    auto res = env.hub("POST", "/refresh/access_token", body);
    CAF_CHECK_EQUAL(res.status, 200u);
    CAF_CHECK_EQUAL(token_of(res), t1); // never a forced refresh
  }
  CAF_CHECK_EQUAL(env.sim_calls("/cgi-bin/stable_token", "wxe2e"), calls);
  // Component without a verify ticket: the GET's real error, not 400.
  auto get = env.hub("GET", "/client/component_access_token?appid=" + comp);
  auto post = env.hub("POST", "/client/refresh_component_access_token",
                      R"({"appid":")" + comp + R"(","access_token":null})");
  CAF_CHECK_NOT_EQUAL(get.status, 200u);
  CAF_CHECK_EQUAL(post.status, get.status);
  CAF_CHECK_EQUAL(reason_of(post.body), reason_of(get.body));
  // A revoked authorizer: 410 authorizer_revoked, as the GET says.
  sim_push("component_verify_ticket");
  sim_push("authorized", "wxauthz00000002");
  sim_push("unauthorized", "wxauthz00000002");
  auto rget = env.hub("GET", "/client/access_token?appid=" + comp + "&authorizer_appid=wxauthz00000002");
  auto rpost = env.hub("POST", "/refresh/access_token",
                       R"({"appid":")" + comp + R"(","authorizer_appid":"wxauthz00000002","access_token":null})");
  CAF_CHECK_EQUAL(rget.status, 410u);
  CAF_CHECK_EQUAL(rpost.status, 410u);
  CAF_CHECK_EQUAL(reason_of(rpost.body), "authorizer_revoked");
  // The component's null refresh returns its current token, no refresh.
  auto c1 = component_token();
  auto ctok = env.sim_calls(ctoken_path, comp);
  auto cpost = env.hub("POST", "/client/refresh_component_access_token",
                       R"({"appid":")" + comp + R"(","access_token":null})");
  CAF_CHECK_EQUAL(token_of(cpost), c1);
  CAF_CHECK_EQUAL(env.sim_calls(ctoken_path, comp), ctok);
}

CAF_TEST(path keys and networks identify clients that cannot send headers) {
  auto path_key = http::generate_client_key();
  auto plain_key = http::generate_client_key();
  auto clients = "[[client]]\nname = \"elixir-path\"\nkey_sha256 = \"" + http::sha256_hex(path_key)
                 + "\"\npath_key = true\nscopes = [\"wxe2e\"]\n"
                   "[[client]]\nname = \"header-only\"\nkey_sha256 = \""
                 + http::sha256_hex(plain_key)
                 + "\"\nscopes = [\"*\"]\n"
                   "[[client]]\nname = \"lan\"\nnetworks = [\"127.0.0.0/8\", \"::1/128\"]\nscopes = [\"wxother\"]\n";
  env.start_hub(clients);
  // Path key: the unchanged client's base URL ends in /k/KEY.
  CAF_CHECK_EQUAL(env.hub("GET", "/k/" + path_key + "/client/access_token?appid=wxe2e").status, 200u);
  CAF_CHECK_EQUAL(env.hub("POST", "/k/" + path_key + "/refresh/access_token", R"({"appid":"wxe2e"})").status,
                  200u);
  CAF_CHECK_EQUAL(env.hub("GET", "/k/" + path_key + "/client/access_token?appid=wxother").status, 403u);
  // A key without path_key = true, or a wrong one, is refused in the path.
  CAF_CHECK_EQUAL(env.hub("GET", "/k/" + plain_key + "/client/access_token?appid=wxe2e").status, 401u);
  CAF_CHECK_EQUAL(env.hub("GET", "/k/whk_wrong/client/access_token?appid=wxe2e").status, 401u);
  // Only client routes take a path key.
  CAF_CHECK_EQUAL(env.hub("GET", "/k/" + path_key + "/admin/apps").status, 404u);
  CAF_CHECK_EQUAL(env.hub("GET", "/k/" + path_key + "/metrics").status, 404u);
  // Network: no key, identified by the loopback source address, own scopes.
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxother").status, 200u);
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxe2e").status, 403u);
  CAF_CHECK_EQUAL(env.hub("GET", "/admin/apps").status, 403u);
  // A key, when sent, decides: a wrong one is not rescued by the network.
  env.bearer = "whk_not_a_key";
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxother").status, 401u);
  env.bearer = plain_key;
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxe2e").status, 200u);
  env.bearer.clear();
  // The path key never appears in logs or metrics.
  auto metrics = [&] {
    env.bearer = plain_key;
    auto m = env.hub("GET", "/metrics").body;
    env.bearer.clear();
    return m;
  }();
  CAF_CHECK(metrics.find(path_key) == std::string::npos);
  CAF_CHECK(env.hub_log().find(path_key) == std::string::npos);
  // A network that does not contain the peer identifies nobody.
  env.kill_hub();
  env.start_hub("[[client]]\nname = \"far\"\nnetworks = [\"10.0.0.0/8\"]\nscopes = [\"*\"]\n");
  CAF_CHECK_EQUAL(env.hub("GET", "/client/access_token?appid=wxother").status, 401u);
}

CAF_TEST_FIXTURE_SCOPE_END()
