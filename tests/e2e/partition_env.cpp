#include "tests/e2e/partition_env.hpp"

namespace wh::test {

partition_env::partition_env() : etcd_dir(), server(etcd_dir / "data", etcd_dir / "etcd.log") {}

partition_env::~partition_env() {
  env.reset(); // the nodes go before the links they use
}

bool partition_env::up(cluster_options o) {
  if (etcd_server::binary().empty()) {
    CAF_MESSAGE("SKIPPED: the etcd binary is not installed (scripts/setup installs etcd-server)");
    return false;
  }
  if (!server.start()) {
    CAF_FAIL("cannot start etcd: " << server.error() << "\n" << read_file(etcd_dir / "etcd.log"));
    return false;
  }
  auto url = server.endpoint();
  auto etcd_port = static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
  o.nodes = 3;
  o.etcd = url;
  o.etcd_of.clear();
  for (std::size_t i = 0; i < o.nodes; ++i) {
    etcd_px.push_back(std::make_unique<tcp_proxy>(etcd_port));
    peer_px.push_back(std::make_unique<tcp_proxy>(0));
    o.etcd_of.push_back("http://" + etcd_px.back()->endpoint());
  }
  auto* peers = &peer_px;
  o.advertise = [peers](std::size_t i, uint16_t cluster_port) {
    (*peers)[i]->set_target(cluster_port);
    return (*peers)[i]->endpoint();
  };
  env = std::make_unique<cluster_env>(std::move(o));
  env->start_all();
  return true;
}

void partition_env::partition(std::size_t k, bool drop) {
  std::set<pid_t> pids{env->nodes[k].proc.pid()};
  if (drop) {
    etcd_px[k]->blackhole();
    peer_px[k]->blackhole();
  } else {
    etcd_px[k]->cut();
    peer_px[k]->cut();
  }
  for (std::size_t j = 0; j < peer_px.size(); ++j)
    if (j != k) {
      if (drop)
        peer_px[j]->blackhole_clients(pids);
      else
        peer_px[j]->cut_clients(pids);
    }
}

void partition_env::heal() {
  for (auto& p : etcd_px)
    p->heal();
  for (auto& p : peer_px)
    p->heal();
}

} // namespace wh::test
