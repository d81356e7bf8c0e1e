#include "tests/e2e/cluster_env.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.hpp"

namespace wh::test {

namespace {

constexpr auto poll_interval = std::chrono::milliseconds(50);

// CAF 0.17's CAF_REQUIRE and an uncaught exception abort() the test binary
// without running destructors; the processes started here must not outlive
// it. Their pids are kept where a SIGABRT handler can reach them.
constexpr std::size_t max_children = 128;
std::atomic<pid_t> children[max_children];

extern "C" void kill_children_on_abort(int sig) {
  for (auto& c : children)
    if (auto pid = c.load(); pid > 0)
      ::kill(pid, SIGKILL);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void track(pid_t pid) {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa{};
    sa.sa_handler = kill_children_on_abort;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGABRT, &sa, nullptr);
  });
  for (auto& c : children) {
    pid_t none = 0;
    if (c.compare_exchange_strong(none, pid))
      return;
  }
}

void untrack(pid_t pid) {
  if (pid <= 0)
    return;
  for (auto& c : children) {
    pid_t expected = pid;
    if (c.compare_exchange_strong(expected, 0))
      return;
  }
}

/// Never throws: a transport failure (e.g. a node that crashed) is status 0
/// with the error in the body, so that checks fail instead of the binary.
http_result send(net::http_client& client, const std::string& method, const std::string& url,
                 const std::string& body, const std::string& content_type) {
  net::request req;
  req.method = method;
  req.url = url;
  req.body = body;
  req.content_type = content_type;
  req.timeout = std::chrono::seconds(10);
  auto res = client.send(std::move(req));
  if (!res)
    return http_result{0, "transport error: " + method + " " + url + ": " + detail_of(res.error()), {}, {}};
  return http_result{res->status, std::move(res->body), std::move(res->content_type),
                     std::move(res->headers)};
}

std::string tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
    auto nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
  }
  return text.substr(pos);
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (auto& s : v)
    out += (out.empty() ? "" : ",") + s;
  return out;
}

} // namespace

std::vector<uint16_t> free_ports(std::size_t n) {
  // Preferably below the kernel's ephemeral range: a port picked by binding
  // port 0 lies inside it, where any outgoing connection (the nodes' own
  // links to each other, other tests) may take it before the hub binds it.
  int low = 32768;
  {
    std::istringstream range{read_file("/proc/sys/net/ipv4/ip_local_port_range")};
    range >> low;
  }
  static std::mt19937 rng{std::random_device{}()};
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  auto take = [&](uint16_t wanted) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(wanted);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
        || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      return;
    }
    fds.push_back(fd); // held until all are chosen: no duplicates
    ports.push_back(ntohs(addr.sin_port));
  };
  if (low > 12000) {
    std::uniform_int_distribution<int> pick{10000, low - 1};
    for (int attempt = 0; attempt < 500 && ports.size() < n; ++attempt)
      take(static_cast<uint16_t>(pick(rng)));
  }
  for (int attempt = 0; attempt < 100 && ports.size() < n; ++attempt)
    take(0); // any free port
  for (int fd : fds)
    ::close(fd);
  if (ports.size() < n)
    throw std::runtime_error("cannot find free ports");
  return ports;
}

cluster_env::cluster_env(cluster_options o) : opts(std::move(o)) {
  std::vector<std::string> argv{bin("wechat-sim"), "--listen", "127.0.0.1:0", "--port-file", dir / "sim.port"};
  for (auto& a : opts.apps) {
    argv.push_back("--app");
    argv.push_back(a.appid + ":" + a.secret);
  }
  argv.insert(argv.end(), opts.sim_args.begin(), opts.sim_args.end());
  if (opts.component) {
    argv.push_back("--component");
    argv.push_back(std::string{component_appid} + ":" + component_secret + ":" + component_token + ":"
                   + component_aes_key);
  }
  sim_proc = process::spawn(argv, dir / "sim.log");
  track(sim_proc.pid());
  sim_port = wait_for_port(dir / "sim.port", sim_proc);
  if (sim_port == 0)
    throw std::runtime_error("wechat-sim did not start: " + read_file(dir / "sim.log"));
  sim_url_ = "http://127.0.0.1:" + std::to_string(sim_port);
  if (opts.etcd.empty() && opts.etcd_of.empty() && opts.nodes > 1) {
    // More than one node needs etcd (cluster.etcd): a single member on loopback.
    if (etcd_server::binary().empty())
      throw std::runtime_error("the etcd binary is not installed (scripts/setup installs etcd-server)");
    etcd_ = std::make_unique<etcd_server>(dir / "etcd-data", dir / "etcd.log");
    if (!etcd_->start())
      throw std::runtime_error("cannot start etcd: " + etcd_->error() + "\n" + read_file(dir / "etcd.log"));
    opts.etcd = etcd_->endpoint();
  }
  auto ports = free_ports(opts.nodes);
  for (std::size_t i = 0; i < opts.nodes; ++i) {
    cluster_node n;
    n.id = "n" + std::to_string(i + 1);
    n.cluster_port = ports[i];
    std::filesystem::create_directories(dir / n.id);
    nodes.push_back(std::move(n));
  }
}

cluster_env::~cluster_env() {
  for (auto& n : nodes) {
    untrack(n.proc.pid());
    n.proc.kill_now();
  }
  untrack(sim_proc.pid());
  sim_proc.kill_now();
  // Keeps the logs of a run for a post-mortem when asked to.
  if (auto keep = std::getenv("WH_E2E_KEEP_LOGS"); keep && *keep) {
    std::error_code ec;
    auto base = std::filesystem::path{dir.path()}.filename();
    auto target = std::filesystem::path{keep} / base;
    std::filesystem::create_directories(target, ec);
    for (auto& entry : std::filesystem::directory_iterator{dir.path(), ec})
      if (entry.path().extension() == ".log" || entry.path().extension() == ".toml")
        std::filesystem::copy_file(entry.path(), target / entry.path().filename(),
                                   std::filesystem::copy_options::overwrite_existing, ec);
  }
}

std::string cluster_env::config_of(std::size_t i) const {
  std::ostringstream out;
  out << "[hub]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"" << (dir / (nodes[i].id + "/data"))
      << "\"\nrequest_timeout_s = 5\n" << opts.hub_extra << (opts.hub_extra.empty() ? "" : "\n")
      << "[wechat]\napi_base = \"" << sim_url_ << "\"\ntimeout_ms = 1500\n"
      << "[cluster]\nnode_id = \"" << nodes[i].id << "\"\nlisten = \"127.0.0.1:" << nodes[i].cluster_port
      << "\"\n";
  if (opts.advertise)
    out << "advertise = \"" << opts.advertise(i, nodes[i].cluster_port) << "\"\n";
  auto etcd = i < opts.etcd_of.size() ? opts.etcd_of[i] : opts.etcd;
  if (!etcd.empty()) {
    out << "etcd = [\"" << etcd << "\"]\nlease_ttl_ms = " << opts.lease_ttl_ms;
  } else {
    out << "peers = [";
    bool first = true;
    for (std::size_t j = 0; j < nodes.size(); ++j) {
      if (j == i)
        continue;
      out << (first ? "" : ", ") << "\"127.0.0.1:" << nodes[j].cluster_port << "\"";
      first = false;
    }
    out << "]";
  }
  out << "\nreplicas = " << opts.replicas << "\njoin_grace_ms = " << opts.join_grace_ms << "\n";
  if (!tls_dir.empty())
    out << "tls = { cert = \"" << tls_dir << "/node.crt\", key = \"" << tls_dir
        << "/node.key\", ca = \"" << tls_dir << "/ca.crt\" }\n";
  for (auto& a : opts.apps) {
    out << "[[app]]\nappid = \"" << a.appid << "\"\nsecret = \"" << a.secret << "\"\n";
    if (a.classic)
      out << "token_api = \"classic\"\n";
  }
  if (opts.component)
    out << component_toml();
  return out.str();
}

void cluster_env::spawn_node(std::size_t i) {
  auto& n = nodes[i];
  untrack(n.proc.pid());
  n.proc.kill_now();
  n.http_port = 0;
  auto port_file = dir / (n.id + ".port");
  std::remove(port_file.c_str());
  write_file(dir / (n.id + ".toml"), config_of(i));
  n.proc = process::spawn({bin("wechat-hub"), "--config", dir / (n.id + ".toml"), "--port-file", port_file},
                          dir / (n.id + ".log"));
  track(n.proc.pid());
}

void cluster_env::await_port(std::size_t i) {
  auto& n = nodes[i];
  n.http_port = wait_for_port(dir / (n.id + ".port"), n.proc);
  if (n.http_port == 0)
    throw std::runtime_error("wechat-hub " + n.id + " did not start: " + tail(node_log(i), 60));
}

void cluster_env::start_node(std::size_t i) {
  spawn_node(i);
  await_port(i);
}

void cluster_env::start_all(std::chrono::milliseconds timeout) {
  std::string failure;
  // A node that cannot bind its cluster port (taken since it was picked) is
  // retried with fresh ports for every node: the peers' configs name them.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) {
      for (auto& n : nodes) {
        untrack(n.proc.pid());
        n.proc.kill_now();
      }
      auto ports = free_ports(nodes.size());
      for (std::size_t i = 0; i < nodes.size(); ++i)
        nodes[i].cluster_port = ports[i];
    }
    for (std::size_t i = 0; i < nodes.size(); ++i)
      spawn_node(i);
    bool up = true;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      nodes[i].http_port = wait_for_port(dir / (nodes[i].id + ".port"), nodes[i].proc);
      if (nodes[i].http_port == 0 && up) {
        up = false;
        failure = "wechat-hub " + nodes[i].id + " did not start: " + tail(node_log(i), 30);
      }
    }
    if (!up)
      continue;
    std::string why;
    if (!wait_ready(all(), timeout, &why))
      throw std::runtime_error("the cluster did not become ready: " + why + "\n" + log_tails());
    return;
  }
  throw std::runtime_error(failure);
}

void cluster_env::kill_node(std::size_t i) {
  untrack(nodes[i].proc.pid());
  nodes[i].proc.kill_now();
}

health cluster_env::healthz(std::size_t i) {
  health h;
  auto res = node(i, "GET", "/healthz");
  h.status = res.status;
  h.body = res.body;
  auto obj = parse_object(res.body);
  if (auto cl = obj.if_contains("cluster"); cl && cl->is_object()) {
    auto& c = cl->as_object();
    if (auto s = c.if_contains("state"); s && s->is_string())
      h.state = std::string{s->as_string()};
    if (auto l = c.if_contains("live"); l && l->is_array())
      for (auto& v : l->as_array())
        if (v.is_string())
          h.live.emplace_back(v.as_string());
  }
  std::sort(h.live.begin(), h.live.end());
  return h;
}

bool cluster_env::wait_ready(const std::vector<std::size_t>& which, std::chrono::milliseconds timeout,
                             std::string* why) {
  std::vector<std::string> expected;
  for (auto i : which)
    expected.push_back(nodes[i].id);
  std::sort(expected.begin(), expected.end());
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  for (;;) {
    bool ok = true;
    last.clear();
    for (auto i : which) {
      health h;
      try {
        h = healthz(i);
      } catch (const std::exception& e) {
        h.body = e.what();
      }
      if (h.status != 200 || h.state != "ready" || h.live != expected) {
        ok = false;
        last += nodes[i].id + ": " + std::to_string(h.status) + " " + h.body + "; ";
      }
    }
    if (ok)
      return true;
    if (std::chrono::steady_clock::now() >= deadline) {
      if (why)
        *why = "expected live [" + join(expected) + "]: " + last;
      return false;
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

http_result cluster_env::node(std::size_t i, const std::string& method, const std::string& target,
                              const std::string& body, const std::string& content_type) {
  return send(client, method, nodes[i].url() + target, body,
              content_type.empty() && !body.empty() ? "application/json" : content_type);
}

http_result cluster_env::sim(const std::string& method, const std::string& target, const std::string& body) {
  return send(client, method, sim_url_ + target, body, body.empty() ? "" : "application/json");
}

int64_t cluster_env::sim_calls(const std::string& path, const std::string& appid) {
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

int64_t cluster_env::sim_total() {
  auto stats = parse_object(sim("GET", "/sim/stats").body);
  auto t = stats.if_contains("total");
  return t && t->is_int64() ? t->as_int64() : -1;
}

std::string cluster_env::token(std::size_t i, const std::string& appid, const std::string& authorizer) {
  auto target = "/client/access_token?appid=" + appid;
  if (!authorizer.empty())
    target += "&authorizer_appid=" + authorizer;
  auto res = node(i, "GET", target);
  auto obj = parse_object(res.body);
  if (res.status != 200 || !obj.contains("access_token") || !obj.at("access_token").is_string()) {
    std::string reason;
    if (auto r = obj.if_contains("reason"); r && r->is_string())
      reason = " " + std::string{r->as_string()};
    return "<status " + std::to_string(res.status) + reason + ">";
  }
  return std::string{obj.at("access_token").as_string()};
}

boost::json::object cluster_env::cluster_info(std::size_t i, const std::string& key) {
  auto res = node(i, "GET", "/admin/cluster?key=" + net::url_encode(key));
  if (res.status != 200)
    return {};
  return parse_object(res.body);
}

std::string cluster_env::owner_of(const std::string& key, std::size_t asked) {
  auto info = cluster_info(asked, key);
  auto k = info.if_contains("key");
  if (!k || !k->is_object())
    return {};
  auto o = k->as_object().if_contains("owner");
  return o && o->is_string() ? std::string{o->as_string()} : std::string{};
}

std::vector<std::string> cluster_env::replicas_of(const std::string& key, std::size_t asked) {
  std::vector<std::string> out;
  auto info = cluster_info(asked, key);
  auto k = info.if_contains("key");
  if (!k || !k->is_object())
    return out;
  auto r = k->as_object().if_contains("replicas");
  if (r && r->is_array())
    for (auto& v : r->as_array())
      if (v.is_string())
        out.emplace_back(v.as_string());
  return out;
}

int64_t cluster_env::state_version(std::size_t i, const std::string& appid, const std::string& authorizer) {
  auto target = "/admin/state?appid=" + appid;
  if (!authorizer.empty())
    target += "&authorizer_appid=" + authorizer;
  auto res = node(i, "GET", target);
  if (res.status != 200)
    return -1;
  auto obj = parse_object(res.body);
  auto tok = obj.if_contains("access_token");
  if (!tok || !tok->is_object())
    return -1;
  auto v = tok->as_object().if_contains("version");
  if (!v)
    return -1;
  if (v->is_int64())
    return v->as_int64();
  if (v->is_uint64())
    return static_cast<int64_t>(v->as_uint64());
  return -1;
}

bool cluster_env::reload_node(std::size_t i) {
  const std::string ok = "wechat_hub_config_reloads_total{result=\"ok\"}";
  auto before = metric(i, ok);
  write_file(dir / (nodes[i].id + ".toml"), config_of(i));
  nodes[i].proc.signal(SIGHUP);
  for (int n = 0; n < 1000; ++n) {
    if (metric(i, ok) > before)
      return true;
    if (metric(i, "wechat_hub_config_reloads_total{result=\"invalid\"}") > 0)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

double cluster_env::metric(std::size_t i, const std::string& series) {
  auto body = node(i, "GET", "/metrics").body;
  std::istringstream in{body};
  std::string line;
  bool labelled = series.find('{') != std::string::npos;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.size() <= series.size()
        || line.compare(0, series.size(), series) != 0)
      continue;
    auto next = line[series.size()];
    // An exact sample, or (for a bare name) any of its labelled samples.
    if (next != ' ' && (labelled || next != '{'))
      continue;
    auto sp = line.rfind(' ');
    sum += std::stod(line.substr(sp + 1));
  }
  return sum;
}

std::size_t cluster_env::index_of(const std::string& id) const {
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].id == id)
      return i;
  return nodes.size();
}

std::vector<std::size_t> cluster_env::all() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    out.push_back(i);
  return out;
}

std::vector<std::size_t> cluster_env::all_but(std::size_t i) const {
  std::vector<std::size_t> out;
  for (std::size_t j = 0; j < nodes.size(); ++j)
    if (j != i)
      out.push_back(j);
  return out;
}

std::string cluster_env::node_log(std::size_t i) const {
  return read_file(dir / (nodes[i].id + ".log"));
}

std::string cluster_env::log_tails(std::size_t lines) const {
  std::string out;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    out += "---- " + nodes[i].id + ".log (tail) ----" + tail(node_log(i), lines) + "\n";
  return out;
}

} // namespace wh::test
