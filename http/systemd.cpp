#include "http/systemd.hpp"

#include <ctime>

#include <systemd/sd-daemon.h>

#include "core/log.hpp"

namespace wh::systemd {

void notify(const std::string& state) {
  // sd_notify returns 0 without NOTIFY_SOCKET and < 0 when the socket is
  // unusable; neither stops the hub.
  if (auto rc = sd_notify(0, state.c_str()); rc < 0)
    WH_WARN("hub", "sd_notify failed (errno " << -rc << ")");
}

std::string reloading_state() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto usec = static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

} // namespace wh::systemd
