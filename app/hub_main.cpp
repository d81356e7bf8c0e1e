// wechat-hub: the access-token hub. Parses the command line, loads the TOML
// config and hands over to wh::run_hub.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "app/hub_root.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"
#include "http/auth.hpp"
#include "http/reload.hpp"
#include "persistence/crypto_store.hpp"

namespace {

constexpr const char* usage = R"(usage: wechat-hub --config FILE [--port-file PATH]
       wechat-hub --check-config --config FILE
       wechat-hub --routes
       wechat-hub keygen --name NAME
       wechat-hub rotate-master-key --config FILE   (hub stopped)

Serves WeChat access tokens and tickets to other services (elixir_wechat hub API).

options:
  --config FILE      TOML configuration (required); see configs/example.toml
  --port-file PATH   write the bound HTTP port to PATH once listening
  --check-config     validate the config file (as a reload would) and exit:
                     0 when valid, 2 with "FILE: KEY: PROBLEM" otherwise
  --routes           print the HTTP API's route table (method, path, scope,
                     metric label) and exit
  --help             show this help

config keys:
  [hub]     listen ("host:port"), data_dir, http_threads, max_body_bytes,
            request_timeout_s, idle_timeout_s, refresh_margin_s, refresh_jitter_s,
            push_window_s, log_level (debug|info|warning|error),
            log_format (text|json)
  [wechat]  api_base (https:// or http://), timeout_ms, ca_file
  [[app]]   appid, secret | secret_env, token_api ("stable" | "classic")
  [[component]] appid, secret | secret_env, token, encoding_aes_key,
            reconcile_interval_s (default 21600; 0 = off)
  [[client]] name, key_sha256, scopes ["appid", "component/*", "component/authorizer", "*"], admin,
            path_key (key also as /k/<key>/client/...), networks ["10.1.0.0/16", ...]
            with no [[client]], the hub is open and listens on loopback only
            unless hub.allow_open = true

signals: SIGTERM / SIGINT drain in-flight requests and exit 0 within 10 s.
         SIGHUP re-reads the config file: client keys and scopes, apps and
         components, log_level and log_format (an invalid file changes nothing).
)";

} // namespace

/// `wechat-hub keygen --name NAME`: a new client key and its config lines.
int keygen(int argc, char** argv) {
  std::string name;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--name" && i + 1 < argc)
      name = argv[++i];
    else {
      std::fprintf(stderr, "usage: wechat-hub keygen --name NAME\n");
      return 2;
    }
  }
  if (name.empty() || name.find_first_of("\"\\\n") != std::string::npos) {
    std::fprintf(stderr, "usage: wechat-hub keygen --name NAME\n");
    return 2;
  }
  auto key = wh::http::generate_client_key();
  std::printf("# Give this key to %s (shown once; the hub stores only its SHA-256):\n#   %s\n"
              "# Paste into the hub config on every node:\n"
              "[[client]]\nname = \"%s\"\nkey_sha256 = \"%s\"\n"
              "scopes = []   # e.g. [\"wx1234567890\", \"wxcomponent01/*\"]\n# admin = true\n",
              name.c_str(), key.c_str(), name.c_str(), wh::http::sha256_hex(key).c_str());
  return 0;
}

/// `wechat-hub rotate-master-key --config FILE`: re-seals every stored value
/// with a new master key (refused while the hub holds the database lock).
int rotate_master_key(int argc, char** argv) {
  if (argc != 4 || std::strcmp(argv[2], "--config") != 0) {
    std::fprintf(stderr, "usage: wechat-hub rotate-master-key --config FILE\n");
    return 2;
  }
  auto cfg = wh::load_config(argv[3]);
  if (!cfg) {
    std::fprintf(stderr, "wechat-hub: invalid config: %s\n", wh::detail_of(cfg.error()).c_str());
    return 2;
  }
  if (auto err = wh::persistence::rotate_master_key(cfg->data_dir, cfg->master_key_file)) {
    std::fprintf(stderr, "wechat-hub: rotate-master-key failed (nothing lost): %s\n",
                 wh::detail_of(err).c_str());
    return 1;
  }
  std::printf("rotated the master key of %s\n", cfg->data_dir.c_str());
  return 0;
}

int main(int argc, char** argv) {
  // glibc gives each thread that contends for a lock its own malloc arena, up
  // to 8 per core, and an arena keeps what its threads freed. The hub's
  // threads (CAF workers, HTTP loops, storage workers, RocksDB) all allocate
  // and free key state, so with the default a cold pass over a million keys
  // leaves freed memory spread over a dozen arenas. A few arenas cost little
  // contention: cached reads barely allocate. MALLOC_ARENA_MAX still wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr)
    wh::limit_malloc_arenas(static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 2u, 8u)));
  if (argc >= 2 && std::strcmp(argv[1], "keygen") == 0)
    return keygen(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "rotate-master-key") == 0)
    return rotate_master_key(argc, argv);
  std::string config_path;
  bool check_only = false;
  wh::hub_run_options opts;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "wechat-hub: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    } else if (arg == "--routes") {
      std::fputs(wh::hub_routes().c_str(), stdout);
      return 0;
    } else if (arg == "--config") {
      config_path = value("--config");
      opts.config_path = config_path;
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--port-file") {
      opts.port_file = value("--port-file");
    } else {
      std::fprintf(stderr, "wechat-hub: unknown option %s (see --help)\n", arg.c_str());
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs("wechat-hub: --config FILE is required (see --help)\n", stderr);
    return 2;
  }
  auto cfg = wh::load_config(config_path);
  if (!cfg) {
    std::fprintf(stderr, "wechat-hub: invalid config: %s\n", wh::detail_of(cfg.error()).c_str());
    return 2;
  }
  if (check_only) {
    if (cfg->clients.empty() && !wh::is_loopback_host(cfg->listen_host) && !cfg->allow_open) {
      std::fprintf(stderr, "wechat-hub: invalid config: %s: hub.listen: no [[client]] keys are configured, "
                           "so the hub refuses to listen on %s (add keys or set hub.allow_open = true)\n",
                   config_path.c_str(), cfg->listen_host.c_str());
      return 2;
    }
    std::printf("%s: ok (%zu app(s), %zu component(s), %zu client(s))\n", config_path.c_str(),
                cfg->apps.size(), cfg->components.size(), cfg->clients.size());
    return 0;
  }
  // Returns what bursts of passivation freed to the OS (see heap_trimmer).
  wh::heap_trimmer trimmer{{}};
  return wh::run_hub(*cfg, opts);
}
