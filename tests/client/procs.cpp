#include "tests/client/procs.hpp"

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <openssl/evp.h>

extern char** environ;

namespace wh::test {

namespace json = boost::json;
using namespace std::chrono_literals;

std::string find_binary(const std::string& name) {
  std::string path = std::string{WH_BIN_DIR} + "/" + name;
  if (::access(path.c_str(), X_OK) == 0)
    return path;
  // Lets a partial build dir borrow binaries built elsewhere.
  if (const char* dir = std::getenv("WH_TEST_BIN_DIR")) {
    path = std::string{dir} + "/" + name;
    if (::access(path.c_str(), X_OK) == 0)
      return path;
  }
  return {};
}

int run_process(std::vector<std::string> argv, const std::string& out_file,
                const std::string& err_file) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (auto& arg : argv)
    args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool wait_for_http(net::http_client& http, const std::string& url, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{timeout_ms};
  while (std::chrono::steady_clock::now() < deadline) {
    net::request req;
    req.url = url;
    req.timeout = 1s;
    auto res = http.send(req);
    if (res && res->status == 200)
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

// -- sim_process ----------------------------------------------------------------

sim_process::sim_process(const std::string& dir, std::vector<std::string> apps,
                         std::vector<std::string> extra_args) {
  auto bin = find_binary("wechat-sim");
  if (bin.empty())
    throw std::runtime_error("wechat-sim not built in " WH_BIN_DIR);
  auto port_file = dir + "/sim.port";
  std::vector<std::string> argv{bin, "--listen", "127.0.0.1:0", "--port-file", port_file};
  for (auto& app : apps) {
    argv.push_back("--app");
    argv.push_back(app);
  }
  for (auto& arg : extra_args)
    argv.push_back(arg);
  proc_ = process::spawn(argv, dir + "/sim.log");
  auto port = wait_for_port(port_file, proc_);
  if (port == 0)
    throw std::runtime_error("wechat-sim did not come up; see " + dir + "/sim.log");
  base_ = "http://127.0.0.1:" + std::to_string(port);
  if (!wait_for_http(http_, base_ + "/sim/time"))
    throw std::runtime_error("wechat-sim does not answer /sim/time");
}

json::value sim_process::control(const std::string& path, const std::string& body) {
  net::request req;
  req.method = "POST";
  req.url = base_ + path;
  req.body = body;
  req.content_type = "application/json";
  auto res = http_.send(req);
  if (!res)
    return nullptr;
  boost::system::error_code ec;
  auto v = json::parse(res->body, ec);
  return ec ? json::value{} : v;
}

json::value sim_process::get(const std::string& path) {
  net::request req;
  req.url = base_ + path;
  auto res = http_.send(req);
  if (!res)
    return nullptr;
  boost::system::error_code ec;
  auto v = json::parse(res->body, ec);
  return ec ? json::value{} : v;
}

int64_t sim_process::calls(const std::string& path, const std::string& appid) {
  auto stats = get("/sim/stats");
  if (!stats.is_object())
    return -1;
  auto* calls = stats.as_object().if_contains("calls");
  if (!calls || !calls->is_object())
    return 0;
  auto* per_path = calls->as_object().if_contains(path);
  if (!per_path || !per_path->is_object())
    return 0;
  auto* n = per_path->as_object().if_contains(appid);
  return n && n->is_int64() ? n->as_int64() : 0;
}

// -- hub_process ----------------------------------------------------------------

hub_process::hub_process(const std::string& dir, const std::string& api_base,
                         std::vector<std::pair<std::string, std::string>> apps) {
  auto bin = find_binary("wechat-hub");
  if (bin.empty())
    throw std::runtime_error("wechat-hub not built in " WH_BIN_DIR);
  auto config = dir + "/hub.toml";
  {
    std::ofstream out{config};
    out << "[hub]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"" << dir << "/hub-data\"\n\n"
        << "[wechat]\napi_base = \"" << api_base << "\"\n";
    for (auto& [appid, secret] : apps)
      out << "\n[[app]]\nappid = \"" << appid << "\"\nsecret = \"" << secret << "\"\n";
  }
  auto port_file = dir + "/hub.port";
  proc_ = process::spawn({bin, "--config", config, "--port-file", port_file}, dir + "/hub.log");
  auto port = wait_for_port(port_file, proc_);
  if (port == 0)
    throw std::runtime_error("wechat-hub did not come up; see " + dir + "/hub.log");
  base_ = "http://127.0.0.1:" + std::to_string(port);
  if (!wait_for_http(http_, base_ + "/healthz"))
    throw std::runtime_error("wechat-hub does not answer /healthz");
}

std::string md5_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xF];
  }
  return out;
}

} // namespace wh::test
