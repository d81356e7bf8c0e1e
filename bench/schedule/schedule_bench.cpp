// Refresh-schedule benchmark (not a test; `scripts/bench-schedule`):
// N apps with stored tokens, a hub restart, then wall time moved past every
// token's refresh time. Reports how many upstream calls each key caused
// (must be exactly 1), whether any key served an expired token, how long the
// schedule took to wake them all at the configured rate, and how many actors
// were running at the peak and afterwards (virtual activation: back to 0).
//
// Real actor system (threads), real RocksDB in a temp dir, a manual wall
// clock, and an upstream actor that answers every stable_token call at once
// and counts calls per key.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "caf/all.hpp"

#include "actors/registry.hpp"
#include "actors/store_actor.hpp"
#include "core/log.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"

using namespace wh;
using namespace wh::actors;

namespace {

struct counts {
  std::mutex mtx;
  std::unordered_map<std::string, int> per_key;
  std::atomic<size_t> total{0};
};

std::string appid(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "wxb%09zu", i);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  log::set_level(std::getenv("WH_BENCH_DEBUG") ? log::level::debug : log::level::warning);
  size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  uint32_t rate = argc > 2 ? static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10)) : 20000;
  auto dir = std::filesystem::temp_directory_path() / ("wh-bench-schedule-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  manual_clock wall{1'700'000'000};
  auto t0 = wall.now();
  counts calls;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    std::shared_ptr<persistence::store> db = std::move(*persistence::open_rocksdb(dir.string()));
    // Tokens an earlier run stored: expiring over one minute from t0 + 7200.
    std::vector<persistence::batch_entry> batch;
    for (size_t i = 0; i < n; ++i)
      batch.emplace_back(persistence::keys::app_token(appid(i)),
                         persistence::encode(credential{"OLD" + std::to_string(i), t0,
                                                        t0 + 7200 + static_cast<int64_t>(i % 60), 1}));
    if (db->write(batch)) {
      std::fprintf(stderr, "cannot write the tokens\n");
      return 1;
    }
    auto upstream = sys.spawn([&calls, &wall](caf::event_based_actor*) -> caf::behavior {
      return {
        [&calls, &wall](call_atom, upstream_call& c) -> upstream_reply {
          {
            std::lock_guard<std::mutex> guard{calls.mtx};
            ++calls.per_key[c.key];
          }
          ++calls.total;
          (void) wall;
          return upstream_reply{200, R"({"access_token":"NEW-)" + c.key + R"(","expires_in":7200})"};
        },
      };
    });
    auto store = spawn_store_actor(sys, db, true);
    registry::options opts;
    opts.idle_timeout = std::chrono::seconds(2);
    opts.router.rate = rate;
    opts.router.max_active = 20000;
    std::vector<app_config> apps;
    for (size_t i = 0; i < n; ++i)
      apps.push_back(app_config{appid(i), "secret", token_api::stable});
    auto start = [&](const char* what) {
      auto t = std::chrono::steady_clock::now();
      auto reg = std::make_unique<registry>(sys, upstream, store, db, wall, nullptr, opts);
      for (auto& a : apps)
        reg->add_app(a);
      reg->finish_startup();
      std::printf("  %-52s %.2f s\n", what, seconds_since(t));
      return reg;
    };
    std::printf("bench-schedule: %zu apps, schedule rate %u/s\n", n, rate);
    auto reg = start("first start (writes every key's due time)");
    reg->shutdown();
    reg.reset();
    reg = start("restart (no actor runs, nothing fetched)");
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::printf("  %-52s %zu\n", "upstream calls before anything is due", calls.total.load());
    // Past every refresh time (expiry - 180 - jitter up to 90: at most
    // t0 + 7079), before any expiry (t0 + 7200 and later).
    wall.set(t0 + 7100);
    auto woke = std::chrono::steady_clock::now();
    size_t peak = 0;
    // The wall clock keeps moving at real speed from there.
    for (int tick = 1; calls.total.load() < n && seconds_since(woke) < 600; ++tick) {
      peak = std::max(peak, reg->active_actors()[0]);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (tick % 10 == 0)
        wall.advance(1);
    }
    auto took = seconds_since(woke);
    // Give stragglers (and any double refresh) a moment, then check.
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      wall.advance(1);
    }
    size_t once = 0, more = 0, expired = 0;
    {
      std::lock_guard<std::mutex> guard{calls.mtx};
      for (size_t i = 0; i < n; ++i) {
        auto c = calls.per_key[appid(i)];
        once += c == 1;
        more += c > 1;
        auto e = reg->find(appid(i));
        auto x = e ? e->token.load() : nullptr;
        if (!x || !x->valid_at(wall.now()))
          ++expired;
      }
    }
    std::printf("  %-52s %.2f s (%.0f keys/s)\n", "all refreshed after the clock passed their due time", took,
                static_cast<double>(n) / took);
    std::printf("  %-52s %zu once, %zu more than once, %zu never\n", "upstream calls per key", once, more,
                n - once - more);
    std::printf("  %-52s %zu\n", "keys serving an expired token or none", expired);
    std::printf("  %-52s %zu\n", "running actors at the peak", peak);
    auto idle = std::chrono::steady_clock::now();
    for (int tick = 1; reg->active_actors()[0] > 0 && seconds_since(idle) < 60; ++tick) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (tick % 5 == 0)
        wall.advance(1);
    }
    std::printf("  %-52s %zu (after %.1f s)\n", "running actors afterwards", reg->active_actors()[0],
                seconds_since(idle));
    reg->shutdown();
    reg.reset();
    caf::anon_send_exit(upstream, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
