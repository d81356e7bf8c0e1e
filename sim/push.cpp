#include "sim/push.hpp"

#include <random>

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "core/error.hpp"
#include "wechat/msg_crypto.hpp"

namespace wh::sim {

std::optional<push_http> build_push(const push_event& ev, std::string& error) {
  auto crypto = wechat::msg_crypto::make(ev.encoding_aes_key, ev.token, ev.component_appid);
  if (!crypto) {
    error = "bad EncodingAESKey: " + detail_of(crypto.error());
    return std::nullopt;
  }
  auto encrypt = crypto->encrypt(event_xml(ev));
  auto timestamp = std::to_string(ev.create_time);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto nonce = std::to_string(rng() % 10'000'000'000ull);
  auto parsed = boost::urls::parse_absolute_uri(ev.url);
  if (!parsed) {
    error = "bad push url";
    return std::nullopt;
  }
  boost::urls::url url{*parsed};
  url.params().set("timestamp", timestamp);
  url.params().set("nonce", nonce);
  url.params().set("encrypt_type", "aes");
  url.params().set("msg_signature", crypto->signature(timestamp, nonce, encrypt));
  url.params().set("signature", wechat::sorted_sha1({ev.token, timestamp, nonce}));
  push_http out;
  out.url = std::string{url.buffer()};
  out.body = "<xml><AppId><![CDATA[" + ev.component_appid + "]]></AppId><Encrypt><![CDATA["
             + encrypt + "]]></Encrypt></xml>";
  return out;
}

} // namespace wh::sim
