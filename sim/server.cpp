#include "sim/server.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include "core/log.hpp"
#include "sim/push.hpp"

namespace wh::sim {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::size_t media_body_limit = 32 * 1024 * 1024;
constexpr std::size_t body_limit = 1024 * 1024;
constexpr auto idle_timeout = 300s;
constexpr auto io_timeout = 30s;
constexpr auto push_timeout = 10s;

bool is_media_path(std::string_view target) {
  return target.starts_with("/cgi-bin/media/upload")
         || target.starts_with("/cgi-bin/material/add_material");
}

// -- push client --------------------------------------------------------------

/// Delivers one push over plain HTTP; `done(status, body, error)` runs on the
/// client's own strand and must hand its result back to whoever waits.
class push_client : public std::enable_shared_from_this<push_client> {
public:
  using handler = std::function<void(unsigned, std::string, std::string)>;

  push_client(asio::io_context& ioc, handler done)
    : resolver_(asio::make_strand(ioc)), stream_(resolver_.get_executor()),
      done_(std::move(done)) {
  }

  void start(const push_http& push) {
    auto url = boost::urls::parse_absolute_uri(push.url);
    if (!url || url->scheme() != "http" || url->host().empty())
      return finish(0, "", "bad push url");
    port_ = url->has_port() ? std::string{url->port()} : "80";
    req_.method(http::verb::post);
    std::string target{url->encoded_path()};
    if (target.empty())
      target = "/";
    if (url->has_query())
      target += "?" + std::string{url->encoded_query()};
    req_.target(target);
    req_.version(11);
    req_.set(http::field::host, std::string{url->encoded_host_and_port()});
    req_.set(http::field::user_agent, "Mozilla/4.0 (wechat-sim)");
    req_.set(http::field::content_type, "text/xml");
    req_.keep_alive(false);
    req_.body() = push.body;
    req_.prepare_payload();
    stream_.expires_after(push_timeout);
    resolver_.async_resolve(std::string{url->host()}, port_,
                            beast::bind_front_handler(&push_client::on_resolve,
                                                      shared_from_this()));
  }

private:
  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec)
      return finish(0, "", "resolve: " + ec.message());
    stream_.async_connect(results, beast::bind_front_handler(&push_client::on_connect,
                                                             shared_from_this()));
  }

  void on_connect(beast::error_code ec, const tcp::endpoint&) {
    if (ec)
      return finish(0, "", "connect: " + ec.message());
    http::async_write(stream_, req_,
                      beast::bind_front_handler(&push_client::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec)
      return finish(0, "", "write: " + ec.message());
    http::async_read(stream_, buffer_, res_,
                     beast::bind_front_handler(&push_client::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec)
      return finish(0, "", "read: " + ec.message());
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    finish(res_.result_int(), std::move(res_.body()), "");
  }

  void finish(unsigned status, std::string body, std::string error) {
    if (done_) {
      auto done = std::move(done_);
      done_ = nullptr;
      done(status, std::move(body), std::move(error));
    }
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  std::string port_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  beast::flat_buffer buffer_;
  handler done_;
};

} // namespace

// -- server internals ---------------------------------------------------------

struct server::impl {
  impl(service& s, server_options o)
    : svc(s), opts(std::move(o)), ioc(static_cast<int>(std::max(1u, opts.threads))),
      acceptor(asio::make_strand(ioc)), signals(ioc), push_timer(asio::make_strand(ioc)) {
  }

  void do_accept();

  /// Delivers a fresh verify ticket to every registered push URL. Only
  /// issues tickets and starts async clients: never blocks the I/O thread.
  void push_tickets() {
    for (auto& ev : svc.periodic_pushes()) {
      deliver(ev, [verbose = opts.verbose, comp = ev.component_appid](
                    unsigned status, std::string, std::string error) {
        // A hub that is down or restarting is normal; the next tick retries.
        if (status != 200 || !error.empty())
          WH_WARN("sim", "verify-ticket push for " << comp << " failed: status " << status
                                                   << (error.empty() ? "" : " ") << error);
        else if (verbose)
          WH_INFO("sim", "verify-ticket push for " << comp << " delivered");
      });
    }
  }

  void arm_push_timer() {
    push_timer.expires_after(std::chrono::seconds{opts.push_interval_s});
    push_timer.async_wait([this](beast::error_code ec) {
      if (ec)
        return; // cancelled by stop()
      push_tickets();
      arm_push_timer();
    });
  }

  /// Delivers `push`; `done` gets (status, body, error) on the push's strand.
  void deliver(const push_event& ev, push_client::handler done) {
    std::string error;
    auto push = build_push(ev, error);
    if (!push) {
      done(0, "", error);
      return;
    }
    if (opts.verbose) {
      // Path only: a registered URL may carry a query string of its own.
      auto url = boost::urls::parse_absolute_uri(ev.url);
      WH_INFO("sim", "push " << ev.info_type << " for " << ev.component_appid << " to "
                             << (url ? std::string{url->encoded_path()} : std::string{"?"}));
    }
    std::make_shared<push_client>(ioc, std::move(done))->start(*push);
  }

  service& svc;
  server_options opts;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  asio::signal_set signals;
  /// Drives the periodic verify-ticket pushes (on its own strand).
  asio::steady_timer push_timer;
};

namespace {

/// One keep-alive connection; requests are handled strictly one at a time
/// (a pipeline depth of one bounds memory per connection).
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& socket, server::impl* owner)
    : stream_(std::move(socket)), timer_(stream_.get_executor()), owner_(owner) {
  }

  void start() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&session::do_read, shared_from_this()));
  }

private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(body_limit);
    stream_.expires_after(idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&session::on_header,
                                                      shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec)
      return on_read_error(ec);
    auto& req = parser_->get();
    if (is_media_path(req.target()))
      parser_->body_limit(media_body_limit);
    stream_.expires_after(io_timeout);
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      // curl waits up to a second for this before sending large bodies.
      auto res = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *res,
                        [self = shared_from_this(), res](beast::error_code ec2, std::size_t) {
                          if (ec2)
                            return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      linger_ = true;
      return write(http_reply{413, "application/json",
                              R"({"errcode":-1,"errmsg":"request body too large"})"});
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout
        || ec == asio::error::operation_aborted || ec == asio::error::connection_reset)
      return close();
    // Malformed HTTP: answer 400 once, then close.
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      keep_alive_ = false;
      linger_ = true;
      return write(http_reply{400, "application/json",
                              R"({"errcode":-1,"errmsg":"bad request"})"});
    }
    close();
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec)
      return on_read_error(ec);
    auto req = parser_->release();
    keep_alive_ = req.keep_alive();
    started_ = std::chrono::steady_clock::now();
    http_request in;
    in.method = std::string{req.method_string()};
    in.target = std::string{req.target()};
    in.content_type = std::string{req[http::field::content_type]};
    in.body = std::move(req.body());
    pending_.emplace(owner_->svc.prepare(std::move(in)));
    if (pending_->delay_ms > 0) {
      timer_.expires_after(std::chrono::milliseconds{pending_->delay_ms});
      timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (wait_ec)
          return self->close();
        self->process();
      });
      return;
    }
    process();
  }

  void process() {
    auto& p = *pending_;
    if (p.fault) {
      if (p.fault->kind == fault_kind::drop) {
        log_line(0);
        return close();
      }
      return write(service::fault_reply(*p.fault));
    }
    auto out = owner_->svc.execute(p);
    if (out.push) {
      if (out.wait_for_push) {
        auto info = std::move(out.push_info);
        owner_->deliver(*out.push, [self = shared_from_this(), info = std::move(info)](
                                     unsigned status, std::string body, std::string error) {
          // Hop back onto the session's strand before touching it.
          asio::post(self->stream_.get_executor(), [self, info, status, body = std::move(body),
                                                    error = std::move(error)] {
            self->write(push_result_reply(info, status, body, error));
          });
        });
        return;
      }
      owner_->deliver(*out.push, [verbose = owner_->opts.verbose](unsigned status, std::string,
                                                                  std::string error) {
        if (verbose)
          WH_INFO("sim", "push finished: status " << status << (error.empty() ? "" : " ")
                                                  << error);
      });
    }
    write(std::move(out.reply));
  }

  void write(http_reply reply) {
    log_line(reply.status);
    auto res = std::make_shared<http::response<http::string_body>>(
      static_cast<http::status>(reply.status), 11);
    res->set(http::field::server, "wechat-sim");
    res->set(http::field::content_type, reply.content_type);
    res->keep_alive(keep_alive_);
    res->body() = std::move(reply.body);
    res->prepare_payload();
    stream_.expires_after(io_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (!ec && self->linger_)
                          return self->linger_close();
                        if (ec || !self->keep_alive_)
                          return self->close();
                        self->pending_.reset();
                        self->do_read();
                      });
  }

  void log_line(unsigned status) {
    if (!owner_->opts.verbose || !pending_)
      return;
    auto ms = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - started_)
                .count()
              / 1000.0;
    // Log the path and appid only: query strings carry tokens and secrets.
    WH_INFO("sim", pending_->req.method << ' ' << pending_->path << " appid=" << pending_->appid
                                        << " -> " << status << " (" << ms << " ms)");
  }

  /// After an error reply with unread input, closing at once would make the
  /// kernel send RST and the client could lose the reply; half-close and
  /// drain the rest for a while instead (as nginx's lingering close does).
  void linger_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(2s);
    drain();
  }

  void drain() {
    scratch_.resize(64 * 1024);
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec)
                                return self->close();
                              self->drain();
                            });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<prepared> pending_;
  server::impl* owner_;
  bool keep_alive_ = true;
  bool linger_ = false;
  std::vector<char> scratch_;
  std::chrono::steady_clock::time_point started_;
};

} // namespace

void server::impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<session>(std::move(socket), this)->start();
    }
    do_accept();
  });
}

// -- server -------------------------------------------------------------------

server::server(service& svc, server_options opts)
  : impl_(std::make_unique<impl>(svc, std::move(opts))) {
}

server::~server() {
  stop();
}

uint16_t server::start(std::string& error) {
  auto& d = *impl_;
  beast::error_code ec;
  auto addr = asio::ip::make_address(d.opts.host, ec);
  if (ec) {
    // Accept host names such as "localhost" too.
    tcp::resolver resolver{d.ioc};
    auto results = resolver.resolve(d.opts.host, std::to_string(d.opts.port), ec);
    if (ec || results.empty()) {
      error = "cannot resolve listen host '" + d.opts.host + "'";
      return 0;
    }
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep{addr, d.opts.port};
  d.acceptor.open(ep.protocol(), ec);
  if (!ec)
    d.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    d.acceptor.bind(ep, ec);
  if (!ec)
    d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on " + d.opts.host + ":" + std::to_string(d.opts.port) + ": "
            + ec.message();
    return 0;
  }
  if (d.opts.handle_signals) {
    d.signals.add(SIGINT);
    d.signals.add(SIGTERM);
    d.signals.async_wait([this](beast::error_code sig_ec, int) {
      if (!sig_ec)
        stop();
    });
  }
  d.do_accept();
  if (d.opts.push_on_start)
    asio::post(d.push_timer.get_executor(), [&d] { d.push_tickets(); });
  if (d.opts.push_interval_s > 0)
    asio::post(d.push_timer.get_executor(), [&d] { d.arm_push_timer(); });
  return d.acceptor.local_endpoint().port();
}

void server::run() {
  auto& d = *impl_;
  std::vector<std::thread> extra;
  for (unsigned i = 1; i < d.opts.threads; ++i)
    extra.emplace_back([&d] { d.ioc.run(); });
  d.ioc.run();
  for (auto& t : extra)
    t.join();
}

void server::stop() {
  auto& d = *impl_;
  asio::post(d.acceptor.get_executor(), [&d] {
    beast::error_code ignored;
    d.acceptor.close(ignored);
    d.signals.cancel(ignored);
  });
  asio::post(d.push_timer.get_executor(), [&d] { d.push_timer.cancel(); });
  d.ioc.stop();
}

} // namespace wh::sim
