#include "sim/push.hpp"

namespace wh::sim {

namespace {

void cdata(std::string& out, const char* tag, const std::string& value) {
  out += '<';
  out += tag;
  out += "><![CDATA[";
  out += value; // sim-generated values never contain "]]>"
  out += "]]></";
  out += tag;
  out += '>';
}

void number(std::string& out, const char* tag, int64_t value) {
  out += '<';
  out += tag;
  out += '>';
  out += std::to_string(value);
  out += "</";
  out += tag;
  out += '>';
}

} // namespace

std::string event_xml(const push_event& ev) {
  std::string out = "<xml>";
  cdata(out, "AppId", ev.component_appid);
  number(out, "CreateTime", ev.create_time);
  cdata(out, "InfoType", ev.info_type);
  if (ev.info_type == "component_verify_ticket") {
    cdata(out, "ComponentVerifyTicket", ev.verify_ticket);
  } else {
    cdata(out, "AuthorizerAppid", ev.authorizer_appid);
    if (ev.info_type != "unauthorized") {
      cdata(out, "AuthorizationCode", ev.authorization_code);
      number(out, "AuthorizationCodeExpiredTime", ev.code_expired_time);
      cdata(out, "PreAuthCode", ev.pre_auth_code);
    }
  }
  out += "</xml>";
  return out;
}

} // namespace wh::sim
