#include "wechat/signature.hpp"

#include <algorithm>
#include <chrono>

#include "wechat/detail/random.hpp"
#include "wechat/msg_crypto.hpp"

namespace wh::wechat {

namespace {

int64_t unix_now() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

std::string random_nonce(std::size_t n) {
  static constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(n);
  unsigned char buf[64];
  while (out.size() < n) {
    detail::random_or_die(buf, sizeof(buf));
    for (auto b : buf) {
      // 248 = 4 * 62: rejecting the top 8 byte values keeps the choice unbiased.
      if (b < 248 && out.size() < n)
        out += alphabet[b % 62];
    }
  }
  return out;
}

jssdk_signature sign_jssdk(std::string_view ticket, std::string_view url, std::string noncestr,
                           int64_t timestamp) {
  if (auto pos = url.find('#'); pos != std::string_view::npos)
    url = url.substr(0, pos);
  jssdk_signature out;
  out.noncestr = noncestr.empty() ? random_nonce(16) : std::move(noncestr);
  out.timestamp = timestamp == 0 ? unix_now() : timestamp;
  std::string plain;
  plain += "jsapi_ticket=";
  plain += ticket;
  plain += "&noncestr=";
  plain += out.noncestr;
  plain += "&timestamp=";
  plain += std::to_string(out.timestamp);
  plain += "&url=";
  plain += url;
  out.signature = sha1_hex(plain);
  return out;
}

card_signature sign_card(std::vector<std::string> values, std::string nonce_str,
                         int64_t timestamp) {
  card_signature out;
  out.nonce_str = nonce_str.empty() ? random_nonce(16) : std::move(nonce_str);
  out.timestamp = timestamp == 0 ? unix_now() : timestamp;
  values.push_back(out.nonce_str);
  values.push_back(std::to_string(out.timestamp));
  out.signature = card_sign_values(std::move(values));
  return out;
}

std::string card_sign_values(std::vector<std::string> values) {
  // Empty strings would contribute nothing to the concatenation anyway; drop
  // them explicitly so the intent ("omitted fields") is visible.
  values.erase(std::remove_if(values.begin(), values.end(),
                              [](const std::string& v) { return v.empty(); }),
               values.end());
  return sorted_sha1(std::move(values));
}

std::string url_signature(std::string_view token, std::string_view timestamp,
                          std::string_view nonce) {
  return sorted_sha1({std::string{token}, std::string{timestamp}, std::string{nonce}});
}

bool verify_url_signature(std::string_view signature, std::string_view token,
                          std::string_view timestamp, std::string_view nonce) {
  return constant_time_equal(url_signature(token, timestamp, nonce), signature);
}

} // namespace wh::wechat
