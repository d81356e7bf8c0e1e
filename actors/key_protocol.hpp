#pragma once

// The key protocol, declared once: what a key's actor understands
// (`key_actor`), and the keyed form of its requests that the node's router
// takes (`key_router_actor`, derived from the same declaration). Every
// handle that reaches a key is typed, so a message of the wrong arity or
// type is a compile error, not an `unexpected_message` at run time.

#include <cstdint>
#include <string>
#include <type_traits>

#include "caf/actor_addr.hpp"
#include "caf/detail/type_list.hpp"
#include "caf/replies_to.hpp"
#include "caf/typed_actor.hpp"

#include "actors/messages.hpp"

namespace wh::actors {

/// The result of api_query_auth, persisted before it is returned.
struct authorization {
  std::string authorizer_appid;
  credential access_token;
  credential refresh_token;
  /// The authorization push's CreateTime (0: not from a push): when the
  /// authorization happened, for merges (see actors/state_merge.hpp).
  int64_t create_time = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, authorization& x) {
  return f(caf::meta::type_name("authorization"), x.authorizer_appid, x.access_token,
           x.refresh_token, x.create_time);
}

// -- the key's interfaces ------------------------------------------------------

/// What every key serves (answers are `credential` or a `caf::error` of `wh::ec`).
/// See spawn_app_actor (app_actor.hpp) for the meaning of each message.
using credential_api = caf::typed_actor<
  caf::replies_to<get_atom, token_atom>::with<credential>,
  caf::replies_to<get_atom, ticket_atom, std::string>::with<credential>,
  caf::replies_to<stale_atom, std::string>::with<credential>,
  caf::replies_to<stale_atom, force_atom, std::string>::with<credential>,
  caf::replies_to<refresh_atom>::with<credential>,
  caf::reacts_to<quota_atom>,
  caf::replies_to<state_atom>::with<std::string>,
  caf::reacts_to<wake_atom>>;

/// A component's own requests (other kinds refuse them with ec::invalid_request).
using component_api = caf::typed_actor<
  caf::replies_to<vticket_atom, std::string>::with<done_atom>,
  caf::replies_to<auth_atom, std::string>::with<authorization>,
  caf::replies_to<auth_atom, std::string, std::string, int64_t>::with<authorization>,
  caf::replies_to<import_atom, std::string>::with<credential>>;

/// An authorizer's own requests (other kinds refuse them with ec::invalid_request).
using authorizer_api = caf::typed_actor<
  caf::replies_to<auth_atom, authorization>::with<done_atom>,
  caf::replies_to<auth_atom, credential>::with<done_atom>,
  caf::replies_to<revoke_atom>::with<done_atom>,
  caf::replies_to<revoke_atom, int64_t>::with<done_atom>>;

/// Every request a key serves: what the router delivers by key.
using key_requests = credential_api::extend_with<component_api>::extend_with<authorizer_api>;

/// What only the key's router and node send it: the stop handshakes, its
/// timer steps and the version sync of a cluster.
using key_control = caf::typed_actor<
  caf::replies_to<stop_atom>::with<done_atom>,
  caf::replies_to<stop_atom, idle_atom>::with<bool, int64_t, int64_t>,
  caf::reacts_to<tick_atom, uint8_t, uint64_t>,
  caf::reacts_to<sync_atom, key_state>>;

/// A key's actor.
using key_actor = key_requests::extend_with<key_control>;

/// What an authorizer asks its component (the component's actor, or a
/// forwarder to the component's owner in a cluster).
using key_source = caf::typed_actor<
  caf::replies_to<get_atom, token_atom>::with<credential>,
  caf::replies_to<stale_atom, force_atom, std::string>::with<credential>,
  caf::replies_to<import_atom, std::string>::with<credential>>;

// -- the keyed form ------------------------------------------------------------

namespace protocol {

/// Splits a message's inputs into its leading atoms and the rest.
template <class Atoms, class Rest>
struct split_atoms;

template <class... As>
struct split_atoms<caf::detail::type_list<As...>, caf::detail::type_list<>> {
  using atoms = caf::detail::type_list<As...>;
  using rest = caf::detail::type_list<>;
};

template <class... As, class X, class... Xs>
struct split_atoms<caf::detail::type_list<As...>, caf::detail::type_list<X, Xs...>> {
  using next = std::conditional_t<caf::is_atom_constant<X>::value,
                                  split_atoms<caf::detail::type_list<As..., X>, caf::detail::type_list<Xs...>>,
                                  split_atoms<caf::detail::type_list<As...>, caf::detail::type_list<>>>;
  using atoms = typename next::atoms;
  using rest = std::conditional_t<caf::is_atom_constant<X>::value, typename next::rest,
                                  caf::detail::type_list<X, Xs...>>;
};

template <class Atoms, class Rest, class Out>
struct with_key;

template <class... As, class... Rs, class Out>
struct with_key<caf::detail::type_list<As...>, caf::detail::type_list<Rs...>, Out> {
  using type = caf::typed_mpi<caf::detail::type_list<As..., std::string, Rs...>, Out>;
};

/// A message with the key inserted after its leading atoms:
/// `(get_atom, ticket_atom, type)` -> `(get_atom, ticket_atom, key, type)`.
template <class Sig>
struct keyed_sig;

template <class... Is, class Out>
struct keyed_sig<caf::typed_mpi<caf::detail::type_list<Is...>, Out>> {
  using parts = split_atoms<caf::detail::type_list<>, caf::detail::type_list<Is...>>;
  using type = typename with_key<typename parts::atoms, typename parts::rest, Out>::type;
};

template <class Handle>
struct keyed;

template <class... Sigs>
struct keyed<caf::typed_actor<Sigs...>> {
  using type = caf::typed_actor<typename keyed_sig<Sigs>::type...>;
};

} // namespace protocol

/// The keyed form of an interface: each message carries the key it is for.
template <class Handle>
using keyed_t = typename protocol::keyed<Handle>::type;

static_assert(std::is_same_v<protocol::keyed_sig<caf::replies_to<get_atom, ticket_atom, std::string>::with<credential>>::type,
                             caf::replies_to<get_atom, ticket_atom, std::string, std::string>::with<credential>>);
static_assert(std::is_same_v<protocol::keyed_sig<caf::reacts_to<wake_atom>>::type,
                             caf::reacts_to<wake_atom, std::string>>);

/// The node's key router: every key request by key, plus
/// - `(ready_atom)`: every stored key is loaded; the refresh schedule runs;
/// - `(idle_atom, key)`: the key's actor is idle and offers to stop;
/// - `(tick_atom, key, actor id, timer, generation)`: a timer step of the
///   key's actor, delivered only while that same actor runs (its id, not its
///   address: an address is a weak reference, which keeps a stopped actor's
///   memory block allocated until the step fires);
/// - `(tick_atom)`: the schedule's periodic check.
using key_router_actor = keyed_t<key_requests>::extend<
  caf::reacts_to<ready_atom>, caf::reacts_to<idle_atom, std::string>,
  caf::reacts_to<tick_atom, std::string, caf::actor_id, uint8_t, uint64_t>, caf::reacts_to<tick_atom>>;

} // namespace wh::actors
