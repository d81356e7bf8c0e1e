// wh-loadgen: an open-loop HTTP/1.1 load generator.
//
// Request i is due at start + i / rate, whatever happened to earlier ones. It
// goes out once due on the keep-alive connection idle longest (one request in
// flight per connection, no pipelining), and its latency runs from when it was
// due to when its whole response arrived. Time spent waiting for a connection
// therefore counts: no coordinated omission (the wrk2 model). Each thread runs
// one epoll loop that sleeps until the next request is due or a socket is
// ready; time is CLOCK_MONOTONIC (steady_clock).
//
//   wh-loadgen --rate R [--duration S] [--warmup S] [--connections N] [--threads T]
//              [--timeout S] [--tick US] [--header "Name: value"]... [--insecure | --cacert FILE] URL

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bench/loadgen/response_parser.hpp"
#include "bench/loadgen/setup.hpp"

namespace {

using namespace wh::bench::loadgen;
using steady = std::chrono::steady_clock;
using std::chrono::nanoseconds;

// -- results ------------------------------------------------------------------

struct results {
  std::vector<int64_t> latencies_ns;
  int64_t requests = 0; // scheduled in the measured window
  int64_t errors_status = 0;
  int64_t errors_io = 0;
  int64_t errors_timeout = 0;
  int64_t reconnects = 0;
  unsigned first_bad_status = 0;
  std::string first_io_error;
  steady::time_point last_done{};
};

// -- worker: one epoll loop over a share of the connections and requests -------

class worker {
public:
  worker(const options& o, const target& t, SSL_CTX* ctx, int id, int connections)
    : opt_(o), target_(t), ctx_(ctx), id_(id), stride_(o.threads), conns_(connections) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    total_ = std::llround(o.rate * (o.warmup + o.duration));
    measured_from_ = std::llround(o.rate * o.warmup);
    for (int64_t i = id_; i < total_; i += stride_)
      if (i >= measured_from_)
        ++res_.requests;
    res_.latencies_ns.reserve(static_cast<size_t>(res_.requests));
  }

  ~worker() {
    for (auto& c : conns_)
      close_conn(c);
    if (ep_ >= 0)
      ::close(ep_);
  }

  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Opens every connection (and completes TLS handshakes) before the clock
  /// starts; returns an error message if one fails.
  std::string connect_all() {
    auto deadline = steady::now() + to_duration(opt_.timeout);
    for (auto& c : conns_)
      if (!start_connect(c))
        return "cannot connect: " + c.last_error;
    for (;;) {
      size_t ready = 0;
      for (auto& c : conns_) {
        if (c.ph == phase::closed)
          return "cannot connect: " + c.last_error;
        ready += c.ph == phase::idle;
      }
      if (ready == conns_.size())
        break;
      auto now = steady::now();
      if (now >= deadline)
        return "connecting timed out";
      poll(deadline - now);
    }
    free_.clear();
    for (size_t i = 0; i < conns_.size(); ++i)
      free_.push_back(i);
    return {};
  }

  /// Sends this worker's requests (index id, id + threads, ...) on schedule.
  void run(steady::time_point start) {
    // Wake-ups within a microsecond of the due time (the default slack is 50 us).
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    start_ = start;
    auto tick = nanoseconds{static_cast<int64_t>(opt_.tick_us * 1e3)};
    auto batch_at = steady::time_point{}; // the earliest next batch
    int64_t next = id_;
    auto end = due(total_) + to_duration(opt_.timeout);
    for (;;) {
      auto now = steady::now();
      // With a tick, requests go out in batches at least a tick apart.
      if (now >= batch_at) {
        bool sent = false;
        while (next < total_ && !free_.empty() && due(next) <= now) {
          // Oldest idle connection first: requests spread over all of them, as
          // from many clients, rather than the few a stack would keep busy.
          auto idx = free_.front();
          free_.pop_front();
          begin_request(conns_[idx], next);
          next += stride_;
          sent = true;
        }
        if (sent)
          batch_at = now + tick;
      }
      if (next >= total_ && in_flight_ == 0)
        break;
      if (now >= end)
        break;
      auto wake = end;
      if (next < total_ && !free_.empty())
        wake = std::min(wake, std::max(due(next), batch_at));
      if (closed_ > 0)
        wake = std::min(wake, reconnect_due(now));
      poll(wake > now ? wake - now : nanoseconds{0});
    }
    // What is still unsent or unanswered at the end timed out.
    for (; next < total_; next += stride_)
      if (next >= measured_from_)
        ++res_.errors_timeout;
    for (auto& c : conns_)
      if (c.index >= measured_from_)
        ++res_.errors_timeout;
  }

  results& result() { return res_; }

private:
  enum class phase { closed, connecting, handshaking, idle, writing, reading };

  struct connection {
    int fd = -1;
    SSL* ssl = nullptr;
    phase ph = phase::closed;
    uint32_t events = 0;
    size_t written = 0;
    int64_t index = -1; // request in flight
    steady::time_point retry_at{};
    wh::bench::response_parser parser;
    std::string last_error;
  };

  static nanoseconds to_duration(double seconds) {
    return nanoseconds{static_cast<int64_t>(seconds * 1e9)};
  }

  steady::time_point due(int64_t i) const {
    return start_ + nanoseconds{static_cast<int64_t>(static_cast<double>(i) * 1e9 / opt_.rate)};
  }

  // -- event loop ---------------------------------------------------------------

  void poll(nanoseconds wait) {
    epoll_event evs[256];
    timespec ts{static_cast<time_t>(wait.count() / 1'000'000'000),
                static_cast<long>(wait.count() % 1'000'000'000)};
    int n = ::epoll_pwait2(ep_, evs, 256, &ts, nullptr);
    if (n < 0 && errno == ENOSYS) // kernels before 5.11: millisecond timeouts, rounded up
      n = ::epoll_wait(ep_, evs, 256, static_cast<int>((wait.count() + 999'999) / 1'000'000));
    if (n < 0 && errno != EINTR) {
      std::perror("wh-loadgen: epoll_wait");
      std::exit(1);
    }
    for (int i = 0; i < n; ++i)
      on_event(conns_[evs[i].data.u32], evs[i].events);
  }

  void on_event(connection& c, uint32_t ev) {
    switch (c.ph) {
      case phase::connecting:
        return on_connected(c);
      case phase::handshaking:
        return do_handshake(c);
      case phase::writing:
        return do_write(c);
      case phase::reading:
        return do_read(c);
      case phase::idle:
        return on_idle_readable(c);
      case phase::closed:
        return;
    }
  }

  void want(connection& c, uint32_t events) {
    if (c.events == events)
      return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = static_cast<uint32_t>(&c - conns_.data());
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    c.events = events;
  }

  // -- connections ----------------------------------------------------------------

  bool start_connect(connection& c) {
    c.fd = ::socket(target_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0)
      return connect_failed(c, std::string{"socket: "} + std::strerror(errno));
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u32 = static_cast<uint32_t>(&c - conns_.data());
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    c.events = EPOLLOUT;
    c.ph = phase::connecting;
    auto rc = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&target_.addr), target_.addr_len);
    if (rc != 0 && errno != EINPROGRESS)
      return connect_failed(c, std::strerror(errno));
    return true;
  }

  void on_connected(connection& c) {
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      connect_failed(c, std::strerror(err));
      return;
    }
    if (!target_.tls)
      return became_idle(c);
    c.ssl = ::SSL_new(ctx_);
    ::SSL_set_fd(c.ssl, c.fd);
    ::SSL_set_tlsext_host_name(c.ssl, target_.host.c_str());
    if (!opt_.insecure)
      ::SSL_set1_host(c.ssl, target_.host.c_str());
    c.ph = phase::handshaking;
    do_handshake(c);
  }

  void do_handshake(connection& c) {
    ERR_clear_error();
    int rc = ::SSL_connect(c.ssl);
    if (rc == 1)
      return became_idle(c);
    int e = ::SSL_get_error(c.ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
      return want(c, EPOLLIN);
    if (e == SSL_ERROR_WANT_WRITE)
      return want(c, EPOLLIN | EPOLLOUT);
    std::string why = "TLS handshake: " + ssl_error_text();
    if (auto v = ::SSL_get_verify_result(c.ssl); v != X509_V_OK)
      why += std::string{" ("} + ::X509_verify_cert_error_string(v) + ")";
    connect_failed(c, why);
  }

  void became_idle(connection& c) {
    c.ph = phase::idle;
    c.index = -1;
    want(c, EPOLLIN);
    if (running())
      free_.push_back(static_cast<size_t>(&c - conns_.data()));
  }

  bool connect_failed(connection& c, std::string why) {
    c.last_error = std::move(why);
    close_conn(c);
    ++closed_;
    // Retry, but not in a tight loop against a server that refuses.
    c.retry_at = steady::now() + std::chrono::milliseconds(100);
    return false;
  }

  void close_conn(connection& c) {
    if (c.ssl != nullptr) {
      ::SSL_free(c.ssl);
      c.ssl = nullptr;
    }
    if (c.fd >= 0) {
      ::close(c.fd); // also leaves the epoll set
      c.fd = -1;
    }
    c.ph = phase::closed;
    c.events = 0;
  }

  /// Drops a broken connection, failing its request, and opens a new one.
  void drop(connection& c, std::string why) {
    if (c.index >= 0) {
      --in_flight_;
      if (c.index >= measured_from_) {
        ++res_.errors_io;
        if (res_.first_io_error.empty())
          res_.first_io_error = why;
      }
      c.index = -1;
    }
    close_conn(c);
    reconnect(c);
  }

  void reconnect(connection& c) {
    ++res_.reconnects;
    if (!start_connect(c))
      return; // counted in closed_, retried by reconnect_due
  }

  /// Starts connections whose retry time has come; returns the next retry time.
  steady::time_point reconnect_due(steady::time_point now) {
    auto next = steady::time_point::max();
    for (auto& c : conns_) {
      if (c.ph != phase::closed)
        continue;
      if (c.retry_at <= now) {
        --closed_;
        start_connect(c);
      } else {
        next = std::min(next, c.retry_at);
      }
    }
    return next;
  }

  bool running() const { return start_ != steady::time_point{}; }

  // -- requests -----------------------------------------------------------------

  void begin_request(connection& c, int64_t index) {
    c.index = index;
    c.written = 0;
    c.parser.reset();
    c.ph = phase::writing;
    ++in_flight_;
    do_write(c);
  }

  void do_write(connection& c) {
    auto& req = target_.request;
    if (c.ssl == nullptr) {
      while (c.written < req.size()) {
        auto n = ::send(c.fd, req.data() + c.written, req.size() - c.written, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            return want(c, EPOLLIN | EPOLLOUT);
          return drop(c, std::string{"send: "} + std::strerror(errno));
        }
        c.written += static_cast<size_t>(n);
      }
    } else {
      ERR_clear_error();
      int n = ::SSL_write(c.ssl, req.data(), static_cast<int>(req.size()));
      if (n <= 0) {
        int e = ::SSL_get_error(c.ssl, n);
        if (e == SSL_ERROR_WANT_WRITE)
          return want(c, EPOLLIN | EPOLLOUT);
        if (e == SSL_ERROR_WANT_READ)
          return want(c, EPOLLIN);
        return drop(c, "TLS write: " + ssl_error_text());
      }
    }
    c.ph = phase::reading;
    want(c, EPOLLIN);
  }

  void do_read(connection& c) {
    char buf[16384];
    for (;;) {
      ssize_t n;
      if (c.ssl == nullptr) {
        n = ::recv(c.fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
          return;
        if (n < 0)
          return drop(c, std::string{"recv: "} + std::strerror(errno));
      } else {
        ERR_clear_error();
        int r = ::SSL_read(c.ssl, buf, sizeof(buf));
        if (r <= 0) {
          int e = ::SSL_get_error(c.ssl, r);
          if (e == SSL_ERROR_WANT_READ)
            return;
          if (e == SSL_ERROR_WANT_WRITE)
            return want(c, EPOLLIN | EPOLLOUT);
          if (e != SSL_ERROR_ZERO_RETURN)
            return drop(c, "TLS read: " + ssl_error_text());
          r = 0;
        }
        n = r;
      }
      if (n == 0)
        return drop(c, "connection closed before the whole response");
      size_t used = 0;
      auto st = c.parser.feed({buf, static_cast<size_t>(n)}, used);
      if (st == wh::bench::response_parser::state::error)
        return drop(c, "bad response: " + c.parser.error());
      if (st == wh::bench::response_parser::state::done) {
        if (used != static_cast<size_t>(n) || (c.ssl != nullptr && ::SSL_pending(c.ssl) > 0))
          return drop(c, "bytes after the response (none were asked for)");
        return finish(c);
      }
      // Plain sockets: wait for the next readiness (level-triggered) rather
      // than spend a recv on EAGAIN; TLS may hold decrypted bytes, so read on.
      if (c.ssl == nullptr)
        return;
    }
  }

  void finish(connection& c) {
    auto now = steady::now();
    --in_flight_;
    if (c.index >= measured_from_) {
      if (c.parser.status() == 200) {
        res_.latencies_ns.push_back((now - due(c.index)).count());
        res_.last_done = now;
      } else {
        ++res_.errors_status;
        if (res_.first_bad_status == 0)
          res_.first_bad_status = c.parser.status();
      }
    }
    c.index = -1;
    if (!c.parser.keep_alive()) {
      close_conn(c);
      return reconnect(c);
    }
    became_idle(c);
  }

  /// Readable while no request is in flight: the server closed the
  /// connection (e.g. its keep-alive timeout), or TLS 1.3 session tickets.
  void on_idle_readable(connection& c) {
    char buf[512];
    ssize_t n;
    if (c.ssl == nullptr) {
      n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    } else {
      ERR_clear_error();
      int r = ::SSL_read(c.ssl, buf, sizeof(buf));
      if (r <= 0 && ::SSL_get_error(c.ssl, r) == SSL_ERROR_WANT_READ)
        return;
      n = r;
    }
    // Closed or unsolicited bytes: either way this connection is done.
    free_.erase(std::remove(free_.begin(), free_.end(), static_cast<size_t>(&c - conns_.data())),
                free_.end());
    close_conn(c);
    reconnect(c);
  }

  const options& opt_;
  const target& target_;
  SSL_CTX* ctx_;
  int64_t id_;
  int64_t stride_;
  int ep_ = -1;
  std::vector<connection> conns_;
  std::deque<size_t> free_; // idle connections, in the order they became idle
  int64_t total_ = 0;
  int64_t measured_from_ = 0;
  int64_t in_flight_ = 0;
  int closed_ = 0;
  steady::time_point start_{};
  results res_;
};

// -- report -------------------------------------------------------------------

double percentile_ms(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty())
    return 0;
  // Nearest rank: the smallest value with at least p of all values at or below it.
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(std::max<int64_t>(sorted[rank - 1], 0)) / 1e6;
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  auto opt = parse_options(argc, argv);
  auto tgt = resolve_target(opt);
  SSL_CTX* ctx = tgt.tls ? make_tls_context(opt) : nullptr;

  std::vector<std::unique_ptr<worker>> workers;
  for (int t = 0; t < opt.threads; ++t) {
    int share = opt.connections / opt.threads + (t < opt.connections % opt.threads ? 1 : 0);
    workers.push_back(std::make_unique<worker>(opt, tgt, ctx, t, share));
  }
  for (auto& w : workers) {
    if (auto err = w->connect_all(); !err.empty()) {
      std::fprintf(stderr, "wh-loadgen: %s: %s\n", opt.url.c_str(), err.c_str());
      return 1;
    }
  }
  auto start = steady::now() + std::chrono::milliseconds(5);
  std::vector<std::thread> threads;
  for (size_t t = 1; t < workers.size(); ++t)
    threads.emplace_back([&, t] { workers[t]->run(start); });
  workers[0]->run(start);
  for (auto& th : threads)
    th.join();

  results all;
  for (auto& w : workers) {
    auto& r = w->result();
    all.latencies_ns.insert(all.latencies_ns.end(), r.latencies_ns.begin(), r.latencies_ns.end());
    all.requests += r.requests;
    all.errors_status += r.errors_status;
    all.errors_io += r.errors_io;
    all.errors_timeout += r.errors_timeout;
    all.reconnects += r.reconnects;
    all.last_done = std::max(all.last_done, r.last_done);
    if (all.first_bad_status == 0)
      all.first_bad_status = r.first_bad_status;
    if (all.first_io_error.empty())
      all.first_io_error = r.first_io_error;
  }
  std::sort(all.latencies_ns.begin(), all.latencies_ns.end());
  auto completed = static_cast<int64_t>(all.latencies_ns.size());
  auto measure_start = start + nanoseconds{static_cast<int64_t>(std::llround(opt.rate * opt.warmup) * 1e9 / opt.rate)};
  double elapsed = std::max(opt.duration,
                            std::chrono::duration<double>(all.last_done - measure_start).count());
  std::printf("url %s\n", opt.url.c_str());
  std::printf("target_rate %.1f\n", opt.rate);
  std::printf("achieved_rate %.1f\n", static_cast<double>(completed) / elapsed);
  std::printf("duration_s %.3f\n", opt.duration);
  std::printf("connections %d\n", opt.connections);
  std::printf("requests %lld\n", static_cast<long long>(all.requests));
  std::printf("completed %lld\n", static_cast<long long>(completed));
  std::printf("errors %lld\n", static_cast<long long>(all.errors_status + all.errors_io + all.errors_timeout));
  std::printf("errors_status %lld\n", static_cast<long long>(all.errors_status));
  std::printf("errors_io %lld\n", static_cast<long long>(all.errors_io));
  std::printf("errors_timeout %lld\n", static_cast<long long>(all.errors_timeout));
  std::printf("reconnects %lld\n", static_cast<long long>(all.reconnects));
  std::printf("p50_ms %.3f\n", percentile_ms(all.latencies_ns, 0.50));
  std::printf("p90_ms %.3f\n", percentile_ms(all.latencies_ns, 0.90));
  std::printf("p99_ms %.3f\n", percentile_ms(all.latencies_ns, 0.99));
  std::printf("p99.9_ms %.3f\n", percentile_ms(all.latencies_ns, 0.999));
  std::printf("max_ms %.3f\n", percentile_ms(all.latencies_ns, 1.0));
  if (all.errors_status > 0)
    std::fprintf(stderr, "wh-loadgen: %lld responses were not 200 (first: %u)\n",
                 static_cast<long long>(all.errors_status), all.first_bad_status);
  if (all.errors_io > 0)
    std::fprintf(stderr, "wh-loadgen: %lld requests failed (first: %s)\n",
                 static_cast<long long>(all.errors_io), all.first_io_error.c_str());
  if (all.errors_timeout > 0)
    std::fprintf(stderr, "wh-loadgen: %lld requests unsent or unanswered %.1f s after the last was due\n",
                 static_cast<long long>(all.errors_timeout), opt.timeout);
  workers.clear();
  if (ctx != nullptr)
    ::SSL_CTX_free(ctx);
  return 0;
}
