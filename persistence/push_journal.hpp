#pragma once

// Durable memory of the third-party platform's pushes, so that neither a
// replay nor an out-of-order delivery can undo newer state, across restarts.

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "caf/error.hpp"
#include "caf/expected.hpp"

#include "persistence/store.hpp"

namespace wh::persistence {

/// Two records per component, both in the store (so they survive restarts):
/// - "push/seen/<component>/<msg_signature>": a push accepted within the
///   window (the replay cache), forgotten once its timestamp is outside it;
/// - "push/order/<component>/<subject>": the CreateTime of the newest push
///   applied for a subject ("verify_ticket", "auth/<authorizer>").
/// Both expire with the push window, so the journal stays bounded: a push
/// older than an expired record is refused by the window check anyway.
/// Thread-safe.
class push_journal {
public:
  /// `window_s`: the accepted push timestamp skew.
  push_journal(std::shared_ptr<store> db, int64_t window_s);

  enum class verdict {
    /// New and not older than the subject's last event: apply it.
    apply,
    /// The same push (msg_signature) was accepted before.
    duplicate,
    /// Older (CreateTime) than the last event applied for its subject.
    outdated,
  };

  /// Decides on a push. For `apply` the push is held as in flight (a
  /// concurrent copy is a duplicate) until `applied` or `release`. `subject`
  /// may be empty (no ordering). Errors: `storage_failure`.
  caf::expected<verdict> admit(std::string_view component, std::string_view signature,
                               std::string_view subject, int64_t create_time, int64_t now);

  /// Records an admitted push as applied, durably: later copies are
  /// duplicates and older events of its subject outdated. Only now, so a
  /// push whose effect a crash interrupted is applied again when WeChat
  /// retries it. Errors: `storage_failure`.
  caf::error applied(std::string_view component, std::string_view signature,
                     std::string_view subject, int64_t create_time, int64_t now);

  /// Forgets an admitted push that was not applied, so WeChat's retry is
  /// not taken for a duplicate.
  void release(std::string_view component, std::string_view signature);

  /// Deletes expired records; `admit` calls it at most once a minute.
  caf::error prune(int64_t now);

  /// Records held (for tests).
  size_t size();

private:
  caf::error prune_locked(int64_t now);

  std::shared_ptr<store> db_;
  int64_t window_s_;
  std::mutex mtx_;
  /// Seen-keys of admitted pushes not yet applied or released.
  std::set<std::string, std::less<>> in_flight_;
  int64_t last_prune_ = 0;
};

} // namespace wh::persistence
