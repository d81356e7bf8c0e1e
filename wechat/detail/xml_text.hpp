#pragma once

// Internal helper shared by the XML writers of this module.

#include <string>
#include <string_view>

namespace wh::wechat::detail {

/// Appends `text` as one or more CDATA sections. A literal "]]>" cannot occur
/// inside CDATA, so it is split across two sections ("]]" | ">").
inline void append_cdata(std::string& out, std::string_view text) {
  out += "<![CDATA[";
  for (auto pos = text.find("]]>"); pos != std::string_view::npos; pos = text.find("]]>")) {
    out += text.substr(0, pos + 2);
    out += "]]><![CDATA[";
    text.remove_prefix(pos + 2);
  }
  out += text;
  out += "]]>";
}

/// Appends `text` as escaped character data (for bare numbers like CreateTime).
inline void append_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      default: out += c;
    }
  }
}

/// Appends `<name><![CDATA[text]]></name>`.
inline void append_cdata_element(std::string& out, std::string_view name, std::string_view text) {
  out += '<';
  out += name;
  out += '>';
  append_cdata(out, text);
  out += "</";
  out += name;
  out += '>';
}

} // namespace wh::wechat::detail
