#include "persistence/store.hpp"

namespace wh::persistence {

store::~store() = default;

caf::error store::scan_keys(std::string_view prefix,
                            const std::function<bool(std::string_view)>& fn) {
  return scan(prefix, [&](std::string_view k, std::string_view) { return fn(k); });
}

caf::error store::compact() {
  return caf::none;
}

caf::error store::put(std::string key, std::string value) {
  return write({batch_entry{std::move(key), std::move(value)}});
}

caf::error store::erase(std::string key) {
  return write({batch_entry{std::move(key), std::nullopt}});
}

} // namespace wh::persistence
