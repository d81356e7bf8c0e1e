#define CAF_SUITE e2e_shutdown

// SIGTERM stops a hub cleanly and promptly, also a cluster node, and also
// while the node is dialling a peer that accepts the TCP connection but never
// speaks (CAF 0.17.6's remote_actor waits for that handshake forever; see
// bounded_connector in app/hub_root.cpp). No watchdog kills the process: the
// exit code is the one run_hub returns.

#include "caf/test/dsl.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <boost/asio/ip/tcp.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/e2e/cluster_env.hpp"
#include "tests/e2e/hub_env.hpp"

using namespace wh;
using namespace wh::test;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

/// SIGTERM, then the exit code and how long the process took to exit.
std::pair<int, std::chrono::milliseconds> terminate(process& proc, std::chrono::seconds wait) {
  auto start = std::chrono::steady_clock::now();
  proc.signal(SIGTERM);
  int code = -1;
  if (!proc.wait_for(wait, code))
    code = -1;
  return {code, std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)};
}

} // namespace

CAF_TEST(a cluster node dialling a mute peer exits promptly on sigterm) {
  // The mute peer: the kernel completes the TCP handshake (listen backlog),
  // the test accepts and holds the socket, and nothing is ever written.
  asio::io_context ioc;
  tcp::acceptor a{ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  tcp::acceptor b{ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  // The node whose endpoint sorts first dials at once: the hub takes the
  // smaller port (as a string), the mute peer keeps the other.
  auto pa = a.local_endpoint().port();
  auto pb = b.local_endpoint().port();
  bool a_first = std::to_string(pa) < std::to_string(pb);
  auto hub_port = a_first ? pa : pb;
  tcp::acceptor& mute = a_first ? b : a;
  (a_first ? a : b).close();
  auto mute_port = mute.local_endpoint().port();
  hub_env env;
  env.start_hub("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:" + std::to_string(hub_port)
                + "\"\npeers = [\"127.0.0.1:" + std::to_string(mute_port) + "\"]\n");
  tcp::socket held{ioc};
  mute.accept(held); // the hub's connection attempt is in flight now
  std::this_thread::sleep_for(200ms); // let the attempt reach its handshake wait
  auto [code, took] = terminate(env.hub_proc, 20s);
  CAF_MESSAGE("exit " << code << " after " << took.count() << " ms");
  CAF_CHECK_EQUAL(code, 0);
  CAF_CHECK_LESS(took, std::chrono::milliseconds(8000));
  CAF_CHECK(env.hub_log().find("stopped") != std::string::npos);
  // Static peers cannot fence ownership: said once at start.
  CAF_CHECK(env.hub_log().find("cluster.peers without cluster.etcd") != std::string::npos);
}

CAF_TEST(a cluster node dialling a peer that drops its syns exits promptly on sigterm) {
  // A peer whose accept queue is full: Linux drops further SYNs, so a
  // blocking connect() to it waits for the kernel's SYN retries (minutes),
  // like a dial to a powered-off host. The test fills the queue itself.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CAF_REQUIRE_EQUAL(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  CAF_REQUIRE_EQUAL(::listen(lfd, 0), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto mute_port = ntohs(addr.sin_port);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  // The hub's endpoint must sort first so that it dials at once.
  uint16_t hub_port = 0;
  for (auto p : free_ports(8))
    if (std::to_string(p) < std::to_string(mute_port)) {
      hub_port = p;
      break;
    }
  CAF_REQUIRE(hub_port != 0);
  hub_env env;
  env.start_hub("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:" + std::to_string(hub_port)
                + "\"\npeers = [\"127.0.0.1:" + std::to_string(mute_port) + "\"]\n");
  std::this_thread::sleep_for(1s); // the dial is under way (SYN retries)
  auto [code, took] = terminate(env.hub_proc, 30s);
  CAF_MESSAGE("exit " << code << " after " << took.count() << " ms");
  CAF_CHECK_EQUAL(code, 0);
  CAF_CHECK_LESS(took, std::chrono::milliseconds(8000));
  for (auto fd : fillers)
    ::close(fd);
  ::close(lfd);
}

CAF_TEST(a three node cluster stopped at once exits cleanly and promptly) {
  cluster_options opts;
  opts.apps = {{"wxshut0000000001", "shutdown-secret-1"}};
  cluster_env env{opts};
  env.start_all();
  for (auto& n : env.nodes)
    n.proc.signal(SIGTERM);
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < env.nodes.size(); ++i) {
    int code = -1;
    CAF_CHECK(env.nodes[i].proc.wait_for(20s, code));
    CAF_CHECK_EQUAL(code, 0);
    CAF_CHECK(env.node_log(i).find("stopped") != std::string::npos);
  }
  auto took = std::chrono::steady_clock::now() - start;
  CAF_MESSAGE("all stopped after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CAF_CHECK_LESS(took, std::chrono::seconds(10));
}

CAF_TEST(a tls cluster forms and stops cleanly) {
  // The connector dials through caf::openssl's manager here.
  temp_dir certs;
  auto made = std::system((std::string{WH_TEST_DATA_DIR} + "/../../scripts/dev-certs "
                           + certs.path() + " > /dev/null 2>&1").c_str());
  CAF_REQUIRE_EQUAL(made, 0);
  cluster_options opts;
  opts.apps = {{"wxshut0000000002", "shutdown-secret-2"}};
  opts.nodes = 2;
  cluster_env env{opts};
  env.tls_dir = certs.path();
  env.start_all();
  CAF_CHECK_EQUAL(env.healthz(0).live, (std::vector<std::string>{"n1", "n2"}));
  CAF_CHECK(env.token(1, "wxshut0000000002").rfind("<", 0) != 0);
  for (auto& n : env.nodes)
    n.proc.signal(SIGTERM);
  for (size_t i = 0; i < env.nodes.size(); ++i) {
    int code = -1;
    CAF_CHECK(env.nodes[i].proc.wait_for(10s, code));
    CAF_CHECK_EQUAL(code, 0);
  }
}
