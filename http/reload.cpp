#include "http/reload.hpp"

#include <functional>
#include <vector>

#include <arpa/inet.h>

#include "actors/registry.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "http/api.hpp"

namespace wh {

namespace {

constexpr const char* reloads_metric = "wechat_hub_config_reloads_total";

/// Settings read once at startup: (name, differs).
std::vector<std::string> restart_only_changes(const hub_config& a, const hub_config& b) {
  std::vector<std::pair<const char*, bool>> diffs{
    {"hub.listen", a.listen_host != b.listen_host || a.listen_port != b.listen_port},
    {"hub.data_dir", a.data_dir != b.data_dir},
    {"hub.http_threads", a.http_threads != b.http_threads},
    {"hub.max_body_bytes", a.max_body_bytes != b.max_body_bytes},
    {"hub.request_timeout_s", a.request_timeout_s != b.request_timeout_s},
    {"hub.idle_timeout_s", a.idle_timeout_s != b.idle_timeout_s},
    {"hub.refresh_margin_s", a.refresh_margin_s != b.refresh_margin_s},
    {"hub.refresh_jitter_s", a.refresh_jitter_s != b.refresh_jitter_s},
    {"hub.push_window_s", a.push_window_s != b.push_window_s},
    {"hub.allow_open", a.allow_open != b.allow_open},
    {"hub.master_key_file", a.master_key_file != b.master_key_file},
    {"hub.audit_log", a.audit_log != b.audit_log},
    {"hub.tls", a.tls.cert != b.tls.cert || a.tls.key != b.tls.key || a.tls.client_ca != b.tls.client_ca},
    {"wechat.api_base", a.api_base != b.api_base},
    {"wechat.timeout_ms", a.upstream_timeout_ms != b.upstream_timeout_ms},
    {"wechat.ca_file", a.upstream_ca_file != b.upstream_ca_file},
    {"cluster",
     a.cluster.node_id != b.cluster.node_id || a.cluster.listen_host != b.cluster.listen_host
       || a.cluster.listen_port != b.cluster.listen_port || a.cluster.peers != b.cluster.peers
       || a.cluster.replicas != b.cluster.replicas || a.cluster.join_grace_ms != b.cluster.join_grace_ms
       || a.cluster.tls_cert != b.cluster.tls_cert || a.cluster.tls_key != b.cluster.tls_key
       || a.cluster.tls_ca != b.cluster.tls_ca || a.cluster.etcd != b.cluster.etcd
       || a.cluster.lease_ttl_ms != b.cluster.lease_ttl_ms},
  };
  std::vector<std::string> out;
  for (auto& [name, differs] : diffs)
    if (differs)
      out.emplace_back(name);
  return out;
}

/// Logs each client that was added, removed or changed (never a key).
size_t log_client_changes(const std::vector<client_config>& before,
                          const std::vector<client_config>& after) {
  auto by_name = [](const std::vector<client_config>& v, const std::string& name) -> const client_config* {
    for (auto& c : v)
      if (c.name == name)
        return &c;
    return nullptr;
  };
  size_t n = 0;
  for (auto& c : after) {
    auto old = by_name(before, c.name);
    if (!old) {
      WH_INFO_F("hub", "reload: client " << c.name << " added", {"client", c.name});
    } else if (old->key_sha256 != c.key_sha256) {
      WH_INFO_F("hub", "reload: client " << c.name << ": key rotated (the old key is refused from now on)",
                {"client", c.name});
    } else if (!(*old == c)) {
      WH_INFO_F("hub", "reload: client " << c.name << ": scopes or permissions changed",
                {"client", c.name});
    } else {
      continue;
    }
    ++n;
  }
  for (auto& c : before)
    if (!by_name(after, c.name)) {
      WH_INFO_F("hub", "reload: client " << c.name << " removed (its key is refused from now on)",
                {"client", c.name});
      ++n;
    }
  return n;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

} // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1")
    return true;
  in_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

void describe_reload_metrics(metrics& stats) {
  stats.describe(reloads_metric, "Config reloads (SIGHUP) by result: ok, invalid (rejected, nothing "
                                 "changed), partial (applied, some keys failed to start)");
  for (auto result : {"ok", "invalid", "partial"})
    stats.counter(reloads_metric, {{"result", result}});
}

bool reload_config(const std::string& path, hub_config& running, actors::registry& reg,
                   http::hub_api& api, metrics& stats) {
  auto refuse = [&](const std::string& why) {
    WH_ERROR("hub", "reload rejected, the running config stays in force: " << why);
    stats.inc(reloads_metric, {{"result", "invalid"}});
    return false;
  };
  if (path.empty())
    return refuse("the hub was started without a config file");
  auto next = load_config(path);
  if (!next)
    return refuse(detail_of(next.error()));
  // The same guard as at startup: dropping every key must not open a
  // non-loopback port to anyone.
  if (next->clients.empty() && !running.clients.empty() && !is_loopback_host(running.listen_host)
      && !running.allow_open)
    return refuse(path + ": client: removing every [[client]] would leave " + running.listen_host
                  + " open to anyone; set hub.allow_open = true and restart to run open");
  for (auto& name : restart_only_changes(running, *next))
    WH_WARN("hub", "reload: " << path << ": " << name << " changed; it takes effect after a restart");
  // Cheap settings first, so the rest of the reload logs in the new format.
  log::level lvl = log::level::info;
  log::parse_level(next->log_level, lvl);
  log::set_level(lvl);
  log::format fmt = log::format::text;
  log::parse_format(next->log_format, fmt);
  log::set_format(fmt);
  auto rep = reg.sync_config(next->apps, next->components);
  api.reload(*next, rep.dropped_components);
  auto clients_changed = log_client_changes(running.clients, next->clients);
  for (auto& f : rep.failed)
    WH_ERROR("hub", "reload: cannot start " << f);
  WH_INFO("hub", "reloaded " << path << ": apps/components added [" << join(rep.added) << "], changed ["
                             << join(rep.changed) << "], removed [" << join(rep.removed) << "]; "
                             << clients_changed << " client change(s); log_level " << next->log_level);
  // Restart-only settings keep their running values so a later reload
  // compares against what is really in force.
  auto applied = running;
  applied.source = next->source;
  applied.log_level = next->log_level;
  applied.log_format = next->log_format;
  applied.apps = next->apps;
  applied.components = next->components;
  applied.clients = next->clients;
  running = std::move(applied);
  stats.inc(reloads_metric, {{"result", rep.failed.empty() ? "ok" : "partial"}});
  return true;
}

} // namespace wh
