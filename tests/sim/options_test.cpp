#define CAF_SUITE sim_options

#include "caf/test/dsl.hpp"

#include "sim/options.hpp"

using namespace wh::sim;

namespace {

std::string fails(std::vector<std::string> args) {
  cli_options opts;
  std::string error;
  if (parse_cli(args, opts, error))
    return "<no error>";
  return error;
}

} // namespace

CAF_TEST(defaults) {
  cli_options opts;
  std::string error;
  CAF_REQUIRE(parse_cli({}, opts, error));
  CAF_CHECK_EQUAL(opts.srv.host, "127.0.0.1");
  CAF_CHECK_EQUAL(opts.srv.port, 9000u);
  CAF_CHECK_EQUAL(opts.svc.lim.token_lifetime, 7200);
  CAF_CHECK_EQUAL(opts.svc.lim.daily_quota, 2000);
  CAF_CHECK_EQUAL(opts.svc.lim.force_limit, 20);
  CAF_CHECK_EQUAL(opts.srv.threads, 1u);
  CAF_CHECK_EQUAL(opts.srv.push_interval_s, 600);
  CAF_CHECK(opts.srv.push_on_start);
  CAF_CHECK(opts.svc.push_urls.empty());
  CAF_CHECK(!opts.help);
}

CAF_TEST(push options) {
  cli_options opts;
  std::string error;
  // --push-url may come before the --component it names.
  CAF_REQUIRE(parse_cli({"--push-url", "wxc=http://127.0.0.1:4000/wechat/component/wxc/events",
                         "--component", "wxc:cs:tok:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                         "--push-url=wxc=http://h/x?a=b", "--push-interval", "0",
                         "--no-push-on-start"},
                        opts, error));
  CAF_REQUIRE_EQUAL(opts.svc.push_urls.size(), 2u);
  CAF_CHECK_EQUAL(opts.svc.push_urls[0].first, "wxc");
  CAF_CHECK_EQUAL(opts.svc.push_urls[0].second, "http://127.0.0.1:4000/wechat/component/wxc/events");
  CAF_CHECK_EQUAL(opts.svc.push_urls[1].second, "http://h/x?a=b");
  CAF_CHECK_EQUAL(opts.srv.push_interval_s, 0);
  CAF_CHECK(!opts.srv.push_on_start);
}

CAF_TEST(full command line) {
  cli_options opts;
  std::string error;
  CAF_REQUIRE(parse_cli({"--listen", "0.0.0.0:0", "--port-file", "/tmp/p", "--app", "wx1:s1",
                         "--app=wx2:s2", "--component",
                         "wxc:cs:tok:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                         "--token-lifetime", "600", "--ticket-lifetime=900", "--daily-quota", "5",
                         "--force-limit", "2", "--latency-ms", "10", "--threads", "2",
                         "--verbose"},
                        opts, error));
  CAF_CHECK_EQUAL(opts.srv.host, "0.0.0.0");
  CAF_CHECK_EQUAL(opts.srv.port, 0u);
  CAF_CHECK_EQUAL(opts.port_file, "/tmp/p");
  CAF_REQUIRE_EQUAL(opts.svc.apps.size(), 2u);
  CAF_CHECK_EQUAL(opts.svc.apps[1].secret, "s2");
  CAF_REQUIRE_EQUAL(opts.svc.components.size(), 1u);
  CAF_CHECK_EQUAL(opts.svc.components[0].token, "tok");
  CAF_CHECK_EQUAL(opts.svc.lim.token_lifetime, 600);
  CAF_CHECK_EQUAL(opts.svc.lim.ticket_lifetime, 900);
  CAF_CHECK_EQUAL(opts.svc.lim.daily_quota, 5);
  CAF_CHECK_EQUAL(opts.svc.lim.force_limit, 2);
  CAF_CHECK_EQUAL(opts.svc.latency_ms, 10);
  CAF_CHECK_EQUAL(opts.srv.threads, 2u);
  CAF_CHECK(opts.srv.verbose);
}

CAF_TEST(bad arguments) {
  CAF_CHECK_EQUAL(fails({"--bogus"}), "unknown option '--bogus' (see --help)");
  CAF_CHECK_NOT_EQUAL(fails({"--listen"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--listen", "nohost"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--listen", "h:99999"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--app", "wx1"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--app", "wx1:s:x"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--app", "wx1:a", "--app", "wx1:b"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--component", "c:s:t:short"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--token-lifetime", "0"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--threads", "x"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--daily-quota", "-1"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"positional"}), "<no error>");
  const std::string comp = "wxc:cs:tok:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
  CAF_CHECK_EQUAL(fails({"--push-url", "wxc=http://h/x"}),
                  "invalid --push-url: 'wxc' is not a --component");
  CAF_CHECK_NOT_EQUAL(fails({"--component", comp, "--push-url", "http://h/x"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--component", comp, "--push-url", "wxc=https://h/x"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--component", comp, "--push-url", "wxc=/x"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--push-interval", "-1"}), "<no error>");
  CAF_CHECK_NOT_EQUAL(fails({"--push-interval", "soon"}), "<no error>");
}
