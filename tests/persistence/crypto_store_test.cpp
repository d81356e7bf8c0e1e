#define CAF_SUITE persistence_crypto

#include "caf/test/dsl.hpp"

#include <csignal>
#include <filesystem>
#include <map>
#include <string>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.hpp"
#include "persistence/crypto_store.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"
#include "tests/persistence/rotation_child.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace wh::persistence;

namespace {

master_key new_key() {
  auto k = master_key::generate();
  if (!k)
    CAF_FAIL("generate: " << detail_of(k.error()));
  return *k;
}

std::unique_ptr<store> raw_db(const std::string& dir) {
  auto res = open_rocksdb(dir);
  if (!res)
    CAF_FAIL("open_rocksdb: " << detail_of(res.error()));
  return std::move(*res);
}

std::unique_ptr<store> sealed_db(const std::string& dir, open_report& rep,
                                 const std::string& key_file = {}) {
  auto res = open_encrypted_rocksdb(dir, key_file, rep);
  if (!res)
    CAF_FAIL("open_encrypted_rocksdb: " << detail_of(res.error()));
  return std::move(*res);
}

std::string value_of(store& db, const std::string& key) {
  auto res = db.get(key);
  if (!res)
    return "<error " + detail_of(res.error()) + ">";
  return res->value_or("<missing>");
}

std::string error_of(store& db, const std::string& key) {
  auto res = db.get(key);
  if (res)
    return "<no error>";
  return code_of(res.error()) == ec::corrupt_record ? detail_of(res.error()) : "<other error>";
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_mode & 0777;
}

/// Every file under `dir` concatenated: what an attacker with the disk sees.
std::string all_bytes(const std::string& dir) {
  std::string out;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      out += test::read_file(e.path().string());
  return out;
}

/// A data set with secrets in every kind of record.
std::map<std::string, std::string> sample(int n) {
  std::map<std::string, std::string> out;
  for (int i = 0; i < n; ++i) {
    auto s = std::to_string(i);
    out[keys::app_token("wx" + s)] = encode(credential{"tok-secret-" + s, 100, 7300, 1});
    out[keys::refresh_token(keys::authorizer_prefix("wxcomp", "wxa" + s))]
      = encode(credential{"refresh-secret-" + s, 100, 100, 1});
  }
  return out;
}

void put_all(store& db, const std::map<std::string, std::string>& kv) {
  std::vector<batch_entry> batch;
  for (auto& [k, v] : kv)
    batch.emplace_back(k, v);
  CAF_REQUIRE(!db.write(batch));
}

void check_all(store& db, const std::map<std::string, std::string>& kv) {
  for (auto& [k, v] : kv)
    CAF_CHECK_EQUAL(value_of(db, k), v);
  size_t seen = 0;
  CAF_CHECK(!db.scan("", [&](std::string_view k, std::string_view v) {
    if (k == "meta/sealed_v1")
      return true; // the store's own "every value is sealed" marker
    auto i = kv.find(std::string{k});
    CAF_CHECK(i != kv.end() && i->second == v);
    ++seen;
    return true;
  }));
  CAF_CHECK_EQUAL(seen, kv.size());
}

} // namespace

CAF_TEST(round trip through the encrypted store) {
  test::temp_dir dir;
  auto key = new_key();
  auto db = make_encrypted_store(raw_db(dir.path()), key);
  auto kv = sample(3);
  put_all(*db, kv);
  CAF_CHECK(!db->put("app/wx9/access_token", ""));
  CAF_CHECK_EQUAL(value_of(*db, "app/wx9/access_token"), "");
  kv["app/wx9/access_token"] = "";
  check_all(*db, kv);
  CAF_CHECK(!db->erase("app/wx9/access_token"));
  CAF_CHECK_EQUAL(value_of(*db, "app/wx9/access_token"), "<missing>");
  // Inner values are sealed: right magic and key id, never the plaintext.
  db.reset();
  auto raw = raw_db(dir.path());
  auto stored = value_of(*raw, keys::app_token("wx0"));
  CAF_CHECK_EQUAL(stored.substr(0, 4), "WHE1");
  CAF_CHECK_EQUAL(stored.substr(4, 4),
                  std::string(reinterpret_cast<const char*>(key.id().data()), 4));
  CAF_CHECK_EQUAL(stored.find("tok-secret"), std::string::npos);
  // A fresh nonce per write: the same value twice seals differently.
  auto a = seal_value(key, "k", "same");
  auto b = seal_value(key, "k", "same");
  CAF_REQUIRE(a && b);
  CAF_CHECK_NOT_EQUAL(*a, *b);
}

CAF_TEST(wrong key tampering and moved values are corrupt records) {
  test::temp_dir dir;
  auto key = new_key();
  {
    auto db = make_encrypted_store(raw_db(dir.path()), key);
    CAF_REQUIRE(!db->put("app/wx1/access_token", encode(credential{"tok-1", 1, 2, 1})));
    CAF_REQUIRE(!db->put("app/wx2/access_token", encode(credential{"tok-2", 1, 2, 1})));
  }
  {
    auto db = make_encrypted_store(raw_db(dir.path()), new_key());
    auto err = error_of(*db, "app/wx1/access_token");
    CAF_CHECK_NOT_EQUAL(err.find("unknown master key"), std::string::npos);
    CAF_CHECK_NOT_EQUAL(err.find("app/wx1/access_token"), std::string::npos);
  }
  auto raw = raw_db(dir.path());
  auto sealed = value_of(*raw, "app/wx1/access_token");
  // Every single flipped byte is detected (header, nonce, ciphertext, tag).
  for (size_t i = 0; i < sealed.size(); ++i) {
    auto bad = sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto res = open_value(key, nullptr, "app/wx1/access_token", bad);
    CAF_CHECK(!res && code_of(res.error()) == ec::corrupt_record);
  }
  // The key name is authenticated: a value moved to another key fails.
  CAF_REQUIRE(!raw->put("app/wx2/access_token", sealed));
  CAF_REQUIRE(!raw->put("app/wx3/access_token", "garbage"));
  CAF_REQUIRE(!raw->put("app/wx4/access_token", "WHE1short"));
  raw.reset();
  auto db = make_encrypted_store(raw_db(dir.path()), key);
  auto tok1 = decode_credential(value_of(*db, "app/wx1/access_token"));
  CAF_REQUIRE(tok1);
  auto tok1_value = tok1->value;
  CAF_CHECK_EQUAL(tok1_value, "tok-1");
  CAF_CHECK_NOT_EQUAL(error_of(*db, "app/wx2/access_token").find("fails authentication"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(error_of(*db, "app/wx3/access_token").find("unknown format"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(error_of(*db, "app/wx4/access_token").find("truncated"), std::string::npos);
  // A scan stops at the bad value with the same error instead of handing it out.
  auto err = db->scan("app/", [](std::string_view, std::string_view) { return true; });
  CAF_CHECK(code_of(err) == ec::corrupt_record);
}

CAF_TEST(key file creation and permissions) {
  test::temp_dir dir;
  auto path = dir / "master.key";
  bool created = false;
  auto k1 = load_or_create_master_key(path, created);
  CAF_REQUIRE(k1);
  CAF_CHECK(created);
  CAF_CHECK_EQUAL(mode_of(path), 0600u);
  auto text = test::read_file(path);
  CAF_CHECK_EQUAL(text.size(), 65u);
  CAF_CHECK(!std::filesystem::exists(path + ".tmp"));
  auto k2 = load_or_create_master_key(path, created);
  CAF_REQUIRE(k2);
  CAF_CHECK(!created);
  CAF_CHECK(k1->bytes() == k2->bytes());
  CAF_CHECK_EQUAL(k1->id_hex().size(), 8u);
  // Group- or world-readable: refused, naming the file.
  ::chmod(path.c_str(), 0644);
  auto open_perm = load_or_create_master_key(path, created);
  CAF_REQUIRE(!open_perm);
  CAF_CHECK(code_of(open_perm.error()) == ec::invalid_config);
  auto why = detail_of(open_perm.error());
  CAF_CHECK_NOT_EQUAL(why.find(path), std::string::npos);
  CAF_CHECK_NOT_EQUAL(why.find("0644"), std::string::npos);
  // The message never contains the key.
  CAF_CHECK_EQUAL(why.find(text.substr(0, 64)), std::string::npos);
  ::chmod(path.c_str(), 0600);
  // Malformed: refused, naming the file.
  test::write_file(path, "not a key\n");
  ::chmod(path.c_str(), 0600);
  auto malformed = load_master_key(path);
  CAF_REQUIRE(!malformed);
  CAF_CHECK_NOT_EQUAL(detail_of(malformed.error()).find(path), std::string::npos);
  CAF_CHECK_NOT_EQUAL(detail_of(malformed.error()).find("malformed"), std::string::npos);
  test::write_file(path, std::string(64, 'g'));
  CAF_CHECK(!load_master_key(path));
  // A directory that does not exist is a clear error too.
  auto nowhere = load_or_create_master_key(dir / "no/such/dir/master.key", created);
  CAF_REQUIRE(!nowhere);
  CAF_CHECK_NOT_EQUAL(detail_of(nowhere.error()).find("no/such/dir/master.key"), std::string::npos);
}

CAF_TEST(open creates the key migrates plaintext and refuses a lost key) {
  test::temp_dir dir;
  auto data = dir / "data";
  // A database written by an older hub: plaintext JSON records.
  auto kv = sample(2);
  {
    auto raw = raw_db(data);
    put_all(*raw, kv);
  }
  CAF_CHECK_NOT_EQUAL(all_bytes(data).find("tok-secret-0"), std::string::npos);
  {
    open_report rep;
    auto db = sealed_db(data, rep);
    CAF_CHECK(rep.key_created);
    CAF_CHECK_EQUAL(rep.key_path, data + "/master.key");
    CAF_CHECK_EQUAL(rep.resealed, kv.size());
    CAF_CHECK_EQUAL(mode_of(rep.key_path), 0600u);
    check_all(*db, kv);
  }
  // Migrated and compacted: no plaintext left in any file (WAL, tables).
  auto disk = all_bytes(data);
  for (auto& [k, v] : kv) {
    auto secret = decode_credential(v)->value;
    CAF_CHECK_EQUAL(disk.find(secret), std::string::npos);
  }
  {
    open_report rep;
    auto db = sealed_db(data, rep);
    CAF_CHECK(!rep.key_created);
    CAF_CHECK_EQUAL(rep.resealed, 0u);
    check_all(*db, kv);
  }
  // A lost key file is not replaced by a fresh key that cannot open the data.
  std::filesystem::rename(data + "/master.key", dir / "saved.key");
  open_report rep;
  auto lost = open_encrypted_rocksdb(data, "", rep);
  CAF_REQUIRE(!lost);
  CAF_CHECK_NOT_EQUAL(detail_of(lost.error()).find("missing"), std::string::npos);
  CAF_CHECK(!std::filesystem::exists(data + "/master.key"));
  // The wrong key: refused at open, nothing rewritten.
  bool created = false;
  CAF_REQUIRE(load_or_create_master_key(dir / "other.key", created));
  auto wrong = open_encrypted_rocksdb(data, dir / "other.key", rep);
  CAF_REQUIRE(!wrong);
  CAF_CHECK(code_of(wrong.error()) == ec::corrupt_record);
  CAF_CHECK_NOT_EQUAL(detail_of(wrong.error()).find("other.key"), std::string::npos);
  // An external key file works.
  auto db = sealed_db(data, rep, dir / "saved.key");
  check_all(*db, kv);
}

CAF_TEST(a later open does not open every value) {
  // The first open seals and checks every value and leaves a sealed marker;
  // later opens check the key with the marker alone (a full pass took 15 s
  // with a million authorizers). A value damaged meanwhile is reported
  // where it is read, as a corrupt record.
  test::temp_dir dir;
  auto data = dir / "data";
  auto kv = sample(3);
  {
    open_report rep;
    auto db = sealed_db(data, rep);
    put_all(*db, kv);
  }
  auto victim = kv.begin()->first;
  {
    auto raw = raw_db(data);
    auto sealed = raw->get(victim);
    CAF_REQUIRE(sealed && *sealed);
    auto damaged = **sealed;
    damaged.back() ^= 0x01;
    CAF_REQUIRE(!raw->put(victim, damaged));
  }
  open_report rep;
  auto db = sealed_db(data, rep);
  CAF_CHECK_EQUAL(rep.resealed, 0u);
  auto res = db->get(victim);
  CAF_CHECK(!res && code_of(res.error()) == ec::corrupt_record);
  CAF_CHECK_EQUAL(value_of(*db, std::next(kv.begin())->first), std::next(kv.begin())->second);
}

CAF_TEST(rotation keeps every value and retires the old key) {
  test::temp_dir dir;
  auto data = dir / "data";
  auto kv = sample(5);
  std::string old_text;
  {
    open_report rep;
    auto db = sealed_db(data, rep);
    put_all(*db, kv);
    old_text = test::read_file(rep.key_path);
  }
  // Refused while the database is open (the hub runs).
  {
    auto held = raw_db(data);
    auto busy = rotate_master_key(data, "");
    CAF_CHECK(code_of(busy) == ec::storage_failure);
    CAF_CHECK_EQUAL(test::read_file(data + "/master.key"), old_text);
  }
  std::vector<rotation_step> steps;
  CAF_REQUIRE(!rotate_master_key(data, "", [&](rotation_step s) { steps.push_back(s); }));
  CAF_CHECK_EQUAL(steps.size(), 4u);
  auto new_text = test::read_file(data + "/master.key");
  CAF_CHECK_NOT_EQUAL(new_text, old_text);
  CAF_CHECK_EQUAL(mode_of(data + "/master.key"), 0600u);
  CAF_CHECK(!std::filesystem::exists(data + "/master.key.old"));
  {
    open_report rep;
    auto db = sealed_db(data, rep);
    CAF_CHECK_EQUAL(rep.resealed, 0u);
    check_all(*db, kv);
  }
  // The old key opens nothing any more.
  auto old_key = master_key::from_hex(old_text);
  CAF_REQUIRE(old_key);
  auto with_old = make_encrypted_store(raw_db(data), *old_key);
  for (auto& [k, v] : kv)
    CAF_CHECK_NOT_EQUAL(error_of(*with_old, k).find("unknown master key"), std::string::npos);
  with_old.reset();
  // No old ciphertext lingers either: a second rotation still finds only one key id.
  CAF_REQUIRE(!rotate_master_key(data, ""));
  open_report rep;
  auto db = sealed_db(data, rep);
  check_all(*db, kv);
  CAF_CHECK(rotate_master_key(dir / "nowhere", "") != caf::none);
}

CAF_TEST(kill -9 at every step of a rotation loses nothing) {
  for (auto at : {rotation_step::old_key_saved, rotation_step::new_key_installed,
                  rotation_step::values_resealed, rotation_step::done}) {
    test::temp_dir dir;
    auto data = dir / "data";
    auto kv = sample(20);
    {
      open_report rep;
      auto db = sealed_db(data, rep);
      put_all(*db, kv);
    }
    auto before = test::read_file(data + "/master.key");
    auto child = test::spawn_rotation_child(data, std::to_string(static_cast<int>(at)));
    uint64_t reached = 0;
    CAF_REQUIRE(child.read(reached));
    CAF_CHECK_EQUAL(reached, static_cast<uint64_t>(at));
    CAF_CHECK(child.kill9());
    auto after = test::read_file(data + "/master.key");
    // The key file changes (atomically) only after the old key is saved.
    CAF_CHECK_EQUAL(after == before, at == rotation_step::old_key_saved);
    CAF_CHECK_EQUAL(std::filesystem::exists(data + "/master.key.old"), at != rotation_step::done);
    open_report rep;
    auto db = sealed_db(data, rep);
    CAF_CHECK_EQUAL(rep.rotation_recovered, at != rotation_step::done);
    check_all(*db, kv);
    CAF_CHECK(!std::filesystem::exists(data + "/master.key.old"));
    db.reset();
    // And the next rotation works normally.
    CAF_CHECK(!rotate_master_key(data, ""));
    auto again = sealed_db(data, rep);
    check_all(*again, kv);
  }
}

CAF_TEST(kill -9 at random moments of repeated rotations loses nothing) {
  test::temp_dir dir;
  auto data = dir / "data";
  auto kv = sample(30);
  {
    open_report rep;
    auto db = sealed_db(data, rep);
    put_all(*db, kv);
  }
  for (int round = 0; round < 8; ++round) {
    auto child = test::spawn_rotation_child(data, "loop");
    uint64_t done = 0;
    CAF_REQUIRE(child.read(done));
    ::usleep(static_cast<useconds_t>(500 + round * 1300));
    CAF_CHECK(child.kill9());
    open_report rep;
    auto db = sealed_db(data, rep);
    check_all(*db, kv);
  }
}
