#define CAF_SUITE config_clients

// The [[client]] fields for clients that cannot send headers (path_key,
// networks) and the per-component reconciliation interval.

#include "caf/test/dsl.hpp"

#include "core/config.hpp"
#include "core/error.hpp"

using namespace wh;

namespace {

const std::string key_hash(64, 'a');

caf::expected<hub_config> parse(const std::string& text) {
  return parse_config(text, "test.toml", [](const std::string&) { return std::nullopt; });
}

std::string problem(const std::string& text) {
  auto res = parse(text);
  return res ? "<no error>" : detail_of(res.error());
}

} // namespace

CAF_TEST(path keys and networks parse) {
  auto res = parse("[[client]]\nname = \"a\"\nkey_sha256 = \"" + key_hash
                   + "\"\npath_key = true\nscopes = [\"*\"]\n"
                     "[[client]]\nname = \"b\"\nnetworks = [\"10.1.0.0/16\", \"::1/128\"]\n");
  CAF_REQUIRE(res);
  CAF_REQUIRE_EQUAL(res->clients.size(), 2u);
  CAF_CHECK(res->clients[0].path_key);
  CAF_CHECK(res->clients[0].networks.empty());
  CAF_CHECK(!res->clients[1].path_key);
  CAF_CHECK(res->clients[1].key_sha256.empty());
  CAF_CHECK_EQUAL(res->clients[1].networks, (std::vector<std::string>{"10.1.0.0/16", "::1/128"}));
}

CAF_TEST(bad client identities are refused with the key named) {
  CAF_CHECK_EQUAL(problem("[[client]]\nname = \"a\"\n"),
                  "test.toml: client[0].key_sha256: missing required key (or give networks)");
  CAF_CHECK_EQUAL(problem("[[client]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\npath_key = true\n"),
                  "test.toml: client[0].path_key: needs key_sha256");
  for (auto bad : {"10.0.0.0", "10.0.0.0/33", "::1/129", "nonsense/8", "10.0.0.0/", "10.0.0.0/x"})
    CAF_CHECK_EQUAL(problem("[[client]]\nname = \"a\"\nnetworks = [\"" + std::string{bad} + "\"]\n"),
                    "test.toml: client[0].networks[0]: expected a CIDR such as \"10.1.0.0/16\" or \"::1/128\"");
  CAF_CHECK_EQUAL(problem("[[client]]\nname = \"a\"\nnetworks = \"10.0.0.0/8\"\n"),
                  "test.toml: client[0].networks: expected an array of CIDR strings");
}

CAF_TEST(reconciliation interval is per component) {
  auto comp = std::string{"[[component]]\nappid = \"wxc\"\nsecret = \"s\"\ntoken = \"t\"\n"
                          "encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\n"};
  auto res = parse(comp);
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->components.at(0).reconcile_interval_s, 21600u);
  res = parse(comp + "reconcile_interval_s = 0\n");
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->components.at(0).reconcile_interval_s, 0u);
}
