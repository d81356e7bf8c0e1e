// The only translation unit of the front end that instantiates Beast.
#include "http/server.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fstream>
#include <type_traits>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "caf/expected.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

namespace wh::http {

/// What the server needs to reach every live session on stop, whatever its stream.
class session_base {
public:
  virtual ~session_base() = default;
  /// Closes the connection now if it waits for a request.
  virtual void drain() = 0;
  /// Closes the socket at once; only while no thread runs the io_context.
  virtual void abort() = 0;
};

struct server::impl : std::enable_shared_from_this<server::impl> {
  server_options opts;
  handler handle;
  error_renderer render_error;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> draining{false};
  std::mutex sessions_mtx;
  std::set<std::weak_ptr<session_base>, std::owner_less<std::weak_ptr<session_base>>> sessions;
  std::condition_variable sessions_cv;
  uint16_t bound_port = 0;
  /// Set when serving HTTPS.
  std::unique_ptr<ssl::context> tls;
  /// Live connections per peer address (only with max_connections_per_peer).
  std::map<asio::ip::address, std::size_t> per_peer;
  /// Pauses the accept loop while the process is out of descriptors.
  asio::steady_timer accept_timer{ioc};
  std::chrono::milliseconds accept_delay{0};
  /// Accept-loop problems since they were last logged; only the accept
  /// handler touches them (one accept is outstanding at a time).
  struct throttled {
    std::chrono::steady_clock::time_point last{};
    uint64_t count = 0;
  };
  throttled accept_errors, refused_total, refused_peer;

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket sock);
  /// Counts `t` and logs (with the count) at most once per log interval.
  bool due(throttled& t);
  /// Takes a slot for `peer`; false when the per-peer cap is reached.
  bool admit_peer(const asio::ip::address& peer);
  void release_peer(const asio::ip::address& peer);
  template <class Session, class... Ts>
  void launch(tcp::socket&& sock, Ts&&... xs);
};

namespace {

/// One connection, over plain TCP or TLS. Plain HTTP compiles to exactly the
/// code it had before TLS existed; the TLS steps are `if constexpr` branches.
template <class Stream>
class session : public session_base, public std::enable_shared_from_this<session<Stream>> {
public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  session(tcp::socket&& sock, std::shared_ptr<server::impl> srv,
          std::optional<asio::ip::address> peer) requires(!is_tls)
    : stream_(std::move(sock)), srv_(std::move(srv)), peer_(std::move(peer)) {}

  session(tcp::socket&& sock, std::shared_ptr<server::impl> srv,
          std::optional<asio::ip::address> peer, ssl::context& ctx) requires is_tls
    : stream_(std::move(sock), ctx), srv_(std::move(srv)), peer_(std::move(peer)) {}

  ~session() override {
    if (peer_)
      srv_->release_peer(*peer_);
    std::lock_guard<std::mutex> guard{srv_->sessions_mtx};
    srv_->connections--;
    srv_->sessions_cv.notify_all();
  }

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

  void abort() override {
    beast::error_code ignored;
    lowest().socket().close(ignored);
  }

private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  // -- TLS handshake ---------------------------------------------------------

  void do_handshake() {
    lowest().expires_after(srv_->opts.request_timeout);
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
    lowest().expires_after(srv_->opts.idle_timeout);
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
    lowest().expires_after(srv_->opts.request_timeout);
    // A whole request usually arrives in one segment: parse what is already
    // buffered here. Each asynchronous read costs a timer and a dispatch,
    // and the hot path (a cached token) must cost no more than one.
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
    request req;
    req.method = std::string{msg.method_string()};
    req.target = std::string{msg.target()};
    req.body = std::move(msg.body());
    if (auto it = msg.find(bhttp::field::content_type); it != msg.end())
      req.content_type = std::string{it->value()};
    if (auto it = msg.find(bhttp::field::authorization); it != msg.end())
      req.authorization = std::string{it->value()};
    beast::error_code ep_ec;
    auto peer = lowest().socket().remote_endpoint(ep_ec);
    req.loopback = !ep_ec && peer.address().is_loopback();
    if (!ep_ec)
      req.peer = peer.address().to_string();
    if constexpr (is_tls)
      req.client_cn = client_cn_;
    auto self = this->shared_from_this();
    srv_->handle(std::move(req), [self](response res) {
      // Inline when already on this connection's strand (the cached fast
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
    lowest().expires_after(srv_->opts.request_timeout);
    bhttp::async_write(stream_, res_,
                       beast::bind_front_handler(&session::on_write, this->shared_from_this()));
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
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().expires_after(srv_->opts.request_timeout);
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
    lowest().expires_after(srv_->opts.request_timeout);
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
        self->lowest().expires_after(std::chrono::seconds(1));
        self->stream_.async_shutdown([self](beast::error_code) { self->close(); });
      });
    }
  }

  void close() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().socket().close(ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  std::shared_ptr<server::impl> srv_;
  std::vector<char> drain_;
  std::string client_cn_;
  /// Counted against the per-peer cap while this session lives.
  std::optional<asio::ip::address> peer_;
  /// Body limit of the request being read.
  uint32_t limit_ = 0;
  bool first_ = true;
  bool busy_ = false;
  bool keep_alive_ = true;
};

// -- TLS context ---------------------------------------------------------------

/// The most specific OpenSSL reason for the last failure, or `fallback`.
std::string openssl_reason(const beast::error_code& ec) {
  std::string out;
  while (auto code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    out = buf;
  }
  return !out.empty() ? out : ec ? ec.message() : std::string{"unknown error"};
}

caf::error tls_error(const std::string& what, const std::string& path, const std::string& reason) {
  return make_detail_error(ec::invalid_config, "TLS: " + what + " " + path + ": " + reason);
}

bool readable(const std::string& path, std::string& reason) {
  std::ifstream in{path};
  if (in)
    return true;
  std::error_code ec{errno, std::generic_category()};
  reason = "cannot open: " + ec.message();
  return false;
}

/// TLS 1.2 minimum (1.3 preferred by OpenSSL), forward-secret AEAD suites
/// only, no compression, no renegotiation, optional client certificates.
caf::expected<std::unique_ptr<ssl::context>> make_tls_context(const tls_options& opts) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  auto* native = ctx->native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                                | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
  // Mozilla "intermediate" TLS 1.2 suites; TLS 1.3 suites keep OpenSSL's defaults.
  SSL_CTX_set_cipher_list(native, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  // An encrypted key must fail to load, not prompt on the terminal.
  ctx->set_password_callback(
    [](std::size_t, ssl::context::password_purpose) { return std::string{}; });
  beast::error_code ec;
  std::string reason;
  if (!readable(opts.cert, reason))
    return tls_error("certificate", opts.cert, reason);
  if (ctx->use_certificate_chain_file(opts.cert, ec); ec)
    return tls_error("cannot load certificate chain from", opts.cert, openssl_reason(ec));
  if (opts.key.empty())
    return tls_error("private key", "(hub.tls.key)", "missing");
  if (!readable(opts.key, reason))
    return tls_error("private key", opts.key, reason);
  if (ctx->use_private_key_file(opts.key, ssl::context::pem, ec); ec) {
    auto why = openssl_reason(ec);
    if (why.find("mismatch") != std::string::npos)
      return tls_error("private key", opts.key, "does not match the certificate in " + opts.cert);
    return tls_error("cannot load private key from", opts.key, why);
  }
  // Belt and braces: OpenSSL checks the pair on load, but not for every key type.
  if (SSL_CTX_check_private_key(native) != 1)
    return tls_error("private key", opts.key,
                     "does not match the certificate in " + opts.cert + " ("
                       + openssl_reason(ec) + ")");
  if (!opts.client_ca.empty()) {
    if (!readable(opts.client_ca, reason))
      return tls_error("client CA", opts.client_ca, reason);
    if (ctx->load_verify_file(opts.client_ca, ec); ec)
      return tls_error("cannot load client CA from", opts.client_ca, openssl_reason(ec));
    // Names the acceptable CAs in the CertificateRequest, so clients with
    // several certificates pick the right one.
    if (auto* names = SSL_load_client_CA_file(opts.client_ca.c_str()))
      SSL_CTX_set_client_CA_list(native, names);
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    // Session resumption with client verification needs a context id.
    static constexpr unsigned char sid_ctx[] = "wechat-hub";
    SSL_CTX_set_session_id_context(native, sid_ctx, sizeof(sid_ctx) - 1);
  }
  ERR_clear_error();
  return ctx;
}

} // namespace

void server::impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc),
                        beast::bind_front_handler(&impl::on_accept, shared_from_this()));
}

bool server::impl::due(throttled& t) {
  ++t.count;
  auto now = std::chrono::steady_clock::now();
  if (t.last != std::chrono::steady_clock::time_point{} && now - t.last < opts.log_interval)
    return false;
  t.last = now;
  return true;
}

bool server::impl::admit_peer(const asio::ip::address& peer) {
  std::lock_guard<std::mutex> guard{sessions_mtx};
  auto& n = per_peer[peer];
  if (n >= opts.max_connections_per_peer) {
    if (n == 0)
      per_peer.erase(peer);
    return false;
  }
  ++n;
  return true;
}

void server::impl::release_peer(const asio::ip::address& peer) {
  std::lock_guard<std::mutex> guard{sessions_mtx};
  if (auto it = per_peer.find(peer); it != per_peer.end() && --it->second == 0)
    per_peer.erase(it);
}

void server::impl::on_accept(beast::error_code ec, tcp::socket sock) {
  if (ec) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return;
    // The peer gave up before we accepted: nothing to do, nothing to log.
    if (ec == asio::error::connection_aborted)
      return do_accept();
    // Out of descriptors (EMFILE, ENFILE) or kernel memory: accepting again
    // at once fails again at once. Pause, longer each time, so the I/O
    // threads keep serving the connections they have; log with a count.
    accept_delay = accept_delay.count() == 0
                     ? opts.accept_backoff_min
                     : std::min(opts.accept_backoff_max, accept_delay * 2);
    if (due(accept_errors)) {
      WH_WARN("http", "accept failed: " << ec.message() << " (" << accept_errors.count
                                        << " time(s) since last logged); pausing accepts, up to "
                                        << opts.accept_backoff_max.count() << " ms");
      accept_errors.count = 0;
    }
    accept_timer.expires_after(accept_delay);
    accept_timer.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
      if (wait_ec || !self->acceptor.is_open())
        return;
      self->do_accept();
    });
    return;
  }
  accept_delay = std::chrono::milliseconds{0};
  auto refuse = [&](throttled& t, const std::string& why) {
    beast::error_code ignored;
    sock.close(ignored);
    if (due(t)) {
      WH_WARN("http", why << ": refused " << t.count << " connection(s) since last logged");
      t.count = 0;
    }
    do_accept();
  };
  if (draining) {
    beast::error_code ignored;
    sock.close(ignored);
    return do_accept();
  }
  if (connections.load() >= opts.max_connections)
    return refuse(refused_total, "connection limit " + std::to_string(opts.max_connections) + " reached");
  std::optional<asio::ip::address> peer;
  if (opts.max_connections_per_peer > 0) {
    beast::error_code ep_ec;
    auto ep = sock.remote_endpoint(ep_ec);
    if (ep_ec) {
      beast::error_code ignored;
      sock.close(ignored);
      return do_accept();
    }
    if (!admit_peer(ep.address()))
      return refuse(refused_peer, "per-peer connection limit "
                                    + std::to_string(opts.max_connections_per_peer) + " reached by "
                                    + ep.address().to_string());
    peer = ep.address();
  }
  connections++;
  if (tls)
    launch<session<tls_stream>>(std::move(sock), std::move(peer), *tls);
  else
    launch<session<beast::tcp_stream>>(std::move(sock), std::move(peer));
  do_accept();
}

template <class Session, class... Ts>
void server::impl::launch(tcp::socket&& sock, Ts&&... xs) {
  auto s = std::make_shared<Session>(std::move(sock), shared_from_this(), std::forward<Ts>(xs)...);
  {
    std::lock_guard<std::mutex> guard{sessions_mtx};
    for (auto i = sessions.begin(); i != sessions.end();)
      i = i->expired() ? sessions.erase(i) : std::next(i);
    sessions.insert(s);
  }
  s->run();
}

server::server(server_options opts, handler h, error_renderer render_error)
  : impl_(std::make_shared<impl>()) {
  impl_->opts = std::move(opts);
  impl_->handle = std::move(h);
  impl_->render_error = std::move(render_error);
}

server::~server() {
  stop(std::chrono::milliseconds{0});
}

caf::error server::start() {
  auto& im = *impl_;
  if (im.opts.tls.enabled()) {
    auto ctx = make_tls_context(im.opts.tls);
    if (!ctx)
      return std::move(ctx.error());
    im.tls = std::move(*ctx);
  }
  beast::error_code ec;
  auto addr = asio::ip::make_address(im.opts.host, ec);
  auto where = im.opts.host + ":" + std::to_string(im.opts.port);
  if (ec)
    return make_detail_error(ec::invalid_config, "cannot listen on " + where + ": " + ec.message());
  tcp::endpoint ep{addr, im.opts.port};
  im.acceptor.open(ep.protocol(), ec);
  if (!ec)
    im.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    im.acceptor.bind(ep, ec);
  if (!ec)
    im.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return make_detail_error(ec::invalid_config, "cannot listen on " + where + ": " + ec.message());
  im.bound_port = im.acceptor.local_endpoint().port();
  im.work.emplace(im.ioc.get_executor());
  im.do_accept();
  auto n = im.opts.threads != 0 ? im.opts.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i)
    im.threads.emplace_back([this] { impl_->ioc.run(); });
  return caf::none;
}

uint16_t server::port() const {
  return impl_->bound_port;
}

namespace {

/// The sessions still alive (the set holds weak references).
std::vector<std::shared_ptr<session_base>> live_sessions(server::impl& im) {
  std::vector<std::shared_ptr<session_base>> live;
  std::lock_guard<std::mutex> guard{im.sessions_mtx};
  for (auto& w : im.sessions)
    if (auto s = w.lock())
      live.push_back(std::move(s));
  return live;
}

/// See server::stop.
void release_pending(server::impl& im) {
  // Handlers still queued in the io_context own their sessions, and every
  // session owns the impl, which owns the io_context: a cycle that nothing
  // would ever free. No thread runs the io_context now, so close what is
  // left here and run the queue dry on this thread: each handler sees
  // operation_aborted and lets go.
  for (auto& s : live_sessions(im))
    s->abort();
  beast::error_code ignored;
  im.acceptor.close(ignored);
  im.accept_timer.cancel();
  im.ioc.restart();
  // Bounded: an aborted handler may start one more operation, which fails at once.
  for (int round = 0; round < 16 && im.ioc.poll() > 0; ++round)
    ;
}

} // namespace

void server::stop(std::chrono::milliseconds grace) {
  auto& im = *impl_;
  if (im.threads.empty())
    return;
  im.draining = true;
  asio::post(im.ioc, [self = impl_] {
    beast::error_code ignored;
    self->acceptor.close(ignored);
    self->accept_timer.cancel();
  });
  for (auto& s : live_sessions(im))
    s->drain();
  {
    std::unique_lock<std::mutex> guard{im.sessions_mtx};
    im.sessions_cv.wait_for(guard, grace, [&] { return im.connections.load() == 0; });
  }
  im.work.reset();
  im.ioc.stop();
  for (auto& t : im.threads)
    if (t.joinable())
      t.join();
  im.threads.clear();
  release_pending(im);
}


} // namespace wh::http
