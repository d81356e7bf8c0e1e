#include "tests/net/test_server.hpp"

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <fstream>
#include <stdexcept>
#include <strings.h>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace wh::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::string seen_request::header(std::string_view name) const {
  for (auto& [key, value] : headers)
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0)
      return value;
  return {};
}

struct test_server::impl {
  impl(handler h, std::optional<tls_files> tls) : fn(std::move(h)), acceptor(ioc) {
    if (tls) {
      tls_ctx.emplace(ssl::context::tls_server);
      tls_ctx->use_certificate_chain_file(tls->cert_chain);
      tls_ctx->use_private_key_file(tls->private_key, ssl::context::pem);
    }
    tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), 0};
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen();
    bound_port = acceptor.local_endpoint().port();
    asio::co_spawn(ioc, listen(), asio::detached);
    thread = std::thread{[this] { ioc.run(); }};
  }

  ~impl() {
    ioc.stop();
    thread.join();
  }

  asio::awaitable<void> listen() {
    for (;;) {
      auto sock = co_await acceptor.async_accept(asio::use_awaitable);
      ++conns;
      asio::co_spawn(ioc, session(std::move(sock)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket sock) {
    try {
      if (tls_ctx) {
        ssl::stream<tcp::socket> stream{std::move(sock), *tls_ctx};
        co_await stream.async_handshake(ssl::stream_base::server, asio::use_awaitable);
        co_await serve(stream);
      } else {
        co_await serve(sock);
      }
    } catch (...) {
      // Peer went away or the handshake failed: both are expected in tests.
    }
    std::lock_guard guard{mtx};
    ++ended;
    cv.notify_all();
  }

  template <class Stream>
  asio::awaitable<void> serve(Stream& stream) {
    beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      co_await http::async_read(stream, buf, parser, asio::use_awaitable);
      ++reqs;
      auto& in = parser.get();
      seen_request seen;
      seen.method = std::string{in.method_string()};
      seen.target = std::string{in.target()};
      seen.body = in.body();
      for (auto& field : in)
        seen.headers.emplace_back(std::string{field.name_string()}, std::string{field.value()});
      auto out = fn(seen);
      switch (out.act) {
        case reply::action::hang:
          continue;
        case reply::action::drop:
          co_return;
        default:
          break;
      }
      http::response<http::string_body> res{static_cast<http::status>(out.status), 11};
      if (!out.content_type.empty())
        res.set(http::field::content_type, out.content_type);
      for (auto& [key, value] : out.headers)
        res.insert(key, value);
      res.body() = out.body;
      res.keep_alive(in.keep_alive());
      res.prepare_payload();
      co_await http::async_write(stream, res, asio::use_awaitable);
      if (!in.keep_alive() || out.act == reply::action::respond_then_close)
        co_return;
    }
  }

  handler fn;
  asio::io_context ioc;
  std::optional<ssl::context> tls_ctx;
  tcp::acceptor acceptor;
  uint16_t bound_port = 0;
  std::atomic<size_t> conns{0};
  std::atomic<size_t> reqs{0};
  mutable std::mutex mtx;
  std::condition_variable cv;
  size_t ended = 0;
  std::thread thread;
};

test_server::test_server(handler h, std::optional<tls_files> tls)
  : impl_(std::make_unique<impl>(std::move(h), std::move(tls))) {
}

test_server::~test_server() = default;

uint16_t test_server::port() const {
  return impl_->bound_port;
}

std::string test_server::base_url() const {
  return std::string{impl_->tls_ctx ? "https" : "http"} + "://127.0.0.1:" + std::to_string(port());
}

size_t test_server::connections() const {
  return impl_->conns.load();
}

size_t test_server::requests() const {
  return impl_->reqs.load();
}

size_t test_server::closed() const {
  std::lock_guard guard{impl_->mtx};
  return impl_->ended;
}

bool test_server::wait_closed(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock guard{impl_->mtx};
  return impl_->cv.wait_for(guard, timeout, [&] { return impl_->ended >= n; });
}

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (!mkdtemp(tmpl.data()))
    throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

test_pki make_test_pki() {
  test_pki pki;
  pki.dir = make_temp_dir("wh-pki");
  pki.ca_cert = pki.dir + "/ca.pem";
  pki.server_cert = pki.dir + "/server.pem";
  pki.server_key = pki.dir + "/server.key";
  {
    std::ofstream ext{pki.dir + "/server.ext"};
    ext << "subjectAltName=DNS:localhost\n"
           "basicConstraints=CA:FALSE\n"
           "keyUsage=digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=serverAuth\n";
  }
  const std::string& d = pki.dir;
  std::string ec_key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::string cmd
    = "cd '" + d + "' && openssl req -x509" + ec_key
      + " -keyout ca.key -out ca.pem -days 2 -subj /CN=wh-test-ca"
        " -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign"
        " && openssl req" + ec_key + " -keyout server.key -out server.csr -subj /CN=localhost"
      + " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out server.pem -days 2 -extfile server.ext";
  cmd += " >'" + d + "/openssl.log' 2>&1";
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("openssl failed; see " + d + "/openssl.log");
  return pki;
}

uint16_t unused_port() {
  asio::io_context ioc;
  tcp::acceptor acc{ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  auto port = acc.local_endpoint().port();
  acc.close();
  return port;
}

} // namespace wh::test
