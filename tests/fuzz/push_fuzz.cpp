// The push receiver's input path: the outer XML envelope, signature check,
// AES decrypt (padding, length prefix, trailing appid) and the event XML.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wechat/msg_crypto.hpp"
#include "wechat/push.hpp"

namespace {

const wh::wechat::msg_crypto& crypto() {
  static const auto c = *wh::wechat::msg_crypto::make("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                                                       "pushtoken", "wxcomp0000000001");
  return c;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wh::wechat;
  std::string_view in{reinterpret_cast<const char*>(data), size};
  const auto& c = crypto();
  // The envelope as WeChat posts it, signed correctly so decrypt is reached.
  if (auto env = parse_envelope(in)) {
    auto sig = c.signature("1700000000", "42", env->encrypt);
    (void) open_push(c, in, "1700000000", "42", sig);
  }
  // Arbitrary ciphertext (base64 or not).
  (void) c.decrypt(in);
  // Arbitrary plaintext behind a valid encryption: the event parser after decrypt.
  auto enc = c.encrypt(in, "0123456789abcdef");
  auto body = "<xml><AppId><![CDATA[wxcomp0000000001]]></AppId><Encrypt><![CDATA[" + enc
              + "]]></Encrypt></xml>";
  (void) open_push(c, body, "1700000000", "42", c.signature("1700000000", "42", enc));
  // The event XML directly.
  (void) parse_event(in);
  return 0;
}
