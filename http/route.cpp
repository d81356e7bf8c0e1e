#include "http/route.hpp"

#include "http/render.hpp"

namespace wh::http {

const char* to_string(scope x) {
  switch (x) {
    case scope::open: return "open";
    case scope::client: return "client";
    case scope::admin: return "admin";
  }
  return "?";
}

bool match_path(std::string_view pattern, std::string_view path, path_args& out) {
  out.clear();
  while (!pattern.empty()) {
    if (path.empty() || path.front() != '/' || pattern.front() != '/')
      return false;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    auto pend = pattern.find('/');
    auto seg = pattern.substr(0, pend);
    auto vend = path.find('/');
    if (seg.size() > 5 && seg.front() == '{' && seg.ends_with("...}")) {
      out.emplace_back(path);
      return pend == std::string_view::npos;
    }
    auto value = path.substr(0, vend);
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}')
      out.emplace_back(value);
    else if (seg != value)
      return false;
    pattern = pend == std::string_view::npos ? std::string_view{} : pattern.substr(pend);
    path = vend == std::string_view::npos ? std::string_view{} : path.substr(vend);
  }
  return path.empty();
}

route_match find_route(std::span<const route> table, std::string_view method,
                       std::string_view path) {
  route_match res;
  std::string allow;
  path_args args;
  for (size_t i = 0; i < table.size(); ++i) {
    if (!match_path(table[i].pattern, path, args))
      continue;
    if (table[i].method == method) {
      res.index = i;
      res.args = std::move(args);
      res.err = caf::error{};
      return res;
    }
    if (res.index == route_match::npos) {
      res.index = i;
      res.args = args;
    }
    if (table[i].method == "HEAD")
      continue;
    if (!allow.empty())
      allow += ", ";
    allow += table[i].method;
  }
  res.err = res.index == route_match::npos ? fail_with(ec::not_found, "no such path")
                                           : method_not_allowed(std::move(allow));
  return res;
}

scope scope_of_unrouted(std::string_view path) {
  if (path.starts_with("/admin/"))
    return scope::admin;
  if (path.starts_with("/client/") || path.starts_with("/refresh/"))
    return scope::client;
  return scope::open;
}

std::string describe(std::span<const route> table) {
  std::string out;
  for (auto& r : table) {
    out += r.method;
    out.append(7 - std::min<size_t>(6, r.method.size()), ' ');
    out += r.pattern;
    out += "  scope=";
    out += to_string(r.need);
    out += " label=";
    out += r.label;
    if (r.check)
      out += " path-checked";
    out += '\n';
  }
  return out;
}

} // namespace wh::http
