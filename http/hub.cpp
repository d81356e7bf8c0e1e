#include "http/hub.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <arpa/inet.h>
#include <pthread.h>

#include "caf/all.hpp"
#include "caf/io/all.hpp"
#include "caf/openssl/all.hpp"

#include "actors/quota_book.hpp"
#include "actors/registry.hpp"
#include "actors/store_actor.hpp"
#include "actors/upstream_actor.hpp"
#include "cluster/node.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "http/api.hpp"
#include "http/fd_limit.hpp"
#include "http/reload.hpp"
#include "http/server.hpp"
#include "http/systemd.hpp"
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

} // namespace

int run_hub(const hub_config& cfg, const hub_run_options& opts) {
  // Signals are taken synchronously by this thread only; every thread
  // started below inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

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
      return 2;
    }
    if (!is_loopback_host(cfg.listen_host))
      WH_WARN("hub", "running OPEN on " << cfg.listen_host
                                        << ": anyone who can reach this port can read every token");
  }
  if (cfg.refresh_margin_s + cfg.refresh_jitter_s > 300)
    WH_WARN("hub", "refresh_margin_s + refresh_jitter_s > 300: with token_api = \"classic\" the "
                   "previous token dies before clients' cached expiry");

  // Every value is sealed with the master key before it reaches RocksDB.
  persistence::open_report sealed;
  auto opened = persistence::open_encrypted_rocksdb(cfg.data_dir, cfg.master_key_file, sealed);
  if (!opened) {
    WH_ERROR("hub", detail_of(opened.error()));
    return 1;
  }
  if (sealed.key_created && cfg.master_key_file.empty())
    WH_WARN("hub", "created master key " << sealed.key_path << " next to the data it protects; in "
                   "production keep it elsewhere (hub.master_key_file)");
  std::shared_ptr<persistence::store> db = std::move(*opened);

  caf::actor_system_config sys_cfg;
  sys_cfg.set("logger.file-verbosity", caf::atom("quiet"));
  sys_cfg.set("logger.console-verbosity", caf::atom("quiet"));
  sys_cfg.set("scheduler.max-threads", size_t{std::max(2u, std::thread::hardware_concurrency())});
  const auto& ccfg = cfg.cluster;
  if (ccfg.enabled()) {
    sys_cfg.load<caf::io::middleman>();
    // Both sides send heartbeats, so a hung (not just killed) peer is
    // declared down after the timeout.
    sys_cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(500)});
    sys_cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(3)});
    if (!ccfg.tls_cert.empty()) {
      for (auto* f : {&ccfg.tls_cert, &ccfg.tls_key, &ccfg.tls_ca})
        if (std::ifstream probe{*f}; !probe) {
          WH_ERROR("hub", cfg.source << ": cluster.tls: cannot read " << *f);
          return 1;
        }
      sys_cfg.load<caf::openssl::manager>();
      sys_cfg.openssl_certificate = ccfg.tls_cert;
      sys_cfg.openssl_key = ccfg.tls_key;
      sys_cfg.openssl_cafile = ccfg.tls_ca;
    }
    cluster::add_message_types(sys_cfg);
  }
  caf::actor_system sys{sys_cfg};

  system_clock wall;
  metrics stats;
  describe_reload_metrics(stats);
  net::client_options http_opts;
  http_opts.ca_file = cfg.upstream_ca_file;
  http_opts.user_agent = "wechat-hub/0.1";
  auto http = std::make_shared<net::http_client>(http_opts);
  actors::quota_book quota{wall};
  quota.export_to(stats);
  if (auto err = quota.load(*db))
    WH_ERROR("hub", "cannot load the clear_quota budgets: " << detail_of(err));
  auto upstream = actors::spawn_upstream_actor(sys, http, cfg.api_base,
                                               std::chrono::milliseconds{cfg.upstream_timeout_ms},
                                               &stats, &quota);
  auto store = actors::spawn_store_actor(sys, db);
  actors::registry::options reg_opts;
  reg_opts.refresh_margin_s = cfg.refresh_margin_s;
  reg_opts.refresh_jitter_s = cfg.refresh_jitter_s;
  reg_opts.upstream_timeout = std::chrono::milliseconds{cfg.upstream_timeout_ms + 2000};
  actors::registry reg{sys, upstream, store, db, wall, &stats, reg_opts};
  std::unique_ptr<cluster::node> node;
  if (ccfg.enabled()) {
    bool tls = !ccfg.tls_cert.empty();
    cluster::connector connect = [&sys, tls](const std::string& host, uint16_t port) {
      return tls ? caf::openssl::remote_actor<caf::actor>(sys, host, port)
                 : sys.middleman().remote_actor<caf::actor>(host, port);
    };
    cluster::node_options node_opts{ccfg};
    node_opts.clock = &wall;
    node = std::make_unique<cluster::node>(sys, reg, store, &stats, node_opts, std::move(connect));
    auto* n = node.get();
    reg.enable_cluster({node->actor(), [n](std::string_view key) { return n->owner_node(key); }});
    auto published = tls ? caf::openssl::publish(node->actor(), ccfg.listen_port, ccfg.listen_host.c_str(), true)
                         : sys.middleman().publish(node->actor(), ccfg.listen_port,
                                                   ccfg.listen_host.c_str(), true);
    if (!published) {
      WH_ERROR("hub", cfg.source << ": cluster.listen: cannot listen on " << ccfg.listen_host << ":"
                                 << ccfg.listen_port << ": " << sys.render(published.error()));
      node->stop();
      caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
      return 1;
    }
  }
  for (auto& app : cfg.apps) {
    if (auto err = reg.add_app(app)) {
      WH_ERROR("hub", detail_of(err));
      return 1;
    }
  }
  for (auto& comp : cfg.components) {
    if (auto err = reg.add_component(comp)) {
      WH_ERROR("hub", detail_of(err));
      return 1;
    }
  }
  // Apps and components added through the admin API; the config file wins.
  auto runtime_cfg = cfg;
  {
    std::vector<app_config> apps;
    std::vector<component_config> comps;
    if (auto err = reg.load_runtime(apps, comps))
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
  }

  auto journal = std::make_shared<persistence::push_journal>(db, cfg.push_window_s);
  http::push_ledger ledger;
  ledger.admit = [journal](std::string_view component, std::string_view signature,
                           std::string_view subject, int64_t create_time,
                           int64_t now) -> caf::expected<http::push_ledger::verdict> {
    auto v = journal->admit(component, signature, subject, create_time, now);
    if (!v)
      return v.error();
    switch (*v) {
      case persistence::push_journal::verdict::apply: return http::push_ledger::verdict::apply;
      case persistence::push_journal::verdict::duplicate: return http::push_ledger::verdict::duplicate;
      case persistence::push_journal::verdict::outdated: return http::push_ledger::verdict::outdated;
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
  http::hub_api api{reg, stats, wall, runtime_cfg, std::move(ledger)};
  api.set_quota(&quota, upstream, store);
  if (node) {
    auto* n = node.get();
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
    port.relay_admin = [n](const std::string& method, const std::string& target,
                           const std::string& body, const std::string& ctype) {
      n->relay_admin(method, target, body, ctype);
    };
    api.set_cluster(std::move(port));
    node->on_relayed_admin([&api](std::string method, std::string target, std::string body,
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
    node->start();
    WH_INFO("hub", "cluster node " << ccfg.node_id << " on " << ccfg.listen_host << ":" << ccfg.listen_port
                                   << (ccfg.tls_cert.empty() ? "" : " (TLS)") << ", " << ccfg.peers.size()
                                   << " peer(s), replicas " << ccfg.replicas);
  }
  http::server_options srv_opts;
  srv_opts.host = cfg.listen_host;
  srv_opts.port = cfg.listen_port;
  srv_opts.threads = cfg.http_threads;
  srv_opts.max_body_bytes = cfg.max_body_bytes;
  srv_opts.request_timeout = std::chrono::seconds{cfg.request_timeout_s};
  srv_opts.idle_timeout = std::chrono::seconds{cfg.idle_timeout_s};
  srv_opts.tls = {cfg.tls.cert, cfg.tls.key, cfg.tls.client_ca};
  http::apply_limits(srv_opts, cfg);
  http::server srv{srv_opts,
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
    reg.shutdown();
    caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    return 1;
  }
  if (!opts.port_file.empty() && !write_port_file(opts.port_file, srv.port()))
    WH_WARN("hub", "cannot write port file " << opts.port_file);
  WH_INFO("hub", "listening on " << cfg.listen_host << ":" << srv.port() << " with "
                                 << cfg.apps.size() << " app(s), " << cfg.components.size()
                                 << " component(s); data_dir " << cfg.data_dir
                                 << "; upstream " << cfg.api_base);

  systemd::notify("READY=1\nSTATUS=listening on port " + std::to_string(srv.port()));

  // SIGHUP reloads the config file; SIGTERM / SIGINT stop. This thread is
  // not a CAF or Asio worker, so the reload may read files and RocksDB.
  auto file_cfg = cfg;
  int sig = 0;
  for (;;) {
    sigwait(&sigs, &sig);
    if (sig != SIGHUP)
      break;
    WH_INFO("hub", "SIGHUP: reloading " << opts.config_path);
    systemd::notify(systemd::reloading_state());
    reload_config(opts.config_path, file_cfg, reg, api, stats);
    systemd::notify("READY=1\nSTATUS=listening on port " + std::to_string(srv.port()));
  }
  systemd::notify("STOPPING=1");
  WH_INFO("hub", "signal " << sig << ": draining");
  srv.stop(std::chrono::seconds{8});
  if (node) {
    // CAF remoting may hold the actor system open while a connection attempt
    // to a peer that is itself stopping times out. Every write is already
    // durable (fsync'ed), so past this point a stuck teardown just exits.
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(4));
      WH_WARN("hub", "cluster teardown is taking long; exiting");
      std::_Exit(0);
    }).detach();
    node->stop();
  }
  reg.shutdown();
  http->shutdown();
  caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  WH_INFO("hub", "stopped");
  return 0;
}

} // namespace wh
