#include "actors/state_merge.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <tuple>

#include "persistence/records.hpp"

namespace wh::actors {

namespace {

constexpr std::string_view status_field = "status";
constexpr std::string_view refresh_field = "refresh_token";
constexpr std::string_view authorized_field = "authorized_at";
constexpr std::string_view force_field = "force";
constexpr std::string_view seq_field = "seq";

/// Rule 1: tokens and tickets, newest obtained wins.
constexpr std::array<std::string_view, 4> credential_fields{"access_token", "ticket/jsapi", "ticket/wx_card",
                                                             "verify_ticket"};

const std::string* find(const state_records& r, std::string_view field) {
  auto i = r.find(std::string{field});
  return i == r.end() ? nullptr : &i->second;
}

std::optional<credential> credential_in(const state_records& r, std::string_view field) {
  auto raw = find(r, field);
  if (!raw)
    return std::nullopt;
  auto x = persistence::decode_credential(*raw);
  if (!x)
    return std::nullopt; // a corrupt record loses to any readable one
  return std::move(*x);
}

/// The order in which credentials were obtained (ties broken so that every
/// node picks the same one).
auto obtained_order(const credential& x) {
  return std::tie(x.obtained_at, x.version, x.expires_at, x.value);
}

/// The raw record of `field` obtained later (`local` on a tie or when
/// neither is readable), nullptr when neither copy has it.
const std::string* later_credential(const state_records& local, const state_records& incoming,
                                    std::string_view field) {
  auto a = find(local, field);
  auto b = find(incoming, field);
  if (!a || !b)
    return a ? a : b;
  auto x = credential_in(local, field);
  auto y = credential_in(incoming, field);
  if (!y)
    return a;
  if (!x)
    return b;
  return obtained_order(*y) > obtained_order(*x) ? b : a;
}

int64_t decimal(const std::string* raw) {
  int64_t x = 0;
  if (raw)
    for (char c : *raw)
      x = c >= '0' && c <= '9' ? x * 10 + (c - '0') : x;
  return x;
}

/// One copy's authorization lifecycle.
struct lifecycle {
  std::string status; // "", "revoked", "needs_reauthorization"
  int64_t status_at = 0;
  std::optional<credential> refresh;
  /// The authorization's time (authorized_at, else the refresh token's).
  int64_t authorized_at = 0;
};

lifecycle lifecycle_of(const state_records& r) {
  lifecycle out;
  if (auto raw = find(r, status_field)) {
    if (auto st = persistence::decode_status(*raw)) {
      out.status = std::move(*st);
      out.status_at = persistence::decode_status_time(*raw);
    }
  }
  out.refresh = credential_in(r, refresh_field);
  if (auto raw = find(r, authorized_field))
    out.authorized_at = decimal(raw);
  else if (out.refresh)
    out.authorized_at = out.refresh->obtained_at;
  return out;
}

void put_or_erase(state_records& out, std::string_view field, const std::string* raw) {
  if (raw)
    out[std::string{field}] = *raw;
  else
    out.erase(std::string{field});
}

/// Rules 2-4 on `out` (which holds rule 1's result).
void merge_lifecycle(state_records& out, const state_records& local, const state_records& incoming) {
  auto l = lifecycle_of(local);
  auto i = lifecycle_of(incoming);
  int64_t revoked_at = 0;
  const std::string* revoked = nullptr;
  for (auto [side, rec] : {std::pair{&l, &local}, std::pair{&i, &incoming}})
    if (side->status == "revoked" && (!revoked || side->status_at > revoked_at)) {
      revoked_at = side->status_at;
      revoked = find(*rec, status_field);
    }
  auto authorized_at = std::max(l.authorized_at, i.authorized_at);
  if (revoked && revoked_at > authorized_at) {
    // Rule 3: the revocation is the later event.
    out[std::string{status_field}] = *revoked;
    for (auto f : {std::string_view{"access_token"}, std::string_view{"ticket/jsapi"},
                   std::string_view{"ticket/wx_card"}, refresh_field, authorized_field})
      out.erase(std::string{f});
    return;
  }
  // Rule 2: the newest refresh token.
  auto rt = later_credential(local, incoming, refresh_field);
  put_or_erase(out, refresh_field, rt);
  auto la = find(local, authorized_field);
  auto ia = find(incoming, authorized_field);
  put_or_erase(out, authorized_field, decimal(ia) > decimal(la) ? ia : (la ? la : ia));
  // Rule 4: needs_reauthorization holds for the refresh token it was set for.
  std::optional<credential> merged_rt;
  if (rt)
    if (auto x = persistence::decode_credential(*rt))
      merged_rt = std::move(*x);
  const std::string* needs = nullptr;
  int64_t needs_at = 0;
  for (auto [side, rec] : {std::pair{&l, &local}, std::pair{&i, &incoming}}) {
    if (side->status != "needs_reauthorization")
      continue;
    bool same = merged_rt ? side->refresh && side->refresh->value == merged_rt->value : !side->refresh;
    if (same && (!needs || side->status_at > needs_at)) {
      needs = find(*rec, status_field);
      needs_at = side->status_at;
    }
  }
  put_or_erase(out, status_field, needs);
}

} // namespace

state_records records_of(const key_state& s) {
  state_records out;
  for (size_t i = 0; i + 1 < s.fields.size(); i += 2)
    out[s.fields[i]] = s.fields[i + 1];
  return out;
}

bool merged_by_meaning(std::string_view field) {
  return std::find(credential_fields.begin(), credential_fields.end(), field) != credential_fields.end()
         || field == refresh_field || field == status_field || field == authorized_field || field == force_field;
}

state_records merge_states(const state_records& local, uint64_t local_seq, const state_records& incoming,
                           uint64_t incoming_seq) {
  state_records out;
  // Rule 6: the rest from the higher version.
  const auto& newer = incoming_seq > local_seq ? incoming : local;
  for (auto& [field, value] : newer)
    if (!merged_by_meaning(field))
      out[field] = value;
  if (find(local, seq_field) || find(incoming, seq_field))
    out[std::string{seq_field}] = std::to_string(std::max(local_seq, incoming_seq));
  else
    out.erase(std::string{seq_field});
  // Rule 1. An authorizer's token and tickets obtained under an older
  // authorization than the other copy's (a re-authorization on one side)
  // are dead at WeChat whatever their times: they come from the copy with
  // the later authorization (times have one-second resolution).
  auto la = lifecycle_of(local);
  auto ia = lifecycle_of(incoming);
  for (auto f : credential_fields) {
    if (f != "verify_ticket" && la.authorized_at > 0 && ia.authorized_at > 0 && la.authorized_at != ia.authorized_at) {
      put_or_erase(out, f, find(la.authorized_at > ia.authorized_at ? local : incoming, f));
      continue;
    }
    put_or_erase(out, f, later_credential(local, incoming, f));
  }
  // Rule 5.
  {
    auto a = find(local, force_field);
    auto b = find(incoming, force_field);
    const std::string* pick = a ? a : b;
    if (a && b) {
      auto x = persistence::decode_force_budget(*a);
      auto y = persistence::decode_force_budget(*b);
      if (!x || (y && std::tie(y->day, y->used, y->last_at) > std::tie(x->day, x->used, x->last_at)))
        pick = b;
    }
    put_or_erase(out, force_field, pick);
  }
  // Rules 2-4.
  merge_lifecycle(out, local, incoming);
  return out;
}

bool same_meaning(const state_records& a, const state_records& b) {
  auto meaning = [](const state_records& r) {
    state_records out;
    for (auto& [f, v] : r)
      if (merged_by_meaning(f))
        out.emplace(f, v);
    return out;
  };
  return meaning(a) == meaning(b);
}

} // namespace wh::actors
