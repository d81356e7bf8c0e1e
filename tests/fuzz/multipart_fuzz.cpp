// multipart/form-data parsing (media uploads through the client and the
// simulator). The first line of the input is the Content-Type header value,
// the rest the body, so the fuzzer varies both.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wechat/multipart.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto nl = in.find('\n');
  auto header = nl == std::string_view::npos ? in : in.substr(0, nl);
  auto body = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  wh::wechat::multipart_limits small;
  small.max_parts = 4;
  small.max_header_bytes = 64;
  (void) wh::wechat::parse_multipart(body, header);
  (void) wh::wechat::parse_multipart(body, header, small);
  // Whatever parses must survive a round trip through the builder.
  if (auto parts = wh::wechat::parse_multipart(body, header); parts && !parts->empty()) {
    auto boundary = wh::wechat::make_boundary();
    bool clean = true;
    for (auto& p : *parts)
      clean = clean && p.data.find(boundary) == std::string::npos;
    if (clean) {
      auto again = wh::wechat::parse_multipart(wh::wechat::build_multipart(*parts, boundary),
                                               wh::wechat::multipart_content_type(boundary));
      if (!again || again->size() != parts->size())
        __builtin_trap();
    }
  }
  return 0;
}
