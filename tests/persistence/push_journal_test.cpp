#define CAF_SUITE persistence_push_journal

#include "caf/test/dsl.hpp"

#include "core/error.hpp"
#include "persistence/push_journal.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::persistence;
using verdict = push_journal::verdict;

namespace {

struct fixture {
  test::temp_dir dir;
  std::shared_ptr<store> db;
  int64_t now = 1'800'000'000;

  fixture() { reopen(); }

  void reopen() {
    db.reset();
    auto res = open_rocksdb(dir.path());
    if (!res)
      CAF_FAIL("open_rocksdb failed: " << detail_of(res.error()));
    db = std::move(*res);
  }

  verdict admit(push_journal& j, const std::string& sig, const std::string& subject, int64_t created) {
    auto res = j.admit("wxcomp", sig, subject, created, now);
    if (!res)
      CAF_FAIL("admit failed: " << detail_of(res.error()));
    return *res;
  }

  /// Admits and, when admitted, applies (as the receiver does on success).
  verdict apply(push_journal& j, const std::string& sig, const std::string& subject, int64_t created) {
    auto v = admit(j, sig, subject, created);
    if (v == verdict::apply)
      if (auto err = j.applied("wxcomp", sig, subject, created, now))
        CAF_FAIL("applied failed: " << detail_of(err));
    return v;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(push_journal_tests, fixture)

CAF_TEST(a push is a duplicate after a restart for the whole window) {
  {
    push_journal j{db, 300};
    CAF_CHECK(admit(j, "sig1", "verify_ticket", now) == verdict::apply);
    // In flight: a concurrent copy is a duplicate.
    CAF_CHECK(admit(j, "sig1", "verify_ticket", now) == verdict::duplicate);
    CAF_CHECK(!j.applied("wxcomp", "sig1", "verify_ticket", now, now));
    CAF_CHECK(admit(j, "sig1", "verify_ticket", now) == verdict::duplicate);
  }
  reopen();
  now += 590; // the push's timestamp may be up to one window ahead of its receipt
  push_journal j{db, 300};
  CAF_CHECK(admit(j, "sig1", "verify_ticket", now - 590) == verdict::duplicate);
}

CAF_TEST(a push interrupted before it was applied is applied when WeChat retries it) {
  {
    push_journal j{db, 300};
    CAF_CHECK(admit(j, "sig1", "auth/wxa", now) == verdict::apply);
    // The hub dies here (e.g. during api_query_auth).
  }
  reopen();
  push_journal j{db, 300};
  CAF_CHECK(apply(j, "sig1", "auth/wxa", now) == verdict::apply);
  // A push that failed is released: the retry applies.
  CAF_CHECK(admit(j, "sig2", "auth/wxb", now) == verdict::apply);
  j.release("wxcomp", "sig2");
  CAF_CHECK(apply(j, "sig2", "auth/wxb", now) == verdict::apply);
}

CAF_TEST(an older event for a subject is outdated across restarts; equal is a retry) {
  {
    push_journal j{db, 300};
    CAF_CHECK(apply(j, "new", "auth/wxa", now) == verdict::apply);
  }
  reopen();
  push_journal j{db, 300};
  CAF_CHECK(admit(j, "old", "auth/wxa", now - 60) == verdict::outdated);
  CAF_CHECK(admit(j, "same-time", "auth/wxa", now) == verdict::apply);
  // Other subjects and components are independent.
  CAF_CHECK(apply(j, "other", "auth/wxb", now - 60) == verdict::apply);
  CAF_CHECK(apply(j, "ticket", "verify_ticket", now - 60) == verdict::apply);
  // The order only moves forward, even if an older event is applied last.
  CAF_CHECK(apply(j, "newer", "verify_ticket", now) == verdict::apply);
  CAF_CHECK(!j.applied("wxcomp", "late", "verify_ticket", now - 30, now));
  CAF_CHECK(admit(j, "between", "verify_ticket", now - 10) == verdict::outdated);
}

CAF_TEST(expired records are pruned so the journal stays bounded) {
  push_journal j{db, 300};
  for (int i = 0; i < 50; ++i)
    CAF_CHECK(apply(j, "sig" + std::to_string(i), "auth/wx" + std::to_string(i), now) == verdict::apply);
  CAF_CHECK_EQUAL(j.size(), 100u);
  now += 2 * 300 + 30;
  CAF_CHECK(!j.prune(now));
  CAF_CHECK_EQUAL(j.size(), 50u); // seen records gone, order records still within their margin
  now += 60;
  // admit prunes by itself (at most once a minute).
  CAF_CHECK(apply(j, "late", "", now) == verdict::apply);
  CAF_CHECK_EQUAL(j.size(), 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
