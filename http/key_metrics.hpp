#pragma once

// The Prometheus families of the hub's keys: their HELP/TYPE lines, and the
// gauges rendered from the registry's directory at each scrape (token age
// and TTL, verify tickets, authorizers per status, running actors). The
// counters the actors increment are described here too.

#include <cstdint>

#include "core/clock.hpp"

namespace wh {
class metrics;
namespace actors {
class registry;
}
} // namespace wh

namespace wh::http {

/// Describes the key families on `m` and adds the collector of their gauges.
/// `reg` and `clk` must outlive `m`'s scrapes.
void export_key_metrics(const actors::registry& reg, metrics& m, const wh::clock& clk,
                        uint32_t refresh_margin_s);

} // namespace wh::http
