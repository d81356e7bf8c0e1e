#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace wh::log {

/// Severity levels, lowest first.
enum class level { debug = 0, info, warning, error, off };

/// Sets the minimum level written; thread-safe.
void set_level(level lvl);

/// Parses "debug" / "info" / "warning" / "error" / "off"; false if unknown.
bool parse_level(std::string_view str, level& out);

/// Whether messages at `lvl` are written.
bool enabled(level lvl);

/// Writes one line to stderr: time, level, component and message. Callers must
/// never pass secrets or token values; log appids and reasons instead.
void write(level lvl, std::string_view component, std::string_view msg);

} // namespace wh::log

#define WH_LOG_IMPL(lvl, component, expr)                                      \
  do {                                                                         \
    if (::wh::log::enabled(lvl)) {                                             \
      std::ostringstream wh_log_os_;                                           \
      wh_log_os_ << expr;                                                      \
      ::wh::log::write(lvl, component, wh_log_os_.str());                      \
    }                                                                          \
  } while (false)

#define WH_DEBUG(component, expr) WH_LOG_IMPL(::wh::log::level::debug, component, expr)
#define WH_INFO(component, expr) WH_LOG_IMPL(::wh::log::level::info, component, expr)
#define WH_WARN(component, expr) WH_LOG_IMPL(::wh::log::level::warning, component, expr)
#define WH_ERROR(component, expr) WH_LOG_IMPL(::wh::log::level::error, component, expr)
