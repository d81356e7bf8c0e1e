#pragma once

// Rotation crash tests need a child that runs RocksDB: a forked copy of a
// process that already used RocksDB has none of its background threads, so
// its flushes wait forever. The child therefore re-executes this test binary
// (suite persistence_rotation_child) and reports over a pipe.

#include <cstdint>
#include <string>

#include <sys/types.h>

namespace wh::test {

class rotation_child {
public:
  rotation_child(pid_t pid, int fd) : pid_(pid), fd_(fd) {
  }
  rotation_child(const rotation_child&) = delete;
  rotation_child& operator=(const rotation_child&) = delete;
  ~rotation_child();

  /// Reads one report (a rotation_step, or a count of finished rotations).
  bool read(uint64_t& out);

  /// SIGKILL and reap; true if the child died of the signal.
  bool kill9();

private:
  pid_t pid_;
  int fd_;
};

/// Starts a child rotating `data_dir`'s key. `mode` is a rotation_step number
/// (report it, then hang until killed) or "loop" (rotate forever, reporting
/// each finished rotation).
rotation_child spawn_rotation_child(const std::string& data_dir, const std::string& mode);

} // namespace wh::test
