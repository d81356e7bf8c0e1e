#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace wh::log {

namespace {

std::atomic<int> min_level{static_cast<int>(level::info)};
std::mutex out_mtx;

const char* name(level lvl) {
  switch (lvl) {
    case level::debug: return "DEBUG";
    case level::info: return "INFO";
    case level::warning: return "WARN";
    case level::error: return "ERROR";
    default: return "OFF";
  }
}

} // namespace

void set_level(level lvl) { min_level = static_cast<int>(lvl); }

bool parse_level(std::string_view str, level& out) {
  if (str == "debug") out = level::debug;
  else if (str == "info") out = level::info;
  else if (str == "warning" || str == "warn") out = level::warning;
  else if (str == "error") out = level::error;
  else if (str == "off") out = level::off;
  else return false;
  return true;
}

bool enabled(level lvl) { return static_cast<int>(lvl) >= min_level.load(std::memory_order_relaxed); }

void write(level lvl, std::string_view component, std::string_view msg) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[32];
  std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard<std::mutex> guard{out_mtx};
  std::fprintf(stderr, "%s.%03dZ %-5s [%.*s] %.*s\n", ts, static_cast<int>(ms), name(lvl),
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(msg.size()), msg.data());
}

} // namespace wh::log
