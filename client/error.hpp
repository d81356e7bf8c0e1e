#pragma once

#include <string>
#include <utility>
#include <variant>

namespace wh::client {

/// Why a client call failed. Never contains tokens, secrets or query strings.
struct error {
  /// WeChat's (or the hub's) errcode; 0 when there was none.
  int errcode = 0;
  /// WeChat's errmsg or a human-readable description.
  std::string errmsg;
  /// HTTP status of the failing answer; 0 when no answer arrived.
  unsigned http_status = 0;
  /// Stable snake_case reason: a WeChat errcode name ("invalid_credential",
  /// "access_token_expired", "api_daily_quota", ...), a hub reason
  /// ("unknown_appid", ...) or one of "transport_failure", "timeout",
  /// "shutting_down", "http_error", "invalid_json", "bad_hub_response",
  /// "invalid_request", "unsupported".
  std::string reason;

  /// One line for logs and the CLI: "reason (errcode N, HTTP S): errmsg".
  std::string to_string() const;
};

/// Either a value or an error (std::expected is C++23).
template <class T>
class result {
public:
  result(T value) : data_(std::in_place_index<0>, std::move(value)) {
  }

  result(error err) : data_(std::in_place_index<1>, std::move(err)) {
  }

  /// Whether a value is present.
  explicit operator bool() const {
    return data_.index() == 0;
  }

  /// Whether a value is present.
  bool has_value() const {
    return data_.index() == 0;
  }

  T& value() & {
    return std::get<0>(data_);
  }

  const T& value() const& {
    return std::get<0>(data_);
  }

  T&& value() && {
    return std::get<0>(std::move(data_));
  }

  T& operator*() & {
    return value();
  }

  const T& operator*() const& {
    return value();
  }

  T* operator->() {
    return &value();
  }

  const T* operator->() const {
    return &value();
  }

  /// The error; precondition: `!has_value()`.
  const error& err() const {
    return std::get<1>(data_);
  }

  error& err() {
    return std::get<1>(data_);
  }

private:
  std::variant<T, error> data_;
};

/// Builds an error without a WeChat errcode.
error make_error(std::string reason, std::string errmsg, unsigned http_status = 0);

} // namespace wh::client
