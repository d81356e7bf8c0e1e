#define CAF_SUITE actors_state_merge

// The merge of two copies of a key's stored state (actors/state_merge.hpp):
// one test per rule, each checked in both argument orders (the merge must
// not depend on which node runs the key or holds the higher version).

#include "caf/test/dsl.hpp"

#include "actors/state_merge.hpp"
#include "persistence/records.hpp"

using namespace wh;
using namespace wh::actors;

namespace {

constexpr int64_t t0 = 1'800'000'000;

std::string cred(const std::string& value, int64_t obtained, int64_t expires, uint64_t version = 1) {
  return persistence::encode(credential{value, obtained, expires, version});
}

std::string rt(const std::string& value, int64_t obtained, uint64_t version = 1) {
  return cred(value, obtained, std::numeric_limits<int64_t>::max(), version);
}

std::string value_of(const state_records& r, const std::string& field) {
  auto i = r.find(field);
  if (i == r.end())
    return "<none>";
  auto x = persistence::decode_credential(i->second);
  return x ? x->value : "<corrupt>";
}

std::string status_of(const state_records& r) {
  auto i = r.find("status");
  if (i == r.end())
    return "active";
  auto x = persistence::decode_status(i->second);
  return x ? *x : "<corrupt>";
}

/// Merges both ways round and checks that the by-meaning fields agree.
state_records merged(const state_records& a, uint64_t sa, const state_records& b, uint64_t sb) {
  auto x = merge_states(a, sa, b, sb);
  auto y = merge_states(b, sb, a, sa);
  CAF_CHECK(same_meaning(x, y));
  // Idempotent: merging the result with either input changes nothing.
  CAF_CHECK(same_meaning(merge_states(x, std::max(sa, sb), a, sa), x));
  CAF_CHECK(same_meaning(merge_states(b, sb, x, std::max(sa, sb)), x));
  return x;
}

} // namespace

CAF_TEST(the newest refresh token survives whichever copy has the higher version) {
  // The running owner's copy (higher version, refreshed its access token
  // later) against a copy with a refresh token WeChat issued afterwards.
  state_records owner{{"refresh_token", rt("RT1", t0 - 3600)},
                      {"access_token", cred("A-owner", t0 + 50, t0 + 7250)},
                      {"seq", "900"}};
  state_records other{{"refresh_token", rt("RT2", t0 + 10)},
                      {"authorized_at", std::to_string(t0 + 9)},
                      {"access_token", cred("A-other", t0 + 10, t0 + 7210)},
                      {"seq", "500"}};
  auto m = merged(owner, 900, other, 500);
  CAF_CHECK_EQUAL(value_of(m, "refresh_token"), "RT2");
  CAF_CHECK_EQUAL(m.at("authorized_at"), std::to_string(t0 + 9));
  // The owner's later access token was obtained under the older
  // authorization: the re-authorized copy's token comes with RT2.
  CAF_CHECK_EQUAL(value_of(m, "access_token"), "A-other");
  CAF_CHECK_EQUAL(m.at("seq"), "900");
  CAF_CHECK_EQUAL(status_of(m), "active");
}

CAF_TEST(a refresh token returned by a refresh reply is newer than the one of the authorization) {
  // WeChat rotated the refresh token in a refresh reply on one side.
  state_records a{{"refresh_token", rt("RT1", t0, 1)}, {"authorized_at", std::to_string(t0)}};
  state_records b{{"refresh_token", rt("RT1b", t0 + 7000, 2)}, {"authorized_at", std::to_string(t0)}};
  CAF_CHECK_EQUAL(value_of(merged(a, 9, b, 3), "refresh_token"), "RT1b");
  // Ties on the issue time are broken the same way on every node.
  state_records c{{"refresh_token", rt("RTx", t0, 1)}};
  state_records d{{"refresh_token", rt("RTy", t0, 1)}};
  CAF_CHECK_EQUAL(value_of(merge_states(c, 1, d, 2), "refresh_token"),
                  value_of(merge_states(d, 2, c, 1), "refresh_token"));
}

CAF_TEST(tokens and tickets obtained later replace earlier ones field by field) {
  state_records a{{"access_token", cred("A1", t0, t0 + 7200, 1)},
                  {"ticket/jsapi", cred("J2", t0 + 100, t0 + 7300, 2)},
                  {"verify_ticket", cred("V1", t0, t0 + 43200, 1)},
                  {"seq", "20"}};
  state_records b{{"access_token", cred("A2", t0 + 60, t0 + 7260, 2)},
                  {"ticket/jsapi", cred("J1", t0, t0 + 7200, 1)},
                  {"ticket/wx_card", cred("W1", t0, t0 + 7200, 1)},
                  {"verify_ticket", cred("V2", t0 + 600, t0 + 43800, 2)},
                  {"seq", "10"}};
  auto m = merged(a, 20, b, 10);
  CAF_CHECK_EQUAL(value_of(m, "access_token"), "A2");
  CAF_CHECK_EQUAL(value_of(m, "ticket/jsapi"), "J2");
  CAF_CHECK_EQUAL(value_of(m, "ticket/wx_card"), "W1");
  CAF_CHECK_EQUAL(value_of(m, "verify_ticket"), "V2");
  // Same obtained time: the higher version (the replacement) wins.
  state_records c{{"access_token", cred("OLD", t0, t0 + 7200, 3)}};
  state_records d{{"access_token", cred("NEW", t0, t0 + 7200, 4)}};
  CAF_CHECK_EQUAL(value_of(merged(c, 5, d, 4), "access_token"), "NEW");
  // A corrupt record loses to a readable one.
  state_records e{{"access_token", "garbage"}};
  CAF_CHECK_EQUAL(value_of(merged(e, 9, d, 4), "access_token"), "NEW");
}

CAF_TEST(the token of the later authorization wins even when obtained in the same second) {
  // One side re-authorized (a new refresh token); the other obtained its
  // token under the older authorization, in the same second and with a
  // higher version (versions restart after a revocation).
  state_records older{{"refresh_token", rt("RT2", t0 - 10)},
                      {"authorized_at", std::to_string(t0 - 11)},
                      {"access_token", cred("A-old", t0, t0 + 7200, 2)},
                      {"ticket/jsapi", cred("J-old", t0, t0 + 7200, 2)},
                      {"seq", "60"}};
  state_records newer{{"refresh_token", rt("RT3", t0)},
                      {"authorized_at", std::to_string(t0 - 1)},
                      {"access_token", cred("A-new", t0, t0 + 7200, 1)},
                      {"seq", "50"}};
  auto m = merged(older, 60, newer, 50);
  CAF_CHECK_EQUAL(value_of(m, "refresh_token"), "RT3");
  CAF_CHECK_EQUAL(value_of(m, "access_token"), "A-new");
  // The older authorization's ticket is not kept either.
  CAF_CHECK_EQUAL(value_of(m, "ticket/jsapi"), "<none>");
}

CAF_TEST(a revocation applies when its push is later than the authorization) {
  state_records revoked{{"status", persistence::encode_status("revoked", t0 + 100)}, {"seq", "30"}};
  state_records authorized{{"refresh_token", rt("RT1", t0 + 1)},
                           {"authorized_at", std::to_string(t0)},
                           {"access_token", cred("A1", t0 + 1, t0 + 7201)},
                           {"ticket/jsapi", cred("J1", t0 + 2, t0 + 7202)},
                           {"seq", "40"}};
  auto m = merged(revoked, 30, authorized, 40);
  CAF_CHECK_EQUAL(status_of(m), "revoked");
  CAF_CHECK_EQUAL(value_of(m, "refresh_token"), "<none>");
  CAF_CHECK_EQUAL(value_of(m, "access_token"), "<none>");
  CAF_CHECK_EQUAL(value_of(m, "ticket/jsapi"), "<none>");
  CAF_CHECK(m.count("authorized_at") == 0);
}

CAF_TEST(a re-authorization applies when its push is later than the revocation) {
  // The hub obtained the refresh token a little before the push's
  // CreateTime by its own clock: CreateTime decides, not the receipt time.
  state_records revoked{{"status", persistence::encode_status("revoked", t0 + 100)}, {"seq", "50"}};
  state_records reauthorized{{"refresh_token", rt("RT2", t0 + 99)},
                             {"authorized_at", std::to_string(t0 + 101)},
                             {"access_token", cred("A2", t0 + 99, t0 + 7299)},
                             {"seq", "40"}};
  auto m = merged(revoked, 50, reauthorized, 40);
  CAF_CHECK_EQUAL(status_of(m), "active");
  CAF_CHECK_EQUAL(value_of(m, "refresh_token"), "RT2");
  CAF_CHECK_EQUAL(value_of(m, "access_token"), "A2");
  // Without authorized_at (state written before it existed) the refresh
  // token's obtained time stands for the authorization.
  state_records legacy{{"refresh_token", rt("RT3", t0 + 200)}, {"seq", "1"}};
  CAF_CHECK_EQUAL(status_of(merged(revoked, 50, legacy, 1)), "active");
  state_records legacy_old{{"refresh_token", rt("RT0", t0 + 50)}, {"seq", "99"}};
  CAF_CHECK_EQUAL(status_of(merged(revoked, 50, legacy_old, 99)), "revoked");
  // Two revocations: the later one's record.
  state_records revoked2{{"status", persistence::encode_status("revoked", t0 + 300)}};
  auto r = merged(revoked, 50, revoked2, 10);
  CAF_CHECK_EQUAL(persistence::decode_status_time(r.at("status")), t0 + 300);
}

CAF_TEST(needs_reauthorization does not survive a newer refresh token) {
  // One side got 61023 for RT1; the other side holds RT2, issued later.
  state_records rejected{{"refresh_token", rt("RT1", t0)},
                         {"status", persistence::encode_status("needs_reauthorization", t0 + 500)},
                         {"seq", "80"}};
  state_records fresh{{"refresh_token", rt("RT2", t0 + 300)}, {"authorized_at", std::to_string(t0 + 299)},
                      {"seq", "70"}};
  auto m = merged(rejected, 80, fresh, 70);
  CAF_CHECK_EQUAL(status_of(m), "active");
  CAF_CHECK_EQUAL(value_of(m, "refresh_token"), "RT2");
  // It survives against a copy that holds the rejected token itself ...
  state_records same{{"refresh_token", rt("RT1", t0)}, {"seq", "90"}};
  auto s = merged(rejected, 80, same, 90);
  CAF_CHECK_EQUAL(status_of(s), "needs_reauthorization");
  CAF_CHECK_EQUAL(value_of(s, "refresh_token"), "RT1");
  // ... and against one that knows no refresh token at all.
  state_records none{{"access_token", cred("A0", t0 - 10, t0 + 7190)}, {"seq", "95"}};
  CAF_CHECK_EQUAL(status_of(merged(rejected, 80, none, 95)), "needs_reauthorization");
}

CAF_TEST(the force budget keeps the later day and the larger count) {
  auto budget = [](int64_t day, uint32_t used) {
    return persistence::encode(persistence::force_budget_record{day, used, t0});
  };
  state_records a{{"force", budget(100, 3)}, {"seq", "5"}};
  state_records b{{"force", budget(100, 5)}, {"seq", "4"}};
  state_records c{{"force", budget(101, 1)}, {"seq", "3"}};
  auto used = [](const state_records& r) { return persistence::decode_force_budget(r.at("force"))->used; };
  CAF_CHECK_EQUAL(used(merged(a, 5, b, 4)), 5u);
  CAF_CHECK_EQUAL(used(merged(b, 4, c, 3)), 1u);
}

CAF_TEST(other records follow the higher version and the version is the higher one) {
  state_records a{{"due", "111"}, {"pending_auth/wxa1", "{}"}, {"seq", "7"}};
  state_records b{{"due", "222"}, {"seq", "9"}};
  auto m = merge_states(a, 7, b, 9);
  CAF_CHECK_EQUAL(m.at("due"), "222");
  CAF_CHECK(m.count("pending_auth/wxa1") == 0);
  CAF_CHECK_EQUAL(m.at("seq"), "9");
  auto n = merge_states(b, 9, a, 7);
  CAF_CHECK_EQUAL(n.at("due"), "222");
  CAF_CHECK_EQUAL(n.at("seq"), "9");
  // Equal versions keep the local copy's.
  CAF_CHECK_EQUAL(merge_states(a, 9, b, 9).at("due"), "111");
  // Two identical copies merge to themselves.
  CAF_CHECK(merge_states(a, 7, a, 7) == a);
}
