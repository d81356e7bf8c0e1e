#pragma once

#include <string>

namespace wh::systemd {

/// Tells the service manager about the hub's state ("READY=1", "RELOADING=1",
/// "STOPPING=1", "STATUS=..."; several lines at once are fine). Does nothing
/// when the hub was not started by systemd (no NOTIFY_SOCKET).
void notify(const std::string& state);

/// "RELOADING=1" with the MONOTONIC_USEC systemd 253+ expects next to it.
std::string reloading_state();

} // namespace wh::systemd
