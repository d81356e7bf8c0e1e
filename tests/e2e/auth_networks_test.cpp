#define CAF_SUITE http_auth_identities

// How the authenticator identifies clients without a header key: path keys
// (only for `path_key = true`) and source networks.

#include "caf/test/dsl.hpp"

#include "http/auth.hpp"

using namespace wh;

namespace {

client_config client(std::string name, std::string key, bool path_key, std::vector<std::string> nets) {
  client_config c;
  c.name = std::move(name);
  if (!key.empty())
    c.key_sha256 = http::sha256_hex(key);
  c.path_key = path_key;
  c.networks = std::move(nets);
  c.scopes = {"*"};
  return c;
}

std::string who(const std::shared_ptr<const client_config>& c) {
  return c ? c->name : "<nobody>";
}

} // namespace

CAF_TEST(networks match by prefix for IPv4 IPv6 and mapped addresses) {
  http::authenticator auth{{client("keyed", "k1", false, {}),
                            client("office", "", false, {"10.1.0.0/16", "fd00:1::/32"}),
                            client("one-host", "", false, {"192.168.7.9/32"}),
                            client("odd-prefix", "", false, {"172.16.0.0/12"})}};
  CAF_CHECK_EQUAL(who(auth.authenticate_network("10.1.200.3")), "office");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("10.2.0.1")), "<nobody>");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("::ffff:10.1.0.1")), "office");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("fd00:1:ffff::1")), "office");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("fd00:2::1")), "<nobody>");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("192.168.7.9")), "one-host");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("192.168.7.8")), "<nobody>");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("172.31.255.255")), "odd-prefix");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("172.32.0.0")), "<nobody>");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("")), "<nobody>");
  CAF_CHECK_EQUAL(who(auth.authenticate_network("not-an-address")), "<nobody>");
}

CAF_TEST(path keys are accepted only for path_key clients) {
  http::authenticator auth{{client("header", "k1", false, {}), client("path", "k2", true, {})}};
  CAF_CHECK_EQUAL(who(auth.authenticate_path_key("k2")), "path");
  CAF_CHECK_EQUAL(who(auth.authenticate_path_key("k1")), "<nobody>");
  CAF_CHECK_EQUAL(who(auth.authenticate_path_key("")), "<nobody>");
  CAF_CHECK_EQUAL(who(auth.authenticate("Bearer k1")), "header");
  CAF_CHECK_EQUAL(who(auth.authenticate("Bearer k2")), "path");
  // A network-only client has no key that could match anything.
  http::authenticator nets{{client("lan", "", false, {"127.0.0.0/8"})}};
  CAF_CHECK_EQUAL(who(nets.authenticate("Bearer ")), "<nobody>");
  CAF_CHECK_EQUAL(who(nets.authenticate("Bearer x")), "<nobody>");
}
