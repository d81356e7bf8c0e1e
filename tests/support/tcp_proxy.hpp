#pragma once

// A loopback TCP forwarder that a test can cut and heal: a network
// partition without iptables or root. It listens on 127.0.0.1 (a port of
// its own) and forwards every accepted connection to 127.0.0.1:`target`,
// on one thread with poll().
//
// - cut(): every connection through it is reset and new ones are accepted
//   and reset at once (the port stays bound, so nobody else takes it).
// - cut_clients(pids): the same, only for connections whose client socket
//   belongs to one of these processes (found through /proc: its local port
//   -> socket inode -> the pid holding it), so one node can be cut off from
//   a peer that other nodes still reach through the same proxy.
// - blackhole(): like cut(), but as a firewall that drops packets: the
//   connections stay open with nothing passing, and new ones are accepted
//   and held; heal() lets both through again (TCP would retransmit).
// - heal(): forwards everything again.

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include <sys/types.h>

namespace wh::test {

class tcp_proxy {
public:
  /// Starts forwarding 127.0.0.1:port() to 127.0.0.1:`target`; `port` 0 =
  /// any free port. Throws std::runtime_error if it cannot listen.
  explicit tcp_proxy(uint16_t target, uint16_t port = 0);
  ~tcp_proxy();

  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  uint16_t port() const;
  /// "127.0.0.1:<port>".
  std::string endpoint() const;

  /// Resets every connection and refuses new ones until heal().
  void cut();
  /// Resets and refuses the connections of clients in `pids` only.
  void cut_clients(std::set<pid_t> pids);
  /// Stops every connection (open, nothing passes) and holds new ones.
  void blackhole();
  /// ... only for clients in `pids`.
  void blackhole_clients(std::set<pid_t> pids);
  /// Forwards everything again (held connections reach the target now).
  void heal();

  /// Forwards new connections to 127.0.0.1:`target` from now on.
  void set_target(uint16_t target);

  /// Connections accepted so far (forwarded or refused).
  uint64_t accepted() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The process among `pids` that holds the loopback TCP socket bound to
/// local port `port` and connected to `peer_port` (0 if none does).
pid_t socket_owner(uint16_t port, uint16_t peer_port, const std::set<pid_t>& pids);

} // namespace wh::test
