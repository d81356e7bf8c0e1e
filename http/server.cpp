// The only translation unit of the front end that instantiates Beast.
#include "http/server.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
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
#include "http/session.hpp"

namespace wh::http {

using tcp = asio::ip::tcp;

struct server::impl : session_host, std::enable_shared_from_this<server::impl> {
  using work_guard = asio::executor_work_guard<asio::io_context::executor_type>;
  /// The first I/O thread's event loop; it also runs the acceptor. The hint
  /// 1 says one thread runs it: no locking between threads of one loop.
  asio::io_context ioc{1};
  /// The other I/O threads' loops (one each).
  std::vector<std::unique_ptr<asio::io_context>> more;
  std::vector<work_guard> work;
  /// Which loop the next accepted connection goes to (accept handler only).
  std::size_t next_loop = 0;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::mutex sessions_mtx;
  /// Live sessions, for drain and stop: added at accept, removed by the
  /// session's destructor (O(1) each, however many connections are open).
  std::unordered_map<const session_base*, std::weak_ptr<session_base>> sessions;
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

  asio::io_context& loop(std::size_t i) { return i == 0 ? ioc : *more[i - 1]; }
  std::size_t loops() const { return 1 + more.size(); }
  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket sock);
  /// Counts `t` and logs (with the count) at most once per log interval.
  bool due(throttled& t);
  /// Takes a slot for `peer`; false when the per-peer cap is reached.
  bool admit_peer(const asio::ip::address& peer);
  void release_peer(const asio::ip::address& peer);
  void session_closed(const session_base* s, const std::optional<asio::ip::address>& peer) override {
    if (peer)
      release_peer(*peer);
    std::lock_guard<std::mutex> guard{sessions_mtx};
    sessions.erase(s);
    connections--;
    sessions_cv.notify_all();
  }
  template <class Session, class... Ts>
  void launch(tcp::socket&& sock, std::optional<asio::ip::address> peer, Ts&&... xs);
};

namespace {


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
  // Mozilla "intermediate" TLS 1.2 suites. The hub's order wins, and it puts
  // AES-128-GCM first, which AES-NI makes the cheapest; ChaCha20 goes first
  // only for a client that prefers it (one without AES hardware).
  SSL_CTX_set_options(native, SSL_OP_PRIORITIZE_CHACHA);
  SSL_CTX_set_cipher_list(native, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  SSL_CTX_set_ciphersuites(native, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                   "TLS_CHACHA20_POLY1305_SHA256");
  // Resumption: stateless tickets (keys kept in memory, rotated by a
  // restart) and the server-side cache for TLS 1.2 session ids. One ticket
  // per TLS 1.3 handshake is enough for a client that reconnects.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_num_tickets(native, 1);
  static constexpr unsigned char sid_ctx[] = "wechat-hub";
  SSL_CTX_set_session_id_context(native, sid_ctx, sizeof(sid_ctx) - 1);
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
    // (Resumption with client verification needs the context id set above.)
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  ERR_clear_error();
  return ctx;
}

} // namespace

void server::impl::do_accept() {
  // Each loop has one thread, so a connection on it needs no strand.
  auto& target = loop(next_loop++ % loops());
  acceptor.async_accept(target.get_executor(),
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
void server::impl::launch(tcp::socket&& sock, std::optional<asio::ip::address> peer, Ts&&... xs) {
  auto s = std::make_shared<Session>(shared_from_this(), std::move(peer), std::move(sock),
                                    std::forward<Ts>(xs)...);
  {
    std::lock_guard<std::mutex> guard{sessions_mtx};
    sessions.emplace(s.get(), s);
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
  auto n = im.opts.threads != 0 ? im.opts.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 1; i < n; ++i)
    im.more.push_back(std::make_unique<asio::io_context>(1));
  for (std::size_t i = 0; i < im.loops(); ++i)
    im.work.emplace_back(im.loop(i).get_executor());
  im.do_accept();
  for (std::size_t i = 0; i < im.loops(); ++i)
    im.threads.emplace_back([&loop = im.loop(i)] { loop.run(); });
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
  for (auto& [_, w] : im.sessions)
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
  for (std::size_t i = 0; i < im.loops(); ++i) {
    auto& loop = im.loop(i);
    loop.restart();
    // Bounded: an aborted handler may start one more operation, which fails at once.
    for (int round = 0; round < 16 && loop.poll() > 0; ++round)
      ;
  }
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
  im.work.clear();
  for (std::size_t i = 0; i < im.loops(); ++i)
    im.loop(i).stop();
  for (auto& t : im.threads)
    if (t.joinable())
      t.join();
  im.threads.clear();
  release_pending(im);
}


} // namespace wh::http
