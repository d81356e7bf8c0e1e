#include "client/detail/util.hpp"

#include <boost/json/parse.hpp>

#include "core/error.hpp"

namespace wh::client::detail {

std::optional<int64_t> int_field(const boost::json::value& obj, std::string_view key) {
  if (!obj.is_object())
    return std::nullopt;
  auto* m = obj.as_object().if_contains(key);
  if (m == nullptr)
    return std::nullopt;
  if (m->is_int64())
    return m->as_int64();
  if (m->is_uint64() && m->as_uint64() <= static_cast<uint64_t>(INT64_MAX))
    return static_cast<int64_t>(m->as_uint64());
  if (m->is_string()) {
    std::string str{m->as_string()};
    try {
      size_t used = 0;
      auto n = std::stoll(str, &used);
      if (used == str.size())
        return n;
    } catch (...) {
    }
  }
  return std::nullopt;
}

std::string string_field(const boost::json::value& obj, std::string_view key) {
  if (!obj.is_object())
    return {};
  auto* m = obj.as_object().if_contains(key);
  if (m == nullptr || !m->is_string())
    return {};
  return std::string{m->as_string()};
}

std::optional<boost::json::value> parse_json(std::string_view body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec)
    return std::nullopt;
  return v;
}

error from_net_error(const caf::error& err, std::string_view who) {
  auto code = wh::code_of(err);
  std::string reason = code == wh::ec::none ? "transport_failure" : wh::to_string(code);
  return make_error(std::move(reason), std::string{who} + ": " + wh::detail_of(err));
}

std::string describe_body(unsigned status, std::string_view content_type, std::string_view body) {
  std::string out = "HTTP " + std::to_string(status);
  out += content_type.empty() ? std::string{" without Content-Type"}
                              : " (" + std::string{content_type} + ")";
  out += ", " + std::to_string(body.size()) + " bytes";
  return out;
}

} // namespace wh::client::detail
