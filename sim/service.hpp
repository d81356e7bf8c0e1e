#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "core/clock.hpp"
#include "sim/faults.hpp"
#include "sim/state.hpp"

namespace wh::sim {

/// Everything configurable about a simulator instance (the CLI maps onto it).
struct service_options {
  limits lim;
  std::vector<app_account> apps;
  std::vector<component_account> components;
  /// Added before every upstream answer (never to /sim/ control calls).
  int64_t latency_ms = 0;
  /// (component appid, authorization-event URL) pairs registered at startup,
  /// as if POSTed to /sim/register_push.
  std::vector<std::pair<std::string, std::string>> push_urls;
};

/// A request as the transport received it; Beast-free so tests build it by hand.
struct http_request {
  std::string method = "GET";
  /// Origin-form target: path plus query string.
  std::string target;
  std::string content_type;
  std::string body;
};

/// A response to write back.
struct http_reply {
  unsigned status = 200;
  std::string content_type = "application/json; encoding=utf-8";
  std::string body;
};

/// A request after routing: decoded query, parsed JSON body, the appid it
/// concerns and the fault (if any) it drew.
struct prepared {
  http_request req;
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;
  /// A known WeChat endpoint (counted in stats, subject to faults).
  bool upstream = false;
  /// /sim/ control endpoint.
  bool control = false;
  /// The appid this call concerns ("" if unknown); used by stats and faults.
  std::string appid;
  /// Parsed body when it was valid JSON.
  std::optional<boost::json::value> json;
  std::optional<fault_rule> fault;
  /// Milliseconds to wait before answering (global latency + latency fault).
  int64_t delay_ms = 0;

  /// First query parameter named `key`, "" if absent.
  std::string param(std::string_view key) const;
};

/// What executing a request produced.
struct outcome {
  outcome() = default;

  /// A plain answer without push.
  outcome(http_reply r) : reply(std::move(r)) {
  }

  http_reply reply;
  /// An authorization event to deliver.
  std::optional<push_event> push;
  /// For /sim/push: the reply is built by `push_result_reply` after delivery;
  /// otherwise the push (from api_start_push_ticket) is fire-and-forget.
  bool wait_for_push = false;
  /// Extra fields of the /sim/push answer (ticket or authorization_code).
  boost::json::object push_info;
};

/// The simulator's request handling as plain functions over a `state`, a
/// fault table and call counters. The Beast server only moves bytes and
/// timers; everything WeChat-like is decided here.
class service {
public:
  service(const wh::clock& base, service_options opts);

  /// The WeChat state machine.
  state& sim() { return state_; }

  /// Injected faults.
  fault_table& faults() { return faults_; }

  /// Upstream call counters.
  call_stats& stats() { return stats_; }

  /// Fresh verify-ticket pushes for every registered push URL (the periodic
  /// pusher calls this on each tick; see state::verify_ticket_pushes).
  std::vector<push_event> periodic_pushes() { return state_.verify_ticket_pushes(); }

  /// Routes `req`, counts it and draws a fault for it. Never throws.
  prepared prepare(http_request req);

  /// The canned answer of an errcode / http500 / html fault.
  static http_reply fault_reply(const fault_rule& rule);

  /// Handles a prepared request (faults other than latency already applied
  /// by the caller). Never throws.
  outcome execute(prepared& p);

  /// Convenience for tests: prepare + fault + execute without delays.
  /// A drop fault yields status 0.
  outcome handle(http_request req);

private:
  outcome execute_upstream(prepared& p);
  outcome execute_control(prepared& p);

  service_options opts_;
  state state_;
  fault_table faults_;
  call_stats stats_;
};

/// The /sim/push answer once the push was delivered (or failed: status 0).
http_reply push_result_reply(const boost::json::object& info, unsigned status,
                             const std::string& body, const std::string& error);

/// Serializes a JSON object into an HTTP reply.
http_reply json_reply(const boost::json::object& obj, unsigned status = 200);

} // namespace wh::sim
