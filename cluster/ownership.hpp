#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wh::cluster {

/// Rendezvous (highest-random-weight) hashing over the live nodes: every
/// node computes the same owner for a key without coordination, and a
/// membership change moves only the keys of the node that joined or left
/// (about 1/n of them). The first node of `rank` owns the key; the next
/// `replicas - 1` hold copies of its state.
class ownership {
public:
  /// `nodes` are node ids (e.g. "n1"); duplicates are ignored.
  explicit ownership(std::vector<std::string> nodes = {});

  /// Replaces the live membership.
  void set_nodes(std::vector<std::string> nodes);

  const std::vector<std::string>& nodes() const { return nodes_; }

  /// The owner of `key`, or "" without nodes.
  const std::string& owner(std::string_view key) const;

  /// The owner followed by the next `n - 1` replicas (fewer if fewer nodes).
  std::vector<std::string> rank(std::string_view key, std::size_t n) const;

  /// The weight of (`node`, `key`): a 64-bit mix of both, stable across
  /// processes, platforms and releases (FNV-1a, then a splitmix64 finalizer).
  static uint64_t weight(std::string_view node, std::string_view key);

private:
  std::vector<std::string> nodes_;
};

} // namespace wh::cluster
