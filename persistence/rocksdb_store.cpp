// The only translation unit that includes rocksdb/*: RocksDB's types and
// Status stay here and are converted to caf::error at this boundary.
#include <filesystem>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "core/error.hpp"
#include "persistence/store.hpp"

namespace wh::persistence {

namespace {

caf::error to_error(const rocksdb::Status& st, std::string_view what) {
  return make_detail_error(ec::storage_failure, std::string{what} + ": " + st.ToString());
}

class rocksdb_store final : public store {
public:
  explicit rocksdb_store(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {
    sync_opts_.sync = true;
  }

  caf::expected<std::optional<std::string>> get(std::string_view key) override {
    std::string value;
    auto st = db_->Get(rocksdb::ReadOptions{}, rocksdb::Slice{key.data(), key.size()}, &value);
    if (st.IsNotFound())
      return std::optional<std::string>{};
    if (!st.ok())
      return to_error(st, "read");
    return std::optional<std::string>{std::move(value)};
  }

  caf::error write(const std::vector<batch_entry>& batch) override {
    rocksdb::WriteBatch wb;
    for (auto& [key, value] : batch) {
      rocksdb::Status st;
      if (value)
        st = wb.Put(key, *value);
      else
        st = wb.Delete(key);
      if (!st.ok())
        return to_error(st, "batch");
    }
    auto st = db_->Write(sync_opts_, &wb);
    if (!st.ok())
      return to_error(st, "write");
    return caf::none;
  }

  caf::error scan(std::string_view prefix,
                  const std::function<bool(std::string_view, std::string_view)>& fn) override {
    std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{})};
    rocksdb::Slice pre{prefix.data(), prefix.size()};
    for (it->Seek(pre); it->Valid() && it->key().starts_with(pre); it->Next()) {
      auto k = it->key();
      auto v = it->value();
      if (!fn(std::string_view{k.data(), k.size()}, std::string_view{v.data(), v.size()}))
        break;
    }
    if (!it->status().ok())
      return to_error(it->status(), "scan");
    return caf::none;
  }

  caf::error scan_keys(std::string_view prefix,
                       const std::function<bool(std::string_view)>& fn) override {
    std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(rocksdb::ReadOptions{})};
    rocksdb::Slice pre{prefix.data(), prefix.size()};
    for (it->Seek(pre); it->Valid() && it->key().starts_with(pre); it->Next()) {
      auto k = it->key();
      if (!fn(std::string_view{k.data(), k.size()}))
        break;
    }
    if (!it->status().ok())
      return to_error(it->status(), "scan");
    return caf::none;
  }

  caf::error compact() override {
    // Flushes the memtable (so older WAL files are dropped) and rewrites every
    // table file, which removes superseded values from the disk.
    rocksdb::CompactRangeOptions opts;
    opts.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    auto st = db_->CompactRange(opts, nullptr, nullptr);
    if (!st.ok())
      return to_error(st, "compact");
    return caf::none;
  }

private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions sync_opts_;
};

} // namespace

caf::expected<std::unique_ptr<store>> open_rocksdb(const std::string& dir) {
  std::error_code fs_err;
  std::filesystem::create_directories(dir, fs_err);
  if (fs_err)
    return make_detail_error(ec::storage_failure,
                             "cannot create data_dir " + dir + ": " + fs_err.message());
  rocksdb::Options opts;
  opts.create_if_missing = true;
  // Token state is tiny; keep the footprint small and recovery strict.
  opts.max_open_files = 256;
  opts.keep_log_file_num = 4;
  opts.max_total_wal_size = 64 << 20;
  opts.paranoid_checks = true;
  // Memory bounds, explicit because a node holds a million keys in a small
  // footprint (issue 10). RocksDB's defaults (two 64 MiB memtables) let a
  // cold pass, which writes every key's refreshed token, grow the heap by
  // 128 MiB: records are ~200 bytes, so 16 MiB memtables still batch tens of
  // thousands of writes per flush. Reads go through one explicit 16 MiB
  // block cache: the hub reads a key when its actor starts and serves from
  // memory after that, so a larger cache would mostly hold cold blocks.
  opts.write_buffer_size = 16 << 20;
  opts.max_write_buffer_number = 2;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(16 << 20);
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(opts, dir, &raw);
  if (!st.ok())
    return make_detail_error(ec::storage_failure, "cannot open RocksDB at " + dir + ": " + st.ToString());
  return std::unique_ptr<store>{new rocksdb_store(std::unique_ptr<rocksdb::DB>{raw})};
}

} // namespace wh::persistence
