#pragma once

// The timed responder shared by the hub API's translation units.

#include <chrono>
#include <utility>

#include "http/server.hpp"

namespace wh::http::detail {

/// The responder `hub_api::handle` hands on: remembers when the request
/// arrived so `respond_counted` can observe its latency by route.
struct timed_responder {
  responder inner;
  std::chrono::steady_clock::time_point start;
  void operator()(response res) const { inner(std::move(res)); }
};

/// Wraps `next` (e.g. an auditing responder) so that it keeps the arrival
/// time of `timed`, a responder made by `hub_api::handle`.
inline responder with_timing_of(const responder& timed, responder next) {
  auto t = timed.target<timed_responder>();
  return timed_responder{std::move(next), t ? t->start : std::chrono::steady_clock::now()};
}

} // namespace wh::http::detail
