#pragma once

// multipart/form-data (RFC 7578) for media uploads: a writer and a strict,
// bounded, binary-safe parser. Boost has no multipart parser, hence this file.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "caf/expected.hpp"

namespace wh::wechat {

/// One form field or file.
struct form_part {
  /// The `name` parameter of Content-Disposition (required).
  std::string name;
  /// The `filename` parameter; empty means "not a file" (omitted on output).
  std::string filename;
  /// The part's Content-Type; empty means none (omitted on output).
  std::string content_type;
  /// The raw bytes.
  std::string data;
};

/// Bounds applied by parse_multipart().
struct multipart_limits {
  /// Maximum number of parts.
  std::size_t max_parts = 64;
  /// Maximum size of one part's header block.
  std::size_t max_header_bytes = 8 * 1024;
};

/// A random boundary (40 chars of [A-Za-z0-9-]); collisions with data are
/// negligible, which is why build_multipart() does not search the data.
std::string make_boundary();

/// Renders `parts` with CRLF line breaks and the closing delimiter. `"`, CR and
/// LF in name/filename are percent-encoded as browsers do (RFC 7578 §2).
/// Precondition: `boundary` does not occur in any part's data.
std::string build_multipart(const std::vector<form_part>& parts, std::string_view boundary);

/// Returns the `multipart/form-data; boundary=...` header value for `boundary`.
std::string multipart_content_type(std::string_view boundary);

/// Parses a multipart/form-data body. The boundary comes from
/// `content_type_header` (token or quoted-string, 1..70 chars). The body must
/// start with the first delimiter (no preamble), every part needs a
/// Content-Disposition of type form-data with a name, and the closing delimiter
/// is required (an epilogue after it is ignored). Header names are matched
/// case-insensitively; other headers are ignored. Data is returned byte-exact.
/// Errors: ec::invalid_request with a detail naming the problem.
caf::expected<std::vector<form_part>> parse_multipart(std::string_view body,
                                                      std::string_view content_type_header,
                                                      multipart_limits limits = {});

} // namespace wh::wechat
