#define CAF_SUITE net_https

#include "caf/test/dsl.hpp"

#include <filesystem>

#include "core/error.hpp"
#include "net/http_client.hpp"
#include "tests/net/test_server.hpp"

using namespace wh;
using wh::test::with_opt;
using namespace std::chrono_literals;

namespace {


struct fixture {
  fixture()
    : pki(test::make_test_pki()),
      server([](const test::seen_request& req) {
        test::reply out;
        out.body = "secure " + req.target + " host=" + req.header("host");
        return out;
      }, test::tls_files{pki.server_cert, pki.server_key}) {
  }

  ~fixture() {
    std::error_code err;
    std::filesystem::remove_all(pki.dir, err);
  }

  net::request get(const std::string& host, std::string path = "/x") {
    net::request req;
    req.url = "https://" + host + ":" + std::to_string(server.port()) + path;
    req.timeout = 5s;
    return req;
  }

  test::test_pki pki;
  test::test_server server;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(net_https_tests, fixture)

CAF_TEST(verification succeeds with the test CA) {
  net::http_client client{with_opt([this](net::client_options& o) { o.ca_file = pki.ca_cert; })};
  auto res = client.send(get("localhost"));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->body, "secure /x host=localhost:" + std::to_string(server.port()));
  // Keep-alive works over TLS as well.
  CAF_REQUIRE(client.send(get("localhost", "/y")));
  CAF_CHECK_EQUAL(server.connections(), 1u);
}

CAF_TEST(verification fails without the test CA) {
  net::http_client client;
  auto res = client.send(get("localhost", "/x?access_token=SECRET"));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(to_string(code_of(res.error())), std::string{"transport_failure"});
  auto detail = detail_of(res.error());
  CAF_MESSAGE("untrusted detail: " << detail);
  CAF_CHECK(detail.find("handshake") != std::string::npos);
  CAF_CHECK(detail.find("SECRET") == std::string::npos);
}

CAF_TEST(verification fails on a host name mismatch) {
  // The certificate names DNS:localhost only, not the IP address.
  net::http_client client{with_opt([this](net::client_options& o) { o.ca_file = pki.ca_cert; })};
  auto res = client.send(get("127.0.0.1"));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(to_string(code_of(res.error())), std::string{"transport_failure"});
  CAF_MESSAGE("mismatch detail: " << detail_of(res.error()));
}

CAF_TEST(verification can be disabled for tests) {
  net::http_client client{with_opt([](net::client_options& o) { o.verify_peer = false; })};
  auto res = client.send(get("127.0.0.1"));
  CAF_REQUIRE(res);
}

CAF_TEST_FIXTURE_SCOPE_END()
