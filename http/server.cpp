// The only translation unit of the front end that instantiates Beast.
#include "http/server.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "core/error.hpp"
#include "core/log.hpp"

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace wh::http {

class session;

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
  std::set<std::weak_ptr<session>, std::owner_less<std::weak_ptr<session>>> sessions;
  std::condition_variable sessions_cv;
  uint16_t bound_port = 0;

  void do_accept();
};

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& sock, std::shared_ptr<server::impl> srv)
    : stream_(std::move(sock)), srv_(std::move(srv)) {}

  ~session() {
    std::lock_guard<std::mutex> guard{srv_->sessions_mtx};
    srv_->connections--;
    srv_->sessions_cv.notify_all();
  }

  void run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&session::do_read, shared_from_this()));
  }

  /// Called on stop: closes the connection now if it waits for a request.
  void drain() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_)
        self->close();
    });
  }

private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(srv_->opts.max_body_bytes);
    parser_->header_limit(srv_->opts.max_header_bytes);
    stream_.expires_after(first_ ? srv_->opts.request_timeout : srv_->opts.idle_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout
        || ec == asio::error::operation_aborted || ec == asio::error::connection_reset)
      return close();
    if (ec == bhttp::error::body_limit) {
      keep_alive_ = false;
      return write(srv_->render_error(413, "body_too_large",
                                      "request body exceeds " + std::to_string(srv_->opts.max_body_bytes)
                                        + " bytes"));
    }
    if (ec == bhttp::error::header_limit) {
      keep_alive_ = false;
      return write(srv_->render_error(431, "headers_too_large", "request headers are too large"));
    }
    if (ec) {
      if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) {
        keep_alive_ = false;
        return write(srv_->render_error(400, "invalid_request", "malformed HTTP request"));
      }
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
    auto peer = stream_.socket().remote_endpoint(ep_ec);
    req.loopback = !ep_ec && peer.address().is_loopback();
    auto self = shared_from_this();
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
    stream_.expires_after(srv_->opts.request_timeout);
    bhttp::async_write(stream_, res_,
                       beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    busy_ = false;
    if (ec)
      return close();
    if (!res_.keep_alive())
      return linger_close();
    do_read();
  }

  /// Half-closes, then discards what the peer still sends (e.g. the rest of
  /// an oversized body) until it closes or the deadline passes, so that the
  /// peer reads our answer instead of a connection reset.
  void linger_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(srv_->opts.request_timeout);
    drain_.resize(16 * 1024);
    do_discard();
  }

  void do_discard() {
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec)
                                return self->close();
                              self->do_discard();
                            });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  std::shared_ptr<server::impl> srv_;
  std::vector<char> drain_;
  bool first_ = true;
  bool busy_ = false;
  bool keep_alive_ = true;
};

void server::impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc), [self = shared_from_this()](beast::error_code ec,
                                                                             tcp::socket sock) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open())
        return;
      WH_WARN("http", "accept failed: " << ec.message());
      return self->do_accept();
    }
    if (self->draining || self->connections.load() >= self->opts.max_connections) {
      beast::error_code ignored;
      sock.close(ignored);
      return self->do_accept();
    }
    self->connections++;
    auto s = std::make_shared<session>(std::move(sock), self);
    {
      std::lock_guard<std::mutex> guard{self->sessions_mtx};
      for (auto i = self->sessions.begin(); i != self->sessions.end();)
        i = i->expired() ? self->sessions.erase(i) : std::next(i);
      self->sessions.insert(s);
    }
    s->run();
    self->do_accept();
  });
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

void server::stop(std::chrono::milliseconds grace) {
  auto& im = *impl_;
  if (im.threads.empty())
    return;
  im.draining = true;
  asio::post(im.ioc, [self = impl_] {
    beast::error_code ignored;
    self->acceptor.close(ignored);
  });
  {
    std::vector<std::shared_ptr<session>> live;
    {
      std::lock_guard<std::mutex> guard{im.sessions_mtx};
      for (auto& w : im.sessions)
        if (auto s = w.lock())
          live.push_back(std::move(s));
    }
    for (auto& s : live)
      s->drain();
  }
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
}

} // namespace wh::http
