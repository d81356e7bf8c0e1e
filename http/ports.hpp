#pragma once

// What the front end needs from parts it does not own, as function objects
// the composition root (app/hub_root.cpp) fills in: the cluster's view and
// admin relay, and the durable push journal. http/ includes neither
// cluster/ nor persistence/.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"

namespace wh::http {

/// A multi-node hub's membership as /healthz and GET /admin/cluster show it.
struct cluster_port {
  struct status {
    std::string self;
    /// Caught up with the peers and running the keys it owns.
    bool ready = false;
    /// The live nodes, this one included.
    std::vector<std::string> live;
    uint32_t replicas = 1;
    size_t owned_keys = 0;
  };
  struct placement {
    std::string owner;
    /// The owner followed by the replicas.
    std::vector<std::string> holders;
  };
  std::function<status()> current;
  std::function<placement(const std::string& key)> place;
  /// How reads of tokens and tickets are answered now.
  enum class reads_mode {
    /// From the credentials this node holds (its published snapshots).
    serve,
    /// From the key's owner: this node is catching up with its peers (a
    /// start or a rejoin), whose newer versions it may have missed.
    ask_owner,
    /// Refused (503): its etcd lease lapsed while etcd is reachable (a
    /// paused process that resumed; others may have replaced its tokens)
    /// until it has rejoined.
    refuse,
  };
  /// Cheap, called per request; empty = always `serve`.
  std::function<reads_mode()> reads;
  /// Relays an accepted admin definition change to the other nodes.
  std::function<void(const std::string& method, const std::string& target,
                     const std::string& body, const std::string& content_type)>
    relay_admin;
};

/// The durable replay cache and per-subject order of accepted pushes (see
/// persistence/push_journal.hpp for the contract).
struct push_ledger {
  enum class verdict { apply, duplicate, outdated };
  std::function<caf::expected<verdict>(std::string_view component, std::string_view signature,
                                       std::string_view subject, int64_t create_time,
                                       int64_t now)>
    admit;
  std::function<caf::error(std::string_view component, std::string_view signature,
                           std::string_view subject, int64_t create_time, int64_t now)>
    applied;
  std::function<void(std::string_view component, std::string_view signature)> release;
};

} // namespace wh::http
