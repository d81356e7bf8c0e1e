#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "actors/snapshot.hpp"

namespace wh::actors {

/// Every key this node knows, with what the front end serves from it (the
/// published token and tickets, status, flags). Sized for a million keys:
/// 256 shards, each a hash map under its own reader-writer lock, so a lookup
/// takes one shared lock of one shard and an insert of a batch touches each
/// shard once (no whole-map copy per insert). The map's keys are views into
/// the entries' own `key`, so a key is stored once.
class directory {
public:
  directory() = default;
  directory(const directory&) = delete;
  directory& operator=(const directory&) = delete;

  /// The entry of `key`, or nullptr.
  std::shared_ptr<key_entry> find(std::string_view key) const;

  /// Adds entries; an entry replaces one of the same key.
  void insert(std::vector<std::shared_ptr<key_entry>> entries);

  /// Removes the entries of `keys` (unknown keys are ignored).
  void erase(const std::vector<std::string>& keys);

  /// Removes every entry and returns them.
  std::vector<std::shared_ptr<key_entry>> clear();

  /// Calls `fn` for every entry (shard by shard, under the shard's shared
  /// lock: `fn` must not call back into the directory).
  void for_each(const std::function<void(const std::shared_ptr<key_entry>&)>& fn) const;

  /// A copy of every entry.
  std::vector<std::shared_ptr<key_entry>> all() const;

  /// Entries whose key starts with `prefix`, in key order.
  std::vector<std::shared_ptr<key_entry>> with_prefix(std::string_view prefix) const;

  size_t size() const;

private:
  static constexpr size_t shard_count = 256;

  struct shard {
    mutable std::shared_mutex mtx;
    std::unordered_map<std::string_view, std::shared_ptr<key_entry>> map;
  };

  static size_t shard_of(std::string_view key) { return std::hash<std::string_view>{}(key) % shard_count; }

  std::array<shard, shard_count> shards_;
};

} // namespace wh::actors
