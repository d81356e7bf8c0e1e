#include "sim/push.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "core/error.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/push.hpp"

namespace wh::sim {

std::optional<push_http> build_push(const push_event& ev, std::string& error) {
  auto crypto = wechat::msg_crypto::make(ev.encoding_aes_key, ev.token, ev.component_appid);
  if (!crypto) {
    error = "bad EncodingAESKey: " + detail_of(crypto.error());
    return std::nullopt;
  }
  auto parsed = boost::urls::parse_absolute_uri(ev.url);
  if (!parsed) {
    error = "bad push url";
    return std::nullopt;
  }
  wechat::push_event plain;
  plain.info_type = ev.info_type;
  plain.appid = ev.component_appid;
  plain.create_time = ev.create_time;
  plain.component_verify_ticket = ev.verify_ticket;
  plain.authorizer_appid = ev.authorizer_appid;
  plain.authorization_code = ev.authorization_code;
  plain.authorization_code_expired_time = ev.code_expired_time;
  plain.pre_auth_code = ev.pre_auth_code;
  // The sim clock, not the wall clock, stamps the push.
  auto sealed = wechat::seal_push(*crypto, plain, std::to_string(ev.create_time));
  boost::urls::url url{*parsed};
  url.params().set("timestamp", sealed.timestamp);
  url.params().set("nonce", sealed.nonce);
  url.params().set("encrypt_type", "aes");
  url.params().set("msg_signature", sealed.msg_signature);
  url.params().set("signature", sealed.signature);
  return push_http{std::string{url.buffer()}, std::move(sealed.body)};
}

} // namespace wh::sim
