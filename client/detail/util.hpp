#pragma once

// Helpers shared by the client's translation units.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "caf/error.hpp"
#include "client/error.hpp"

namespace wh::client::detail {

/// An integer member (JSON integer or numeric string) of `obj`.
std::optional<int64_t> int_field(const boost::json::value& obj, std::string_view key);

/// A string member of `obj`, empty when absent or not a string.
std::string string_field(const boost::json::value& obj, std::string_view key);

/// Parses `body` as JSON without throwing.
std::optional<boost::json::value> parse_json(std::string_view body);

/// Converts an http_client error (transport_failure, timeout, shutting_down)
/// into a client error; `who` names the peer ("hub", "WeChat").
error from_net_error(const caf::error& err, std::string_view who);

/// A short, safe description of a body that is not the expected JSON.
std::string describe_body(unsigned status, std::string_view content_type, std::string_view body);

} // namespace wh::client::detail
