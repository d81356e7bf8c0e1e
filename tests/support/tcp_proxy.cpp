#include "tests/support/tcp_proxy.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wh::test {

namespace {

constexpr size_t buffer_size = 64 * 1024;

/// Closes `fd` with a reset (SO_LINGER 0): the other side sees the link
/// break at once, as it would when a network drops it and a peer gives up.
void reset_close(int fd) {
  if (fd < 0)
    return;
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  // Loopback: the connect is answered at once (accepted or refused).
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/// One direction of a forwarded connection.
struct pipe_dir {
  std::vector<char> buf;
  size_t off = 0;
  bool eof = false;  // the source sent FIN
  bool done = false; // FIN passed on to the sink
};

struct link {
  int client = -1;
  int server = -1;
  uint16_t client_port = 0;
  /// Blackholed: nothing passes until heal().
  bool frozen = false;
  pipe_dir up;   // client -> server
  pipe_dir down; // server -> client
};

} // namespace

struct tcp_proxy::impl {
  std::atomic<uint16_t> target{0};
  uint16_t port = 0;
  int listener = -1;
  int wake = -1;
  std::thread worker;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> accepted{0};

  std::mutex mtx;
  bool cut_all = false;
  std::set<pid_t> cut_pids;
  /// The cut drops instead of resetting (blackhole).
  bool drop = false;
  /// Accepted while blackholed: (client fd, client port), connected at heal.
  std::vector<std::pair<int, uint16_t>> held;
  uint64_t heal_gen = 0;
  /// Bumped by every cut: the worker resets the links it matches.
  uint64_t cut_gen = 0;

  std::vector<link> links;

  enum verdict { forward, reset, hold };

  verdict admit(uint16_t client_port) {
    std::lock_guard<std::mutex> guard{mtx};
    bool cut = cut_all || (!cut_pids.empty() && socket_owner(client_port, port, cut_pids) != 0);
    return !cut ? forward : drop ? hold : reset;
  }

  void on_accept() {
    for (;;) {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        return;
      ++accepted;
      auto client_port = ntohs(peer.sin_port);
      switch (admit(client_port)) {
        case hold: held.emplace_back(fd, client_port); continue;
        case reset: reset_close(fd); continue;
        case forward: break;
      }
      open_link(fd, client_port);
    }
  }

  void open_link(int fd, uint16_t client_port) {
    {
      int server = connect_loopback(target.load());
      if (server < 0) {
        reset_close(fd);
        return;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      link l;
      l.client = fd;
      l.server = server;
      l.client_port = client_port;
      links.push_back(std::move(l));
    }
  }

  /// heal(): frozen links flow again, held connections are forwarded.
  void apply_heal() {
    for (auto& l : links)
      l.frozen = false;
    auto hs = std::move(held);
    held.clear();
    for (auto [fd, port] : hs)
      open_link(fd, port);
  }

  /// Applies a cut to the links already open.
  void apply_cut() {
    bool all;
    bool dropping;
    std::set<pid_t> pids;
    {
      std::lock_guard<std::mutex> guard{mtx};
      all = cut_all;
      pids = cut_pids;
      dropping = drop;
    }
    std::erase_if(links, [&](link& l) {
      if (!all && (pids.empty() || socket_owner(l.client_port, port, pids) == 0))
        return false;
      if (dropping) {
        l.frozen = true;
        return false;
      }
      reset_close(l.client);
      reset_close(l.server);
      return true;
    });
  }

  /// Moves data from `from` to `to`; false when the link is finished.
  static bool pump(int from, int to, pipe_dir& d, short revents_from, short revents_to) {
    if (!d.eof && d.off >= d.buf.size() && (revents_from & (POLLIN | POLLHUP | POLLERR))) {
      d.buf.resize(buffer_size);
      auto n = ::read(from, d.buf.data(), d.buf.size());
      if (n > 0) {
        d.buf.resize(static_cast<size_t>(n));
        d.off = 0;
      } else {
        d.buf.clear();
        d.off = 0;
        if (n == 0)
          d.eof = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          return false;
      }
    }
    if (d.off < d.buf.size() && (revents_to & (POLLOUT | POLLERR | POLLHUP))) {
      auto n = ::send(to, d.buf.data() + d.off, d.buf.size() - d.off, MSG_NOSIGNAL);
      if (n > 0)
        d.off += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    }
    if (d.eof && !d.done && d.off >= d.buf.size()) {
      ::shutdown(to, SHUT_WR);
      d.done = true;
    }
    return true;
  }

  void run() {
    uint64_t seen_gen = 0;
    uint64_t seen_heal = 0;
    std::vector<pollfd> fds;
    std::vector<size_t> polled; // link index of fds[2 + 2 * j]
    while (!stop.load()) {
      {
        std::unique_lock<std::mutex> guard{mtx};
        if (heal_gen != seen_heal) {
          seen_heal = heal_gen;
          guard.unlock();
          apply_heal();
          guard.lock();
        }
        if (cut_gen != seen_gen) {
          seen_gen = cut_gen;
          guard.unlock();
          apply_cut();
        }
      }
      fds.clear();
      polled.clear();
      fds.push_back(pollfd{listener, POLLIN, 0});
      fds.push_back(pollfd{wake, POLLIN, 0});
      for (size_t i = 0; i < links.size(); ++i) {
        auto& l = links[i];
        if (l.frozen)
          continue; // nothing passes (and its hang-ups wait for the heal)
        polled.push_back(i);
        short c = 0;
        short s = 0;
        // Read a side only when its buffer is empty; write when data waits.
        if (!l.up.eof && l.up.off >= l.up.buf.size())
          c |= POLLIN;
        if (l.up.off < l.up.buf.size())
          s |= POLLOUT;
        if (!l.down.eof && l.down.off >= l.down.buf.size())
          s |= POLLIN;
        if (l.down.off < l.down.buf.size())
          c |= POLLOUT;
        fds.push_back(pollfd{l.client, c, 0});
        fds.push_back(pollfd{l.server, s, 0});
      }
      if (::poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR)
        break;
      if (fds[1].revents & POLLIN) {
        uint64_t x = 0;
        (void) !::read(wake, &x, sizeof x);
      }
      // Links first (`polled` maps `fds` to them), then new connections.
      std::vector<bool> finished(links.size(), false);
      for (size_t j = 0; j < polled.size(); ++j) {
        auto i = polled[j];
        auto& l = links[i];
        auto rc = fds[2 + 2 * j].revents;
        auto rs = fds[3 + 2 * j].revents;
        bool ok = pump(l.client, l.server, l.up, rc, rs) && pump(l.server, l.client, l.down, rs, rc);
        if (!ok || (l.up.done && l.down.done))
          finished[i] = true;
      }
      for (size_t i = links.size(); i-- > 0;)
        if (finished[i]) {
          reset_close(links[i].client);
          reset_close(links[i].server);
          links.erase(links.begin() + static_cast<ptrdiff_t>(i));
        }
      if (fds[0].revents & POLLIN)
        on_accept();
    }
    for (auto& l : links) {
      reset_close(l.client);
      reset_close(l.server);
    }
    links.clear();
    for (auto [fd, port] : held)
      reset_close(fd);
    held.clear();
  }

  void poke() {
    uint64_t one = 1;
    (void) !::write(wake, &one, sizeof one);
  }
};

tcp_proxy::tcp_proxy(uint16_t target, uint16_t port) : impl_(std::make_unique<impl>()) {
  auto& d = *impl_;
  d.target = target;
  d.listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (d.listener < 0)
    throw std::runtime_error("tcp_proxy: socket() failed");
  int one = 1;
  ::setsockopt(d.listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  socklen_t len = sizeof addr;
  if (::bind(d.listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(d.listener, 128) != 0
      || ::getsockname(d.listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    auto why = std::string{std::strerror(errno)};
    ::close(d.listener);
    throw std::runtime_error("tcp_proxy: cannot listen on port " + std::to_string(port) + ": " + why);
  }
  d.port = ntohs(addr.sin_port);
  d.wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  d.worker = std::thread{[&d] { d.run(); }};
}

tcp_proxy::~tcp_proxy() {
  impl_->stop = true;
  impl_->poke();
  impl_->worker.join();
  ::close(impl_->listener);
  ::close(impl_->wake);
}

uint16_t tcp_proxy::port() const {
  return impl_->port;
}

std::string tcp_proxy::endpoint() const {
  return "127.0.0.1:" + std::to_string(impl_->port);
}

void tcp_proxy::cut() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->cut_all = true;
    impl_->drop = false;
    ++impl_->cut_gen;
  }
  impl_->poke();
}

void tcp_proxy::cut_clients(std::set<pid_t> pids) {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->cut_pids.insert(pids.begin(), pids.end());
    impl_->drop = false;
    ++impl_->cut_gen;
  }
  impl_->poke();
}

void tcp_proxy::blackhole() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->cut_all = true;
    impl_->drop = true;
    ++impl_->cut_gen;
  }
  impl_->poke();
}

void tcp_proxy::blackhole_clients(std::set<pid_t> pids) {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->cut_pids.insert(pids.begin(), pids.end());
    impl_->drop = true;
    ++impl_->cut_gen;
  }
  impl_->poke();
}

void tcp_proxy::heal() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->cut_all = false;
    impl_->cut_pids.clear();
    impl_->drop = false;
    ++impl_->heal_gen;
  }
  impl_->poke();
}

void tcp_proxy::set_target(uint16_t target) {
  impl_->target = target;
}

uint64_t tcp_proxy::accepted() const {
  return impl_->accepted.load();
}

pid_t socket_owner(uint16_t port, uint16_t peer_port, const std::set<pid_t>& pids) {
  // /proc/net/tcp: "sl local_address rem_address st ... uid timeout inode".
  std::ifstream tcp{"/proc/net/tcp"};
  std::string line;
  std::getline(tcp, line); // header
  std::string inode;
  while (std::getline(tcp, line)) {
    std::istringstream in{line};
    std::string sl, local, remote, st, queues, timer, retr, uid, timeout, ino;
    in >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> ino;
    auto port_of = [](const std::string& addr) {
      auto colon = addr.find(':');
      return colon == std::string::npos ? 0u : static_cast<unsigned>(std::stoul(addr.substr(colon + 1), nullptr, 16));
    };
    if (port_of(local) == port && port_of(remote) == peer_port && ino != "0") {
      inode = ino;
      break;
    }
  }
  if (inode.empty())
    return 0;
  auto wanted = "socket:[" + inode + "]";
  for (auto pid : pids) {
    auto dir = "/proc/" + std::to_string(pid) + "/fd";
    auto* d = ::opendir(dir.c_str());
    if (!d)
      continue;
    pid_t found = 0;
    while (auto* e = ::readdir(d)) {
      std::array<char, 128> target{};
      auto path = dir + "/" + e->d_name;
      auto n = ::readlink(path.c_str(), target.data(), target.size() - 1);
      if (n > 0 && std::string_view{target.data(), static_cast<size_t>(n)} == wanted) {
        found = pid;
        break;
      }
    }
    ::closedir(d);
    if (found)
      return found;
  }
  return 0;
}

} // namespace wh::test
