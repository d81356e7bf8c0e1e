#pragma once

// Small helpers shared by the sim suites.

#include <string>

#include <boost/json/object.hpp>

namespace wh::sim::test {

/// String member of `obj` or "" when absent / not a string.
inline std::string str(const boost::json::object& obj, std::string_view key) {
  auto* v = obj.if_contains(key);
  return v && v->is_string() ? std::string{v->as_string()} : std::string{};
}

/// Integer member of `obj` or -12345 when absent.
inline int64_t num(const boost::json::object& obj, std::string_view key) {
  auto* v = obj.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : -12345;
}

/// The WeChat errcode (0 when absent).
inline int64_t code(const boost::json::object& obj) {
  auto c = num(obj, "errcode");
  return c == -12345 ? 0 : c;
}

/// The EncodingAESKey of the official samples (non-canonical base64, accepted).
inline const char* test_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

} // namespace wh::sim::test
