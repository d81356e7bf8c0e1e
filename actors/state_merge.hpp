#pragma once

// Merging two copies of one key's stored state by what the fields mean, not
// by which node runs the key or which copy has the higher version: after a
// partition or a pause both sides may hold something the other lacks (a
// refresh token WeChat issued on one side, a token refreshed on the other).
//
// The rules (README, "Cluster: merging by meaning"):
// 1. Tokens and tickets (access_token, ticket/*, verify_ticket; a
//    component's token is its access_token): the one obtained later
//    (obtained_at, then version, expiry, value) replaces the earlier one;
//    an authorizer's token and tickets come from the copy with the later
//    authorization when the copies' authorizations differ.
// 2. Refresh token: the newest by the order WeChat issued it (the time the
//    hub obtained it from api_query_auth or from a refresh reply that
//    returned a new one) always survives, unless a later revocation applies.
// 3. Revocation and (re-)authorization apply by the push's CreateTime: the
//    revocation's time (the status record's `at`) against the authorization's
//    (`authorized_at`, else the refresh token's obtained_at). A revocation
//    that is strictly later wins and drops tokens, tickets and the refresh
//    token; otherwise the authorization stands.
// 4. needs_reauthorization (WeChat rejected a refresh token with 61023)
//    survives only while the merged refresh token is the one it was set for:
//    a newer refresh token from the other side ends it.
// 5. The force budget keeps the later day, then the larger count.
// 6. Every other record (schedule due time, pending authorizations, ...)
//    comes from the copy with the higher version (`local` on a tie), and the
//    merged version is the higher of the two.
//
// The merge is commutative in its by-meaning fields and idempotent, so
// every node that merges the same copies in any order ends with the same
// tokens, refresh token and status.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "actors/messages.hpp"

namespace wh::actors {

/// A key's stored records: field (relative to the key's prefix) -> value.
using state_records = std::map<std::string, std::string>;

/// The records of a replicated state (`fields` as pairs).
state_records records_of(const key_state& s);

/// Whether `field` is merged by one of the rules 1-5 (the others follow the
/// higher version).
bool merged_by_meaning(std::string_view field);

/// Merges two copies of one key's records (see the rules above); `local_seq`
/// and `incoming_seq` are the copies' state versions. The result's `seq`
/// record (when either copy has one) is the higher version.
state_records merge_states(const state_records& local, uint64_t local_seq, const state_records& incoming,
                           uint64_t incoming_seq);

/// Whether `a` and `b` agree on every field merged by meaning.
bool same_meaning(const state_records& a, const state_records& b);

} // namespace wh::actors
