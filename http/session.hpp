#pragma once

// One HTTP/1.1 connection of http::server, over any stream: plain TCP, TLS,
// or beast::test::stream in tests (tests/http/session_test.cpp). Included by
// server.cpp and the session test only: it brings in Beast.

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/error.hpp"
#include "http/server.hpp"

namespace wh::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/// What the server needs to reach every live session on stop, whatever its stream.
class session_base {
public:
  virtual ~session_base() = default;
  /// Closes the connection now if it waits for a request.
  virtual void drain() = 0;
  /// Closes the socket at once; only while no thread runs the io_context.
  virtual void abort() = 0;
};

/// What a session needs from its server.
class session_host {
public:
  virtual ~session_host() = default;
  server_options opts;
  handler handle;
  error_renderer render_error;
  /// Set on stop: answers close their connections.
  std::atomic<bool> draining{false};
  /// Session `s` ended (`peer`: its slot in the per-peer count, if counted).
  virtual void session_closed(const session_base* s, const std::optional<asio::ip::address>& peer) = 0;
};

/// The socket-level operations of a session's lowest layer; tests specialise
/// it for beast::test::stream.
template <class Lowest>
struct stream_ops {
  static void expires_after(Lowest& s, std::chrono::steady_clock::duration d) { s.expires_after(d); }
  static void shutdown_send(Lowest& s) {
    beast::error_code ignored;
    s.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  static void close(Lowest& s) {
    beast::error_code ignored;
    s.socket().close(ignored);
  }
  /// Writes what the socket takes at once, without waiting (0 when it takes
  /// nothing now); `ec` is set only for a real failure.
  static std::size_t write_now(Lowest& s, asio::const_buffer b, beast::error_code& ec) {
    auto& sock = s.socket();
    if (!sock.non_blocking()) {
      sock.non_blocking(true, ec);
      if (ec)
        return 0;
    }
    auto n = sock.write_some(b, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec = {};
      return 0;
    }
    return n;
  }
  static std::optional<asio::ip::address> remote_address(Lowest& s) {
    beast::error_code ec;
    auto ep = s.socket().remote_endpoint(ec);
    if (ec)
      return std::nullopt;
    return ep.address();
  }
};

/// One connection, over plain TCP or TLS. Plain HTTP compiles to exactly the
/// code it had before TLS existed; the TLS steps are `if constexpr` branches.
template <class Stream>
class session : public session_base, public std::enable_shared_from_this<session<Stream>> {
public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  /// `args` construct the stream (a socket; a socket and a TLS context; a
  /// test stream).
  template <class... Args>
  session(std::shared_ptr<session_host> srv, std::optional<asio::ip::address> peer, Args&&... args)
    : stream_(std::forward<Args>(args)...), srv_(std::move(srv)), peer_(std::move(peer)) {}

  ~session() override { srv_->session_closed(this, peer_); }

  void run() {
    if constexpr (is_tls)
      asio::dispatch(stream_.get_executor(),
                     beast::bind_front_handler(&session::do_handshake, this->shared_from_this()));
    else
      asio::dispatch(stream_.get_executor(),
                     beast::bind_front_handler(&session::do_read, this->shared_from_this()));
  }

  void drain() override {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if (!self->busy_)
        self->close();
    });
  }

  void abort() override { ops::close(lowest()); }

private:
  using lowest_type = std::remove_reference_t<decltype(beast::get_lowest_layer(std::declval<Stream&>()))>;
  using ops = stream_ops<lowest_type>;
  lowest_type& lowest() { return beast::get_lowest_layer(stream_); }

  // -- TLS handshake ---------------------------------------------------------

  void do_handshake() {
    ops::expires_after(lowest(), srv_->opts.request_timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            beast::bind_front_handler(&session::on_handshake, this->shared_from_this()));
  }

  void on_handshake(beast::error_code ec) {
    // Failed handshakes (old protocol versions, missing or untrusted client
    // certificates, port scanners) are routine: no log line per connection.
    if (ec)
      return close();
    if (!srv_->opts.tls.client_ca.empty())
      client_cn_ = peer_common_name(stream_.native_handle());
    do_read();
  }

  static std::string peer_common_name(SSL* ssl) {
    std::string cn;
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr)
      return cn;
    X509_NAME* name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0)
      return cn;
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len > 0)
      cn.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    return cn;
  }

  // -- HTTP ------------------------------------------------------------------

  /// A connection's first request has the request deadline from accept; a
  /// later one waits up to the idle timeout for its first byte, and from
  /// there has the request deadline (a trickled request cannot stretch it
  /// to the idle timeout).
  void do_read() {
    if (first_ || buffer_.size() > 0)
      return read_request();
    ops::expires_after(lowest(), srv_->opts.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            beast::bind_front_handler(&session::on_first_byte, this->shared_from_this()));
  }

  void on_first_byte(beast::error_code ec, std::size_t n) {
    buffer_.commit(n);
    if (ec == asio::error::eof)
      ec = bhttp::error::end_of_stream;
    if (ec)
      return on_read(ec, 0);
    read_request();
  }

  void read_request() {
    parser_.emplace();
    // The route's body limit is known once the request line is read.
    parser_->body_limit(boost::none);
    limit_ = srv_->opts.max_body_bytes;
    parser_->header_limit(srv_->opts.max_header_bytes);
    armed_ = false;
    // A whole request usually arrives in one segment: parse what is already
    // buffered here. Each asynchronous read costs a timer and a dispatch,
    // and the hot path (a cached token) must cost no more than one. The
    // request deadline is armed only for what is read asynchronously.
    if (buffer_.size() > 0) {
      beast::error_code ec;
      while (buffer_.size() > 0 && !parser_->is_header_done()) {
        auto used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec == bhttp::error::need_more) {
          ec = {};
          break;
        }
        if (ec)
          return on_read(ec, 0);
      }
      if (parser_->is_header_done())
        return on_header({}, 0);
    }
    ops::expires_after(lowest(), srv_->opts.request_timeout);
    armed_ = true;
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&session::on_header, this->shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec)
      return on_read(ec, 0);
    auto& msg = parser_->get();
    if (srv_->opts.body_limit_for)
      limit_ = srv_->opts.body_limit_for(msg.method_string(), msg.target());
    if (auto len = parser_->content_length(); len && *len > limit_)
      return on_read(bhttp::error::body_limit, 0);
    parser_->body_limit(limit_);
    if (parser_->is_done()) // no body (a GET): nothing more to read
      return on_read({}, 0);
    if (!armed_)
      ops::expires_after(lowest(), srv_->opts.request_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&session::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == bhttp::error::end_of_stream) {
      // Over TLS this is the peer's close_notify: answer it with ours.
      if constexpr (is_tls)
        return tls_shutdown();
      else
        return close();
    }
    if (ec == beast::error::timeout || ec == asio::error::operation_aborted
        || ec == asio::error::connection_reset)
      return close();
    if (ec == bhttp::error::body_limit) {
      keep_alive_ = false;
      return write(srv_->render_error(make_detail_error(
        ec::body_too_large, "request body exceeds " + std::to_string(limit_) + " bytes")));
    }
    if (ec == bhttp::error::header_limit) {
      keep_alive_ = false;
      return write(srv_->render_error(
        make_detail_error(ec::headers_too_large, "request headers are too large")));
    }
    if (ec) {
      if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) {
        keep_alive_ = false;
        return write(srv_->render_error(
          make_detail_error(ec::invalid_request, "malformed HTTP request")));
      }
      // Including TLS errors and stream_truncated (peer closed without close_notify).
      return close();
    }
    first_ = false;
    busy_ = true;
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive() && !srv_->draining;
    if (try_cached_get(msg))
      return;
    request req;
    req.method = std::string{msg.method_string()};
    req.target = std::string{msg.target()};
    req.body = std::move(msg.body());
    if (auto it = msg.find(bhttp::field::content_type); it != msg.end())
      req.content_type = std::string{it->value()};
    if (auto it = msg.find(bhttp::field::authorization); it != msg.end())
      req.authorization = std::string{it->value()};
    if (auto peer = ops::remote_address(lowest())) {
      req.loopback = peer->is_loopback();
      req.peer = peer->to_string();
    }
    if constexpr (is_tls)
      req.client_cn = client_cn_;
    auto self = this->shared_from_this();
    srv_->handle(std::move(req), [self](response res) {
      // Inline when already on this connection's loop (the cached fast
      // path), posted otherwise (answers from actors).
      asio::dispatch(self->stream_.get_executor(),
                     [self, res = std::move(res)]() mutable { self->write(std::move(res)); });
    });
  }

  void write(response res) {
    res_ = {};
    res_.version(11);
    res_.result(res.status);
    res_.set(bhttp::field::server, "wechat-hub");
    res_.set(bhttp::field::content_type, res.content_type);
    for (auto& [k, v] : res.headers)
      res_.set(k, v);
    res_.body() = std::move(res.body);
    res_.keep_alive(keep_alive_ && !srv_->draining);
    res_.prepare_payload();
    ops::expires_after(lowest(), srv_->opts.request_timeout);
    bhttp::async_write(stream_, res_,
                       beast::bind_front_handler(&session::on_write, this->shared_from_this()));
  }

  /// The hot path: a keep-alive HTTP/1.1 GET that the cached-GET handler
  /// answers is written as the handler rendered it, in one write. Anything
  /// else (HTTP/1.0, `Connection: close`, a body, a drain) goes the regular way.
  template <class Message>
  bool try_cached_get(const Message& msg) {
    if (!srv_->opts.cached_get || !keep_alive_ || msg.version() != 11
        || msg.method() != bhttp::verb::get || !msg.body().empty())
      return false;
    cached_get_request req{msg.target(), msg[bhttp::field::authorization]};
    raw_.clear();
    if (!srv_->opts.cached_get(req, raw_))
      return false;
    if constexpr (!is_tls) {
      // A few hundred bytes almost always fit the socket's send buffer: write
      // them now, and spare the asynchronous write its timer and dispatch.
      beast::error_code ec;
      auto n = ops::write_now(lowest(), asio::buffer(raw_), ec);
      if (ec) {
        busy_ = false;
        close();
        return true;
      }
      if (n == raw_.size()) {
        busy_ = false;
        if (srv_->draining)
          close();
        else if (buffer_.size() > 0) // pipelined requests: no recursion per request
          asio::post(stream_.get_executor(),
                     beast::bind_front_handler(&session::do_read, this->shared_from_this()));
        else
          do_read();
        return true;
      }
      raw_.erase(0, n);
    }
    ops::expires_after(lowest(), srv_->opts.request_timeout);
    asio::async_write(stream_, asio::buffer(raw_),
                      beast::bind_front_handler(&session::on_raw_write, this->shared_from_this()));
    return true;
  }

  void on_raw_write(beast::error_code ec, std::size_t) {
    busy_ = false;
    if (ec)
      return close();
    // A drain that began meanwhile found this connection busy: close it now.
    if (srv_->draining)
      return close();
    do_read();
  }

  void on_write(beast::error_code ec, std::size_t) {
    busy_ = false;
    if (ec)
      return close();
    if (!res_.keep_alive()) {
      if constexpr (is_tls)
        return tls_shutdown();
      else
        return linger_close();
    }
    do_read();
  }

  // -- closing ---------------------------------------------------------------

  /// Half-closes, then discards what the peer still sends (e.g. the rest of
  /// an oversized body) until it closes or the deadline passes, so that the
  /// peer reads our answer instead of a connection reset.
  void linger_close() {
    ops::shutdown_send(lowest());
    ops::expires_after(lowest(), srv_->opts.request_timeout);
    drain_.resize(16 * 1024);
    do_discard();
  }

  void do_discard() {
    lowest().async_read_some(asio::buffer(drain_),
                          [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec)
                              return self->close();
                            self->do_discard();
                          });
  }

  /// The TLS counterpart of linger_close: first discards what the peer still
  /// sends (the rest of an oversized body) until it closes or the deadline
  /// passes — shutting down while the peer is still writing resets the
  /// connection before it reads our answer — then sends close_notify.
  void tls_shutdown() {
    ops::expires_after(lowest(), srv_->opts.request_timeout);
    drain_.resize(16 * 1024);
    if constexpr (is_tls)
      do_tls_discard();
  }

  void do_tls_discard() {
    if constexpr (is_tls) {
      stream_.async_read_some(asio::buffer(drain_), [self = this->shared_from_this()](
                                                      beast::error_code ec, std::size_t) {
        if (!ec)
          return self->do_tls_discard();
        if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
            || ec == beast::error::timeout)
          return self->close();
        // The peer sent close_notify (or failed): answer it, briefly.
        ops::expires_after(self->lowest(), std::chrono::seconds(1));
        self->stream_.async_shutdown([self](beast::error_code) { self->close(); });
      });
    }
  }

  void close() {
    ops::shutdown_send(lowest());
    ops::close(lowest());
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  /// A response of the cached-GET handler (kept between requests: no allocation).
  std::string raw_;
  std::shared_ptr<session_host> srv_;
  std::vector<char> drain_;
  std::string client_cn_;
  /// Counted against the per-peer cap while this session lives.
  std::optional<asio::ip::address> peer_;
  /// Body limit of the request being read.
  uint32_t limit_ = 0;
  bool first_ = true;
  /// The request deadline runs (armed for the first asynchronous read of a request).
  bool armed_ = false;
  bool busy_ = false;
  bool keep_alive_ = true;
};

} // namespace wh::http
