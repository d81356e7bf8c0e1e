#define CAF_SUITE config_cluster_etcd

#include "caf/test/dsl.hpp"

#include "core/config.hpp"
#include "core/error.hpp"

using namespace wh;

namespace {

std::optional<std::string> no_env(const std::string&) {
  return std::nullopt;
}

caf::expected<hub_config> parse(const std::string& text) {
  return parse_config(text, "test.toml", no_env);
}

std::string problem(const std::string& cluster_keys) {
  auto res = parse("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\n" + cluster_keys);
  if (res)
    return "<no error>";
  return detail_of(res.error());
}

} // namespace

CAF_TEST(the contract example parses) {
  auto cfg = parse(R"(
[cluster]
node_id = "n1"
listen = "127.0.0.1:7101"
etcd = ["http://127.0.0.1:2379"]
lease_ttl_ms = 3000
replicas = 2
)");
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->cluster.etcd, std::vector<std::string>{"http://127.0.0.1:2379"});
  CAF_CHECK_EQUAL(cfg->cluster.lease_ttl_ms, 3000u);
  // The nodes come from etcd: two replicas without any static peer.
  CAF_CHECK_EQUAL(cfg->cluster.replicas, 2u);
}

CAF_TEST(defaults without etcd are unchanged) {
  auto cfg = parse("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\n");
  CAF_REQUIRE(cfg);
  CAF_CHECK(cfg->cluster.etcd.empty());
  CAF_CHECK_EQUAL(cfg->cluster.lease_ttl_ms, 3000u);
  CAF_CHECK_EQUAL(cfg->cluster.replicas, 1u);
  auto with_etcd = parse("[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7101\"\n"
                         "etcd = [\"http://10.0.0.1:2379\", \"https://etcd.example:2379/\"]\n");
  CAF_REQUIRE(with_etcd);
  CAF_CHECK_EQUAL(with_etcd->cluster.etcd.size(), 2u);
  CAF_CHECK_EQUAL(with_etcd->cluster.replicas, 2u); // default with etcd
}

CAF_TEST(bad etcd keys are named) {
  CAF_CHECK_EQUAL(problem("etcd = \"http://127.0.0.1:2379\"\n"),
                  "test.toml: cluster.etcd: expected an array of \"http://host:port\" strings");
  CAF_CHECK_EQUAL(problem("etcd = [\"127.0.0.1:2379\"]\n"),
                  "test.toml: cluster.etcd[0]: expected \"http://host:port\" or \"https://host:port\"");
  CAF_CHECK_EQUAL(problem("etcd = [\"http://127.0.0.1\"]\n"),
                  "test.toml: cluster.etcd[0]: expected \"http://host:port\" or \"https://host:port\"");
  CAF_CHECK_EQUAL(problem("etcd = [\"http://127.0.0.1:2379/v3\"]\n"),
                  "test.toml: cluster.etcd[0]: expected \"http://host:port\" or \"https://host:port\"");
  CAF_CHECK_EQUAL(problem("etcd = [\"http://u:p@h:2379\"]\n"),
                  "test.toml: cluster.etcd[0]: expected \"http://host:port\" or \"https://host:port\"");
  CAF_CHECK_EQUAL(problem("etcd = [2379]\n"),
                  "test.toml: cluster.etcd[0]: expected \"http://host:port\" or \"https://host:port\"");
  CAF_CHECK_EQUAL(problem("etcd = [\"http://a:1\", \"http://a:1\"]\n"),
                  "test.toml: cluster.etcd[1]: duplicate endpoint \"http://a:1\"");
  CAF_CHECK_EQUAL(problem("lease_ttl_ms = 999\n"),
                  "test.toml: cluster.lease_ttl_ms: must be between 1000 and 60000");
  CAF_CHECK_EQUAL(problem("lease_ttl_ms = 60001\n"),
                  "test.toml: cluster.lease_ttl_ms: must be between 1000 and 60000");
  CAF_CHECK_EQUAL(problem("lease_ttl_ms = \"3s\"\n"), "test.toml: cluster.lease_ttl_ms: expected an integer");
  CAF_CHECK_EQUAL(problem("etcd = [\"http://a:1\"]\nreplicas = 17\n"),
                  "test.toml: cluster.replicas: must be between 1 and 16");
  CAF_CHECK_EQUAL(problem("etcd = [\"http://a:1\"]\nreplicas = 0\n"),
                  "test.toml: cluster.replicas: must be between 1 and 16");
  // Without etcd the static bound stays.
  CAF_CHECK_EQUAL(problem("replicas = 2\n"),
                  "test.toml: cluster.replicas: must be between 1 and the number of nodes (1)");
}

CAF_TEST(advertise names the endpoint the other nodes dial) {
  auto plain = parse("[cluster]\nnode_id = \"n1\"\nlisten = \"0.0.0.0:7101\"\n");
  CAF_REQUIRE(plain);
  CAF_CHECK_EQUAL(plain->cluster.advertised_endpoint(), "0.0.0.0:7101");
  auto cfg = parse("[cluster]\nnode_id = \"n1\"\nlisten = \"0.0.0.0:7101\"\nadvertise = \"10.0.0.5:17101\"\n");
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->cluster.advertised_endpoint(), "10.0.0.5:17101");
  CAF_CHECK_EQUAL(problem("advertise = \"10.0.0.5\"\n"),
                  "test.toml: cluster.advertise: expected \"host:port\" with a fixed port, got \"10.0.0.5\"");
  CAF_CHECK_EQUAL(problem("advertise = \"10.0.0.5:0\"\n"),
                  "test.toml: cluster.advertise: expected \"host:port\" with a fixed port, got \"10.0.0.5:0\"");
}
