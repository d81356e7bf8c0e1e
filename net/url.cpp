// URL helpers: kept apart from http_client.cpp so they compile without Beast.
#include "net/http_client.hpp"

#include <cctype>

namespace wh::net {

namespace {

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

bool starts_with_nocase(std::string_view str, std::string_view prefix) {
  if (str.size() < prefix.size())
    return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(str[i])) != prefix[i])
      return false;
  return true;
}

} // namespace

std::string url_encode(std::string_view str) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(str.size() * 3);
  for (char ch : str) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0x0F];
    }
  }
  return out;
}

std::string add_query(std::string url, std::string_view key, std::string_view value) {
  // A fragment is never sent to the server; the parameter belongs before it.
  std::string fragment;
  if (auto pos = url.find('#'); pos != std::string::npos) {
    fragment = url.substr(pos);
    url.erase(pos);
  }
  auto qpos = url.find('?');
  if (qpos == std::string::npos)
    url += '?';
  else if (url.back() != '?' && url.back() != '&')
    url += '&';
  url += url_encode(key);
  url += '=';
  url += url_encode(value);
  url += fragment;
  return url;
}

std::string resolve_url(std::string_view base, std::string_view path_or_url) {
  if (starts_with_nocase(path_or_url, "http://")
      || starts_with_nocase(path_or_url, "https://"))
    return std::string{path_or_url};
  std::string out{base};
  while (!out.empty() && out.back() == '/')
    out.pop_back();
  if (path_or_url.empty() || path_or_url.front() != '/')
    out += '/';
  out += path_or_url;
  return out;
}

} // namespace wh::net
