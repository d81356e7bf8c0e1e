#pragma once

// The node actor's storage worker: every RocksDB read and write of the
// cluster path (starting a key's actor from its stored state, reading states
// to replicate or hand over, adopting a peer's state) runs here, one at a
// time in arrival order, so the node actor never blocks a scheduler thread.
//
// Protocol (answers go back in request order):
// - `(activate_atom, key)` -> `key_actor`: the key's actor, spawned from
//   the stored state (registry::activate); invalid for an unknown key.
// - `(adopt_atom, vector<key_state>)` -> `vector<uint8_t>`: the
//   registry::adopt_result of each state, in order.
// - `(read_atom, vector<key>, vector<uint64_t> peer_seqs)` ->
//   `vector<key_state>`: the stored states newer than the peer's version of
//   the same index (keys with nothing stored are left out).
// - `(version_atom, vector<key>)` -> `vector<uint64_t>`: the stored version
//   of each key; 0 for unknown keys and for keys whose actor runs here (their
//   owner must see every peer's state to raise its own above it).

#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/atom.hpp"

namespace wh::actors {
class registry;
}

namespace wh::cluster {

using activate_atom = caf::atom_constant<caf::atom("activate")>;
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using version_atom = caf::atom_constant<caf::atom("version")>;

/// Spawns the storage worker of `reg` (detached in production; the node
/// actor links to it).
caf::actor spawn_state_io(caf::actor_system& sys, actors::registry& reg, bool detached);

} // namespace wh::cluster
