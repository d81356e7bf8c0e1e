#include "actors/key_client.hpp"

#include "caf/all.hpp"

#include "core/error.hpp"

namespace wh::actors {

namespace {

/// A credential answer: cached where the key's actor does not publish it.
template <class Remember>
auto credential_reply(Remember remember, credential_callback cb) {
  return std::pair{[remember, cb](credential x) {
                     remember(x);
                     cb(std::move(x));
                   },
                   [cb](caf::error err) { cb(std::move(err)); }};
}

} // namespace

caf::error key_client::no_route(const key_entry& e) {
  return make_detail_error(ec::cluster_unavailable, e.key + " has no running owner yet; retry");
}

void key_client::ask_token(const key_entry& e, credential_callback cb) {
  auto [ok, fail] = credential_reply([this, key = e.key](const credential& x) { dir_.remember(key, "token", x); }, cb);
  ask<credential>(e, ok, fail, std::tuple{get_atom::value, token_atom::value});
}

void key_client::ask_ticket(const key_entry& e, std::string type, credential_callback cb) {
  auto [ok, fail] = credential_reply([this, key = e.key, type](const credential& x) { dir_.remember(key, type, x); }, cb);
  ask<credential>(e, ok, fail, std::tuple{get_atom::value, ticket_atom::value}, std::move(type));
}

void key_client::report_stale(const key_entry& e, std::string token, credential_callback cb) {
  auto [ok, fail] = credential_reply([this, key = e.key](const credential& x) { dir_.remember(key, "token", x); }, cb);
  ask<credential>(e, ok, fail, std::tuple{stale_atom::value}, std::move(token));
}

void key_client::force_refresh(const key_entry& e, credential_callback cb) {
  auto [ok, fail] = credential_reply([this, key = e.key](const credential& x) { dir_.remember(key, "token", x); }, cb);
  ask<credential>(e, ok, fail, std::tuple{refresh_atom::value});
}

void key_client::describe(const key_entry& e, std::function<void(caf::expected<std::string>)> cb) {
  ask<std::string>(
    e, [cb](std::string x) { cb(std::move(x)); }, [cb](caf::error err) { cb(std::move(err)); },
    std::tuple{state_atom::value});
}

} // namespace wh::actors
