#pragma once

// Incremental parser for the HTTP/1.x responses wh-loadgen reads: one response
// at a time (no pipelining), framed by Content-Length. The body is counted, not
// kept. Header-only so that the e2e suite can test it directly.

#include <cstddef>
#include <string>
#include <string_view>

namespace wh::bench {

class response_parser {
public:
  enum class state { need_more, done, error };

  /// Longest status line plus headers accepted.
  static constexpr std::size_t max_head = 64 * 1024;

  /// Feeds the next bytes of the stream. Returns `done` once a whole response
  /// was read; `consumed` tells how many bytes of `data` belong to it (bytes
  /// beyond are the start of something else). `error()` explains `error`.
  state feed(std::string_view data, std::size_t& consumed) {
    consumed = 0;
    if (state_ != state::need_more)
      return state_;
    if (!in_body_) {
      auto old = head_.size();
      auto room = max_head - old;
      head_.append(data.data(), data.size() < room ? data.size() : room);
      auto from = old >= 3 ? old - 3 : 0;
      auto end = head_.find("\r\n\r\n", from);
      if (end == std::string::npos) {
        consumed = data.size();
        if (head_.size() >= max_head)
          return fail("response head larger than 64 KiB");
        return state_;
      }
      auto head_len = end + 4;
      consumed = head_len - old;
      head_.resize(head_len);
      if (!parse_head())
        return state_;
      in_body_ = true;
      data.remove_prefix(consumed);
    }
    auto take = data.size() < body_left_ ? data.size() : body_left_;
    body_left_ -= take;
    consumed += take;
    if (body_left_ == 0)
      state_ = state::done;
    return state_;
  }

  /// Ready for the next response on the same connection.
  void reset() {
    head_.clear();
    body_left_ = 0;
    in_body_ = false;
    state_ = state::need_more;
    status_ = 0;
    keep_alive_ = true;
    error_.clear();
  }

  unsigned status() const { return status_; }

  /// False when the server closes the connection after this response.
  bool keep_alive() const { return keep_alive_; }

  std::size_t content_length() const { return content_length_; }

  const std::string& error() const { return error_; }

private:
  static bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
      return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto x = a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i];
      auto y = b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i];
      if (x != y)
        return false;
    }
    return true;
  }

  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
      s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
      s.remove_suffix(1);
    return s;
  }

  /// Whether the comma-separated `value` lists `token`.
  static bool has_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
      auto comma = value.find(',');
      if (iequals(trim(value.substr(0, comma)), token))
        return true;
      if (comma == std::string_view::npos)
        break;
      value.remove_prefix(comma + 1);
    }
    return false;
  }

  state fail(std::string why) {
    error_ = std::move(why);
    state_ = state::error;
    return state_;
  }

  bool parse_head() {
    std::string_view head{head_};
    head.remove_suffix(2); // the empty line's CRLF
    auto eol = head.find("\r\n");
    auto line = head.substr(0, eol);
    // "HTTP/1.1 200 OK": version, three digits, optional reason.
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1')
        || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
      fail("bad status line");
      return false;
    }
    status_ = 0;
    for (std::size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') {
        fail("bad status code");
        return false;
      }
      status_ = status_ * 10 + static_cast<unsigned>(line[i] - '0');
    }
    keep_alive_ = line[7] == '1';
    bool have_length = false;
    content_length_ = 0;
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    while (!head.empty()) {
      eol = head.find("\r\n");
      line = head.substr(0, eol);
      head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
      auto colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        fail("bad header line");
        return false;
      }
      auto name = line.substr(0, colon);
      auto value = trim(line.substr(colon + 1));
      if (iequals(name, "content-length")) {
        if (value.empty() || value.size() > 15) {
          fail("bad Content-Length");
          return false;
        }
        std::size_t n = 0;
        for (auto c : value) {
          if (c < '0' || c > '9') {
            fail("bad Content-Length");
            return false;
          }
          n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        if (have_length && n != content_length_) {
          fail("conflicting Content-Length headers");
          return false;
        }
        have_length = true;
        content_length_ = n;
      } else if (iequals(name, "transfer-encoding")) {
        fail("Transfer-Encoding responses are not supported (need Content-Length)");
        return false;
      } else if (iequals(name, "connection")) {
        if (has_token(value, "close"))
          keep_alive_ = false;
        else if (has_token(value, "keep-alive"))
          keep_alive_ = true;
      }
    }
    if (status_ < 200) {
      fail("interim (1xx) responses are not supported");
      return false;
    }
    if (!have_length && status_ != 204 && status_ != 304) {
      fail("response without Content-Length");
      return false;
    }
    body_left_ = content_length_;
    return true;
  }

  std::string head_;
  std::size_t body_left_ = 0;
  std::size_t content_length_ = 0;
  bool in_body_ = false;
  state state_ = state::need_more;
  unsigned status_ = 0;
  bool keep_alive_ = true;
  std::string error_;
};

} // namespace wh::bench
