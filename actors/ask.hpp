#pragma once
// Asking actors from threads that are not actors (Asio, storage workers):
// never blocking, never on a scheduler thread's time.

#include <utility>

#include "caf/actor_system.hpp"
#include "caf/blocking_actor.hpp"
#include "caf/error.hpp"
#include "caf/event_based_actor.hpp"

#include "core/error.hpp"

namespace wh::actors {

/// A request's error as the front end reports it: CAF's "no answer in time"
/// (an empty error) becomes ec::timeout.
inline caf::error normalize_ask_error(caf::error err) {
  if (code_of(err) == ec::none)
    return make_detail_error(ec::timeout, "the token actor did not answer in time");
  return err;
}

/// Sends one request from a short-lived bridge actor so that non-actor threads
/// (Asio) never block on the actor system. `T` is the expected reply type.
template <class T, class Handle, class OnOk, class OnErr, class... Ts>
void ask_then(caf::actor_system& sys, Handle target, caf::timespan timeout, OnOk on_ok,
              OnErr on_err, Ts... xs) {
  sys.spawn([target, timeout, on_ok, on_err, xs...](caf::event_based_actor* self) mutable {
    self->request(target, timeout, xs...)
      .then([on_ok](T& x) mutable { on_ok(std::move(x)); },
            [on_err](caf::error& err) mutable { on_err(normalize_ask_error(std::move(err))); });
  });
}

/// Runs `fn` on a thread of its own (blocking actors are always detached),
/// never on a scheduler thread: for work that reads RocksDB.
template <class F>
void off_scheduler(caf::actor_system& sys, F fn) {
  sys.spawn([fn = std::move(fn)](caf::blocking_actor*) mutable { fn(); });
}

} // namespace wh::actors
