#define CAF_SUITE actors_store

#include "caf/test/dsl.hpp"

#include <memory>
#include <optional>

#include "actors/messages.hpp"
#include "actors/store_actor.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::actors;

namespace {

/// The real RocksDB store, counting the durable writes that reach it.
class counting_store final : public persistence::store {
public:
  explicit counting_store(std::unique_ptr<persistence::store> inner) : inner_(std::move(inner)) {}
  caf::expected<std::optional<std::string>> get(std::string_view key) override { return inner_->get(key); }
  caf::error write(const std::vector<persistence::batch_entry>& batch) override {
    ++writes;
    return inner_->write(batch);
  }
  caf::error scan(std::string_view prefix,
                  const std::function<bool(std::string_view, std::string_view)>& fn) override {
    return inner_->scan(prefix, fn);
  }
  int writes = 0;

private:
  std::unique_ptr<persistence::store> inner_;
};

struct fixture : test_coordinator_fixture<> {
  test::temp_dir dir;
  std::shared_ptr<counting_store> db;
  caf::actor store;

  fixture() {
    auto opened = persistence::open_rocksdb(dir.path());
    if (!opened)
      CAF_FAIL("cannot open store");
    db = std::make_shared<counting_store>(std::move(*opened));
    store = spawn_store_actor(sys, db, false);
  }

  ~fixture() override {
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    sched.run();
  }

  std::shared_ptr<std::optional<bool>> put(std::string key, std::string value) {
    auto done = std::make_shared<std::optional<bool>>();
    store_write w;
    w.put(std::move(key), std::move(value));
    sys.spawn([this, done, w](caf::event_based_actor* self) {
      self->request(store, caf::infinite, put_atom::value, w)
        .then([done](done_atom) { *done = true; }, [done](caf::error&) { *done = false; });
    });
    return done;
  }

  std::string value(const std::string& key) {
    auto x = db->get(key);
    return x && *x ? **x : "<none>";
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(store_actor_tests, fixture)

CAF_TEST(writes queued together share one durable write and are each answered) {
  std::vector<std::shared_ptr<std::optional<bool>>> answers;
  for (int i = 0; i < 20; ++i)
    answers.push_back(put("k" + std::to_string(i), "v" + std::to_string(i)));
  // The 20 requests reach the store's mailbox before it runs.
  sched.run();
  for (auto& a : answers) {
    CAF_REQUIRE(a->has_value());
    CAF_CHECK(**a);
  }
  CAF_CHECK_EQUAL(db->writes, 1);
  CAF_CHECK_EQUAL(value("k0"), "v0");
  CAF_CHECK_EQUAL(value("k19"), "v19");
}

CAF_TEST(a later write of the same key wins) {
  auto a = put("k", "old");
  auto b = put("k", "new");
  sched.run();
  CAF_CHECK(a->has_value() && **a);
  CAF_CHECK(b->has_value() && **b);
  CAF_CHECK_EQUAL(value("k"), "new");
  // Answered only once durable: a write after the flush is a second write.
  auto c = put("k", "newer");
  sched.run();
  CAF_CHECK(c->has_value() && **c);
  CAF_CHECK_EQUAL(db->writes, 2);
  CAF_CHECK_EQUAL(value("k"), "newer");
}

CAF_TEST_FIXTURE_SCOPE_END()
