#include "cluster/etcd_membership.hpp"

#include <algorithm>
#include <utility>

#include "core/error.hpp"
#include "core/log.hpp"

namespace wh::cluster {

namespace {

constexpr const char* component = "etcd";

using std::chrono::milliseconds;
using std::chrono::seconds;

/// etcd counts lease TTLs in whole seconds: the next whole second up.
seconds whole_seconds(milliseconds ttl) {
  return seconds{std::max<int64_t>(1, (ttl.count() + 999) / 1000)};
}

/// The membership record's text for `nodes` (sorted by id).
std::string describe(const std::vector<etcd_member>& nodes) {
  std::string out;
  for (auto& n : nodes) {
    if (!out.empty())
      out += ',';
    out += n.node_id;
    out += '@';
    out += std::to_string(n.create_revision);
  }
  return out;
}

std::string why(const caf::error& err) {
  auto d = detail_of(err);
  return d.empty() ? std::string{to_string(code_of(err))} : d;
}

} // namespace

etcd_membership::etcd_membership(etcd_client& etcd, membership_options opts)
  : etcd_(etcd), opts_(std::move(opts)) {
  if (opts_.keepalive_interval.count() <= 0)
    opts_.keepalive_interval = std::max(milliseconds{1}, opts_.lease_ttl / 3);
  if (opts_.poll_interval.count() <= 0)
    opts_.poll_interval = milliseconds{200};
  nodes_prefix_ = opts_.prefix + "nodes/";
  record_key_ = opts_.prefix + "membership";
  key_ = nodes_prefix_ + opts_.node_id;
}

etcd_membership::~etcd_membership() {
  stop();
}

void etcd_membership::on_change(change_handler handler) {
  std::lock_guard guard{mtx_};
  handler_ = std::move(handler);
}

void etcd_membership::start() {
  std::lock_guard guard{mtx_};
  if (started_ || stopping_)
    return;
  started_ = true;
  lease_thread_ = std::thread{[this] { lease_loop(); }};
  view_thread_ = std::thread{[this] { view_loop(); }};
}

bool etcd_membership::wait_ready(milliseconds timeout) {
  std::unique_lock guard{mtx_};
  return cv_.wait_for(guard, timeout, [this] {
    return stopping_
           || (registered_ && read_once_
               && std::any_of(nodes_.begin(), nodes_.end(),
                              // Under the current lease: a key the previous
                              // process left (kill -9) does not count.
                              [this](auto& n) { return n.node_id == opts_.node_id && n.lease == lease_; }));
  }) && !stopping_;
}

void etcd_membership::stop() {
  {
    std::lock_guard guard{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (lease_thread_.joinable())
    lease_thread_.join();
  if (view_thread_.joinable())
    view_thread_.join();
  int64_t lease = 0;
  {
    std::lock_guard guard{mtx_};
    lease = lease_;
    lease_ = 0;
    registered_ = false;
    alive_until_ = time_point{};
    mirror_locked();
  }
  if (lease != 0) {
    if (auto r = etcd_.revoke(lease); !r)
      WH_WARN(component, "node " << opts_.node_id << ": cannot revoke lease " << lease
                                 << " (it expires after its TTL): " << why(r.error()));
    else
      WH_INFO(component, "node " << opts_.node_id << ": left the cluster (lease revoked)");
  }
}

// -- the view -------------------------------------------------------------------

membership_view etcd_membership::view() const {
  std::lock_guard guard{mtx_};
  return {nodes_, revision_, stale_locked(opts_.now())};
}

std::vector<etcd_member> etcd_membership::live_nodes() const {
  std::lock_guard guard{mtx_};
  return nodes_;
}

int64_t etcd_membership::revision() const {
  std::lock_guard guard{mtx_};
  return revision_;
}

etcd_membership::time_point etcd_membership::lease_alive_until() const {
  std::lock_guard guard{mtx_};
  return alive_until_;
}

bool etcd_membership::lease_alive() const {
  auto now = opts_.now();
  std::lock_guard guard{mtx_};
  return lease_ != 0 && now < alive_until_;
}

void etcd_membership::mirror_locked() {
  lease_mirror_.store(lease_, std::memory_order_release);
  alive_until_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(alive_until_.time_since_epoch()).count(),
                        std::memory_order_release);
}

bool etcd_membership::may_serve(int64_t node_lease) const {
  // A node that processed no view yet has not served as an owner either
  // (it is still joining: its reads go to the owners); -1: its last view
  // did not hold it.
  if (node_lease == 0 || unreachable_.load(std::memory_order_acquire))
    return true;
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.now().time_since_epoch()).count();
  return node_lease != 0 && lease_mirror_.load(std::memory_order_acquire) == node_lease
         && now < alive_until_ns_.load(std::memory_order_acquire);
}

bool etcd_membership::stale() const {
  auto now = opts_.now();
  std::lock_guard guard{mtx_};
  return stale_locked(now);
}

int64_t etcd_membership::lease_id() const {
  std::lock_guard guard{mtx_};
  return lease_;
}

std::string etcd_membership::owner_of(std::string_view key) const {
  std::lock_guard guard{mtx_};
  return owners_.owner(key);
}

bool etcd_membership::stale_locked(time_point now) const {
  return !read_once_ || lease_ == 0 || now >= alive_until_ || now >= last_read_ + opts_.lease_ttl;
}

milliseconds etcd_membership::ttl_local(seconds granted) const {
  return std::min<milliseconds>(opts_.lease_ttl, granted);
}

bool etcd_membership::pause(milliseconds d) {
  std::unique_lock guard{mtx_};
  return !cv_.wait_for(guard, d, [this] { return stopping_; });
}

// -- the lease --------------------------------------------------------------------

void etcd_membership::lease_loop() {
  for (;;) {
    auto started = opts_.now();
    lease_step();
    bool need_lease;
    {
      std::lock_guard guard{mtx_};
      need_lease = lease_ == 0 || !registered_;
    }
    // Without a lease or a registration retry soon, but never spin.
    auto period = need_lease ? std::min(opts_.keepalive_interval, milliseconds{100})
                             : opts_.keepalive_interval;
    auto elapsed = std::chrono::duration_cast<milliseconds>(opts_.now() - started);
    if (!pause(std::max(milliseconds{1}, period - elapsed)))
      return;
  }
}

void etcd_membership::lease_step() {
  auto fail = [this](const char* what, const caf::error& err) {
    if (!lease_failing_)
      WH_WARN(component, "node " << opts_.node_id << ": " << what << ": " << why(err)
                                 << " (retrying; logged once until it recovers)");
    lease_failing_ = true;
  };
  auto recovered = [this](const char* what) {
    if (lease_failing_)
      WH_INFO(component, "node " << opts_.node_id << ": " << what);
    lease_failing_ = false;
  };
  int64_t lease;
  bool registered;
  seconds granted;
  {
    std::lock_guard guard{mtx_};
    lease = lease_;
    registered = registered_;
    granted = granted_ttl_;
  }
  // The deadline counts from the time a request was sent: etcd counts from
  // when it received it, which is later.
  auto sent = opts_.now();
  if (lease == 0) {
    auto g = etcd_.grant(whole_seconds(opts_.lease_ttl));
    if (!g)
      return fail("cannot grant a lease", g.error());
    std::lock_guard guard{mtx_};
    lease_ = lease = g->id;
    granted_ttl_ = g->ttl;
    registered_ = registered = false;
    alive_until_ = sent + ttl_local(g->ttl);
    mirror_locked();
    sent = opts_.now();
  }
  if (!registered) {
    auto p = etcd_.put(key_, opts_.endpoint, lease);
    if (!p) {
      // The lease expired while etcd was unreachable: start over with a new one.
      if (etcd_code_of(p.error()) == 5) {
        std::lock_guard guard{mtx_};
        if (lease_ == lease)
          lease_ = 0;
        mirror_locked();
      }
      return fail("cannot register", p.error());
    }
    {
      std::lock_guard guard{mtx_};
      registered_ = true;
    }
    cv_.notify_all();
    recovered("etcd reachable again");
    WH_INFO(component, "node " << opts_.node_id << " registered at " << key_ << " (revision "
                               << *p << ", lease TTL " << opts_.lease_ttl.count() << " ms)");
    return;
  }
  auto k = etcd_.keepalive(lease);
  if (!k)
    return fail("lease keepalive failed", k.error());
  if (k->count() == 0) {
    // etcd no longer knows the lease: it expired (a pause, or etcd was
    // unreachable for a TTL). Our registration is gone; register anew.
    WH_WARN(component, "node " << opts_.node_id << ": lease " << lease
                               << " expired in etcd; registering anew");
    std::lock_guard guard{mtx_};
    if (lease_ == lease) {
      lease_ = 0;
      registered_ = false;
      alive_until_ = std::min(alive_until_, sent);
      mirror_locked();
    }
    lease_failing_ = false;
    return;
  }
  {
    std::lock_guard guard{mtx_};
    if (lease_ == lease)
      alive_until_ = std::max(alive_until_, sent + ttl_local(std::min(granted, *k)));
    mirror_locked();
  }
  recovered("etcd reachable again, lease kept");
}

// -- the view ---------------------------------------------------------------------

void etcd_membership::view_loop() {
  for (;;) {
    auto started = opts_.now();
    view_step();
    auto elapsed = std::chrono::duration_cast<milliseconds>(opts_.now() - started);
    if (!pause(std::max(milliseconds{1}, opts_.poll_interval - elapsed)))
      return;
  }
}

caf::error etcd_membership::write_record(const std::string& desc, int64_t record_mod) {
  etcd_compare unchanged{record_key_, etcd_compare::target::mod_revision,
                         etcd_compare::result::equal, record_mod};
  auto r = etcd_.txn({std::move(unchanged)}, {etcd_op::put(record_key_, desc)}, {});
  // Losing the race is no error: the next read sees the winner's record.
  return r ? caf::error{} : r.error();
}

void etcd_membership::view_step() {
  auto sent = opts_.now();
  // A few rounds at most: a round only repeats when this node wrote the
  // record or lost the race to write it.
  bool consistent = false;
  caf::error last_error;
  for (int round = 0; round < 3 && !consistent; ++round) {
    auto snap = etcd_.txn({}, {etcd_op::get(nodes_prefix_, etcd_client::prefix_end(nodes_prefix_)),
                               etcd_op::get(record_key_)},
                          {});
    if (snap && snap->ranges.size() != 2)
      snap = make_detail_error(ec::cluster_unavailable, "etcd membership read: malformed reply");
    if (!snap) {
      last_error = snap.error();
      break;
    }
    std::vector<etcd_member> nodes;
    for (auto& kv : snap->ranges[0].kvs) {
      if (kv.key.size() <= nodes_prefix_.size())
        continue;
      nodes.push_back({kv.key.substr(nodes_prefix_.size()), kv.value, kv.create_revision,
                       kv.mod_revision, kv.lease});
    }
    std::sort(nodes.begin(), nodes.end(),
              [](auto& a, auto& b) { return a.node_id < b.node_id; });
    auto desc = describe(nodes);
    const etcd_kv* record = snap->ranges[1].kvs.empty() ? nullptr : &snap->ranges[1].kvs[0];
    if (!record || record->value != desc) {
      // The record describes another set: bring it up to date, then read again.
      if (auto err = write_record(desc, record ? record->mod_revision : 0))
        last_error = std::move(err);
      continue;
    }
    consistent = true;
    if (view_failing_)
      WH_INFO(component, "node " << opts_.node_id << ": reading the live nodes again");
    view_failing_ = false;
    unreachable_.store(false, std::memory_order_release);
    bool changed = false;
    {
      std::lock_guard guard{mtx_};
      changed = !read_once_ || revision_ != record->mod_revision || nodes_ != nodes;
      if (changed) {
        std::vector<std::string> ids;
        for (auto& n : nodes)
          ids.push_back(n.node_id);
        owners_.set_nodes(std::move(ids));
        nodes_ = std::move(nodes);
        revision_ = record->mod_revision;
      }
      last_read_ = sent;
      read_once_ = true;
    }
    if (changed) {
      WH_INFO(component, "node " << opts_.node_id << ": live nodes at revision "
                                 << record->mod_revision << ": "
                                 << (desc.empty() ? "(none)" : desc));
      cv_.notify_all();
    }
  }
  if (!consistent) {
    if (!view_failing_)
      WH_WARN(component, "node " << opts_.node_id << ": cannot read the live nodes: "
                                 << (last_error ? why(last_error)
                                                : std::string{"the membership record keeps changing"})
                                 << " (keeping the last known ones; logged once until it recovers)");
    view_failing_ = true;
    // Only etcd's failure counts, not a record that keeps changing.
    unreachable_.store(static_cast<bool>(last_error), std::memory_order_release);
  }
  // Publish a change of the set or of the stale flag.
  membership_view v;
  change_handler handler;
  {
    std::lock_guard guard{mtx_};
    v = {nodes_, revision_, stale_locked(opts_.now())};
    handler = handler_;
  }
  bool publish = v.stale != published_stale_;
  if (v.stale != published_stale_) {
    if (v.stale)
      WH_WARN(component, "node " << opts_.node_id
                                 << ": membership view is stale (lease deadline passed or etcd "
                                    "unreachable): not acting as owner");
    else
      WH_INFO(component, "node " << opts_.node_id << ": membership view is current"
                                 << (ever_current_ ? " again" : "") << " (revision "
                                 << v.revision << ", " << v.nodes.size() << " live nodes)");
    ever_current_ = ever_current_ || !v.stale;
    published_stale_ = v.stale;
  }
  if (publish || published_revision_ != v.revision || published_nodes_ != v.nodes) {
    published_revision_ = v.revision;
    published_nodes_ = v.nodes;
    if (handler)
      handler(v);
  }
}

} // namespace wh::cluster
