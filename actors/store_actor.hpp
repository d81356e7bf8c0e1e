#pragma once

#include <memory>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

#include "persistence/store.hpp"

namespace wh::actors {

/// Spawns the actor that owns all writes to `db`.
/// Group commit: batches that are in the mailbox together are written as one
/// atomic, fsync'ed write (a failure fails each of them).
/// Protocol: `(put_atom, store_write)` -> `done_atom`
/// or an `ec::storage_failure` error, after the batch is durable.
/// In production it runs detached: RocksDB's fsync never blocks a scheduler
/// thread that other actors need.
caf::actor spawn_store_actor(caf::actor_system& sys, std::shared_ptr<persistence::store> db,
                             bool detached = true);

} // namespace wh::actors
