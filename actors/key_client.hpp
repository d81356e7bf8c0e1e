#pragma once
// The way to a key for everything outside the actors (the front end, the
// authorizer operations): asks the key wherever it is served, its actor here
// or by key through the router to its owner, and caches an owner's answers
// in the directory's snapshots.

#include <functional>
#include <string>
#include <tuple>

#include "caf/actor_system.hpp"
#include "caf/expected.hpp"

#include "actors/ask.hpp"
#include "actors/registry.hpp"

namespace wh::actors {

class key_client {
public:
  key_client(caf::actor_system& sys, registry& dir, caf::timespan ask_timeout)
    : sys_(sys), dir_(dir), timeout_(ask_timeout) {}

  /// Asks for the current access token (in a cluster: of the key's owner).
  void ask_token(const key_entry& e, credential_callback cb);

  /// Asks for a ticket ("jsapi" / "wx_card").
  void ask_ticket(const key_entry& e, std::string type, credential_callback cb);

  /// Reports that `token` failed for a client.
  void report_stale(const key_entry& e, std::string token, credential_callback cb);

  /// Forces a refresh (operators only; spends the force budget).
  void force_refresh(const key_entry& e, credential_callback cb);

  /// The key's state as JSON (no secret values), for GET /admin/state.
  void describe(const key_entry& e, std::function<void(caf::expected<std::string>)> cb);

  /// Asks `e`'s key `(atoms..., xs...)` wherever it is served (the keyed form
  /// `(atoms..., key, xs...)` to the router); `T` is the answer.
  template <class T, class OnOk, class OnErr, class... As, class... Rs>
  void ask(const key_entry& e, OnOk on_ok, OnErr on_err, std::tuple<As...>, Rs... xs) {
    auto r = dir_.route_of(e);
    if (r.local)
      return ask_then<T>(sys_, r.local, timeout_, on_ok, on_err, As{}..., xs...);
    // The keyed form: the key follows the leading atoms (key_protocol.hpp).
    if (r.router)
      return ask_then<T>(sys_, r.router, timeout_, on_ok, on_err, As{}..., e.key, xs...);
    on_err(no_route(e));
  }

  /// Deadline of one ask.
  caf::timespan timeout() const { return timeout_; }

private:
  static caf::error no_route(const key_entry& e);

  caf::actor_system& sys_;
  registry& dir_;
  caf::timespan timeout_;
};

} // namespace wh::actors
