// The only translation unit that instantiates Beast for the client: Beast's
// read/write templates are expensive to compile, so they stay here.
#include "net/http_client.hpp"

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include <openssl/ssl.h>

#include "core/error.hpp"
#include "core/log.hpp"

namespace wh::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using strand_type = asio::strand<asio::io_context::executor_type>;

constexpr const char* component = "net";

/// The parts of a request URL we need, plus a description safe for errors.
struct target {
  bool tls = false;
  /// Host for the resolver and SNI (IPv6 without brackets).
  std::string host;
  std::string port;
  /// Value of the Host header.
  std::string host_header;
  /// Request target: path plus query.
  std::string path_and_query;
  /// "scheme://host:port/path" without query or fragment: safe to log.
  std::string safe;
  /// Pool key: scheme, host and port.
  std::string key;
};

caf::expected<target> parse_target(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed)
    return make_detail_error(ec::transport_failure, "invalid URL (not an absolute http(s) URL)");
  auto& u = *parsed;
  target t;
  auto scheme = u.scheme_id();
  if (scheme == boost::urls::scheme::https)
    t.tls = true;
  else if (scheme != boost::urls::scheme::http)
    return make_detail_error(ec::transport_failure, "unsupported URL scheme (need http or https)");
  t.host = u.host_address();
  if (t.host.empty())
    return make_detail_error(ec::transport_failure, "URL without host");
  std::string default_port = t.tls ? "443" : "80";
  t.port = u.has_port() && !u.port().empty() ? std::string{u.port()} : default_port;
  std::string host_enc{u.encoded_host()};
  t.host_header = host_enc;
  if (t.port != default_port)
    t.host_header += ":" + t.port;
  std::string path{u.encoded_path()};
  if (path.empty())
    path = "/";
  t.path_and_query = path;
  if (u.has_query()) {
    t.path_and_query += '?';
    t.path_and_query += std::string{u.encoded_query()};
  }
  std::string scheme_str = t.tls ? "https" : "http";
  t.safe = scheme_str + "://" + host_enc + ":" + t.port + path;
  t.key = scheme_str + "://" + host_enc + ":" + t.port;
  return t;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code err;
  asio::ip::make_address(host, err);
  return !err;
}

/// One TCP or TLS connection; lives in the pool while idle. All operations
/// on it run on `exec`, the strand of the exchange that opened it.
struct connection {
  connection(strand_type ex, ssl::context* tls_ctx, std::string pool_key)
    : exec(ex), key(std::move(pool_key)), idle_timer(ex) {
    if (tls_ctx)
      secure.emplace(ex, *tls_ctx);
    else
      plain.emplace(ex);
  }

  beast::tcp_stream& tcp() {
    return secure ? beast::get_lowest_layer(*secure) : *plain;
  }

  void close() {
    beast::error_code err;
    tcp().socket().shutdown(tcp::socket::shutdown_both, err);
    tcp().close();
    idle_timer.cancel();
  }

  strand_type exec;
  std::string key;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  /// Bytes read past a response; must be empty for the connection to be reused.
  beast::flat_buffer buffer;
  asio::steady_timer idle_timer;
  /// Bumped (under the pool mutex) whenever the connection enters or leaves
  /// the pool, so a stale idle-timer expiry can tell it no longer applies.
  uint64_t idle_gen = 0;
};

using connection_ptr = std::shared_ptr<connection>;

thread_local const void* current_io_owner = nullptr;

} // namespace

// -- implementation state -------------------------------------------------------

struct exchange;

struct client_state {
  explicit client_state(client_options options);

  void start_threads();

  void async_send(request req, callback cb);

  void shutdown();

  /// Returns a reusable connection to the pool or closes it.
  void release(connection_ptr conn);

  /// Removes `ex` from the active set; wakes shutdown() when the last one ends.
  void unregister(exchange* ex);

  bool on_io_thread() const {
    return current_io_owner == this;
  }

  client_options opts;
  // Declared before the io_context: connections destroyed with its pending
  // handlers still reference the TLS context.
  ssl::context tls_ctx{ssl::context::tls_client};
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;

  std::mutex mtx;
  std::condition_variable idle_cv;
  bool stopping = false;
  bool stopped = false;
  /// Early failures posted to the io_context but not yet delivered.
  size_t pending_posts = 0;
  /// Idle connections per pool key, most recently used last.
  std::unordered_map<std::string, std::vector<connection_ptr>> pool;
  /// Exchanges in flight, so shutdown() can abort them.
  std::map<exchange*, std::shared_ptr<exchange>> active;
};

// -- one request/response exchange ------------------------------------------------

struct exchange : std::enable_shared_from_this<exchange> {
  exchange(client_state* owner, strand_type ex, request r, target t, callback c)
    : parent(owner), exec(ex), req(std::move(r)), tgt(std::move(t)), cb(std::move(c)) {
    deadline = steady::now() + req.timeout;
    build_message();
  }

  // -- setup ----------------------------------------------------------------------

  void build_message() {
    auto verb = http::string_to_verb(req.method);
    msg.version(11);
    if (verb == http::verb::unknown)
      msg.method_string(req.method);
    else
      msg.method(verb);
    msg.target(tgt.path_and_query);
    msg.set(http::field::host, tgt.host_header);
    msg.set(http::field::user_agent, parent->opts.user_agent);
    msg.set(http::field::connection, "keep-alive");
    for (auto& [name, value] : req.headers)
      msg.insert(name, value);
    if (!req.content_type.empty())
      msg.set(http::field::content_type, req.content_type);
    msg.body() = req.body;
    msg.prepare_payload();
  }

  void start() {
    if (aborted)
      return fail_shutdown();
    if (conn)
      do_write();
    else
      do_resolve();
  }

  // -- connecting -------------------------------------------------------------------

  void do_resolve() {
    resolver.emplace(exec);
    resolve_timer.emplace(exec);
    resolve_timer->expires_at(deadline);
    resolve_timer->async_wait([self = shared_from_this()](beast::error_code err) {
      if (!err && self->resolver) {
        self->timed_out = true;
        self->resolver->cancel();
      }
    });
    resolver->async_resolve(tgt.host, tgt.port,
                            [self = shared_from_this()](beast::error_code err,
                                                        tcp::resolver::results_type results) {
                              self->on_resolve(err, std::move(results));
                            });
  }

  void on_resolve(beast::error_code err, tcp::resolver::results_type results) {
    resolve_timer->cancel();
    if (aborted)
      return fail_shutdown();
    if (timed_out)
      return fail_timeout("resolve");
    if (err)
      return fail_transport("resolve", err);
    conn = std::make_shared<connection>(exec, tgt.tls ? &parent->tls_ctx : nullptr, tgt.key);
    conn->tcp().expires_at(deadline);
    conn->tcp().async_connect(results, [self = shared_from_this()](beast::error_code err,
                                                                   const tcp::endpoint&) {
      self->on_connect(err);
    });
  }

  void on_connect(beast::error_code err) {
    if (err)
      return fail_stage("connect", err);
    if (!tgt.tls)
      return do_write();
    auto* native = conn->secure->native_handle();
    // SNI must be a host name; RFC 6066 forbids IP literals there.
    if (!is_ip_literal(tgt.host)
        && !SSL_set_tlsext_host_name(native, const_cast<char*>(tgt.host.c_str())))
      return fail_transport("tls setup", beast::error_code{static_cast<int>(::ERR_get_error()),
                                                           asio::error::get_ssl_category()});
    if (parent->opts.verify_peer)
      conn->secure->set_verify_callback(ssl::host_name_verification(tgt.host));
    conn->tcp().expires_at(deadline);
    conn->secure->async_handshake(ssl::stream_base::client,
                                  [self = shared_from_this()](beast::error_code err) {
                                    if (err)
                                      return self->fail_stage("tls handshake", err);
                                    self->do_write();
                                  });
  }

  // -- exchanging -------------------------------------------------------------------

  template <class F>
  void with_stream(F&& fn) {
    if (conn->secure)
      fn(*conn->secure);
    else
      fn(*conn->plain);
  }

  void do_write() {
    if (aborted)
      return fail_shutdown();
    parser.emplace();
    parser->body_limit(parent->opts.max_body_bytes);
    parser->header_limit(64 * 1024);
    conn->tcp().expires_at(deadline);
    with_stream([this](auto& stream) {
      http::async_write(stream, msg, [self = shared_from_this()](beast::error_code err, size_t) {
        self->on_write(err);
      });
    });
  }

  void on_write(beast::error_code err) {
    if (err)
      return maybe_retry("write", err);
    if (aborted)
      return fail_shutdown();
    conn->tcp().expires_at(deadline);
    with_stream([this](auto& stream) {
      http::async_read(stream, conn->buffer, *parser,
                       [self = shared_from_this()](beast::error_code err, size_t) {
                         self->on_read(err);
                       });
    });
  }

  void on_read(beast::error_code err) {
    if (err) {
      if (conn->buffer.size() == 0 && !parser->got_some())
        return maybe_retry("read", err);
      if (err == http::error::body_limit)
        return finish(make_detail_error(ec::transport_failure,
                                        describe() + ": response body exceeds "
                                          + std::to_string(parent->opts.max_body_bytes)
                                          + " bytes"));
      return fail_stage("read", err);
    }
    auto msg_in = parser->release();
    response res;
    res.status = msg_in.result_int();
    for (auto& field : msg_in)
      res.headers.emplace_back(std::string{field.name_string()}, std::string{field.value()});
    if (auto it = msg_in.find(http::field::content_type); it != msg_in.end())
      res.content_type = std::string{it->value()};
    bool reusable = msg_in.keep_alive() && conn->buffer.size() == 0;
    res.body = std::move(msg_in.body());
    auto done_conn = std::move(conn);
    if (reusable)
      parent->release(std::move(done_conn));
    else
      done_conn->close();
    finish(std::move(res));
  }

  /// A pooled connection the server closed while idle fails on write or
  /// before any response byte: that request never reached the application,
  /// so an idempotent request may go again on a fresh connection.
  void maybe_retry(const char* stage, beast::error_code err) {
    if (aborted)
      return fail_shutdown();
    if (err == beast::error::timeout)
      return fail_timeout(stage);
    if (from_pool && !retried && req.idempotent) {
      WH_DEBUG(component, "retrying " << describe() << " on a fresh connection after "
                                      << stage << " failed on a pooled one: " << err.message());
      retried = true;
      from_pool = false;
      conn->close();
      conn.reset();
      return do_resolve();
    }
    fail_transport(stage, err);
  }

  // -- completion -------------------------------------------------------------------

  std::string describe() const {
    return req.method + " " + tgt.safe;
  }

  void fail_stage(const char* stage, beast::error_code err) {
    if (aborted)
      return fail_shutdown();
    if (err == beast::error::timeout)
      return fail_timeout(stage);
    fail_transport(stage, err);
  }

  void fail_timeout(const char* stage) {
    finish(make_detail_error(ec::timeout, describe() + ": timed out after "
                                            + std::to_string(req.timeout.count())
                                            + " ms (during " + stage + ")"));
  }

  void fail_transport(const char* stage, beast::error_code err) {
    finish(make_detail_error(ec::transport_failure,
                             describe() + ": " + stage + " failed: " + err.message()));
  }

  void fail_shutdown() {
    finish(make_detail_error(ec::shutting_down, describe() + ": HTTP client shutting down"));
  }

  void finish(caf::expected<response> result) {
    if (done)
      return;
    done = true;
    if (resolve_timer)
      resolve_timer->cancel();
    if (conn) {
      conn->close();
      conn.reset();
    }
    auto handler = std::move(cb);
    // Unregister only after the callback: shutdown() waits for the active set
    // to drain, and the callback must run before the client goes away.
    try {
      handler(std::move(result));
    } catch (const std::exception& e) {
      WH_ERROR(component, "HTTP callback threw: " << e.what());
    } catch (...) {
      WH_ERROR(component, "HTTP callback threw a non-standard exception");
    }
    parent->unregister(this);
  }

  /// Runs on `exec` when the client shuts down.
  void abort() {
    if (done)
      return;
    aborted = true;
    if (resolver)
      resolver->cancel();
    if (resolve_timer)
      resolve_timer->cancel();
    if (conn)
      conn->tcp().close();
  }

  client_state* parent;
  strand_type exec;
  request req;
  target tgt;
  callback cb;
  steady::time_point deadline;
  http::request<http::string_body> msg;
  std::optional<http::response_parser<http::string_body>> parser;
  std::optional<tcp::resolver> resolver;
  std::optional<asio::steady_timer> resolve_timer;
  connection_ptr conn;
  bool from_pool = false;
  bool retried = false;
  bool timed_out = false;
  bool aborted = false;
  bool done = false;
};

// -- impl ---------------------------------------------------------------------------

client_state::client_state(client_options options) : opts(std::move(options)) {
  // TLS 1.2 is the floor: WeChat and every sane server support it.
  SSL_CTX_set_min_proto_version(tls_ctx.native_handle(), TLS1_2_VERSION);
  tls_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  boost::system::error_code err;
  tls_ctx.set_default_verify_paths(err);
  if (err)
    WH_WARN(component, "cannot load the system trust store: " << err.message());
  if (!opts.ca_file.empty()) {
    tls_ctx.load_verify_file(opts.ca_file, err);
    if (err)
      WH_ERROR(component, "cannot load CA file " << opts.ca_file << ": " << err.message());
  }
  tls_ctx.set_verify_mode(opts.verify_peer ? ssl::verify_peer : ssl::verify_none);
  if (opts.io_threads == 0)
    opts.io_threads = 1;
}

void client_state::start_threads() {
  work.emplace(ioc.get_executor());
  for (unsigned i = 0; i < opts.io_threads; ++i)
    threads.emplace_back([this] {
      current_io_owner = this;
      ioc.run();
    });
}

void client_state::async_send(request req, callback cb) {
  auto tgt = parse_target(req.url);
  std::shared_ptr<exchange> ex;
  {
    std::unique_lock guard{mtx};
    if (stopping) {
      guard.unlock();
      // No I/O thread may run anything any more: complete inline.
      cb(make_detail_error(ec::shutting_down, req.method + " "
                                                + (tgt ? tgt->safe : std::string{"<invalid URL>"})
                                                + ": HTTP client shutting down"));
      return;
    }
    if (!tgt) {
      ++pending_posts;
      asio::post(ioc, [this, cb = std::move(cb), err = std::move(tgt.error())]() mutable {
        cb(std::move(err));
        std::lock_guard guard{mtx};
        if (--pending_posts == 0 && active.empty())
          idle_cv.notify_all();
      });
      return;
    }
    connection_ptr conn;
    if (auto it = pool.find(tgt->key); it != pool.end() && !it->second.empty()) {
      conn = std::move(it->second.back());
      it->second.pop_back();
      ++conn->idle_gen;
    }
    auto exec = conn ? conn->exec : asio::make_strand(ioc);
    ex = std::make_shared<exchange>(this, exec, std::move(req), std::move(*tgt), std::move(cb));
    if (conn) {
      ex->conn = std::move(conn);
      ex->from_pool = true;
    }
    active.emplace(ex.get(), ex);
  }
  asio::post(ex->exec, [ex] { ex->start(); });
}

void client_state::release(connection_ptr conn) {
  std::unique_lock guard{mtx};
  auto& idle = pool[conn->key];
  if (stopping || idle.size() >= opts.max_idle_per_host) {
    guard.unlock();
    conn->close();
    return;
  }
  auto gen = ++conn->idle_gen;
  idle.push_back(conn);
  // Runs on the connection's strand, like all other operations on it.
  conn->idle_timer.expires_after(opts.idle_timeout);
  conn->idle_timer.async_wait([this, conn, gen](beast::error_code err) {
    if (err)
      return;
    std::unique_lock guard{mtx};
    if (conn->idle_gen != gen)
      return; // reused since; the new owner decides its fate
    auto& list = pool[conn->key];
    std::erase(list, conn);
    ++conn->idle_gen;
    guard.unlock();
    conn->close();
  });
}

void client_state::unregister(exchange* ex) {
  std::shared_ptr<exchange> keep; // destroyed outside the lock
  std::lock_guard guard{mtx};
  if (auto it = active.find(ex); it != active.end()) {
    keep = std::move(it->second);
    active.erase(it);
  }
  if (active.empty() && pending_posts == 0)
    idle_cv.notify_all();
}

void client_state::shutdown() {
  std::unique_lock guard{mtx};
  if (stopped)
    return;
  stopping = true;
  for (auto& [ptr, ex] : active)
    asio::post(ex->exec, [ex = ex] { ex->abort(); });
  for (auto& [key, list] : pool)
    for (auto& conn : list)
      asio::post(conn->exec, [conn = conn] { conn->close(); });
  pool.clear();
  if (on_io_thread()) {
    // Cannot wait for our own thread; the destructor joins later.
    WH_ERROR(component, "http_client::shutdown called from an I/O thread");
    return;
  }
  idle_cv.wait(guard, [this] { return active.empty() && pending_posts == 0; });
  stopped = true;
  guard.unlock();
  work.reset();
  // Stale idle timers of connections may still be pending; drop them.
  ioc.stop();
  for (auto& thread : threads)
    if (thread.joinable())
      thread.join();
}

// -- http_client ----------------------------------------------------------------------

// http_client::impl is private; the exchange works on client_state instead.
struct http_client::impl : client_state {
  using client_state::client_state;
};

http_client::http_client(client_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {
  impl_->start_threads();
}

http_client::~http_client() {
  impl_->shutdown();
}

void http_client::async_send(request req, callback cb) {
  impl_->async_send(std::move(req), std::move(cb));
}

caf::expected<response> http_client::send(request req) {
  if (impl_->on_io_thread())
    return make_detail_error(ec::transport_failure,
                             "http_client::send called from its own I/O thread");
  std::promise<caf::expected<response>> prom;
  auto fut = prom.get_future();
  async_send(std::move(req), [&prom](caf::expected<response> res) {
    prom.set_value(std::move(res));
  });
  return fut.get();
}

void http_client::shutdown() {
  impl_->shutdown();
}

bool http_client::on_io_thread() const {
  return impl_->on_io_thread();
}

} // namespace wh::net
