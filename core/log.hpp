#pragma once

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

namespace wh::log {

/// Severity levels, lowest first.
enum class level { debug = 0, info, warning, error, off };

/// Line formats: `text` (default) for people, `json` (one object per line)
/// for log pipelines.
enum class format { text, json };

/// Sets the minimum level written; thread-safe.
void set_level(level lvl);

/// Parses "debug" / "info" / "warning" / "error" / "off"; false if unknown.
bool parse_level(std::string_view str, level& out);

/// Sets the line format; thread-safe.
void set_format(format fmt);

/// Parses "text" / "json"; false if unknown.
bool parse_format(std::string_view str, format& out);

/// Whether messages at `lvl` are written.
bool enabled(level lvl);

/// One structured field of a record ("key", "errcode", "client", ...). The
/// JSON format writes it as its own member; the text format leaves the
/// message as it is (which already names what matters).
struct field {
  field(std::string_view n, std::string_view v) : name(n), text(v) {}
  field(std::string_view n, const std::string& v) : name(n), text(v) {}
  field(std::string_view n, const char* v) : name(n), text(v) {}
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  field(std::string_view n, T v) : name(n), number(static_cast<int64_t>(v)), numeric(true) {}

  std::string_view name;
  std::string text;
  int64_t number = 0;
  bool numeric = false;
};

/// Writes one line to stderr: time, level, component, message (and, in JSON,
/// the fields). Callers must never pass secrets or token values; log appids
/// and reasons instead.
void write(level lvl, std::string_view component, std::string_view msg,
           std::initializer_list<field> fields = {});

/// Renders one record as a single-line JSON object (no trailing newline).
std::string render_json(std::string_view time, level lvl, std::string_view component,
                        std::string_view msg, std::initializer_list<field> fields);

} // namespace wh::log

#define WH_LOG_IMPL(lvl, component, expr, ...)                                 \
  do {                                                                         \
    if (::wh::log::enabled(lvl)) {                                             \
      std::ostringstream wh_log_os_;                                           \
      wh_log_os_ << expr;                                                      \
      ::wh::log::write(lvl, component, wh_log_os_.str(), {__VA_ARGS__});       \
    }                                                                          \
  } while (false)

#define WH_DEBUG(component, expr) WH_LOG_IMPL(::wh::log::level::debug, component, expr)
#define WH_INFO(component, expr) WH_LOG_IMPL(::wh::log::level::info, component, expr)
#define WH_WARN(component, expr) WH_LOG_IMPL(::wh::log::level::warning, component, expr)
#define WH_ERROR(component, expr) WH_LOG_IMPL(::wh::log::level::error, component, expr)

/// With structured fields: WH_WARN_F("token", key << ": failed", {"key", key}, {"errcode", 40001}).
#define WH_INFO_F(component, expr, ...) WH_LOG_IMPL(::wh::log::level::info, component, expr, __VA_ARGS__)
#define WH_WARN_F(component, expr, ...) WH_LOG_IMPL(::wh::log::level::warning, component, expr, __VA_ARGS__)
#define WH_ERROR_F(component, expr, ...) WH_LOG_IMPL(::wh::log::level::error, component, expr, __VA_ARGS__)
