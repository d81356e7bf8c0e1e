// wh-loadgen's command line, target and TLS context (see loadgen.cpp).

#include "bench/loadgen/setup.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <netdb.h>

#include <boost/url/parse.hpp>
#include <openssl/err.h>

namespace wh::bench::loadgen {

namespace {

// -- options ------------------------------------------------------------------

constexpr const char* usage_text =
  "usage: wh-loadgen --rate R [options] URL\n"
  "  --rate R           requests per second, sent open-loop (required)\n"
  "  --duration S       measured seconds (default 10)\n"
  "  --warmup S         seconds sent first and not recorded (default 1)\n"
  "  --connections N    keep-alive connections (default 64)\n"
  "  --threads T        event-loop threads sharing rate and connections (default 1)\n"
  "  --timeout S        to connect, and to wait for answers after the last send (default 10)\n"
  "  --tick US          wake to send at most once per US microseconds, sending every request\n"
  "                     due by then (default 0: a wake per due time); latency still runs from\n"
  "                     each request's due time, so a tick can only add to it\n"
  "  --header 'N: V'    extra request header (repeatable)\n"
  "  --insecure         https: do not verify the server certificate\n"
  "  --cacert FILE      https: trust this CA (PEM) instead of the system store\n"
  "URL is http://HOST[:PORT]/PATH?QUERY or https://...; every request is a GET.\n"
  "Prints one 'name value' line per figure (latencies in ms, from the intended send time).\n";

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "wh-loadgen: %s\n%s", why.c_str(), usage_text);
  std::exit(2);
}

double parse_number(const std::string& flag, const char* text, double min, double max) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < min || v > max)
    usage_error(flag + ": expected a number in [" + std::to_string(min) + ", " + std::to_string(max)
                + "], got '" + text + "'");
  return v;
}

} // namespace

options parse_options(int argc, char** argv) {
  options o;
  bool have_rate = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc)
        usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(usage_text, stdout);
      std::exit(0);
    } else if (a == "--rate") {
      o.rate = parse_number(a, value(), 0.001, 10'000'000);
      have_rate = true;
    } else if (a == "--duration") {
      o.duration = parse_number(a, value(), 0.001, 86'400);
    } else if (a == "--warmup") {
      o.warmup = parse_number(a, value(), 0, 3'600);
    } else if (a == "--connections") {
      o.connections = static_cast<int>(parse_number(a, value(), 1, 100'000));
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_number(a, value(), 1, 256));
    } else if (a == "--tick") {
      o.tick_us = parse_number(a, value(), 0, 1'000'000);
    } else if (a == "--timeout") {
      o.timeout = parse_number(a, value(), 0.001, 3'600);
    } else if (a == "--header" || a == "-H") {
      std::string h = value();
      if (h.find(':') == std::string::npos || h.find_first_of("\r\n") != std::string::npos)
        usage_error("--header: expected 'Name: value' on one line");
      o.headers.push_back(std::move(h));
    } else if (a == "--insecure" || a == "-k") {
      o.insecure = true;
    } else if (a == "--cacert") {
      o.cacert = value();
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option " + a);
    } else if (o.url.empty()) {
      o.url = a;
    } else {
      usage_error("more than one URL");
    }
  }
  if (!have_rate)
    usage_error("--rate is required");
  if (o.url.empty())
    usage_error("no URL");
  if (o.connections < o.threads)
    usage_error("--connections must be at least --threads");
  double total = o.rate * (o.warmup + o.duration);
  if (total > 1e9)
    usage_error("rate x (warmup + duration) is over 1e9 requests");
  if (o.rate * o.duration < 1)
    usage_error("rate x duration is below one request");
  return o;
}

// -- target -------------------------------------------------------------------

target resolve_target(const options& o) {
  auto parsed = boost::urls::parse_uri(o.url);
  if (!parsed)
    usage_error("bad URL '" + o.url + "': " + parsed.error().message());
  auto& u = *parsed;
  target t;
  if (u.scheme() == "https")
    t.tls = true;
  else if (u.scheme() != "http")
    usage_error("URL scheme must be http or https");
  if (u.host_type() == boost::urls::host_type::ipv6)
    t.host = u.host_ipv6_address().to_string();
  else
    t.host = u.host();
  if (t.host.empty())
    usage_error("URL has no host");
  std::string port = u.has_port() ? std::string{u.port()} : (t.tls ? "443" : "80");
  std::string path{u.encoded_path()};
  if (path.empty())
    path = "/";
  if (u.has_query())
    path += "?" + std::string{u.encoded_query()};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(t.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    std::fprintf(stderr, "wh-loadgen: cannot resolve %s: %s\n", t.host.c_str(), ::gai_strerror(rc));
    std::exit(1);
  }
  std::memcpy(&t.addr, res->ai_addr, res->ai_addrlen);
  t.addr_len = res->ai_addrlen;
  ::freeaddrinfo(res);
  t.request = "GET " + path + " HTTP/1.1\r\nHost: " + std::string{u.encoded_host_and_port()}
              + "\r\nUser-Agent: wh-loadgen\r\n";
  for (auto& h : o.headers)
    t.request += h + "\r\n";
  t.request += "\r\n";
  return t;
}

std::string ssl_error_text() {
  std::string out;
  while (auto e = ::ERR_get_error()) {
    char buf[256];
    ::ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty())
      out += "; ";
    out += buf;
  }
  return out.empty() ? "TLS error" : out;
}

SSL_CTX* make_tls_context(const options& o) {
  SSL_CTX* ctx = ::SSL_CTX_new(::TLS_client_method());
  if (ctx == nullptr) {
    std::fprintf(stderr, "wh-loadgen: %s\n", ssl_error_text().c_str());
    std::exit(1);
  }
  ::SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (o.insecure) {
    ::SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    bool ok = o.cacert.empty() ? ::SSL_CTX_set_default_verify_paths(ctx) == 1
                               : ::SSL_CTX_load_verify_locations(ctx, o.cacert.c_str(), nullptr) == 1;
    if (!ok) {
      std::fprintf(stderr, "wh-loadgen: cannot load trusted certificates%s%s: %s\n",
                   o.cacert.empty() ? "" : " from ", o.cacert.c_str(), ssl_error_text().c_str());
      std::exit(1);
    }
    ::SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

} // namespace wh::bench::loadgen
