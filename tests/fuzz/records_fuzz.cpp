// What the hub reads back from RocksDB: stored records (credentials, force
// budgets, statuses) and sealed values (AES-GCM envelopes with a key id).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "persistence/crypto_store.hpp"
#include "persistence/records.hpp"

namespace {

const wh::persistence::master_key& key(int which) {
  static const auto a = *wh::persistence::master_key::from_hex(std::string(64, 'a'));
  static const auto b = *wh::persistence::master_key::from_hex(std::string(64, 'b'));
  return which == 0 ? a : b;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wh::persistence;
  std::string_view in{reinterpret_cast<const char*>(data), size};
  (void) decode_credential(in);
  (void) decode_force_budget(in);
  (void) decode_status(in);
  (void) open_value(key(0), nullptr, "app/wx1/access_token", in);
  (void) open_value(key(0), &key(1), "app/wx1/access_token", in);
  // A sealed copy of the input opens to exactly the input, under its name only.
  if (auto sealed = seal_value(key(0), "k", in)) {
    auto opened = open_value(key(0), nullptr, "k", *sealed);
    if (!opened || *opened != in)
      __builtin_trap();
    if (open_value(key(0), nullptr, "other", *sealed))
      __builtin_trap();
  }
  return 0;
}
