#include "wechat/push.hpp"

#include <charconv>
#include <chrono>
#include <optional>

#include <pugixml.hpp>

#include "core/error.hpp"
#include "wechat/detail/random.hpp"
#include "wechat/detail/xml_text.hpp"
#include "wechat/signature.hpp"

namespace wh::wechat {

namespace {

caf::error malformed(std::string detail) {
  return make_detail_error(ec::invalid_request, std::move(detail));
}

caf::error bad_signature(const char* detail) {
  return caf::make_error(push_failure::bad_signature, std::string{detail});
}

// Parses `xml` into `doc` and returns its single `<xml>` root element.
// Declarations ("<!DOCTYPE", "<!ENTITY", ...) are refused outright: pugixml
// never expands external entities, but nothing legitimate sends them either,
// and refusing keeps the accepted language small.
caf::expected<pugi::xml_node> parse_root(pugi::xml_document& doc, std::string_view xml) {
  if (xml.size() > max_push_bytes)
    return malformed("XML larger than 64 KiB");
  for (auto pos = xml.find("<!"); pos != std::string_view::npos; pos = xml.find("<!", pos + 2)) {
    auto rest = xml.substr(pos);
    if (rest.substr(0, 9) != "<![CDATA[" && rest.substr(0, 4) != "<!--")
      return malformed("XML declarations (DOCTYPE/ENTITY) are not accepted");
  }
  auto res = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!res)
    return malformed(std::string{"malformed XML: "} + res.description());
  pugi::xml_node root;
  for (auto child : doc.children()) {
    if (child.type() != pugi::node_element)
      continue;
    if (root)
      return malformed("XML has more than one root element");
    root = child;
  }
  if (!root || std::string_view{root.name()} != "xml")
    return malformed("XML root element must be <xml>");
  return root;
}

// The text of the only child element `name` of `root`, with all text and
// CDATA pieces joined (our writer splits CDATA around "]]>"). Absent -> nullopt.
caf::expected<std::optional<std::string>> field(pugi::xml_node root, const char* name) {
  auto first = root.child(name);
  if (!first)
    return std::optional<std::string>{};
  if (first.next_sibling(name))
    return malformed(std::string{"duplicate <"} + name + ">");
  std::string text;
  for (auto piece : first.children()) {
    switch (piece.type()) {
      case pugi::node_pcdata:
      case pugi::node_cdata:
        text += piece.value();
        break;
      case pugi::node_comment:
        break;
      default:
        return malformed(std::string{"unexpected markup in <"} + name + ">");
    }
  }
  return std::optional<std::string>{std::move(text)};
}

caf::expected<std::string> required(pugi::xml_node root, const char* name) {
  auto f = field(root, name);
  if (!f)
    return std::move(f.error());
  if (!*f || (*f)->empty())
    return malformed(std::string{"missing <"} + name + ">");
  return std::move(**f);
}

caf::expected<int64_t> required_int(pugi::xml_node root, const char* name) {
  auto text = required(root, name);
  if (!text)
    return std::move(text.error());
  int64_t value = 0;
  auto first = text->data();
  auto last = first + text->size();
  // Digits only: from_chars would accept a leading '-', which no WeChat
  // timestamp carries.
  if (text->size() > 18 || (*text)[0] < '0' || (*text)[0] > '9')
    return malformed(std::string{"<"} + name + "> is not a number");
  auto [end, err] = std::from_chars(first, last, value);
  if (err != std::errc{} || end != last)
    return malformed(std::string{"<"} + name + "> is not a number");
  return value;
}

int64_t unix_now() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

// -- error classes ------------------------------------------------------------

const char* to_string(push_failure x) {
  switch (x) {
    case push_failure::none: return "none";
    case push_failure::bad_signature: return "bad_signature";
    case push_failure::malformed: return "malformed";
  }
  return "none";
}

push_failure push_failure_of(const caf::error& err) {
  if (!err)
    return push_failure::none;
  if (err.category() == caf::atom("wechatpush"))
    return static_cast<push_failure>(err.code());
  if (code_of(err) == ec::invalid_request)
    return push_failure::malformed;
  return push_failure::none;
}

// -- parsing ------------------------------------------------------------------

caf::expected<push_envelope> parse_envelope(std::string_view xml) {
  pugi::xml_document doc;
  auto root = parse_root(doc, xml);
  if (!root)
    return std::move(root.error());
  push_envelope out;
  auto encrypt = required(*root, "Encrypt");
  if (!encrypt)
    return std::move(encrypt.error());
  out.encrypt = std::move(*encrypt);
  auto appid = field(*root, "AppId");
  if (!appid)
    return std::move(appid.error());
  if (*appid && !(*appid)->empty()) {
    out.appid = std::move(**appid);
  } else {
    auto to_user = required(*root, "ToUserName");
    if (!to_user)
      return malformed("missing <AppId> or <ToUserName>");
    out.appid = std::move(*to_user);
  }
  return out;
}

caf::expected<push_event> parse_event(std::string_view xml) {
  pugi::xml_document doc;
  auto root = parse_root(doc, xml);
  if (!root)
    return std::move(root.error());
  push_event ev;
  // Small helpers so each field reads as one line below.
  caf::error err;
  auto need = [&](const char* name, std::string& dst) {
    if (err)
      return;
    if (auto v = required(*root, name))
      dst = std::move(*v);
    else
      err = std::move(v.error());
  };
  auto optional_text = [&](const char* name, std::string& dst) {
    if (err)
      return;
    if (auto v = field(*root, name); !v)
      err = std::move(v.error());
    else if (*v)
      dst = std::move(**v);
  };
  need("InfoType", ev.info_type);
  need("AppId", ev.appid);
  if (!err) {
    if (auto t = required_int(*root, "CreateTime"))
      ev.create_time = *t;
    else
      err = std::move(t.error());
  }
  if (ev.info_type == "component_verify_ticket") {
    need("ComponentVerifyTicket", ev.component_verify_ticket);
  } else if (ev.info_type == "authorized" || ev.info_type == "updateauthorized") {
    need("AuthorizerAppid", ev.authorizer_appid);
    need("AuthorizationCode", ev.authorization_code);
    optional_text("PreAuthCode", ev.pre_auth_code);
    if (!err) {
      if (auto f = field(*root, "AuthorizationCodeExpiredTime"); !f) {
        err = std::move(f.error());
      } else if (*f && !(*f)->empty()) {
        if (auto t = required_int(*root, "AuthorizationCodeExpiredTime"))
          ev.authorization_code_expired_time = *t;
        else
          err = std::move(t.error());
      }
    }
  } else if (ev.info_type == "unauthorized") {
    need("AuthorizerAppid", ev.authorizer_appid);
  }
  if (err)
    return err;
  return ev;
}

std::string build_event_xml(const push_event& ev) {
  using detail::append_cdata_element;
  std::string out;
  out += "<xml>";
  append_cdata_element(out, "AppId", ev.appid);
  out += "<CreateTime>";
  out += std::to_string(ev.create_time);
  out += "</CreateTime>";
  append_cdata_element(out, "InfoType", ev.info_type);
  const bool known = ev.info_type == "component_verify_ticket" || ev.info_type == "authorized"
                     || ev.info_type == "updateauthorized" || ev.info_type == "unauthorized";
  const bool authorized = ev.info_type == "authorized" || ev.info_type == "updateauthorized";
  if (ev.info_type == "component_verify_ticket" || (!known && !ev.component_verify_ticket.empty()))
    append_cdata_element(out, "ComponentVerifyTicket", ev.component_verify_ticket);
  if (authorized || ev.info_type == "unauthorized" || (!known && !ev.authorizer_appid.empty()))
    append_cdata_element(out, "AuthorizerAppid", ev.authorizer_appid);
  if (authorized || (!known && !ev.authorization_code.empty()))
    append_cdata_element(out, "AuthorizationCode", ev.authorization_code);
  if (authorized || (!known && ev.authorization_code_expired_time != 0)) {
    out += "<AuthorizationCodeExpiredTime>";
    out += std::to_string(ev.authorization_code_expired_time);
    out += "</AuthorizationCodeExpiredTime>";
  }
  if (authorized || (!known && !ev.pre_auth_code.empty()))
    append_cdata_element(out, "PreAuthCode", ev.pre_auth_code);
  out += "</xml>";
  return out;
}

// -- open / seal --------------------------------------------------------------

caf::expected<push_event> open_push(const msg_crypto& crypto, std::string_view body,
                                    std::string_view timestamp, std::string_view nonce,
                                    std::string_view msg_signature) {
  if (msg_signature.empty() || timestamp.empty() || nonce.empty())
    return bad_signature("missing msg_signature, timestamp or nonce");
  auto env = parse_envelope(body);
  if (!env)
    return std::move(env.error());
  if (!crypto.verify(msg_signature, timestamp, nonce, env->encrypt))
    return bad_signature("msg_signature mismatch");
  auto plain = crypto.decrypt(env->encrypt);
  if (!plain)
    return std::move(plain.error());
  auto ev = parse_event(*plain);
  if (!ev)
    return std::move(ev.error());
  if (ev->appid != crypto.appid())
    return malformed("appid mismatch");
  return ev;
}

sealed_push seal_push(const msg_crypto& crypto, const push_event& ev, std::string timestamp,
                      std::string nonce, std::string_view random16) {
  sealed_push out;
  out.timestamp = timestamp.empty() ? std::to_string(unix_now()) : std::move(timestamp);
  if (nonce.empty()) {
    // WeChat's nonces are decimal numbers; mimic that.
    unsigned char b[4];
    detail::random_or_die(b, sizeof(b));
    auto n = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    out.nonce = std::to_string(n);
  } else {
    out.nonce = std::move(nonce);
  }
  auto encrypt = crypto.encrypt(build_event_xml(ev), random16);
  out.msg_signature = crypto.signature(out.timestamp, out.nonce, encrypt);
  out.signature = url_signature(crypto.token(), out.timestamp, out.nonce);
  out.body += "<xml>";
  detail::append_cdata_element(out.body, "AppId", crypto.appid());
  detail::append_cdata_element(out.body, "Encrypt", encrypt);
  out.body += "</xml>";
  return out;
}

} // namespace wh::wechat
