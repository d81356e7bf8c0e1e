// The hot path of the front end: cached GETs of tokens and tickets, answered
// on the I/O thread from the published snapshots, with no allocation, no
// actor hop and no lock beyond the directory shard's read lock. A version's
// complete response is rendered once per I/O thread while it stays hot.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "actors/registry.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "http/api.hpp"
#include "http/key_view.hpp"

namespace wh::http {

namespace {

/// The parameters the token and ticket routes read, as sent. `plain` is
/// false when the query needs decoding or holds anything but unreserved
/// characters, `=` and `&`: such requests take the regular path.
struct raw_query {
  std::string_view appid;
  std::string_view authorizer;
  std::string_view type;
  bool plain = true;
};

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
         || c == '_' || c == '.' || c == '~';
}

/// Splits `query` as the regular path's parser does (on `&`, then on the
/// first `=`); the first occurrence of a parameter counts.
raw_query scan_query(std::string_view query) {
  raw_query out;
  for (char c : query)
    if (!unreserved(c) && c != '=' && c != '&') {
      out.plain = false;
      return out;
    }
  bool have_appid = false, have_authorizer = false, have_type = false;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = part.find('=');
    auto key = part.substr(0, eq);
    auto value = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
    if (key == "appid" && !have_appid) {
      out.appid = value;
      have_appid = true;
    } else if (key == "authorizer_appid" && !have_authorizer) {
      out.authorizer = value;
      have_authorizer = true;
    } else if (key == "type" && !have_type) {
      out.type = value;
      have_type = true;
    }
  }
  return out;
}

enum class hot_route { token, ticket, component_token };

/// The directory key of appid (and authorizer), built without allocating
/// once the buffer has grown.
std::string_view key_of(std::string_view appid, std::string_view authorizer, std::string& buf) {
  if (authorizer.empty())
    return appid;
  buf.assign(appid);
  buf += '/';
  buf += authorizer;
  return buf;
}

/// The complete responses of the versions this I/O thread served last, so
/// that serving a hot token again is a lookup and one copy. Direct-mapped by
/// the published version's address; each entry holds that version, so an
/// address cannot be reused while it is cached. Bounded (a million keys
/// would otherwise carry a million rendered answers) and per thread (no lock).
class rendered_cache {
public:
  template <class Render>
  void append(const std::shared_ptr<const actors::credential>& x, std::string& out, Render&& render) {
    auto& e = slots_[(reinterpret_cast<uintptr_t>(x.get()) >> 4) % slots_.size()];
    if (e.version != x) {
      e.bytes.clear();
      render_json_ok_raw(e.bytes, render);
      e.version = x;
    }
    out += e.bytes;
  }

private:
  struct entry {
    std::shared_ptr<const actors::credential> version;
    std::string bytes;
  };
  std::array<entry, 64> slots_;
};

} // namespace

bool hub_api::serve_cached(const cached_get_request& req, std::string& out) {
  auto start = std::chrono::steady_clock::now();
  auto qmark = req.target.find('?');
  if (qmark == std::string_view::npos)
    return false;
  auto path = req.target.substr(0, qmark);
  hot_route which;
  if (path == "/client/access_token")
    which = hot_route::token;
  else if (path == "/client/ticket")
    which = hot_route::ticket;
  else if (path == "/client/component_access_token")
    which = hot_route::component_token;
  else
    return false;
  auto q = scan_query(req.target.substr(qmark + 1));
  if (!q.plain || !valid_appid(q.appid) || (!q.authorizer.empty() && !valid_appid(q.authorizer)))
    return false;
  if (which == hot_route::component_token && !q.authorizer.empty())
    q.authorizer = {}; // the route reads appid only
  if (which == hot_route::ticket && q.type != "jsapi" && q.type != "wx_card")
    return false;
  // A client key, when the hub has clients; networks, path keys and every
  // refusal take the regular path (which logs and renders them).
  std::shared_ptr<const client_config> who;
  if (auth_.enabled()) {
    if (req.authorization.empty())
      return false;
    who = auth_.authenticate(req.authorization);
    if (!who || !authenticator::allows(*who, q.appid, q.authorizer))
      return false;
  }
  thread_local std::string key_buf;
  auto entry = reg_.find(key_of(q.appid, q.authorizer, key_buf));
  if (!entry)
    return false;
  bool component = keys::is_component(*entry);
  if (which == hot_route::component_token ? !component
                                          : which == hot_route::token && component)
    return false;
  if (!q.authorizer.empty() && keys::is_revoked(*entry))
    return false;
  auto slot = which == hot_route::ticket ? entry->ticket(q.type) : &entry->token;
  auto x = slot->load();
  if (!x || clock_.now() >= x->expires_at || reads() != cluster_port::reads_mode::serve)
    return false;
  thread_local rendered_cache rendered;
  if (which == hot_route::ticket)
    rendered.append(x, out, [&](std::string& o) { render_ticket(*x, q.type, o); });
  else
    rendered.append(x, out, [&](std::string& o) { render_token(*x, o); });
  static const uint8_t routes_of[] = {index_of("/client/access_token"), index_of("/client/ticket"),
                                      index_of("/client/component_access_token")};
  auto r = routes_of[static_cast<int>(which)];
  counter(r, 200).fetch_add(1, std::memory_order_relaxed);
  latency_[r]->observe(std::chrono::steady_clock::now() - start);
  return true;
}

} // namespace wh::http
