#include "actors/upstream_actor.hpp"

#include <unordered_map>

#include <boost/json.hpp>

#include "caf/all.hpp"

#include "actors/messages.hpp"
#include "actors/quota_book.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "net/http_client.hpp"

namespace wh::actors {

int errcode_of(std::string_view body) {
  boost::system::error_code err;
  auto val = boost::json::parse(body, err);
  if (err || !val.is_object())
    return -2;
  auto code = val.as_object().if_contains("errcode");
  if (!code)
    return 0;
  if (code->is_int64())
    return static_cast<int>(code->as_int64());
  return -2;
}

namespace {

struct upstream_state {
  static inline const char* name = "wh.upstream";
  std::shared_ptr<net::http_client> http;
  std::string api_base;
  std::chrono::milliseconds timeout{10'000};
  metrics* stats = nullptr;
  quota_book* quota = nullptr;
  uint64_t next_id = 1;
  /// Metric cells per endpoint, created on an endpoint's first call: the
  /// actor is their only user, so no lock and no label rendering per call.
  struct endpoint_cells {
    wh::histogram* latency = nullptr;
    std::unordered_map<std::string, std::atomic<uint64_t>*> calls; // by errcode label
  };
  std::unordered_map<std::string, endpoint_cells> cells;
  struct pending {
    caf::typed_response_promise<upstream_reply> rp;
    std::string endpoint;
    std::string key;
    std::chrono::steady_clock::time_point start;
  };
  std::unordered_map<uint64_t, pending> inflight;

  /// Counts the answered (or failed) call `p` and observes its duration.
  void finish(const pending& p, const std::string& errcode_label, int errcode) {
    if (quota)
      quota->record(p.key, p.endpoint, errcode);
    if (!stats)
      return;
    auto& c = cells[p.endpoint];
    if (!c.latency)
      c.latency = &stats->histogram("wechat_upstream_call_duration_seconds",
                                    {{"endpoint", p.endpoint}});
    c.latency->observe(std::chrono::steady_clock::now() - p.start);
    auto& n = c.calls[errcode_label];
    if (!n)
      n = &stats->counter("wechat_upstream_calls_total",
                          {{"endpoint", p.endpoint}, {"errcode", errcode_label}});
    n->fetch_add(1, std::memory_order_relaxed);
  }
};

caf::behavior upstream_actor(caf::stateful_actor<upstream_state>* self,
                             std::shared_ptr<net::http_client> http, std::string api_base,
                             std::chrono::milliseconds timeout, metrics* stats, quota_book* quota) {
  auto& st = self->state;
  st.http = std::move(http);
  st.api_base = std::move(api_base);
  st.timeout = timeout;
  st.stats = stats;
  st.quota = quota;
  if (stats)
    stats->describe("wechat_upstream_call_duration_seconds",
                    "Duration of calls to WeChat by endpoint (answered or not)", "histogram");
  return {
    [=](call_atom, upstream_call& call) -> caf::result<upstream_reply> {
      auto& st = self->state;
      auto id = st.next_id++;
      auto rp = self->make_response_promise<upstream_reply>();
      st.inflight.emplace(id, upstream_state::pending{rp, call.endpoint, std::move(call.key),
                                                      std::chrono::steady_clock::now()});
      net::request req;
      req.method = call.method;
      req.url = st.api_base + call.target;
      req.body = std::move(call.body);
      if (!req.body.empty())
        req.content_type = "application/json";
      req.timeout = st.timeout;
      // Token fetches are idempotent except forced refreshes, which the
      // caller marks by endpoint name.
      req.idempotent = call.endpoint != "stable_token_force";
      caf::actor me = caf::actor_cast<caf::actor>(self);
      st.http->async_send(std::move(req), [me, id](caf::expected<net::response> res) {
        if (res)
          caf::anon_send(me, done_atom::value, id, upstream_reply{res->status, std::move(res->body)});
        else
          caf::anon_send(me, done_atom::value, id, std::move(res.error()));
      });
      return rp;
    },
    [=](done_atom, uint64_t id, upstream_reply& rep) {
      auto i = self->state.inflight.find(id);
      if (i == self->state.inflight.end())
        return;
      auto code = rep.status == 200 ? errcode_of(rep.body) : -2;
      self->state.finish(i->second,
                         rep.status == 200 ? std::to_string(code) : "http_" + std::to_string(rep.status),
                         code);
      i->second.rp.deliver(std::move(rep));
      self->state.inflight.erase(i);
    },
    [=](done_atom, uint64_t id, caf::error& err) {
      auto i = self->state.inflight.find(id);
      if (i == self->state.inflight.end())
        return;
      self->state.finish(i->second, code_of(err) == ec::timeout ? "timeout" : "transport", -2);
      WH_WARN("upstream", i->second.endpoint << " failed: " << detail_of(err));
      auto code = code_of(err) == ec::timeout ? ec::timeout : ec::upstream_unavailable;
      i->second.rp.deliver(make_detail_error(code, "WeChat unreachable: " + detail_of(err)));
      self->state.inflight.erase(i);
    },
  };
}

} // namespace

caf::actor spawn_upstream_actor(caf::actor_system& sys, std::shared_ptr<net::http_client> http,
                                std::string api_base, std::chrono::milliseconds timeout,
                                metrics* stats, quota_book* quota) {
  return sys.spawn(upstream_actor, std::move(http), std::move(api_base), timeout, stats, quota);
}

} // namespace wh::actors
