#pragma once

// Raw loopback sockets for tests that control pacing and descriptor use
// (a full HTTP client would hide both). Failures fail the running test.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "caf/test/dsl.hpp"

namespace wh::test {

/// A blocking loopback client socket (optionally bound to `from`).
inline int make_socket(const char* from = nullptr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    CAF_FAIL("socket: " << std::strerror(errno));
  if (from != nullptr) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &a.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      CAF_FAIL("bind: " << std::strerror(errno));
  }
  return fd;
}

inline void connect_to(int fd, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    CAF_FAIL("connect: " << std::strerror(errno));
}

inline void send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    off += static_cast<size_t>(n);
  }
}

/// Reads until a complete response head plus Content-Length body, EOF, or `timeout`.
/// Returns the status (0 = closed or timed out without an answer).
inline unsigned read_status(int fd, std::chrono::milliseconds timeout) {
  std::string buf;
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 1))) <= 0)
      continue;
    char chunk[4096];
    auto n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0)
      return 0;
    buf.append(chunk, static_cast<size_t>(n));
    auto head_end = buf.find("\r\n\r\n");
    if (head_end == std::string::npos)
      continue;
    auto cl = buf.find("Content-Length: ");
    size_t len = cl == std::string::npos ? 0 : std::stoul(buf.substr(cl + 16));
    if (buf.size() >= head_end + 4 + len)
      return static_cast<unsigned>(std::stoul(buf.substr(9, 3)));
  }
  return 0;
}

} // namespace wh::test
