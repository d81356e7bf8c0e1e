// AES-256-GCM sealing of stored values, the master key file, and rotation.
// OpenSSL's names stay in this file.
#include "persistence/crypto_store.hpp"

#include "core/hex.hpp"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/error.hpp"
#include "core/log.hpp"

namespace wh::persistence {

namespace {

constexpr std::string_view magic = "WHE1";
constexpr size_t id_size = 4;
constexpr size_t nonce_size = 12;
constexpr size_t tag_size = 16;
constexpr size_t header_size = magic.size() + id_size;
constexpr size_t overhead = header_size + nonce_size + tag_size;

caf::error corrupt(std::string why) {
  return make_detail_error(ec::corrupt_record, std::move(why));
}

caf::error bad_key_file(const std::string& path, const std::string& why) {
  return make_detail_error(ec::invalid_config, "master key file " + path + ": " + why);
}

std::string errno_text() {
  return std::strerror(errno);
}

/// Owns an EVP_CIPHER_CTX.
struct cipher_ctx {
  EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
  ~cipher_ctx() { EVP_CIPHER_CTX_free(p); }
  cipher_ctx() = default;
  cipher_ctx(const cipher_ctx&) = delete;
  cipher_ctx& operator=(const cipher_ctx&) = delete;
};

/// The header and the key name are authenticated: a value copied under
/// another key, or relabelled with another key id, fails to open.
bool add_aad(EVP_CIPHER_CTX* ctx, std::string_view header, std::string_view key_name) {
  int len = 0;
  return EVP_CipherUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(header.data()),
                          static_cast<int>(header.size()))
           == 1
         && EVP_CipherUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(key_name.data()),
                             static_cast<int>(key_name.size()))
              == 1;
}

bool is_sealed(std::string_view v) {
  return v.size() >= magic.size() && v.substr(0, magic.size()) == magic;
}

/// Present (sealed with the current key) once every value is sealed with it.
constexpr std::string_view sealed_marker = "meta/sealed_v1";

bool is_plaintext_record(std::string_view v) {
  return !v.empty() && v.front() == '{';
}

/// Writes `content` to a fresh `path` (mode 0600, O_EXCL) and fsyncs it.
caf::error write_new_file(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_detail_error(ec::storage_failure, "cannot create " + path + ": " + errno_text());
  size_t done = 0;
  while (done < content.size()) {
    auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      auto why = errno_text();
      ::close(fd);
      ::unlink(path.c_str());
      return make_detail_error(ec::storage_failure, "cannot write " + path + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto why = errno_text();
    ::close(fd);
    ::unlink(path.c_str());
    return make_detail_error(ec::storage_failure, "cannot fsync " + path + ": " + why);
  }
  ::close(fd);
  return caf::none;
}

/// Makes a rename, link or unlink in `path`'s directory durable.
caf::error sync_parent(const std::string& path) {
  auto dir = std::filesystem::path{path}.parent_path();
  if (dir.empty())
    dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return make_detail_error(ec::storage_failure, "cannot open directory " + dir.string() + ": " + errno_text());
  auto rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return make_detail_error(ec::storage_failure, "cannot fsync directory " + dir.string());
  return caf::none;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

caf::error remove_durably(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return make_detail_error(ec::storage_failure, "cannot remove " + path + ": " + errno_text());
  return sync_parent(path);
}

std::string old_path(const std::string& key_path) {
  return key_path + ".old";
}

// -- the encrypted store ------------------------------------------------------

class encrypted_store final : public store {
public:
  encrypted_store(std::unique_ptr<store> inner, master_key key, std::optional<master_key> previous)
    : inner_(std::move(inner)), key_(std::move(key)), previous_(std::move(previous)) {
  }

  caf::expected<std::optional<std::string>> get(std::string_view key) override {
    auto raw = inner_->get(key);
    if (!raw || !raw->has_value())
      return raw;
    auto plain = open_value(key_, prev(), key, **raw);
    if (!plain)
      return std::move(plain.error());
    return std::optional<std::string>{std::move(*plain)};
  }

  caf::error write(const std::vector<batch_entry>& batch) override {
    std::vector<batch_entry> sealed;
    sealed.reserve(batch.size());
    for (auto& [key, value] : batch) {
      if (!value) {
        sealed.emplace_back(key, std::nullopt);
        continue;
      }
      auto s = seal_value(key_, key, *value);
      if (!s)
        return std::move(s.error());
      sealed.emplace_back(key, std::move(*s));
    }
    return inner_->write(sealed);
  }

  caf::error scan(std::string_view prefix,
                  const std::function<bool(std::string_view, std::string_view)>& fn) override {
    caf::error failed;
    auto err = inner_->scan(prefix, [&](std::string_view k, std::string_view v) {
      auto plain = open_value(key_, prev(), k, v);
      if (!plain) {
        failed = std::move(plain.error());
        return false;
      }
      return fn(k, *plain);
    });
    if (err)
      return err;
    return failed;
  }

  caf::error scan_keys(std::string_view prefix,
                       const std::function<bool(std::string_view)>& fn) override {
    return inner_->scan_keys(prefix, fn); // keys are not sealed
  }

  caf::error compact() override {
    return inner_->compact();
  }

private:
  const master_key* prev() const {
    return previous_ ? &*previous_ : nullptr;
  }

  std::unique_ptr<store> inner_;
  master_key key_;
  std::optional<master_key> previous_;
};

/// Brings every value in `db` under `key`: plaintext records of an older hub
/// and values sealed by `previous` are re-sealed in one atomic batch, and the
/// superseded bytes are compacted off the disk. Fails (changing nothing) if
/// any value cannot be opened.
caf::expected<size_t> reseal_all(store& db, const master_key& key, const master_key* previous,
                                 const std::string& key_path) {
  std::vector<batch_entry> batch;
  size_t bad = 0;
  std::string first_bad;
  caf::error failed;
  auto reseal = [&](std::string_view k, std::string_view plain) {
    auto s = seal_value(key, k, plain);
    if (!s) {
      failed = std::move(s.error());
      return false;
    }
    batch.emplace_back(std::string{k}, std::move(*s));
    return true;
  };
  auto err = db.scan("", [&](std::string_view k, std::string_view v) {
    if (is_plaintext_record(v))
      return reseal(k, v);
    auto plain = open_value(key, previous, k, v);
    if (!plain) {
      if (bad++ == 0)
        first_bad = detail_of(plain.error());
      return true;
    }
    auto ok = v.substr(magic.size(), id_size)
                  == std::string_view{reinterpret_cast<const char*>(key.id().data()), id_size}
                || reseal(k, *plain);
    OPENSSL_cleanse(plain->data(), plain->size());
    return ok;
  });
  if (err)
    return err;
  if (failed)
    return failed;
  if (bad > 0)
    return corrupt(std::to_string(bad) + " stored value(s) cannot be opened with master key " + key_path
                   + " (id " + key.id_hex() + "); first: " + first_bad
                   + "; is hub.master_key_file the key this data_dir was sealed with?");
  if (batch.empty())
    return size_t{0};
  if (auto werr = db.write(batch))
    return werr;
  if (auto cerr = db.compact())
    return cerr;
  return batch.size();
}

/// Whether `db` holds any sealed value (whose key would then be lost).
caf::expected<bool> has_sealed_values(store& db) {
  bool found = false;
  auto err = db.scan("", [&](std::string_view, std::string_view v) {
    found = is_sealed(v);
    return !found;
  });
  if (err)
    return err;
  return found;
}

} // namespace

// -- master_key ----------------------------------------------------------------

master_key::master_key(const master_key& other) : bytes_(other.bytes_), id_(other.id_) {
}

master_key& master_key::operator=(const master_key& other) {
  bytes_ = other.bytes_;
  id_ = other.id_;
  return *this;
}

master_key::~master_key() {
  OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

void master_key::set_id() {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(bytes_.data(), bytes_.size(), digest);
  std::memcpy(id_.data(), digest, id_.size());
  OPENSSL_cleanse(digest, sizeof(digest));
}

caf::expected<master_key> master_key::generate() {
  master_key k;
  if (RAND_bytes(k.bytes_.data(), static_cast<int>(k.bytes_.size())) != 1)
    return make_detail_error(ec::storage_failure, "RAND_bytes failed to make a master key");
  k.set_id();
  return k;
}

caf::expected<master_key> master_key::from_hex(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  if (text.size() != size * 2)
    return make_detail_error(ec::invalid_config, "expected 64 hex digits, found "
                                                   + std::to_string(text.size()) + " characters");
  master_key k;
  for (size_t i = 0; i < size; ++i) {
    auto hi = hex_digit(text[2 * i]);
    auto lo = hex_digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return make_detail_error(ec::invalid_config, "expected 64 hex digits, found a non-hex character");
    k.bytes_[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  k.set_id();
  return k;
}

std::string master_key::id_hex() const {
  return wh::to_hex(id_.data(), id_.size());
}

std::string master_key::to_hex() const {
  return wh::to_hex(bytes_.data(), bytes_.size()) + "\n";
}

// -- sealing -------------------------------------------------------------------

caf::expected<std::string> seal_value(const master_key& key, std::string_view key_name,
                                      std::string_view plaintext) {
  std::string out;
  out.resize(overhead + plaintext.size());
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  std::memcpy(p, magic.data(), magic.size());
  std::memcpy(p + magic.size(), key.id().data(), id_size);
  unsigned char* nonce = p + header_size;
  unsigned char* ct = nonce + nonce_size;
  unsigned char* tag = ct + plaintext.size();
  if (RAND_bytes(nonce, static_cast<int>(nonce_size)) != 1)
    return make_detail_error(ec::storage_failure, "RAND_bytes failed to make a nonce");
  cipher_ctx ctx;
  int len = 0;
  int fin = 0;
  bool ok = ctx.p != nullptr
            && EVP_EncryptInit_ex(ctx.p, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1
            && EVP_CIPHER_CTX_ctrl(ctx.p, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce_size), nullptr) == 1
            && EVP_EncryptInit_ex(ctx.p, nullptr, nullptr, key.bytes().data(), nonce) == 1
            && add_aad(ctx.p, std::string_view{out.data(), header_size}, key_name)
            && EVP_EncryptUpdate(ctx.p, ct, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                                 static_cast<int>(plaintext.size()))
                 == 1
            && EVP_EncryptFinal_ex(ctx.p, ct + len, &fin) == 1
            && static_cast<size_t>(len + fin) == plaintext.size()
            && EVP_CIPHER_CTX_ctrl(ctx.p, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_size), tag) == 1;
  if (!ok)
    return make_detail_error(ec::storage_failure, "AES-256-GCM encryption failed");
  return out;
}

caf::expected<std::string> open_value(const master_key& key, const master_key* previous,
                                      std::string_view key_name, std::string_view sealed) {
  auto where = std::string{key_name};
  if (!is_sealed(sealed))
    return corrupt(where + ": value is not sealed (unknown format)");
  if (sealed.size() < overhead)
    return corrupt(where + ": sealed value is truncated");
  auto id = sealed.substr(magic.size(), id_size);
  auto matches = [&](const master_key& k) {
    return std::memcmp(id.data(), k.id().data(), id_size) == 0;
  };
  const master_key* use = matches(key) ? &key : previous && matches(*previous) ? previous : nullptr;
  if (!use)
    return corrupt(where + ": value was sealed by an unknown master key (id "
                   + to_hex(reinterpret_cast<const unsigned char*>(id.data()), id_size) + ")");
  auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  const unsigned char* nonce = p + header_size;
  const unsigned char* ct = nonce + nonce_size;
  size_t ct_len = sealed.size() - overhead;
  std::array<unsigned char, tag_size> tag{};
  std::memcpy(tag.data(), ct + ct_len, tag_size);
  std::string out;
  out.resize(ct_len);
  cipher_ctx ctx;
  int len = 0;
  int fin = 0;
  bool ok = ctx.p != nullptr
            && EVP_DecryptInit_ex(ctx.p, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1
            && EVP_CIPHER_CTX_ctrl(ctx.p, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce_size), nullptr) == 1
            && EVP_DecryptInit_ex(ctx.p, nullptr, nullptr, use->bytes().data(), nonce) == 1
            && add_aad(ctx.p, sealed.substr(0, header_size), key_name)
            && EVP_DecryptUpdate(ctx.p, reinterpret_cast<unsigned char*>(out.data()), &len, ct,
                                 static_cast<int>(ct_len))
                 == 1
            && EVP_CIPHER_CTX_ctrl(ctx.p, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_size), tag.data()) == 1
            && EVP_DecryptFinal_ex(ctx.p, reinterpret_cast<unsigned char*>(out.data()) + len, &fin) == 1;
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return corrupt(where + ": sealed value fails authentication (tampered, or stored under another key)");
  }
  out.resize(static_cast<size_t>(len + fin));
  return out;
}

std::unique_ptr<store> make_encrypted_store(std::unique_ptr<store> inner, master_key key,
                                            std::optional<master_key> previous) {
  return std::make_unique<encrypted_store>(std::move(inner), std::move(key), std::move(previous));
}

// -- key files -------------------------------------------------------------------

std::string master_key_path(const std::string& data_dir, const std::string& key_file) {
  if (!key_file.empty())
    return key_file;
  return (std::filesystem::path{data_dir} / "master.key").string();
}

caf::expected<master_key> load_master_key(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return bad_key_file(path, "cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return bad_key_file(path, "not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return bad_key_file(path, std::string{"is accessible by group or others (mode "} + mode
                                + "); run chmod 600 " + path);
  }
  std::string text(256, '\0');
  auto n = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (n < 0)
    return bad_key_file(path, "cannot read: " + errno_text());
  text.resize(static_cast<size_t>(n));
  auto key = master_key::from_hex(text);
  OPENSSL_cleanse(text.data(), text.size());
  if (!key)
    return bad_key_file(path, "malformed: " + detail_of(key.error()));
  return key;
}

caf::error write_master_key(const std::string& path, const master_key& key) {
  auto tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  auto text = key.to_hex();
  auto err = write_new_file(tmp, text);
  OPENSSL_cleanse(text.data(), text.size());
  if (err)
    return err;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto why = errno_text();
    ::unlink(tmp.c_str());
    return make_detail_error(ec::storage_failure, "cannot rename " + tmp + " to " + path + ": " + why);
  }
  return sync_parent(path);
}

caf::expected<master_key> load_or_create_master_key(const std::string& path, bool& created) {
  created = false;
  if (file_exists(path))
    return load_master_key(path);
  auto key = master_key::generate();
  if (!key)
    return key;
  // Written in full under a temporary name, then linked into place: a crash
  // never leaves a half-written key, and link() never replaces a key that
  // appeared meanwhile.
  auto tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  auto text = key->to_hex();
  auto err = write_new_file(tmp, text);
  OPENSSL_cleanse(text.data(), text.size());
  if (err)
    return bad_key_file(path, detail_of(err));
  auto rc = ::link(tmp.c_str(), path.c_str());
  auto link_errno = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (link_errno == EEXIST)
      return load_master_key(path);
    return bad_key_file(path, std::string{"cannot create: "} + std::strerror(link_errno));
  }
  if (auto serr = sync_parent(path))
    return serr;
  created = true;
  return key;
}

// -- opening and rotation -------------------------------------------------------

caf::expected<std::unique_ptr<store>> open_encrypted_rocksdb(const std::string& data_dir,
                                                             const std::string& key_file,
                                                             open_report& report) {
  // The database first: its lock keeps a second hub (or a rotation) out
  // before any key file is touched.
  auto db = open_rocksdb(data_dir);
  if (!db)
    return std::move(db.error());
  report.key_path = master_key_path(data_dir, key_file);
  if (!file_exists(report.key_path)) {
    auto sealed = has_sealed_values(**db);
    if (!sealed)
      return std::move(sealed.error());
    if (*sealed)
      return bad_key_file(report.key_path, "missing, but " + data_dir
                                             + " holds values sealed by a master key; restore the key "
                                               "file (a new key could not open them)");
  }
  auto key = load_or_create_master_key(report.key_path, report.key_created);
  if (!key)
    return std::move(key.error());
  if (report.key_created)
    WH_INFO("persistence", "created master key " << report.key_path << " (id " << key->id_hex()
                                                 << "); back it up: without it stored secrets are lost");
  std::optional<master_key> previous;
  auto old = old_path(report.key_path);
  if (file_exists(old)) {
    auto prev = load_master_key(old);
    if (!prev)
      return std::move(prev.error());
    previous = std::move(*prev);
    report.rotation_recovered = true;
  }
  // Every value was opened and sealed with this key at an earlier start
  // (the marker, itself sealed, proves the key): no pass over every value,
  // which took 15 s with a million authorizers. Otherwise (first start,
  // interrupted rotation, an older hub's plaintext) the full pass runs.
  if (!previous) {
    auto marker = (*db)->get(sealed_marker);
    if (!marker)
      return std::move(marker.error());
    if (*marker) {
      auto plain = open_value(*key, nullptr, sealed_marker, **marker);
      if (!plain)
        return corrupt("stored values cannot be opened with master key " + report.key_path + " (id "
                       + key->id_hex() + "); is hub.master_key_file the key this data_dir was sealed with?");
      return make_encrypted_store(std::move(*db), std::move(*key));
    }
  }
  auto n = reseal_all(**db, *key, previous ? &*previous : nullptr, report.key_path);
  if (!n)
    return std::move(n.error());
  report.resealed = *n;
  if (previous) {
    if (auto err = remove_durably(old))
      return err;
    WH_WARN("persistence", "completed an interrupted master key rotation: " << *n
                             << " value(s) re-sealed with key id " << key->id_hex() << ", removed " << old);
  } else if (*n > 0) {
    WH_WARN("persistence", "sealed " << *n << " plaintext value(s) of an older hub with master key id "
                                     << key->id_hex());
  }
  auto sealed = make_encrypted_store(std::move(*db), std::move(*key));
  if (auto err = sealed->put(std::string{sealed_marker}, "1"))
    return err;
  return sealed;
}

caf::error rotate_master_key(const std::string& data_dir, const std::string& key_file,
                             const std::function<void(rotation_step)>& on_step) {
  auto step = [&](rotation_step s) {
    if (on_step)
      on_step(s);
  };
  if (!file_exists((std::filesystem::path{data_dir} / "CURRENT").string()))
    return make_detail_error(ec::storage_failure, "no hub database in " + data_dir);
  auto path = master_key_path(data_dir, key_file);
  if (!file_exists(path))
    return bad_key_file(path, "missing; nothing to rotate");
  // Finishes an interrupted rotation or plaintext migration first, so every
  // value is sealed by the current key before anything changes.
  open_report report;
  auto opened = open_encrypted_rocksdb(data_dir, key_file, report);
  if (!opened)
    return std::move(opened.error());
  opened->reset();
  auto db = open_rocksdb(data_dir);
  if (!db)
    return std::move(db.error());
  auto cur = load_master_key(path);
  if (!cur)
    return std::move(cur.error());
  auto next = master_key::generate();
  if (!next)
    return std::move(next.error());
  std::vector<batch_entry> batch;
  caf::error failed;
  auto err = (*db)->scan("", [&](std::string_view k, std::string_view v) {
    auto plain = open_value(*cur, nullptr, k, v);
    if (plain) {
      auto s = seal_value(*next, k, *plain);
      OPENSSL_cleanse(plain->data(), plain->size());
      if (s) {
        batch.emplace_back(std::string{k}, std::move(*s));
        return true;
      }
      failed = std::move(s.error());
    } else {
      failed = std::move(plain.error());
    }
    return false;
  });
  if (err)
    return err;
  if (failed)
    return failed;
  // Until the batch is durable the values need the old key: it stays in
  // "<file>.old", written before the key file changes.
  auto old = old_path(path);
  if (auto werr = write_master_key(old, *cur))
    return werr;
  step(rotation_step::old_key_saved);
  if (auto werr = write_master_key(path, *next))
    return werr;
  step(rotation_step::new_key_installed);
  if (auto werr = (*db)->write(batch))
    return werr;
  step(rotation_step::values_resealed);
  // Old ciphertexts are useless without the old key, but drop them anyway.
  if (auto cerr = (*db)->compact())
    return cerr;
  if (auto rerr = remove_durably(old))
    return rerr;
  step(rotation_step::done);
  return caf::none;
}

} // namespace wh::persistence
