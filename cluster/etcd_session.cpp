#include "cluster/etcd_session.hpp"

#include "cluster/node.hpp"
#include "core/log.hpp"
#include "net/http_client.hpp"

namespace wh::cluster {

etcd_session::etcd_session(const cluster_config& cfg) : node_id_(cfg.node_id) {
  net::client_options http_opts;
  http_opts.user_agent = "wechat-hub/0.1 (etcd)";
  http_ = std::make_shared<net::http_client>(http_opts);
  etcd_options eo;
  eo.endpoints = cfg.etcd;
  etcd_ = std::make_unique<etcd_client>(*http_, eo);
  membership_options mo;
  mo.node_id = cfg.node_id;
  mo.endpoint = cfg.advertised_endpoint();
  mo.lease_ttl = std::chrono::milliseconds{cfg.lease_ttl_ms};
  membership_ = std::make_unique<etcd_membership>(*etcd_, mo);
}

etcd_session::~etcd_session() {
  stop();
}

actors::lease_check etcd_session::may_act() {
  auto* m = membership_.get();
  auto alive = alive_;
  auto id = node_id_;
  auto cell = node_lease_ptr_;
  return [m, alive, id, cell] {
    bool now = m->lease_alive();
    if (auto* lease = cell->load(std::memory_order_acquire); now && lease)
      now = m->may_serve(lease->load(std::memory_order_acquire));
    if (alive->exchange(now) != now) {
      if (now)
        WH_INFO("cluster", id << ": etcd lease alive again; acting as owner of its keys");
      else
        WH_WARN("cluster", id << ": etcd lease lapsed; serving held tokens read-only, no upstream calls");
    }
    return now;
  };
}

bool etcd_session::attach(node& n, std::chrono::milliseconds timeout) {
  node_lease_ = n.lease_cell();
  node_lease_ptr_->store(node_lease_.get(), std::memory_order_release);
  membership_->on_change([a = n.actor()](const membership_view& v) { post_membership(a, v); });
  membership_->start();
  bool ok = membership_->wait_ready(timeout);
  if (ok)
    n.on_membership(membership_->view()); // at once, before the node serves
  return ok;
}

void etcd_session::stop() {
  if (membership_)
    membership_->stop();
  if (http_)
    http_->shutdown();
}

} // namespace wh::cluster
