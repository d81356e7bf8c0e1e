#include "wechat/multipart.hpp"

#include <optional>
#include <utility>

#include "core/error.hpp"
#include "wechat/signature.hpp"

namespace wh::wechat {

namespace {

caf::error bad(std::string detail) {
  return make_detail_error(ec::invalid_request, std::move(detail));
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

// RFC 2046 bchars (space allowed, but not as the last character).
bool is_bchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return std::string_view{"'()+_,-./:=? "}.find(c) != std::string_view::npos;
}

void skip_ows(std::string_view& s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
}

std::string_view trim(std::string_view s) {
  skip_ows(s);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string_view take_token(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && is_tchar(s[n]))
    ++n;
  auto tok = s.substr(0, n);
  s.remove_prefix(n);
  return tok;
}

// quoted-string per RFC 9110 §5.6.4; `s` starts at the opening quote.
std::optional<std::string> take_quoted(std::string_view& s) {
  std::string out;
  s.remove_prefix(1);
  while (!s.empty()) {
    auto c = static_cast<unsigned char>(s.front());
    s.remove_prefix(1);
    if (c == '"')
      return out;
    if (c == '\\') {
      if (s.empty())
        return std::nullopt;
      c = static_cast<unsigned char>(s.front());
      s.remove_prefix(1);
    }
    // Control characters (CR, LF, NUL, ...) are never valid inside quotes.
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return std::nullopt;
    out += static_cast<char>(c);
  }
  return std::nullopt;
}

using param_list = std::vector<std::pair<std::string, std::string>>;

// Parses `*( OWS ";" OWS name "=" ( token / quoted-string ) ) OWS` with
// lowercase names; duplicates are refused because they make intent ambiguous.
caf::expected<param_list> parse_params(std::string_view s, const char* what) {
  param_list out;
  for (;;) {
    skip_ows(s);
    if (s.empty())
      return out;
    if (s.front() != ';')
      return bad(std::string{"malformed "} + what);
    s.remove_prefix(1);
    skip_ows(s);
    auto name = take_token(s);
    if (name.empty() || s.empty() || s.front() != '=')
      return bad(std::string{"malformed "} + what);
    s.remove_prefix(1);
    std::string value;
    if (!s.empty() && s.front() == '"') {
      auto q = take_quoted(s);
      if (!q)
        return bad(std::string{"malformed "} + what);
      value = std::move(*q);
    } else {
      auto tok = take_token(s);
      if (tok.empty())
        return bad(std::string{"malformed "} + what);
      value = std::string{tok};
    }
    std::string lname;
    for (char c : name)
      lname += lower(c);
    for (const auto& [n, v] : out)
      if (n == lname)
        return bad(std::string{"duplicate parameter in "} + what);
    out.emplace_back(std::move(lname), std::move(value));
  }
}

const std::string* find_param(const param_list& params, std::string_view name) {
  for (const auto& [n, v] : params)
    if (n == name)
      return &v;
  return nullptr;
}

caf::expected<std::string> boundary_of(std::string_view header) {
  auto type = take_token(header);
  if (header.empty() || header.front() != '/')
    return bad("Content-Type is not multipart/form-data");
  header.remove_prefix(1);
  auto subtype = take_token(header);
  if (!iequals(type, "multipart") || !iequals(subtype, "form-data"))
    return bad("Content-Type is not multipart/form-data");
  auto params = parse_params(header, "Content-Type");
  if (!params)
    return std::move(params.error());
  auto b = find_param(*params, "boundary");
  if (!b)
    return bad("missing boundary");
  if (b->empty() || b->size() > 70 || b->back() == ' ')
    return bad("invalid boundary");
  for (char c : *b)
    if (!is_bchar(c))
      return bad("invalid boundary");
  return *b;
}

// Parses one part's header block (lines without the final empty line).
caf::error parse_part_headers(std::string_view block, form_part& part) {
  bool have_disposition = false;
  bool have_type = false;
  while (!block.empty()) {
    auto eol = block.find("\r\n");
    auto line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view{} : block.substr(eol + 2);
    if (line.find_first_of("\r\n") != std::string_view::npos)
      return bad("bare CR or LF in part header");
    auto colon = line.find(':');
    auto name = line.substr(0, colon);
    // An empty or non-token name also catches obsolete line folding.
    if (colon == std::string_view::npos || name.empty() || take_token(name).size() != colon)
      return bad("malformed part header");
    auto value = trim(line.substr(colon + 1));
    if (iequals(line.substr(0, colon), "Content-Disposition")) {
      if (have_disposition)
        return bad("duplicate Content-Disposition");
      have_disposition = true;
      auto disposition = take_token(value);
      if (!iequals(disposition, "form-data"))
        return bad("Content-Disposition is not form-data");
      auto params = parse_params(value, "Content-Disposition");
      if (!params)
        return std::move(params.error());
      auto n = find_param(*params, "name");
      if (!n || n->empty())
        return bad("part without a name");
      part.name = *n;
      if (auto f = find_param(*params, "filename"))
        part.filename = *f;
    } else if (iequals(line.substr(0, colon), "Content-Type")) {
      if (have_type)
        return bad("duplicate Content-Type in part");
      have_type = true;
      part.content_type = std::string{value};
    }
  }
  if (!have_disposition)
    return bad("part without Content-Disposition");
  return {};
}

// Browsers percent-encode these three in form-data parameters (RFC 7578 §2).
void append_param_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '"': out += "%22"; break;
      case '\r': out += "%0D"; break;
      case '\n': out += "%0A"; break;
      default: out += c;
    }
  }
}

} // namespace

std::string make_boundary() {
  return "----WeChatHub" + random_nonce(27);
}

std::string multipart_content_type(std::string_view boundary) {
  std::string out = "multipart/form-data; boundary=";
  bool token = !boundary.empty();
  for (char c : boundary)
    token = token && is_tchar(c);
  if (token) {
    out += boundary;
  } else {
    out += '"';
    for (char c : boundary) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += '"';
  }
  return out;
}

std::string build_multipart(const std::vector<form_part>& parts, std::string_view boundary) {
  std::string out;
  for (const auto& p : parts) {
    out += "--";
    out += boundary;
    out += "\r\nContent-Disposition: form-data; name=\"";
    append_param_value(out, p.name);
    out += '"';
    if (!p.filename.empty()) {
      out += "; filename=\"";
      append_param_value(out, p.filename);
      out += '"';
    }
    out += "\r\n";
    if (!p.content_type.empty()) {
      out += "Content-Type: ";
      // A CR/LF here would let the value inject headers; drop them.
      for (char c : p.content_type)
        if (c != '\r' && c != '\n')
          out += c;
      out += "\r\n";
    }
    out += "\r\n";
    out += p.data;
    out += "\r\n";
  }
  out += "--";
  out += boundary;
  out += "--\r\n";
  return out;
}

caf::expected<std::vector<form_part>> parse_multipart(std::string_view body,
                                                      std::string_view content_type_header,
                                                      multipart_limits limits) {
  auto boundary = boundary_of(trim(content_type_header));
  if (!boundary)
    return std::move(boundary.error());
  const std::string delim = "--" + *boundary;
  const std::string next_delim = "\r\n" + delim;
  if (body.substr(0, delim.size()) != delim)
    return bad("body does not start with the boundary");
  std::size_t pos = delim.size();
  std::vector<form_part> parts;
  for (;;) {
    // Just behind a delimiter: "--" closes, CRLF opens a part.
    auto tail = body.substr(pos, 2);
    if (tail == "--") {
      if (parts.empty())
        return bad("no parts");
      return parts;
    }
    if (tail != "\r\n")
      return bad("malformed boundary line");
    pos += 2;
    if (parts.size() >= limits.max_parts)
      return bad("too many parts");
    form_part part;
    // The header block ends at the first empty line; an immediate CRLF means
    // no headers at all, which parse_part_headers reports.
    std::size_t headers_end;
    if (body.substr(pos, 2) == "\r\n") {
      headers_end = pos;
    } else {
      auto window = body.substr(pos, limits.max_header_bytes + 4);
      auto end = window.find("\r\n\r\n");
      if (end == std::string_view::npos)
        return bad("part headers too long or unterminated");
      headers_end = pos + end + 2;
    }
    if (auto err = parse_part_headers(body.substr(pos, headers_end - pos), part))
      return err;
    pos = headers_end + 2;
    auto next = body.find(next_delim, pos);
    if (next == std::string_view::npos)
      return bad("missing closing boundary");
    part.data = std::string{body.substr(pos, next - pos)};
    parts.push_back(std::move(part));
    pos = next + next_delim.size();
  }
}

} // namespace wh::wechat
