#include "persistence/push_journal.hpp"

#include <charconv>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"

namespace wh::persistence {

namespace {

constexpr std::string_view seen_prefix = "push/seen/";
constexpr std::string_view order_prefix = "push/order/";

std::string seen_key(std::string_view component, std::string_view signature) {
  return std::string{seen_prefix} + std::string{component} + "/" + std::string{signature};
}

std::string order_key(std::string_view component, std::string_view subject) {
  return std::string{order_prefix} + std::string{component} + "/" + std::string{subject};
}

/// A decimal record; nullopt for garbage (treated as absent, then pruned).
std::optional<int64_t> number(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

} // namespace

push_journal::push_journal(std::shared_ptr<store> db, int64_t window_s)
  : db_(std::move(db)), window_s_(window_s) {}

caf::expected<push_journal::verdict>
push_journal::admit(std::string_view component, std::string_view signature, std::string_view subject,
                    int64_t create_time, int64_t now) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (now - last_prune_ >= 60) {
    last_prune_ = now;
    if (auto err = prune_locked(now))
      WH_WARN("push", "cannot prune the push journal: " << detail_of(err));
  }
  auto skey = seen_key(component, signature);
  if (in_flight_.count(skey) > 0)
    return verdict::duplicate;
  auto seen = db_->get(skey);
  if (!seen)
    return std::move(seen.error());
  if (*seen) {
    auto until = number(**seen);
    if (until && *until >= now)
      return verdict::duplicate;
  }
  if (!subject.empty()) {
    auto last = db_->get(order_key(component, subject));
    if (!last)
      return std::move(last.error());
    // Equal is not older: WeChat's retry of a push that failed here.
    if (*last)
      if (auto t = number(**last); t && create_time < *t)
        return verdict::outdated;
  }
  in_flight_.insert(std::move(skey));
  return verdict::apply;
}

caf::error push_journal::applied(std::string_view component, std::string_view signature,
                                 std::string_view subject, int64_t create_time, int64_t now) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto skey = seen_key(component, signature);
  if (auto i = in_flight_.find(skey); i != in_flight_.end())
    in_flight_.erase(i);
  std::vector<batch_entry> batch;
  // A signature's copies all carry its timestamp, which the window check
  // bounds: after now + 2 * window no copy can be accepted any more.
  batch.emplace_back(std::move(skey), std::to_string(now + 2 * window_s_ + 1));
  if (!subject.empty()) {
    auto okey = order_key(component, subject);
    auto last = db_->get(okey);
    if (!last)
      return std::move(last.error());
    auto t = *last ? number(**last) : std::nullopt;
    if (!t || *t < create_time)
      batch.emplace_back(std::move(okey), std::to_string(create_time));
  }
  return db_->write(batch);
}

void push_journal::release(std::string_view component, std::string_view signature) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = in_flight_.find(seen_key(component, signature)); i != in_flight_.end())
    in_flight_.erase(i);
}

caf::error push_journal::prune(int64_t now) {
  std::lock_guard<std::mutex> guard{mtx_};
  return prune_locked(now);
}

caf::error push_journal::prune_locked(int64_t now) {
  std::vector<batch_entry> batch;
  auto err = db_->scan(seen_prefix, [&](std::string_view k, std::string_view v) {
    auto until = number(v);
    if (!until || *until < now)
      batch.emplace_back(std::string{k}, std::nullopt);
    return true;
  });
  if (!err)
    err = db_->scan(order_prefix, [&](std::string_view k, std::string_view v) {
      // Any push older than this is outside the window already.
      auto t = number(v);
      if (!t || *t + 2 * window_s_ + 60 < now)
        batch.emplace_back(std::string{k}, std::nullopt);
      return true;
    });
  if (err || batch.empty())
    return err;
  return db_->write(batch);
}

size_t push_journal::size() {
  size_t n = 0;
  for (auto prefix : {seen_prefix, order_prefix})
    db_->scan(prefix, [&](std::string_view, std::string_view) {
      ++n;
      return true;
    });
  return n;
}

} // namespace wh::persistence
