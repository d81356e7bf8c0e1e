#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <boost/json.hpp>

namespace wh::log {

namespace {

std::atomic<int> min_level{static_cast<int>(level::info)};
std::atomic<int> line_format{static_cast<int>(format::text)};
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

const char* json_name(level lvl) {
  switch (lvl) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warning: return "warning";
    case level::error: return "error";
    default: return "off";
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

void set_format(format fmt) { line_format = static_cast<int>(fmt); }

bool parse_format(std::string_view str, format& out) {
  if (str == "text") out = format::text;
  else if (str == "json") out = format::json;
  else return false;
  return true;
}

bool enabled(level lvl) { return static_cast<int>(lvl) >= min_level.load(std::memory_order_relaxed); }

std::string render_json(std::string_view time, level lvl, std::string_view component,
                        std::string_view msg, std::initializer_list<field> fields) {
  // boost::json escapes control characters and quotes; invalid UTF-8 in a
  // message cannot break the line either (it is written byte for byte inside
  // a string, and no raw newline survives escaping).
  boost::json::object o;
  o["time"] = time;
  o["level"] = json_name(lvl);
  o["component"] = component;
  o["message"] = msg;
  for (auto& f : fields) {
    // The fixed members keep their meaning whatever a caller names a field.
    if (o.contains(f.name))
      continue;
    if (f.numeric)
      o[f.name] = f.number;
    else
      o[f.name] = f.text;
  }
  return boost::json::serialize(o);
}

void write(level lvl, std::string_view component, std::string_view msg,
           std::initializer_list<field> fields) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[40];
  auto n = std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(ts + n, sizeof(ts) - n, ".%03dZ", static_cast<int>(ms));
  if (line_format.load(std::memory_order_relaxed) == static_cast<int>(format::json)) {
    auto line = render_json(ts, lvl, component, msg, fields);
    line += '\n';
    std::lock_guard<std::mutex> guard{out_mtx};
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  std::lock_guard<std::mutex> guard{out_mtx};
  std::fprintf(stderr, "%s %-5s [%.*s] %.*s\n", ts, name(lvl),
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(msg.size()), msg.data());
}

} // namespace wh::log
