// A running key actor merges another node's copy of its state (two nodes
// ran the key apart: a partition, a pause) by meaning (state_merge.hpp),
// applies what the merge changes, and persists it so that it replicates.

#include <string>

#include "actors/app_state.hpp"
#include "actors/state_merge.hpp"
#include "core/log.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"

namespace wh::actors::detail {

namespace {

const char* status_name(authorizer_status x) {
  return x == authorizer_status::revoked ? "revoked" : "needs_reauthorization";
}

/// The actor's state as the records it persisted.
state_records own_records(self_ptr self) {
  auto& st = self->state;
  state_records r;
  auto put = [&r](const char* field, const std::optional<credential>& x) {
    if (x && !x->value.empty())
      r[field] = persistence::encode(*x);
  };
  put("access_token", st.token.value);
  put("ticket/jsapi", st.jsapi.value);
  put("ticket/wx_card", st.wx_card.value);
  put("refresh_token", st.refresh_token);
  put("verify_ticket", st.verify_ticket);
  if (st.status != authorizer_status::active)
    r["status"] = persistence::encode_status(status_name(st.status), st.status_at);
  if (st.authorized_at > 0)
    r["authorized_at"] = std::to_string(st.authorized_at);
  if (st.budget.day != 0 || st.budget.used != 0 || st.budget.last_at != 0)
    r["force"] = persistence::encode(st.budget);
  return r;
}

const std::string* find(const state_records& r, const std::string& field) {
  auto i = r.find(field);
  return i == r.end() ? nullptr : &i->second;
}

bool differs(const state_records& a, const state_records& b, const std::string& field) {
  auto x = find(a, field);
  auto y = find(b, field);
  return (x == nullptr) != (y == nullptr) || (x && *x != *y);
}

} // namespace

void merge_in(self_ptr self, const key_state& incoming) {
  auto& st = self->state;
  auto mine = own_records(self);
  auto theirs = records_of(incoming);
  auto merged = merge_states(mine, st.p.seq, theirs, incoming.seq);
  store_write w;
  std::string changed;
  auto record = [&](const std::string& field) {
    auto key = prefix(self) + field;
    if (auto x = find(merged, field))
      w.put(key, *x);
    else
      w.ops.push_back(store_write::op{key, "", true});
    changed += (changed.empty() ? "" : ",") + field;
  };
  if (differs(mine, merged, "status")) {
    record("status");
    auto raw = find(merged, "status");
    auto name = raw ? persistence::decode_status(*raw) : caf::expected<std::string>{std::string{}};
    auto at = raw ? persistence::decode_status_time(*raw) : 0;
    if (name && *name == "revoked") {
      for (auto f : {"access_token", "ticket/jsapi", "ticket/wx_card", "refresh_token", "authorized_at"})
        if (find(mine, f))
          record(f);
      apply_revoked(self, at);
    } else if (name && *name == "needs_reauthorization") {
      set_status(self, authorizer_status::needs_reauthorization, at);
      st.token.value.reset();
      st.token.published->clear();
    } else {
      set_status(self, authorizer_status::active, 0);
      if (code_of(st.blocked_error) == ec::needs_reauthorization)
        st.blocked_until = 0;
    }
  }
  if (st.status != authorizer_status::revoked) {
    if (differs(mine, merged, "refresh_token")) {
      if (auto raw = find(merged, "refresh_token"))
        if (auto x = persistence::decode_credential(*raw)) {
          st.refresh_token = *x;
          st.recovery_tried.clear();
          record("refresh_token");
        }
    }
    if (differs(mine, merged, "authorized_at")) {
      auto raw = find(merged, "authorized_at");
      int64_t x = 0;
      if (raw)
        for (char c : *raw)
          x = c >= '0' && c <= '9' ? x * 10 + (c - '0') : x;
      st.authorized_at = x;
      record("authorized_at");
    }
  }
  if (differs(mine, merged, "verify_ticket"))
    if (auto raw = find(merged, "verify_ticket"))
      if (auto x = persistence::decode_credential(*raw)) {
        st.verify_ticket = *x;
        st.p.entry->verify_ticket_at.store(x->obtained_at);
        record("verify_ticket");
      }
  if (differs(mine, merged, "force"))
    if (auto raw = find(merged, "force"))
      if (auto x = persistence::decode_force_budget(*raw)) {
        st.budget = *x;
        record("force");
      }
  // Tokens and tickets obtained later: served only while the authorizer is
  // active, never one WeChat already rejected here, never an expired one.
  auto t = now(self);
  for (auto slot : {&st.token, &st.jsapi, &st.wx_card}) {
    auto field = slot == &st.token ? std::string{"access_token"} : "ticket/" + slot->type;
    if (st.status != authorizer_status::active || !differs(mine, merged, field))
      continue;
    auto raw = find(merged, field);
    if (!raw)
      continue;
    auto x = persistence::decode_credential(*raw);
    if (!x || x->value == slot->dead || !x->valid_at(t))
      continue;
    slot->value = *x;
    slot->last_version = std::max(slot->last_version, x->version);
    slot->published->publish(*x);
    schedule(self, *slot, refresh_time(self, *x, false));
    deliver_all(slot->waiters, *x);
    record(field);
  }
  // The other copy lacks something this one has: replicate it.
  bool behind = !same_meaning(merged, theirs);
  if (changed.empty() && !behind)
    return;
  if (!changed.empty())
    WH_INFO_F("cluster", st.key << ": merged another node's copy; took " << changed,
              {"key", st.key});
  st.p.seq = std::max(st.p.seq, incoming.seq);
  persist(self, std::move(w), [](caf::error) {});
}

} // namespace wh::actors::detail
