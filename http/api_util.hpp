#pragma once

// Small request helpers shared by the hub API's translation units.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/server.hpp"

namespace wh::http::detail {

using params = std::vector<std::pair<std::string, std::string>>;

/// The responder `hub_api::handle` hands on: remembers when the request
/// arrived so `respond_counted` can observe its latency by route.
struct timed_responder {
  responder inner;
  std::chrono::steady_clock::time_point start;
  void operator()(response res) const { inner(std::move(res)); }
};

/// Wraps `next` (e.g. an auditing responder) so that it keeps the arrival
/// time of `timed`, a responder made by `hub_api::handle`.
responder with_timing_of(const responder& timed, responder next);

/// The first value of `key`, or nullptr.
const std::string* find_param(const params& q, std::string_view key);

/// 200 with a JSON body.
response json_ok(std::string body);

/// 405 with an Allow header.
response method_not_allowed(std::string_view allow);

/// Reads an appid-like parameter; missing (if required) or malformed values set a 400 in `err`.
bool read_id(const params& q, std::string_view key, bool required, std::string& out, response& err);

/// Parses a JSON object (string values) or a urlencoded form body.
bool parse_body(const request& req, params& out, response& err);

} // namespace wh::http::detail
