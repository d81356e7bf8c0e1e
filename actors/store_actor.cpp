#include "actors/store_actor.hpp"

#include <vector>

#include "caf/all.hpp"

#include "actors/messages.hpp"
#include "core/log.hpp"

namespace wh::actors {

namespace {

using flush_atom = caf::atom_constant<caf::atom("flush")>;

struct store_state {
  static inline const char* name = "wh.store";
  std::shared_ptr<persistence::store> db;
  /// Group commit: writes that arrived since the last flush, in order, and
  /// the requests waiting for them.
  std::vector<persistence::batch_entry> batch;
  std::vector<caf::typed_response_promise<done_atom>> waiting;
  size_t writes = 0;
};

/// Writes every queued batch in one atomic, durable write (one fsync for all
/// of them) and answers each request.
void flush(caf::stateful_actor<store_state>* self) {
  auto& st = self->state;
  auto batch = std::move(st.batch);
  auto waiting = std::move(st.waiting);
  auto writes = st.writes;
  st.batch = {};
  st.waiting = {};
  st.writes = 0;
  if (auto err = st.db->write(batch)) {
    WH_ERROR("store", "write of " << batch.size() << " key(s) (" << writes
                                  << " request(s)) failed: " << self->system().render(err));
    for (auto& rp : waiting)
      rp.deliver(err);
    return;
  }
  for (auto& rp : waiting)
    rp.deliver(done_atom::value);
}

caf::behavior store_actor(caf::stateful_actor<store_state>* self,
                          std::shared_ptr<persistence::store> db) {
  self->state.db = std::move(db);
  return {
    [=](put_atom, store_write& w) -> caf::result<done_atom> {
      // Queued, then written with everything else already in the mailbox:
      // the flush message lines up behind them (a burst of refreshes costs
      // one fsync, not one each). Order is kept: later ops win.
      auto& st = self->state;
      if (st.waiting.empty())
        self->send(self, flush_atom::value);
      st.batch.reserve(st.batch.size() + w.ops.size());
      for (auto& op : w.ops)
        st.batch.emplace_back(std::move(op.key),
                              op.erase ? std::nullopt : std::optional<std::string>{std::move(op.value)});
      ++st.writes;
      auto rp = self->make_response_promise<done_atom>();
      st.waiting.push_back(rp);
      return rp;
    },
    [=](flush_atom) { flush(self); },
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
