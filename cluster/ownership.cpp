#include "cluster/ownership.hpp"

#include <algorithm>
#include <utility>

namespace wh::cluster {

namespace {

uint64_t fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

} // namespace

ownership::ownership(std::vector<std::string> nodes) {
  set_nodes(std::move(nodes));
}

void ownership::set_nodes(std::vector<std::string> nodes) {
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  nodes_ = std::move(nodes);
}

uint64_t ownership::weight(std::string_view node, std::string_view key) {
  // A separator byte keeps ("ab","c") and ("a","bc") apart.
  auto h = fnv1a(0xcbf29ce484222325ULL, node);
  h = fnv1a(h ^ 0xff, key);
  return mix(h);
}

const std::string& ownership::owner(std::string_view key) const {
  static const std::string none;
  const std::string* best = nullptr;
  uint64_t best_w = 0;
  for (auto& n : nodes_) {
    auto w = weight(n, key);
    // Ties (astronomically rare) go to the smaller id: still deterministic.
    if (!best || w > best_w) {
      best = &n;
      best_w = w;
    }
  }
  return best ? *best : none;
}

std::vector<std::string> ownership::rank(std::string_view key, std::size_t n) const {
  std::vector<std::pair<uint64_t, const std::string*>> ws;
  ws.reserve(nodes_.size());
  for (auto& node : nodes_)
    ws.emplace_back(weight(node, key), &node);
  std::sort(ws.begin(), ws.end(), [](auto& a, auto& b) {
    return a.first != b.first ? a.first > b.first : *a.second < *b.second;
  });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < ws.size() && i < n; ++i)
    out.push_back(*ws[i].second);
  return out;
}

} // namespace wh::cluster
