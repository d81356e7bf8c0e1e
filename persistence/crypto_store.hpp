#pragma once

// Secrets at rest: every stored value is sealed with AES-256-GCM under a
// master key kept in a file outside RocksDB. Key names stay plaintext (they
// hold appids only); values are "WHE1" || key_id(4) || nonce(12) || ciphertext || tag(16),
// authenticated together with the header and the key name, so a value cannot
// be edited or moved to another key unnoticed.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "caf/error.hpp"
#include "caf/expected.hpp"

#include "persistence/store.hpp"

namespace wh::persistence {

/// A 256-bit master key. Its id (the first 4 bytes of its SHA-256) is stored
/// in every value so the key that sealed a value can be recognised; the id
/// reveals nothing usable about the key. Wiped from memory on destruction.
class master_key {
public:
  static constexpr size_t size = 32;

  master_key() = default;
  master_key(const master_key& other);
  master_key& operator=(const master_key& other);
  ~master_key();

  /// 32 bytes from RAND_bytes; ec::storage_failure if the RNG fails.
  static caf::expected<master_key> generate();

  /// Parses 64 hex digits (surrounding whitespace ignored).
  static caf::expected<master_key> from_hex(std::string_view text);

  const std::array<unsigned char, size>& bytes() const { return bytes_; }
  const std::array<unsigned char, 4>& id() const { return id_; }

  /// The id as 8 hex digits, for messages (never the key itself).
  std::string id_hex() const;

  /// The key file's content: 64 hex digits and a newline.
  std::string to_hex() const;

private:
  void set_id();
  std::array<unsigned char, size> bytes_{};
  std::array<unsigned char, 4> id_{};
};

/// `key_file`, or "<data_dir>/master.key" when it is empty.
std::string master_key_path(const std::string& data_dir, const std::string& key_file);

/// Reads the key at `path`. Refuses (ec::invalid_config, naming the file) a
/// missing, malformed or group/world-accessible file.
caf::expected<master_key> load_master_key(const std::string& path);

/// Reads the key at `path`, or creates one there (mode 0600, never
/// overwriting) and sets `created`.
caf::expected<master_key> load_or_create_master_key(const std::string& path, bool& created);

/// Writes `key` to `path` atomically and durably (temp file 0600, fsync,
/// rename, fsync of the directory), replacing any existing file.
caf::error write_master_key(const std::string& path, const master_key& key);

/// Wraps `inner`: values are sealed with `key` on write and opened on
/// get/scan. A value that fails authentication, was sealed by an unknown
/// key or has an unknown format is ec::corrupt_record naming the key.
/// `previous` (if set) is also accepted for reading: values sealed by it
/// are readable until they are rewritten.
std::unique_ptr<store> make_encrypted_store(std::unique_ptr<store> inner, master_key key,
                                            std::optional<master_key> previous = std::nullopt);

/// Seals `plaintext` stored under `key_name` (exposed for tests and tools).
caf::expected<std::string> seal_value(const master_key& key, std::string_view key_name,
                                      std::string_view plaintext);

/// Opens a value sealed by `seal_value` with `key` (or `previous`).
caf::expected<std::string> open_value(const master_key& key, const master_key* previous,
                                      std::string_view key_name, std::string_view sealed);

/// What `open_encrypted_rocksdb` found.
struct open_report {
  /// The master key file in use.
  std::string key_path;
  /// The key file did not exist and was created.
  bool key_created = false;
  /// "<key_path>.old" existed: an interrupted rotation was completed.
  bool rotation_recovered = false;
  /// Values re-sealed at open: plaintext ones of an older hub, or ones
  /// still sealed by the previous key of an interrupted rotation.
  size_t resealed = 0;
};

/// Opens RocksDB in `data_dir` behind the encrypted store. Loads (or creates)
/// the master key, completes an interrupted rotation, seals plaintext values
/// of an older hub in one atomic batch and compacts them off the disk, and
/// verifies that every stored value opens. Refuses to create a key when the
/// database already holds sealed values (a lost key file is not papered over).
caf::expected<std::unique_ptr<store>> open_encrypted_rocksdb(const std::string& data_dir,
                                                             const std::string& key_file,
                                                             open_report& report);

/// Points `rotate_master_key` reaches, for crash tests.
enum class rotation_step {
  /// "<key_file>.old" holds the current key.
  old_key_saved,
  /// The key file holds the new key; values are still sealed by the old one.
  new_key_installed,
  /// Every value is sealed by the new key (one synced batch).
  values_resealed,
  /// Old values compacted away and "<key_file>.old" removed.
  done,
};

/// Replaces the master key of the (stopped) hub owning `data_dir` and
/// re-seals every value with the new key in one atomic batch. Crash-safe:
/// the key file is swapped (atomically) before the batch, and the old key
/// stays in "<key_file>.old" until the batch is durable, so a restart after
/// a crash at any point reads every value (see `open_encrypted_rocksdb`).
/// Fails with ec::storage_failure while the hub runs (RocksDB's lock).
caf::error rotate_master_key(const std::string& data_dir, const std::string& key_file,
                             const std::function<void(rotation_step)>& on_step = {});

} // namespace wh::persistence
