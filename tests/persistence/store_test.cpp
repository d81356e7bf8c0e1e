#define CAF_SUITE persistence_store

#include "caf/test/dsl.hpp"

#include <csignal>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "core/error.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::persistence;

namespace {

std::unique_ptr<store> open(const std::string& dir) {
  auto res = open_rocksdb(dir);
  if (!res)
    CAF_FAIL("open_rocksdb failed: " << detail_of(res.error()));
  return std::move(*res);
}

} // namespace

CAF_TEST(not found is distinct from failure) {
  test::temp_dir dir;
  auto db = open(dir.path());
  auto res = db->get("missing");
  CAF_REQUIRE(res);
  CAF_CHECK(!res->has_value());
}

CAF_TEST(round trip and batch) {
  test::temp_dir dir;
  auto db = open(dir.path());
  CAF_CHECK(!db->put("a/1", "one"));
  CAF_CHECK(!db->write({{"a/2", std::string{"two"}}, {"b/1", std::string{"other"}}}));
  CAF_CHECK_EQUAL(db->get("a/1")->value_or(""), "one");
  CAF_CHECK(!db->write({{"a/1", std::nullopt}, {"a/3", std::string{"three"}}}));
  CAF_CHECK(!db->get("a/1")->has_value());
  std::vector<std::string> seen;
  CAF_CHECK(!db->scan("a/", [&](std::string_view k, std::string_view v) {
    seen.emplace_back(std::string{k} + "=" + std::string{v});
    return true;
  }));
  CAF_REQUIRE_EQUAL(seen.size(), 2u);
  CAF_CHECK_EQUAL(seen[0], "a/2=two");
  CAF_CHECK_EQUAL(seen[1], "a/3=three");
}

CAF_TEST(values survive reopening) {
  test::temp_dir dir;
  credential cred{"tok-1", 100, 7300, 3};
  {
    auto db = open(dir.path());
    CAF_CHECK(!db->put(keys::app_token("wx1"), encode(cred)));
  }
  auto db = open(dir.path());
  auto raw = db->get(keys::app_token("wx1"));
  CAF_REQUIRE(raw && raw->has_value());
  auto back = decode_credential(**raw);
  CAF_REQUIRE(back);
  CAF_CHECK_EQUAL(back->value, "tok-1");
  CAF_CHECK_EQUAL(back->obtained_at, 100);
  CAF_CHECK_EQUAL(back->expires_at, 7300);
  CAF_CHECK_EQUAL(back->version, 3u);
}

CAF_TEST(a second open of a locked database fails cleanly) {
  test::temp_dir dir;
  auto db = open(dir.path());
  auto again = open_rocksdb(dir.path());
  CAF_REQUIRE(!again);
  CAF_CHECK(code_of(again.error()) == ec::storage_failure);
}

CAF_TEST(an unusable data_dir is a clear error) {
  auto res = open_rocksdb("/proc/wh-cannot-create-here");
  CAF_REQUIRE(!res);
  CAF_CHECK(code_of(res.error()) == ec::storage_failure);
  CAF_CHECK(detail_of(res.error()).find("/proc/wh-cannot-create-here") != std::string::npos);
}

CAF_TEST(acknowledged writes survive kill -9 mid-write) {
  test::temp_dir dir;
  int fds[2];
  CAF_REQUIRE_EQUAL(::pipe(fds), 0);
  auto pid = ::fork();
  CAF_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto res = open_rocksdb(dir.path());
    if (!res)
      ::_exit(3);
    auto& db = **res;
    for (uint64_t i = 1;; ++i) {
      credential cred{"tok-" + std::to_string(i), 1, 2, i};
      if (db.write({{keys::app_token("wx1"), encode(cred)},
                    {keys::app_ticket("wx1", "jsapi"), encode(cred)}}))
        ::_exit(4);
      // Acknowledge only after the durable write returned.
      if (::write(fds[1], &i, sizeof(i)) != sizeof(i))
        ::_exit(5);
    }
  }
  ::close(fds[1]);
  uint64_t acked = 0;
  for (int n = 0; n < 200; ++n)
    CAF_REQUIRE_EQUAL(::read(fds[0], &acked, sizeof(acked)), static_cast<ssize_t>(sizeof(acked)));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  CAF_CHECK(WIFSIGNALED(status));
  auto db = open(dir.path());
  auto tok = decode_credential(db->get(keys::app_token("wx1"))->value_or(""));
  auto tkt = decode_credential(db->get(keys::app_ticket("wx1", "jsapi"))->value_or(""));
  CAF_REQUIRE(tok);
  CAF_REQUIRE(tkt);
  // Never older than the last acknowledged write, and both keys of a batch agree.
  CAF_CHECK_GREATER_OR_EQUAL(tok->version, acked);
  CAF_CHECK_EQUAL(tok->version, tkt->version);
}

CAF_TEST(corrupt or unknown records give clear errors) {
  auto garbage = decode_credential("\x01\x02garbage");
  CAF_REQUIRE(!garbage);
  CAF_CHECK(code_of(garbage.error()) == ec::corrupt_record);
  CAF_CHECK_EQUAL(detail_of(garbage.error()), "record is not a JSON object");
  auto future = decode_credential(R"({"v":7,"value":"x"})");
  CAF_REQUIRE(!future);
  CAF_CHECK_EQUAL(detail_of(future.error()), "unsupported record version 7");
  auto partial = decode_credential(R"({"v":1,"value":"x","obtained_at":1})");
  CAF_REQUIRE(!partial);
  CAF_CHECK(code_of(partial.error()) == ec::corrupt_record);
  auto empty = decode_credential(R"({"v":1,"value":"","obtained_at":1,"expires_at":2,"version":1})");
  CAF_CHECK(!empty);
  auto budget = decode_force_budget(R"({"v":1,"day":5,"used":2,"last_at":99})");
  CAF_REQUIRE(budget);
  CAF_CHECK_EQUAL(budget->used, 2u);
  CAF_CHECK(!decode_force_budget(R"({"v":1,"day":5})"));
}
