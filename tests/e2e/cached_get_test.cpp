#define CAF_SUITE e2e_cached_get

// The hot path (http/cached_get.cpp, issue 16): keep-alive HTTP/1.1 GETs of
// cached tokens and tickets are rendered on the I/O thread, bypassing the
// route table. These tests hold it to the regular path: the same bytes for
// every answer, the same refusals, the same metrics.

#include "caf/test/dsl.hpp"

#include <cstdio>

#include "http/auth.hpp"
#include "tests/e2e/hub_env.hpp"
#include "tests/support/raw_client.hpp"

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

/// One keep-alive connection that sends raw requests and reads whole
/// responses (head and Content-Length body) as bytes.
class connection {
public:
  explicit connection(uint16_t port) : fd_(make_socket()) { connect_to(fd_, port); }
  ~connection() { ::close(fd_); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Sends a whole request and returns the response, or "" if the
  /// connection closed or timed out first.
  std::string roundtrip(const std::string& request) {
    send_all(fd_, request);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until) {
      if (auto res = take_response(); !res.empty())
        return res;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0)
        continue;
      char chunk[4096];
      auto n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0)
        return {};
      buf_.append(chunk, static_cast<size_t>(n));
    }
    return {};
  }

  /// Whether the server closed the connection (EOF within `wait`).
  bool closed(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0)
      return false;
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

private:
  std::string take_response() {
    auto head_end = buf_.find("\r\n\r\n");
    if (head_end == std::string::npos)
      return {};
    auto cl = buf_.find("Content-Length: ");
    size_t len = cl == std::string::npos || cl > head_end ? 0 : std::stoul(buf_.substr(cl + 16));
    if (buf_.size() < head_end + 4 + len)
      return {};
    auto res = buf_.substr(0, head_end + 4 + len);
    buf_.erase(0, res.size());
    return res;
  }

  int fd_;
  std::string buf_;
};

std::string get(const std::string& target, const std::string& key, const std::string& extra = {}) {
  std::string head = "GET " + target + " HTTP/1.1\r\nHost: hub\r\n";
  if (!key.empty())
    head += "Authorization: Bearer " + key + "\r\n";
  return head + extra + "\r\n";
}

unsigned status_of(const std::string& res) {
  return res.size() > 12 ? static_cast<unsigned>(std::stoul(res.substr(9, 3))) : 0;
}

std::string body_of(const std::string& res) {
  auto at = res.find("\r\n\r\n");
  return at == std::string::npos ? std::string{} : res.substr(at + 4);
}

/// `res` without the header line `line` (with its CRLF).
std::string without(std::string res, const std::string& line) {
  if (auto at = res.find(line + "\r\n"); at != std::string::npos)
    res.erase(at, line.size() + 2);
  return res;
}

/// The value of the sample `name{labels}` in a Prometheus exposition, or -1.
double sample(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

struct fixture {
  hub_env env;
  key_pair app_key, comp_key, auth_key, admin_key;
  std::string comp = component_appid;
  std::string authorizer = "wxauthorizer0009";

  fixture() {
    env.start_hub(component_toml() + app_key.toml("billing", R"(["wxe2e"])")
                  + comp_key.toml("platform", "[\"" + comp + "\"]")
                  + auth_key.toml("one-shop", "[\"" + comp + "/" + authorizer + "\"]")
                  + admin_key.toml("ops", R"(["*"])", true));
    push("component_verify_ticket");
    push("authorized", authorizer);
  }

  void push(const std::string& info_type, const std::string& aid = {}) {
    std::string body = R"({"component_appid":")" + comp + R"(","info_type":")" + info_type
                       + R"(","url":")" + env.hub_url() + "/wechat/component/" + comp + "/events\"";
    if (!aid.empty())
      body += R"(,"authorizer_appid":")" + aid + "\"";
    env.sim("POST", "/sim/push", body + "}");
  }

  /// The hub's /metrics text.
  std::string metrics() {
    env.bearer = admin_key.key;
    auto res = env.hub("GET", "/metrics");
    env.bearer.clear();
    return res.body;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(cached_get_tests, fixture)

CAF_TEST(a cached answer has the bytes of the regular answer) {
  struct read {
    std::string target;
    const key_pair* key;
  };
  auto auth_q = "appid=" + comp + "&authorizer_appid=" + authorizer;
  std::vector<read> reads{
    {"/client/access_token?appid=wxe2e", &app_key},
    {"/client/ticket?appid=wxe2e&type=jsapi", &app_key},
    {"/client/ticket?appid=wxe2e&type=wx_card", &app_key},
    {"/client/component_access_token?appid=" + comp, &comp_key},
    {"/client/access_token?" + auth_q, &auth_key},
    {"/client/ticket?" + auth_q + "&type=jsapi", &auth_key},
  };
  connection c{env.hub_port};
  for (auto& r : reads) {
    CAF_MESSAGE(r.target);
    // The first read may fetch from upstream; the next ones are cached.
    auto first = c.roundtrip(get(r.target, r.key->key));
    CAF_REQUIRE_EQUAL(status_of(first), 200u);
    auto cached = c.roundtrip(get(r.target, r.key->key));
    CAF_CHECK_EQUAL(cached, first);
    // An encoded query and a request with a body take the regular path.
    auto encoded = r.target;
    encoded.replace(encoded.find("appid=") + 6, 1, "%77"); // %77 = 'w'
    CAF_CHECK_EQUAL(c.roundtrip(get(encoded, r.key->key)), cached);
    CAF_CHECK_EQUAL(c.roundtrip(get(r.target, r.key->key, "Content-Length: 2\r\n") + "{}"), cached);
    // `Connection: close` takes the regular path, which says so and closes.
    connection once{env.hub_port};
    auto closing = once.roundtrip(get(r.target, r.key->key, "Connection: close\r\n"));
    CAF_CHECK_NOT_EQUAL(closing, cached);
    CAF_CHECK_EQUAL(without(closing, "Connection: close"), cached);
    CAF_CHECK(once.closed(std::chrono::seconds(5)));
  }
}

CAF_TEST(cached answers keep expires_in and timestamp exact) {
  connection c{env.hub_port};
  auto res = c.roundtrip(get("/client/access_token?appid=wxe2e", app_key.key));
  CAF_REQUIRE_EQUAL(status_of(res), 200u);
  auto obj = parse_object(body_of(res));
  auto state = parse_object(env.sim("GET", "/sim/state?appid=wxe2e").body);
  CAF_CHECK_EQUAL(std::string{state.at("stable_token").as_string()},
                  std::string{obj.at("access_token").as_string()});
  CAF_CHECK_EQUAL(obj.at("expires_in").as_int64(), 7200);
  auto now = static_cast<int64_t>(std::time(nullptr));
  CAF_CHECK_LESS_OR_EQUAL(obj.at("timestamp").as_int64(), now);
  CAF_CHECK_GREATER(obj.at("timestamp").as_int64(), now - 60);
  // The same version is served with the same numbers, however often.
  for (int i = 0; i < 20; ++i)
    CAF_CHECK_EQUAL(c.roundtrip(get("/client/access_token?appid=wxe2e", app_key.key)), res);
}

CAF_TEST(refusals and misses take the regular path on the same connection) {
  connection c{env.hub_port};
  auto token = "/client/access_token?appid=wxe2e";
  auto ok = c.roundtrip(get(token, app_key.key));
  CAF_REQUIRE_EQUAL(status_of(ok), 200u);
  auto no_key = c.roundtrip(get(token, ""));
  CAF_CHECK_EQUAL(status_of(no_key), 401u);
  CAF_CHECK(no_key.find("WWW-Authenticate: Bearer") != std::string::npos);
  auto wrong = c.roundtrip(get(token, http::generate_client_key()));
  CAF_CHECK_EQUAL(status_of(wrong), 401u);
  CAF_CHECK_EQUAL(parse_object(body_of(wrong)).at("reason").as_string(), "unauthorized");
  // Another client's key: forbidden, before the hub says whether the key exists.
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get(token, comp_key.key))), 403u);
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get("/client/access_token?appid=wxnothere", admin_key.key))), 404u);
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get("/client/ticket?appid=wxe2e&type=other", app_key.key))), 400u);
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get("/client/access_token?appid=wx+e2e", app_key.key))), 400u);
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get("/client/access_token?appid=", app_key.key))), 400u);
  // A component's token on the app route, an app on the component route.
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get("/client/access_token?appid=" + comp, comp_key.key))), 400u);
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get("/client/component_access_token?appid=wxe2e", app_key.key))),
                  404u);
  // The first appid counts, as in the regular parser.
  CAF_CHECK_EQUAL(c.roundtrip(get("/client/access_token?appid=wxe2e&appid=wxother", app_key.key)), ok);
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get("/client/access_token?appid=wxother&appid=wxe2e", app_key.key))),
                  403u);
  // A revoked authorizer is answered 410 from then on.
  auto auth_target = "/client/access_token?appid=" + comp + "&authorizer_appid=" + authorizer;
  CAF_REQUIRE_EQUAL(status_of(c.roundtrip(get(auth_target, auth_key.key))), 200u);
  push("unauthorized", authorizer);
  CAF_CHECK_EQUAL(status_of(c.roundtrip(get(auth_target, auth_key.key))), 410u);
  // The connection still serves cached answers after all of these.
  CAF_CHECK_EQUAL(c.roundtrip(get(token, app_key.key)), ok);
}

CAF_TEST(cached answers are counted like the others) {
  const std::string route = "{route=\"/client/access_token\",status=\"200\"}";
  const std::string series = "wechat_hub_http_requests_total" + route;
  const std::string latency = "wechat_hub_http_request_duration_seconds_count{route=\"/client/access_token\"}";
  connection c{env.hub_port};
  CAF_REQUIRE_EQUAL(status_of(c.roundtrip(get("/client/access_token?appid=wxe2e", app_key.key))), 200u);
  auto before = metrics();
  auto count0 = sample(before, series);
  auto latency0 = sample(before, latency);
  CAF_REQUIRE_GREATER_OR_EQUAL(count0, 1.0);
  for (int i = 0; i < 50; ++i)
    CAF_REQUIRE_EQUAL(status_of(c.roundtrip(get("/client/access_token?appid=wxe2e", app_key.key))), 200u);
  auto after = metrics();
  CAF_CHECK_EQUAL(sample(after, series), count0 + 50);
  CAF_CHECK_EQUAL(sample(after, latency), latency0 + 50);
  // Refusals on the hot route are counted under their status.
  c.roundtrip(get("/client/access_token?appid=wxe2e", comp_key.key));
  CAF_CHECK_EQUAL(sample(metrics(), "wechat_hub_http_requests_total{route=\"/client/access_token\",status=\"403\"}"),
                  1.0);
}

CAF_TEST(a new version is served at once after a refresh) {
  connection c{env.hub_port};
  auto target = "/client/access_token?appid=wxe2e";
  auto before = c.roundtrip(get(target, app_key.key));
  CAF_REQUIRE_EQUAL(status_of(before), 200u);
  auto old_token = std::string{parse_object(body_of(before)).at("access_token").as_string()};
  // Served from this thread's rendered answers several times over.
  for (int i = 0; i < 5; ++i)
    CAF_REQUIRE_EQUAL(c.roundtrip(get(target, app_key.key)), before);
  // WeChat stops accepting the token, a client reports it; the hub replaces it.
  env.sim("POST", "/sim/invalidate", R"({"appid":"wxe2e"})");
  env.bearer = app_key.key;
  auto refreshed = env.hub("POST", "/refresh/access_token",
                           R"({"appid":"wxe2e","access_token":")" + old_token + "\"}");
  env.bearer.clear();
  CAF_REQUIRE_EQUAL(refreshed.status, 200u);
  auto new_token = std::string{parse_object(refreshed.body).at("access_token").as_string()};
  CAF_REQUIRE_NOT_EQUAL(new_token, old_token);
  for (int i = 0; i < 5; ++i) {
    auto after = c.roundtrip(get(target, app_key.key));
    CAF_CHECK_EQUAL(std::string{parse_object(body_of(after)).at("access_token").as_string()}, new_token);
  }
}

CAF_TEST_FIXTURE_SCOPE_END()
