#pragma once

// Small request helpers shared by the hub API's translation units.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/server.hpp"

namespace wh::http::detail {

using params = std::vector<std::pair<std::string, std::string>>;

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
