#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"

namespace wh::persistence {

/// One write of a batch: a value to put, or std::nullopt to delete the key.
using batch_entry = std::pair<std::string, std::optional<std::string>>;

/// Key-value storage contract. Not-found (`std::nullopt`) is distinct from
/// failure (`ec::storage_failure`). Every write is durable (fsync'ed) when
/// the call returns. Implementations are thread-safe.
class store {
public:
  virtual ~store();

  /// Reads `key`.
  virtual caf::expected<std::optional<std::string>> get(std::string_view key) = 0;

  /// Writes all entries atomically and durably.
  virtual caf::error write(const std::vector<batch_entry>& batch) = 0;

  /// Calls `fn` for every key starting with `prefix`, in key order, until it returns false.
  virtual caf::error scan(std::string_view prefix,
                          const std::function<bool(std::string_view, std::string_view)>& fn)
    = 0;

  /// Calls `fn` for every key starting with `prefix`, in key order, until it
  /// returns false, without reading (or decrypting) the values.
  virtual caf::error scan_keys(std::string_view prefix,
                               const std::function<bool(std::string_view)>& fn);

  /// Rewrites the storage so overwritten and deleted values no longer linger
  /// on disk (old WAL and table files). A no-op where that does not apply.
  virtual caf::error compact();

  /// Convenience: a single durable put.
  caf::error put(std::string key, std::string value);

  /// Convenience: a single durable delete.
  caf::error erase(std::string key);
};

/// Opens (creating if missing) a RocksDB database in `dir`.
caf::expected<std::unique_ptr<store>> open_rocksdb(const std::string& dir);

} // namespace wh::persistence
