#include "cluster/state_io.hpp"

#include "caf/all.hpp"

#include "actors/registry.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace wh::cluster {

using actors::key_state;

namespace {

struct state_io_state {
  static inline const char* name = "wh.cluster.state_io";
  actors::registry* reg = nullptr;
};

caf::behavior state_io(caf::stateful_actor<state_io_state>* self, actors::registry* reg) {
  self->state.reg = reg;
  return {
    [=](activate_atom, const std::string& key) -> actors::key_actor {
      auto e = self->state.reg->find(key);
      if (!e || e->shadow)
        return {};
      return self->state.reg->activate(e);
    },
    [=](adopt_atom, const std::vector<key_state>& states) {
      std::vector<uint8_t> out;
      out.reserve(states.size());
      for (auto& s : states)
        out.push_back(static_cast<uint8_t>(self->state.reg->adopt(s)));
      return out;
    },
    [=](read_atom, const std::vector<std::string>& keys, const std::vector<uint64_t>& peer_seqs) {
      std::vector<key_state> out;
      for (size_t i = 0; i < keys.size(); ++i) {
        auto e = self->state.reg->find(keys[i]);
        if (!e || e->shadow)
          continue;
        auto s = self->state.reg->read_state(*e);
        if (!s) {
          WH_ERROR("cluster", "cannot read the state of " << keys[i] << ": " << detail_of(s.error()));
          continue;
        }
        auto theirs = i < peer_seqs.size() ? peer_seqs[i] : 0;
        // Nothing stored yet, or the peer holds this very version. A peer
        // with a higher version still gets it: states merge by meaning
        // (actors/state_merge.hpp), and a lower version may carry a newer
        // refresh token or token.
        if (s->seq == 0 || s->seq == theirs)
          continue;
        out.push_back(std::move(*s));
      }
      return out;
    },
    [=](version_atom, const std::vector<std::string>& keys) {
      std::vector<uint64_t> out;
      out.reserve(keys.size());
      for (auto& k : keys) {
        auto e = self->state.reg->find(k);
        // A running key's stored version too: the actor persisted what it
        // serves, and answering 0 made a peer send every running key.
        if (!e || e->shadow) {
          out.push_back(0);
          continue;
        }
        auto s = self->state.reg->read_state(*e);
        out.push_back(s ? s->seq : 0);
      }
      return out;
    },
  };
}

} // namespace

caf::actor spawn_state_io(caf::actor_system& sys, actors::registry& reg, bool detached) {
  if (detached)
    return sys.spawn<caf::detached>(state_io, &reg);
  return sys.spawn(state_io, &reg);
}

} // namespace wh::cluster
