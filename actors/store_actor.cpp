#include "actors/store_actor.hpp"

#include "caf/all.hpp"

#include "actors/messages.hpp"
#include "core/log.hpp"

namespace wh::actors {

namespace {

struct store_state {
  static inline const char* name = "wh.store";
  std::shared_ptr<persistence::store> db;
};

caf::behavior store_actor(caf::stateful_actor<store_state>* self,
                          std::shared_ptr<persistence::store> db) {
  self->state.db = std::move(db);
  return {
    [=](put_atom, const store_write& w) -> caf::result<done_atom> {
      std::vector<persistence::batch_entry> batch;
      batch.reserve(w.ops.size());
      for (auto& op : w.ops)
        batch.emplace_back(op.key, op.erase ? std::nullopt : std::optional<std::string>{op.value});
      if (auto err = self->state.db->write(batch)) {
        WH_ERROR("store", "write of " << batch.size() << " key(s) failed: " << self->system().render(err));
        return err;
      }
      return done_atom::value;
    },
  };
}

} // namespace

caf::actor spawn_store_actor(caf::actor_system& sys, std::shared_ptr<persistence::store> db,
                             bool detached) {
  if (detached)
    return sys.spawn<caf::detached>(store_actor, std::move(db));
  return sys.spawn(store_actor, std::move(db));
}

} // namespace wh::actors
