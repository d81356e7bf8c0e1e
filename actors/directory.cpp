#include "actors/directory.hpp"

#include <algorithm>
#include <mutex>

namespace wh::actors {

std::shared_ptr<key_entry> directory::find(std::string_view key) const {
  auto& s = shards_[shard_of(key)];
  std::shared_lock<std::shared_mutex> guard{s.mtx};
  auto i = s.map.find(key);
  return i == s.map.end() ? nullptr : i->second;
}

void directory::insert(std::vector<std::shared_ptr<key_entry>> entries) {
  // Bucket by shard (each key hashed once) so each shard is locked once per batch.
  std::array<std::vector<std::shared_ptr<key_entry>>, shard_count> by_shard;
  for (auto& e : entries)
    by_shard[shard_of(e->key)].push_back(std::move(e));
  for (size_t idx = 0; idx < shard_count; ++idx) {
    if (by_shard[idx].empty())
      continue;
    auto& s = shards_[idx];
    std::unique_lock<std::shared_mutex> guard{s.mtx};
    s.map.reserve(s.map.size() + by_shard[idx].size());
    for (auto& e : by_shard[idx]) {
      // The map's key views the entry's own string: replace node and key together.
      s.map.erase(std::string_view{e->key});
      std::string_view k{e->key};
      s.map.emplace(k, std::move(e));
    }
  }
}

void directory::erase(const std::vector<std::string>& keys) {
  for (auto& k : keys) {
    auto& s = shards_[shard_of(k)];
    std::unique_lock<std::shared_mutex> guard{s.mtx};
    s.map.erase(std::string_view{k});
  }
}

std::vector<std::shared_ptr<key_entry>> directory::clear() {
  std::vector<std::shared_ptr<key_entry>> out;
  for (auto& s : shards_) {
    std::unique_lock<std::shared_mutex> guard{s.mtx};
    for (auto& [k, e] : s.map)
      out.push_back(std::move(e));
    s.map.clear();
  }
  return out;
}

void directory::for_each(const std::function<void(const std::shared_ptr<key_entry>&)>& fn) const {
  for (auto& s : shards_) {
    std::shared_lock<std::shared_mutex> guard{s.mtx};
    for (auto& [k, e] : s.map)
      fn(e);
  }
}

std::vector<std::shared_ptr<key_entry>> directory::all() const {
  std::vector<std::shared_ptr<key_entry>> out;
  out.reserve(size());
  for_each([&](const std::shared_ptr<key_entry>& e) { out.push_back(e); });
  return out;
}

std::vector<std::shared_ptr<key_entry>> directory::with_prefix(std::string_view prefix) const {
  std::vector<std::shared_ptr<key_entry>> out;
  for_each([&](const std::shared_ptr<key_entry>& e) {
    if (e->key.size() > prefix.size() && std::string_view{e->key}.substr(0, prefix.size()) == prefix)
      out.push_back(e);
  });
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->key < b->key; });
  return out;
}

size_t directory::size() const {
  size_t n = 0;
  for (auto& s : shards_) {
    std::shared_lock<std::shared_mutex> guard{s.mtx};
    n += s.map.size();
  }
  return n;
}

} // namespace wh::actors
