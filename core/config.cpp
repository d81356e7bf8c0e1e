#include "core/config.hpp"

#include <boost/asio/ip/address.hpp>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "core/error.hpp"
#include "core/log.hpp"

namespace wh {

namespace {

/// Collects the first validation problem as "FILE: KEY: PROBLEM".
struct checker {
  const std::string& source;
  std::string problem;

  bool fail(const std::string& key, const std::string& what) {
    if (problem.empty())
      problem = source + ": " + key + ": " + what;
    return false;
  }

  template <class T>
  bool get(const toml::table& tbl, const std::string& prefix, const char* key, T& out,
           bool required = false) {
    auto node = tbl.get(key);
    auto full = prefix.empty() ? std::string{key} : prefix + "." + key;
    if (node == nullptr) {
      if (required)
        return fail(full, "missing required key");
      return true;
    }
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value<std::string>(); v && node->is_string()) {
        out = *v;
        return true;
      }
      return fail(full, "expected a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value<bool>(); v && node->is_boolean()) {
        out = *v;
        return true;
      }
      return fail(full, "expected a boolean");
    } else {
      if (!node->is_integer())
        return fail(full, "expected an integer");
      auto v = node->value<int64_t>().value_or(-1);
      if (v < 0 || static_cast<uint64_t>(v) > std::numeric_limits<T>::max())
        return fail(full, "integer out of range");
      out = static_cast<T>(v);
      return true;
    }
  }

  bool no_unknown_keys(const toml::table& tbl, const std::string& prefix,
                       std::initializer_list<std::string_view> known) {
    for (auto&& [k, v] : tbl) {
      bool ok = false;
      for (auto name : known)
        ok = ok || k.str() == name;
      if (!ok)
        return fail(prefix.empty() ? std::string{k.str()} : prefix + "." + std::string{k.str()},
                    "unknown key");
    }
    return true;
  }

  bool secret(const toml::table& tbl, const std::string& prefix, const env_lookup& env,
              const char* key, std::string& out) {
    std::string env_key = std::string{key} + "_env";
    bool has_plain = tbl.contains(key);
    bool has_env = tbl.contains(env_key);
    if (has_plain && has_env)
      return fail(prefix + "." + key, "set either " + std::string{key} + " or " + env_key + ", not both");
    if (has_env) {
      std::string var;
      if (!get(tbl, prefix, env_key.c_str(), var))
        return false;
      auto val = env(var);
      if (!val || val->empty())
        return fail(prefix + "." + env_key, "environment variable " + var + " is not set or empty");
      out = *val;
      return true;
    }
    if (!get(tbl, prefix, key, out, true))
      return false;
    if (out.empty())
      return fail(prefix + "." + key, "must not be empty");
    return true;
  }
};


} // namespace

bool valid_cidr(std::string_view cidr) {
  boost::system::error_code err;
  auto slash = cidr.find('/');
  if (slash == std::string_view::npos)
    return false;
  auto addr = boost::asio::ip::make_address(std::string{cidr.substr(0, slash)}, err);
  if (err)
    return false;
  auto bits_str = cidr.substr(slash + 1);
  if (bits_str.empty() || bits_str.size() > 3)
    return false;
  int bits = 0;
  for (char c : bits_str) {
    if (c < '0' || c > '9')
      return false;
    bits = bits * 10 + (c - '0');
  }
  return bits <= (addr.is_v4() ? 32 : 128);
}

bool valid_appid(std::string_view id) {
  if (id.empty() || id.size() > 64)
    return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      return false;
  return true;
}

std::optional<std::string> process_env(const std::string& name) {
  if (auto v = std::getenv(name.c_str()))
    return std::string{v};
  return std::nullopt;
}

bool split_host_port(const std::string& str, std::string& host, uint16_t& port) {
  auto pos = str.rfind(':');
  if (pos == std::string::npos || pos == 0 || pos + 1 == str.size())
    return false;
  host = str.substr(0, pos);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port_str = str.substr(pos + 1);
  if (port_str.size() > 5)
    return false;
  unsigned long value = 0;
  for (char c : port_str) {
    if (c < '0' || c > '9')
      return false;
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value > 65535)
    return false;
  port = static_cast<uint16_t>(value);
  return true;
}

namespace {

/// Upper bound of `replicas` when etcd supplies the membership.
constexpr size_t max_etcd_replicas = 16;

/// "http://host:port" or "https://host:port" (a trailing "/" allowed), with
/// a fixed port: an etcd client URL.
bool valid_etcd_url(std::string url) {
  std::string_view rest{url};
  if (rest.starts_with("http://"))
    rest.remove_prefix(7);
  else if (rest.starts_with("https://"))
    rest.remove_prefix(8);
  else
    return false;
  if (rest.ends_with("/"))
    rest.remove_suffix(1);
  std::string host;
  uint16_t port = 0;
  return rest.find_first_of("/?#@ ") == std::string_view::npos
         && split_host_port(std::string{rest}, host, port) && !host.empty() && port != 0;
}

} // namespace

caf::expected<hub_config> parse_config(const std::string& text, const std::string& source,
                                       const env_lookup& env) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& err) {
    std::ostringstream os;
    os << source << ":" << err.source().begin.line << ":" << err.source().begin.column
       << ": TOML syntax error: " << err.description();
    return make_detail_error(ec::invalid_config, os.str());
  }
  hub_config cfg;
  cfg.source = source;
  checker ck{source, {}};
  auto bad = [&] { return make_detail_error(ec::invalid_config, ck.problem); };
  if (!ck.no_unknown_keys(root, "", {"hub", "wechat", "app", "component", "client", "cluster"}))
    return bad();
  // -- [hub]
  if (auto node = root.get("hub")) {
    auto hub = node->as_table();
    if (!hub)
      return ck.fail("hub", "expected a table"), bad();
    if (!ck.no_unknown_keys(*hub, "hub",
                            {"listen", "data_dir", "http_threads", "max_body_bytes",
                             "request_timeout_s", "idle_timeout_s", "refresh_margin_s",
                             "refresh_jitter_s", "push_window_s", "log_level", "log_format", "allow_open",
                             "master_key_file", "audit_log", "tls", "max_import_body_bytes",
                             "max_connections_per_peer", "actor_idle_s", "max_active_actors",
                             "schedule_rate"}))
      return bad();
    std::string listen = cfg.listen_host + ":" + std::to_string(cfg.listen_port);
    if (!ck.get(*hub, "hub", "listen", listen) || !ck.get(*hub, "hub", "data_dir", cfg.data_dir)
        || !ck.get(*hub, "hub", "http_threads", cfg.http_threads)
        || !ck.get(*hub, "hub", "max_body_bytes", cfg.max_body_bytes)
        || !ck.get(*hub, "hub", "max_import_body_bytes", cfg.max_import_body_bytes)
        || !ck.get(*hub, "hub", "max_connections_per_peer", cfg.max_connections_per_peer)
        || !ck.get(*hub, "hub", "request_timeout_s", cfg.request_timeout_s)
        || !ck.get(*hub, "hub", "idle_timeout_s", cfg.idle_timeout_s)
        || !ck.get(*hub, "hub", "refresh_margin_s", cfg.refresh_margin_s)
        || !ck.get(*hub, "hub", "refresh_jitter_s", cfg.refresh_jitter_s)
        || !ck.get(*hub, "hub", "push_window_s", cfg.push_window_s)
        || !ck.get(*hub, "hub", "actor_idle_s", cfg.actor_idle_s)
        || !ck.get(*hub, "hub", "max_active_actors", cfg.max_active_actors)
        || !ck.get(*hub, "hub", "schedule_rate", cfg.schedule_rate)
        || !ck.get(*hub, "hub", "log_level", cfg.log_level)
        || !ck.get(*hub, "hub", "log_format", cfg.log_format)
        || !ck.get(*hub, "hub", "allow_open", cfg.allow_open)
        || !ck.get(*hub, "hub", "master_key_file", cfg.master_key_file)
        || !ck.get(*hub, "hub", "audit_log", cfg.audit_log))
      return bad();
    if (auto tls_node = hub->get("tls")) {
      auto tls = tls_node->as_table();
      if (!tls)
        return ck.fail("hub.tls", "expected a table"), bad();
      if (!ck.no_unknown_keys(*tls, "hub.tls", {"cert", "key", "client_ca"})
          || !ck.get(*tls, "hub.tls", "cert", cfg.tls.cert, true)
          || !ck.get(*tls, "hub.tls", "key", cfg.tls.key, true)
          || !ck.get(*tls, "hub.tls", "client_ca", cfg.tls.client_ca))
        return bad();
    }
    if (!split_host_port(listen, cfg.listen_host, cfg.listen_port))
      return ck.fail("hub.listen", "expected \"host:port\", got \"" + listen + "\""), bad();
    if (cfg.data_dir.empty())
      return ck.fail("hub.data_dir", "must not be empty"), bad();
    if (cfg.max_body_bytes < 1024 || cfg.max_body_bytes > 64 * 1024 * 1024)
      return ck.fail("hub.max_body_bytes", "must be between 1024 and 67108864"), bad();
    if (cfg.max_import_body_bytes < 1024 || cfg.max_import_body_bytes > 256 * 1024 * 1024)
      return ck.fail("hub.max_import_body_bytes", "must be between 1024 and 268435456"), bad();
    if (cfg.refresh_margin_s < 30 || cfg.refresh_margin_s > 3600)
      return ck.fail("hub.refresh_margin_s", "must be between 30 and 3600"), bad();
    if (cfg.refresh_jitter_s > 1800)
      return ck.fail("hub.refresh_jitter_s", "must be at most 1800"), bad();
    if (cfg.actor_idle_s > 86400)
      return ck.fail("hub.actor_idle_s", "must be at most 86400 (0 keeps every actor resident)"), bad();
    if (cfg.max_active_actors < 100)
      return ck.fail("hub.max_active_actors", "must be at least 100"), bad();
    if (cfg.schedule_rate < 1 || cfg.schedule_rate > 100000)
      return ck.fail("hub.schedule_rate", "must be between 1 and 100000"), bad();
    if (cfg.http_threads > 256)
      return ck.fail("hub.http_threads", "must be at most 256"), bad();
    if (cfg.request_timeout_s == 0 || cfg.idle_timeout_s == 0)
      return ck.fail("hub.request_timeout_s", "timeouts must be positive"), bad();
    wh::log::level lvl;
    if (!wh::log::parse_level(cfg.log_level, lvl))
      return ck.fail("hub.log_level", "expected debug, info, warning, error or off"), bad();
    wh::log::format fmt;
    if (!wh::log::parse_format(cfg.log_format, fmt))
      return ck.fail("hub.log_format", "expected \"text\" or \"json\""), bad();
  }
  // -- [wechat]
  if (auto node = root.get("wechat")) {
    auto wx = node->as_table();
    if (!wx)
      return ck.fail("wechat", "expected a table"), bad();
    if (!ck.no_unknown_keys(*wx, "wechat", {"api_base", "timeout_ms", "ca_file"})
        || !ck.get(*wx, "wechat", "api_base", cfg.api_base)
        || !ck.get(*wx, "wechat", "timeout_ms", cfg.upstream_timeout_ms)
        || !ck.get(*wx, "wechat", "ca_file", cfg.upstream_ca_file))
      return bad();
    if (cfg.api_base.rfind("http://", 0) != 0 && cfg.api_base.rfind("https://", 0) != 0)
      return ck.fail("wechat.api_base", "must start with http:// or https://"), bad();
    while (!cfg.api_base.empty() && cfg.api_base.back() == '/')
      cfg.api_base.pop_back();
    if (cfg.upstream_timeout_ms < 100 || cfg.upstream_timeout_ms > 120'000)
      return ck.fail("wechat.timeout_ms", "must be between 100 and 120000"), bad();
  }
  std::set<std::string> ids;
  // -- [[app]]
  if (auto node = root.get("app")) {
    auto arr = node->as_array();
    if (!arr)
      return ck.fail("app", "expected an array of tables ([[app]])"), bad();
    for (size_t i = 0; i < arr->size(); ++i) {
      auto prefix = "app[" + std::to_string(i) + "]";
      auto tbl = arr->get(i)->as_table();
      if (!tbl)
        return ck.fail(prefix, "expected a table"), bad();
      app_config app;
      std::string api = "stable";
      if (!ck.no_unknown_keys(*tbl, prefix, {"appid", "secret", "secret_env", "token_api"})
          || !ck.get(*tbl, prefix, "appid", app.appid, true)
          || !ck.secret(*tbl, prefix, env, "secret", app.secret)
          || !ck.get(*tbl, prefix, "token_api", api))
        return bad();
      if (!valid_appid(app.appid))
        return ck.fail(prefix + ".appid", "must be 1-64 characters of [A-Za-z0-9_-]"), bad();
      if (api == "stable")
        app.api = token_api::stable;
      else if (api == "classic")
        app.api = token_api::classic;
      else
        return ck.fail(prefix + ".token_api", "expected \"stable\" or \"classic\""), bad();
      if (!ids.insert(app.appid).second)
        return ck.fail(prefix + ".appid", "duplicate appid \"" + app.appid + "\""), bad();
      cfg.apps.push_back(std::move(app));
    }
  }
  // -- [[component]]
  if (auto node = root.get("component")) {
    auto arr = node->as_array();
    if (!arr)
      return ck.fail("component", "expected an array of tables ([[component]])"), bad();
    for (size_t i = 0; i < arr->size(); ++i) {
      auto prefix = "component[" + std::to_string(i) + "]";
      auto tbl = arr->get(i)->as_table();
      if (!tbl)
        return ck.fail(prefix, "expected a table"), bad();
      component_config comp;
      if (!ck.no_unknown_keys(*tbl, prefix,
                              {"appid", "secret", "secret_env", "token", "token_env",
                               "encoding_aes_key", "encoding_aes_key_env", "reconcile_interval_s"})
          || !ck.get(*tbl, prefix, "appid", comp.appid, true)
          || !ck.get(*tbl, prefix, "reconcile_interval_s", comp.reconcile_interval_s)
          || !ck.secret(*tbl, prefix, env, "secret", comp.secret)
          || !ck.secret(*tbl, prefix, env, "token", comp.token)
          || !ck.secret(*tbl, prefix, env, "encoding_aes_key", comp.encoding_aes_key))
        return bad();
      if (!valid_appid(comp.appid))
        return ck.fail(prefix + ".appid", "must be 1-64 characters of [A-Za-z0-9_-]"), bad();
      if (comp.encoding_aes_key.size() != 43)
        return ck.fail(prefix + ".encoding_aes_key", "must be exactly 43 characters"), bad();
      if (!ids.insert(comp.appid).second)
        return ck.fail(prefix + ".appid", "duplicate appid \"" + comp.appid + "\""), bad();
      cfg.components.push_back(std::move(comp));
    }
  }
  // -- [[client]]
  if (auto node = root.get("client")) {
    auto arr = node->as_array();
    if (!arr)
      return ck.fail("client", "expected an array of tables ([[client]])"), bad();
    std::set<std::string> names, keys;
    for (size_t i = 0; i < arr->size(); ++i) {
      auto prefix = "client[" + std::to_string(i) + "]";
      auto tbl = arr->get(i)->as_table();
      if (!tbl)
        return ck.fail(prefix, "expected a table"), bad();
      client_config cl;
      if (!ck.no_unknown_keys(*tbl, prefix,
                              {"name", "key_sha256", "scopes", "admin", "path_key", "networks"})
          || !ck.get(*tbl, prefix, "name", cl.name, true)
          || !ck.get(*tbl, prefix, "key_sha256", cl.key_sha256)
          || !ck.get(*tbl, prefix, "admin", cl.admin)
          || !ck.get(*tbl, prefix, "path_key", cl.path_key))
        return bad();
      if (cl.name.empty() || !names.insert(cl.name).second)
        return ck.fail(prefix + ".name", "must be non-empty and unique"), bad();
      if (auto nets = tbl->get("networks")) {
        auto list = nets->as_array();
        if (!list)
          return ck.fail(prefix + ".networks", "expected an array of CIDR strings"), bad();
        for (size_t j = 0; j < list->size(); ++j) {
          auto v = list->get(j)->value<std::string>();
          auto where = prefix + ".networks[" + std::to_string(j) + "]";
          if (!v || !list->get(j)->is_string() || !valid_cidr(*v))
            return ck.fail(where, "expected a CIDR such as \"10.1.0.0/16\" or \"::1/128\""), bad();
          cl.networks.push_back(*v);
        }
      }
      if (cl.key_sha256.empty() && cl.networks.empty())
        return ck.fail(prefix + ".key_sha256", "missing required key (or give networks)"), bad();
      if (cl.path_key && cl.key_sha256.empty())
        return ck.fail(prefix + ".path_key", "needs key_sha256"), bad();
      bool hex = cl.key_sha256.size() == 64;
      for (auto& c : cl.key_sha256) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        hex = hex && std::isxdigit(static_cast<unsigned char>(c));
      }
      if (!cl.key_sha256.empty() && !hex)
        return ck.fail(prefix + ".key_sha256", "expected 64 hex digits (SHA-256 of the key)"), bad();
      if (!cl.key_sha256.empty() && !keys.insert(cl.key_sha256).second)
        return ck.fail(prefix + ".key_sha256", "the same key is configured twice"), bad();
      if (auto sc = tbl->get("scopes")) {
        auto list = sc->as_array();
        if (!list)
          return ck.fail(prefix + ".scopes", "expected an array of strings"), bad();
        for (size_t j = 0; j < list->size(); ++j) {
          auto v = list->get(j)->value<std::string>();
          auto where = prefix + ".scopes[" + std::to_string(j) + "]";
          if (!v || !list->get(j)->is_string())
            return ck.fail(where, "expected a string"), bad();
          auto slash = v->find('/');
          auto head = v->substr(0, slash);
          auto tail = slash == std::string::npos ? std::string{} : v->substr(slash + 1);
          bool ok = *v == "*"
                    || (valid_appid(head)
                        && (slash == std::string::npos || tail == "*" || valid_appid(tail)));
          if (!ok)
            return ck.fail(where, "expected \"*\", \"appid\", \"component/*\" or "
                                  "\"component/authorizer\""),
                   bad();
          cl.scopes.push_back(*v);
        }
      }
      cfg.clients.push_back(std::move(cl));
    }
  }
  if (cfg.tls.enabled() && cfg.tls.key.empty())
    return ck.fail("hub.tls.key", "missing required key"), bad();
  // -- [cluster]
  if (auto node = root.get("cluster")) {
    auto tbl = node->as_table();
    if (!tbl)
      return ck.fail("cluster", "expected a table"), bad();
    auto& cl = cfg.cluster;
    std::string listen;
    if (!ck.no_unknown_keys(*tbl, "cluster",
                            {"node_id", "listen", "advertise", "peers", "replicas", "join_grace_ms", "tls",
                             "etcd", "lease_ttl_ms"})
        || !ck.get(*tbl, "cluster", "node_id", cl.node_id, true)
        || !ck.get(*tbl, "cluster", "listen", listen, true)
        || !ck.get(*tbl, "cluster", "advertise", cl.advertise)
        || !ck.get(*tbl, "cluster", "replicas", cl.replicas)
        || !ck.get(*tbl, "cluster", "join_grace_ms", cl.join_grace_ms)
        || !ck.get(*tbl, "cluster", "lease_ttl_ms", cl.lease_ttl_ms))
      return bad();
    if (cl.node_id.empty() || cl.node_id.size() > 32 || !valid_appid(cl.node_id))
      return ck.fail("cluster.node_id", "must be 1-32 characters of [A-Za-z0-9_-]"), bad();
    if (!split_host_port(listen, cl.listen_host, cl.listen_port) || cl.listen_port == 0)
      return ck.fail("cluster.listen", "expected \"host:port\" with a fixed port, got \"" + listen + "\""),
             bad();
    if (!cl.advertise.empty()) {
      std::string host;
      uint16_t port = 0;
      if (!split_host_port(cl.advertise, host, port) || port == 0 || host.empty())
        return ck.fail("cluster.advertise", "expected \"host:port\" with a fixed port, got \"" + cl.advertise + "\""),
               bad();
    }
    if (auto pn = tbl->get("peers")) {
      auto list = pn->as_array();
      if (!list)
        return ck.fail("cluster.peers", "expected an array of \"host:port\" strings"), bad();
      std::set<std::string> seen{listen};
      for (size_t j = 0; j < list->size(); ++j) {
        auto where = "cluster.peers[" + std::to_string(j) + "]";
        auto v = list->get(j)->value<std::string>();
        std::string host;
        uint16_t port = 0;
        if (!v || !list->get(j)->is_string() || !split_host_port(*v, host, port) || port == 0)
          return ck.fail(where, "expected \"host:port\""), bad();
        if (!seen.insert(*v).second)
          return ck.fail(where, "duplicate endpoint (or this node's own listen) \"" + *v + "\""), bad();
        cl.peers.push_back(*v);
      }
    }
    if (auto en = tbl->get("etcd")) {
      auto list = en->as_array();
      if (!list)
        return ck.fail("cluster.etcd", "expected an array of \"http://host:port\" strings"), bad();
      std::set<std::string> seen;
      for (size_t j = 0; j < list->size(); ++j) {
        auto where = "cluster.etcd[" + std::to_string(j) + "]";
        auto v = list->get(j)->value<std::string>();
        if (!v || !list->get(j)->is_string() || !valid_etcd_url(*v))
          return ck.fail(where, "expected \"http://host:port\" or \"https://host:port\""), bad();
        if (!seen.insert(*v).second)
          return ck.fail(where, "duplicate endpoint \"" + *v + "\""), bad();
        cl.etcd.push_back(*v);
      }
    }
    if (cl.lease_ttl_ms < 1000 || cl.lease_ttl_ms > 60'000)
      return ck.fail("cluster.lease_ttl_ms", "must be between 1000 and 60000"), bad();
    // With etcd the nodes find each other, so their number is not known here.
    const size_t max_nodes = cl.etcd.empty() ? cl.peers.size() + 1 : max_etcd_replicas;
    if (!tbl->contains("replicas"))
      cl.replicas = static_cast<uint32_t>(std::min<size_t>(2, max_nodes));
    if (cl.etcd.empty() && (cl.replicas < 1 || cl.replicas > max_nodes))
      return ck.fail("cluster.replicas", "must be between 1 and the number of nodes ("
                                           + std::to_string(cl.peers.size() + 1) + ")"),
             bad();
    if (!cl.etcd.empty() && (cl.replicas < 1 || cl.replicas > max_etcd_replicas))
      return ck.fail("cluster.replicas", "must be between 1 and " + std::to_string(max_etcd_replicas)),
             bad();
    if (cl.join_grace_ms > 60'000)
      return ck.fail("cluster.join_grace_ms", "must be at most 60000"), bad();
    if (auto tn = tbl->get("tls")) {
      auto tls = tn->as_table();
      if (!tls)
        return ck.fail("cluster.tls", "expected a table { cert, key, ca }"), bad();
      if (!ck.no_unknown_keys(*tls, "cluster.tls", {"cert", "key", "ca"})
          || !ck.get(*tls, "cluster.tls", "cert", cl.tls_cert, true)
          || !ck.get(*tls, "cluster.tls", "key", cl.tls_key, true)
          || !ck.get(*tls, "cluster.tls", "ca", cl.tls_ca, true))
        return bad();
    }
  }
  return cfg;
}

caf::expected<hub_config> load_config(const std::string& path, const env_lookup& env) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_detail_error(ec::invalid_config, path + ": cannot read file");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return make_detail_error(ec::invalid_config, path + ": cannot read file");
  return parse_config(buf.str(), path, env);
}

} // namespace wh
