#include "tests/e2e/hub_env.hpp"

#include <csignal>
#include <stdexcept>

#include "core/error.hpp"

namespace wh::test {

std::string component_toml() {
  return std::string{"[[component]]\nappid = \""} + component_appid + "\"\nsecret = \"" + component_secret
         + "\"\ntoken = \"" + component_token + "\"\nencoding_aes_key = \"" + component_aes_key + "\"\n";
}

std::string http_result::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (k.size() == name.size()
        && std::equal(k.begin(), k.end(), name.begin(),
                      [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return v;
  return {};
}

hub_env::hub_env() {
  sim_proc = process::spawn({bin("wechat-sim"), "--listen", "127.0.0.1:0", "--port-file",
                             dir / "sim.port", "--app", "wxe2e:e2e-secret-value", "--app",
                             "wxother:other-secret", "--component",
                             std::string{component_appid} + ":" + component_secret + ":" + component_token
                               + ":" + component_aes_key},
                            dir / "sim.log");
  sim_port = wait_for_port(dir / "sim.port", sim_proc);
  if (sim_port == 0)
    throw std::runtime_error("wechat-sim did not start: " + read_file(dir / "sim.log"));
}

void hub_env::start_hub(const std::string& extra) {
  std::remove((dir / "hub.port").c_str());
  auto cfg = "[hub]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"" + (dir / "data")
             + "\"\nrequest_timeout_s = 2\n" + hub_settings
             + "[wechat]\napi_base = \"http://127.0.0.1:"
             + std::to_string(sim_port)
             + "\"\ntimeout_ms = 1500\n"
               "[[app]]\nappid = \"wxe2e\"\nsecret = \"e2e-secret-value\"\n"
               "[[app]]\nappid = \"wxother\"\nsecret = \"other-secret\"\ntoken_api = \"classic\"\n"
             + extra;
  write_file(dir / "hub.toml", cfg);
  hub_proc = process::spawn({bin("wechat-hub"), "--config", dir / "hub.toml", "--port-file",
                             dir / "hub.port"},
                            dir / "hub.log");
  hub_port = wait_for_port(dir / "hub.port", hub_proc);
  if (hub_port == 0)
    throw std::runtime_error("wechat-hub did not start: " + hub_log());
}

void hub_env::kill_hub() {
  hub_proc.kill_now();
}

int hub_env::stop_hub(std::chrono::milliseconds wait) {
  hub_proc.signal(SIGTERM);
  int code = -1;
  if (!hub_proc.wait_for(wait, code))
    return -1;
  return code;
}

namespace {

http_result send(net::http_client& client, const std::string& method, const std::string& url,
                 const std::string& body, const std::string& content_type,
                 const std::string& bearer = {}) {
  net::request req;
  if (!bearer.empty())
    req.headers.emplace_back("Authorization", "Bearer " + bearer);
  req.method = method;
  req.url = url;
  req.body = body;
  req.content_type = content_type;
  req.timeout = std::chrono::seconds(10);
  auto res = client.send(std::move(req));
  if (!res)
    throw std::runtime_error("HTTP " + method + " " + url + " failed: " + detail_of(res.error()));
  return http_result{res->status, std::move(res->body), std::move(res->content_type),
                     std::move(res->headers)};
}

} // namespace

http_result hub_env::hub(const std::string& method, const std::string& target,
                         const std::string& body, const std::string& content_type) {
  return send(client, method, hub_url() + target, body,
              content_type.empty() && !body.empty() ? "application/json" : content_type, bearer);
}

http_result hub_env::sim(const std::string& method, const std::string& target,
                         const std::string& body) {
  return send(client, method, "http://127.0.0.1:" + std::to_string(sim_port) + target, body,
              body.empty() ? "" : "application/json");
}

int64_t hub_env::sim_calls(const std::string& path, const std::string& appid) {
  auto stats = parse_object(sim("GET", "/sim/stats").body);
  auto calls = stats.if_contains("calls");
  if (!calls || !calls->is_object())
    return 0;
  auto per_path = calls->as_object().if_contains(path);
  if (!per_path || !per_path->is_object())
    return 0;
  auto n = per_path->as_object().if_contains(appid);
  return n && n->is_int64() ? n->as_int64() : 0;
}

boost::json::object parse_object(const std::string& body) {
  boost::system::error_code ec;
  auto val = boost::json::parse(body, ec);
  if (ec || !val.is_object())
    return {};
  return val.as_object();
}

} // namespace wh::test
