#include "app/hub_root.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "caf/all.hpp"
#include "caf/io/all.hpp"
#include "caf/openssl/all.hpp"

#include "actors/quota_book.hpp"
#include "actors/key_services.hpp"
#include "actors/registry.hpp"
#include "actors/store_actor.hpp"
#include "actors/upstream_actor.hpp"
#include "cluster/node.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "http/api.hpp"
#include "http/key_metrics.hpp"
#include "http/fd_limit.hpp"
#include "http/reload.hpp"
#include "http/server.hpp"
#include "http/systemd.hpp"
#include "cluster/etcd_session.hpp"
#include "net/http_client.hpp"
#include "persistence/crypto_store.hpp"
#include "persistence/push_journal.hpp"
#include "persistence/store.hpp"

namespace wh {

namespace {

bool write_port_file(const std::string& path, uint16_t port) {
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    if (!out)
      return false;
    out << port << "\n";
    if (!out)
      return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

/// How long one step of dialling a peer may take. CAF 0.17.6's
/// middleman_actor connects with a blocking ::connect() on its own thread,
/// and middleman::remote_actor (like caf::openssl::remote_actor) waits for
/// the answer without a timeout, in the detached actor the node spawns per
/// attempt. A peer host that drops SYNs (powered off, firewalled, or a full
/// accept queue) blocks that connect() for the kernel's SYN retries, minutes
/// on Linux, and the actor system's destructor waits for every actor: the
/// hub did not exit (hence the old 4 s _Exit watchdog; reproduced by
/// tests/e2e/shutdown_test.cpp). So the connector first dials the peer
/// itself, non-blocking and with this timeout, and hands the address to
/// CAF only once the peer accepts TCP; CAF's handshake request is bounded
/// by the same timeout. What remains is the window between the probe and
/// CAF's own connect (a peer vanishing in that instant), documented here.
constexpr auto connect_timeout = std::chrono::seconds(2);

/// Whether `host`:`port` accepts a TCP connection within `connect_timeout`.
caf::error probe_peer(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    return make_detail_error(ec::cluster_unavailable,
                             "cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard{found, &::freeaddrinfo};
  std::string why = "no address";
  for (auto* ai = found; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(connect_timeout).count();
      if (::poll(&p, 1, static_cast<int>(ms)) == 1) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      } else {
        err = ETIMEDOUT;
      }
    }
    ::close(fd);
    if (err == 0)
      return {};
    why = std::strerror(err);
  }
  return make_detail_error(ec::cluster_unavailable,
                           "cannot reach " + host + ":" + std::to_string(port) + ": " + why);
}

/// Dials a peer's published node actor: probe_peer first, then the
/// middleman's (or the OpenSSL manager's) connect, within `connect_timeout`.
cluster::connector bounded_connector(caf::actor_system& sys, bool tls) {
  return [&sys, tls](const std::string& host, uint16_t port) -> caf::expected<caf::actor> {
    if (auto err = probe_peer(host, port))
      return err;
    caf::io::middleman_actor mm = tls ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
    caf::expected<caf::actor> res{caf::actor{}};
    caf::scoped_actor self{sys};
    self->request(mm, connect_timeout, connect_atom::value, host, port)
      .receive(
        [&](const caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>& ifs) {
          if (!ptr)
            res = caf::make_error(caf::sec::no_actor_published_at_port, port);
          else if (!ifs.empty())
            res = caf::make_error(caf::sec::unexpected_actor_messaging_interface);
          else
            res = caf::actor_cast<caf::actor>(std::move(ptr));
        },
        [&](caf::error& err) { res = std::move(err); });
    return res;
  };
}

// -- the steps of run_hub ------------------------------------------------------

/// Blocks the signals the main thread takes synchronously (every thread
/// started later inherits the mask).
sigset_t block_signals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return sigs;
}

/// Log level and format; refuses an open hub on a non-loopback address.
bool configure_process(const hub_config& cfg) {
  log::level lvl = log::level::info;
  log::parse_level(cfg.log_level, lvl);
  log::set_level(lvl);
  log::format fmt = log::format::text;
  log::parse_format(cfg.log_format, fmt);
  log::set_format(fmt);
  if (cfg.clients.empty()) {
    // Protected mode: without keys anyone who reaches the port can read every
    // token, so the hub only listens on loopback unless told otherwise.
    if (!is_loopback_host(cfg.listen_host) && !cfg.allow_open) {
      WH_ERROR("hub", cfg.source << ": no [[client]] keys are configured, so the hub refuses to listen on "
                                 << cfg.listen_host << "; add keys (wechat-hub keygen) or set hub.allow_open = true");
      return false;
    }
    if (!is_loopback_host(cfg.listen_host))
      WH_WARN("hub", "running OPEN on " << cfg.listen_host
                                        << ": anyone who can reach this port can read every token");
  }
  if (cfg.refresh_margin_s + cfg.refresh_jitter_s > 300)
    WH_WARN("hub", "refresh_margin_s + refresh_jitter_s > 300: with token_api = \"classic\" the "
                   "previous token dies before clients' cached expiry");
  return true;
}

/// Opens RocksDB; every value is sealed with the master key before it is written.
std::shared_ptr<persistence::store> open_storage(const hub_config& cfg) {
  persistence::open_report sealed;
  auto opened = persistence::open_encrypted_rocksdb(cfg.data_dir, cfg.master_key_file, sealed);
  if (!opened) {
    WH_ERROR("hub", detail_of(opened.error()));
    return nullptr;
  }
  if (sealed.key_created && cfg.master_key_file.empty())
    WH_WARN("hub", "created master key " << sealed.key_path << " next to the data it protects; in "
                   "production keep it elsewhere (hub.master_key_file)");
  return std::move(*opened);
}

/// The actor system's configuration: the middleman (and OpenSSL) only for clusters.
bool make_system_config(const hub_config& cfg, caf::actor_system_config& sys_cfg) {
  sys_cfg.set("logger.file-verbosity", caf::atom("quiet"));
  sys_cfg.set("logger.console-verbosity", caf::atom("quiet"));
  sys_cfg.set("scheduler.max-threads", size_t{std::max(2u, std::thread::hardware_concurrency())});
  const auto& ccfg = cfg.cluster;
  if (!ccfg.enabled())
    return true;
  sys_cfg.load<caf::io::middleman>();
  // Both sides send heartbeats, so a hung (not just killed) peer is
  // declared down after the timeout.
  sys_cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(500)});
  sys_cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(3)});
  if (!ccfg.tls_cert.empty()) {
    for (auto* f : {&ccfg.tls_cert, &ccfg.tls_key, &ccfg.tls_ca})
      if (std::ifstream probe{*f}; !probe) {
        WH_ERROR("hub", cfg.source << ": cluster.tls: cannot read " << *f);
        return false;
      }
    sys_cfg.load<caf::openssl::manager>();
    sys_cfg.openssl_certificate = ccfg.tls_cert;
    sys_cfg.openssl_key = ccfg.tls_key;
    sys_cfg.openssl_cafile = ccfg.tls_ca;
  }
  cluster::add_message_types(sys_cfg);
  return true;
}

/// The actors every hub runs besides the keys' (upstream client, store).
struct core_actors {
  caf::actor upstream;
  caf::actor store;
  void stop() const {
    caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  }
};

/// Publishes this node's actor on cluster.listen (not yet joined: node->start()).
std::unique_ptr<cluster::node> start_cluster(const hub_config& cfg, caf::actor_system& sys,
                                             actors::registry& reg, const core_actors& core,
                                             metrics& stats, const wh::clock& wall) {
  const auto& ccfg = cfg.cluster;
  bool tls = !ccfg.tls_cert.empty();
  cluster::node_options node_opts{ccfg};
  node_opts.clock = &wall;
  auto node = std::make_unique<cluster::node>(sys, reg, core.store, &stats, node_opts,
                                              bounded_connector(sys, tls));
  auto* n = node.get();
  reg.enable_cluster({node->actor(), [n](std::string_view key) { return n->owner_node(key); },
                      [n](std::string_view key) { return n->owner_of(key); }});
  auto published = tls ? caf::openssl::publish(node->actor(), ccfg.listen_port, ccfg.listen_host.c_str(), true)
                       : sys.middleman().publish(node->actor(), ccfg.listen_port,
                                                 ccfg.listen_host.c_str(), true);
  if (!published) {
    WH_ERROR("hub", cfg.source << ": cluster.listen: cannot listen on " << ccfg.listen_host << ":"
                               << ccfg.listen_port << ": " << sys.render(published.error()));
    node->stop();
    return nullptr;
  }
  return node;
}

/// Adds the config file's apps and components, then those the admin API
/// defined (the file wins). Returns the config the front end starts with.
std::optional<hub_config> load_definitions(const hub_config& cfg, actors::key_services& keys) {
  auto& reg = keys.reg;
  for (auto& app : cfg.apps) {
    if (auto err = reg.add_app(app)) {
      WH_ERROR("hub", detail_of(err));
      return std::nullopt;
    }
  }
  for (auto& comp : cfg.components) {
    if (auto err = reg.add_component(comp)) {
      WH_ERROR("hub", detail_of(err));
      return std::nullopt;
    }
  }
  auto runtime_cfg = cfg;
  std::vector<app_config> apps;
  std::vector<component_config> comps;
  if (auto err = keys.defs.load_runtime(apps, comps))
    WH_ERROR("hub", "cannot load runtime definitions: " << detail_of(err));
  for (auto& a : apps)
    if (reg.find(a.appid))
      WH_WARN("hub", a.appid << " is defined in the config file and by the admin API; using the file");
    else if (!reg.add_app(a, true))
      runtime_cfg.apps.push_back(a);
  for (auto& c : comps)
    if (reg.find(c.appid))
      WH_WARN("hub", c.appid << " is defined in the config file and by the admin API; using the file");
    else if (!reg.add_component(c, true))
      runtime_cfg.components.push_back(c);
  // Every stored key is loaded: the refresh schedule may run.
  reg.finish_startup();
  return runtime_cfg;
}

/// The push journal, as the front end sees it.
http::push_ledger make_push_ledger(std::shared_ptr<persistence::store> db, int64_t window_s) {
  auto journal = std::make_shared<persistence::push_journal>(std::move(db), window_s);
  http::push_ledger ledger;
  ledger.admit = [journal](std::string_view component, std::string_view signature,
                           std::string_view subject, int64_t create_time,
                           int64_t now) -> caf::expected<http::push_ledger::verdict> {
    auto v = journal->admit(component, signature, subject, create_time, now);
    if (!v)
      return v.error();
    switch (*v) {
      case persistence::push_journal::verdict::duplicate: return http::push_ledger::verdict::duplicate;
      case persistence::push_journal::verdict::outdated: return http::push_ledger::verdict::outdated;
      case persistence::push_journal::verdict::apply: break;
    }
    return http::push_ledger::verdict::apply;
  };
  ledger.applied = [journal](std::string_view component, std::string_view signature,
                             std::string_view subject, int64_t create_time, int64_t now) {
    return journal->applied(component, signature, subject, create_time, now);
  };
  ledger.release = [journal](std::string_view component, std::string_view signature) {
    journal->release(component, signature);
  };
  return ledger;
}

/// The cluster node, as the front end sees it.
http::cluster_port make_cluster_port(cluster::node* n, cluster::etcd_session* etcd) {
  http::cluster_port port;
  port.current = [n] {
    auto v = n->current();
    http::cluster_port::status st;
    st.self = v->self;
    st.ready = v->ready;
    st.live = v->own.nodes();
    st.replicas = v->replicas;
    st.owned_keys = v->owned_keys;
    return st;
  };
  port.place = [n](const std::string& key) {
    auto v = n->current();
    return http::cluster_port::placement{v->own.owner(key), v->own.rank(key, v->replicas)};
  };
  port.reads = [n, etcd] {
    using mode = http::cluster_port::reads_mode;
    // The lease first: a node that sees its new lease sees the readiness
    // its rejoin cleared (node::lease).
    auto lease = n->lease();
    if (etcd && !etcd->membership().may_serve(lease))
      return mode::refuse;
    return n->serves_held() ? mode::serve : mode::ask_owner;
  };
  port.relay_admin = [n](const std::string& method, const std::string& target,
                         const std::string& body, const std::string& ctype) {
    n->relay_admin(method, target, body, ctype);
  };
  return port;
}

/// Admin changes a peer accepted are applied here through the same API.
void apply_relayed_admin(cluster::node& node, http::hub_api& api) {
  node.on_relayed_admin([&api](std::string method, std::string target, std::string body,
                               std::string ctype) {
    http::request req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    req.content_type = std::move(ctype);
    req.loopback = true;
    req.replicated = true;
    api.handle(std::move(req), [](http::response res) {
      if (res.status >= 300)
        WH_WARN("cluster", "a relayed admin change failed here: " << res.status << " " << res.body);
    });
  });
}

http::server_options server_options_of(const hub_config& cfg) {
  http::server_options srv_opts;
  srv_opts.host = cfg.listen_host;
  srv_opts.port = cfg.listen_port;
  srv_opts.threads = cfg.http_threads;
  srv_opts.max_body_bytes = cfg.max_body_bytes;
  srv_opts.request_timeout = std::chrono::seconds{cfg.request_timeout_s};
  srv_opts.idle_timeout = std::chrono::seconds{cfg.idle_timeout_s};
  srv_opts.tls = {cfg.tls.cert, cfg.tls.key, cfg.tls.client_ca};
  http::apply_limits(srv_opts, cfg);
  return srv_opts;
}

/// Waits for SIGTERM / SIGINT, reloading the config file on SIGHUP. This
/// thread is not a CAF or Asio worker, so a reload may read files and RocksDB.
int wait_for_stop(sigset_t sigs, const hub_config& cfg, const hub_run_options& opts,
                  actors::registry& reg, http::hub_api& api, metrics& stats, uint16_t port) {
  auto file_cfg = cfg;
  int sig = 0;
  for (;;) {
    sigwait(&sigs, &sig);
    if (sig != SIGHUP)
      return sig;
    WH_INFO("hub", "SIGHUP: reloading " << opts.config_path);
    systemd::notify(systemd::reloading_state());
    reload_config(opts.config_path, file_cfg, reg, api, stats);
    systemd::notify("READY=1\nSTATUS=listening on port " + std::to_string(port));
  }
}

} // namespace

std::string hub_routes() {
  return http::describe(http::hub_api::routes());
}

int run_hub(const hub_config& cfg, const hub_run_options& opts) {
  auto sigs = block_signals();
  if (!configure_process(cfg))
    return 2;
  auto db = open_storage(cfg);
  if (!db)
    return 1;
  caf::actor_system_config sys_cfg;
  if (!make_system_config(cfg, sys_cfg))
    return 1;
  caf::actor_system sys{sys_cfg};

  system_clock wall;
  metrics stats;
  describe_reload_metrics(stats);
  net::client_options http_opts;
  http_opts.ca_file = cfg.upstream_ca_file;
  http_opts.user_agent = "wechat-hub/0.1";
  auto upstream_client = std::make_shared<net::http_client>(http_opts);
  actors::quota_book quota{wall};
  quota.export_to(stats);
  if (auto err = quota.load(*db))
    WH_ERROR("hub", "cannot load the clear_quota budgets: " << detail_of(err));
  core_actors core{actors::spawn_upstream_actor(sys, upstream_client, cfg.api_base,
                                                std::chrono::milliseconds{cfg.upstream_timeout_ms},
                                                &stats, &quota),
                   actors::spawn_store_actor(sys, db)};
  actors::registry::options reg_opts;
  reg_opts.refresh_margin_s = cfg.refresh_margin_s;
  reg_opts.refresh_jitter_s = cfg.refresh_jitter_s;
  reg_opts.idle_timeout = std::chrono::seconds(cfg.actor_idle_s);
  reg_opts.router.max_active = cfg.max_active_actors;
  reg_opts.router.rate = cfg.schedule_rate;
  reg_opts.upstream_timeout = std::chrono::milliseconds{cfg.upstream_timeout_ms + 2000};
  // With etcd, the node acts as owner only while its lease holds.
  std::unique_ptr<cluster::etcd_session> etcd;
  if (cfg.cluster.enabled() && !cfg.cluster.etcd.empty()) {
    etcd = std::make_unique<cluster::etcd_session>(cfg.cluster);
    reg_opts.may_act = etcd->may_act();
  }
  actors::registry reg{sys, core.upstream, core.store, db, wall, &stats, reg_opts};
  actors::key_services keys{sys, reg};
  http::export_key_metrics(reg, stats, wall, cfg.refresh_margin_s);

  std::unique_ptr<cluster::node> node;
  if (cfg.cluster.enabled()) {
    node = start_cluster(cfg, sys, reg, core, stats, wall);
    if (!node) {
      core.stop();
      return 1;
    }
    if (etcd) {
      // Owners come from etcd before the node serves (a restarting node
      // forwards keys others own at once instead of parking them).
      auto wait = std::chrono::milliseconds{std::max<uint32_t>(cfg.cluster.lease_ttl_ms, 3000)};
      if (!etcd->attach(*node, wait))
        WH_WARN("hub", "cluster node " << cfg.cluster.node_id << " is not registered in etcd after "
                                       << wait.count() << " ms; it keeps trying and owns no key until then");
    }
  }
  auto runtime_cfg = load_definitions(cfg, keys);
  if (!runtime_cfg) {
    if (node)
      node->stop();
    reg.shutdown();
    core.stop();
    return 1;
  }

  http::hub_api api{keys, stats, wall, *runtime_cfg, make_push_ledger(db, cfg.push_window_s)};
  api.set_quota(&quota, core.upstream, core.store);
  if (node) {
    api.set_cluster(make_cluster_port(node.get(), etcd.get()));
    apply_relayed_admin(*node, api);
    node->start();
    const auto& ccfg = cfg.cluster;
    WH_INFO("hub", "cluster node " << ccfg.node_id << " on " << ccfg.listen_host << ":" << ccfg.listen_port
                                   << (ccfg.tls_cert.empty() ? "" : " (TLS)") << ", "
                                   << (etcd ? "membership from etcd" : std::to_string(ccfg.peers.size()) + " peer(s)")
                                   << ", replicas " << ccfg.replicas);
  }
  auto srv_opts = server_options_of(cfg);
  srv_opts.cached_get = [&api](const http::cached_get_request& req, std::string& out) {
    return api.serve_cached(req, out);
  };
  http::server srv{std::move(srv_opts),
                   [&api](http::request&& req, http::responder respond) {
                     api.handle(std::move(req), std::move(respond));
                   },
                   [&api](const caf::error& err) {
                     auto res = http::error_response(err);
                     api.count(http::hub_api::other_label, res.status);
                     return res;
                   }};
  if (auto err = srv.start()) {
    WH_ERROR("hub", detail_of(err));
    if (node)
      node->stop();
    reg.shutdown();
    core.stop();
    return 1;
  }
  if (!opts.port_file.empty() && !write_port_file(opts.port_file, srv.port()))
    WH_WARN("hub", "cannot write port file " << opts.port_file);
  WH_INFO("hub", "listening on " << cfg.listen_host << ":" << srv.port() << " with "
                                 << cfg.apps.size() << " app(s), " << cfg.components.size()
                                 << " component(s); data_dir " << cfg.data_dir
                                 << "; upstream " << cfg.api_base);
  systemd::notify("READY=1\nSTATUS=listening on port " + std::to_string(srv.port()));

  auto sig = wait_for_stop(sigs, cfg, opts, reg, api, stats, srv.port());
  systemd::notify("STOPPING=1");
  WH_INFO("hub", "signal " << sig << ": draining");
  srv.stop(std::chrono::seconds{8});
  // Every write is durable (fsync'ed) by now. The actor system's destructor
  // then waits for every actor, including a peer connection attempt, which
  // bounded_connector ends within connect_timeout.
  if (etcd)
    etcd->stop(); // the lease is revoked: peers take over at once
  if (node)
    node->stop();
  reg.shutdown();
  upstream_client->shutdown();
  core.stop();
  WH_INFO("hub", "stopped");
  return 0;
}

} // namespace wh
