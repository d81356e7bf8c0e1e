#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

namespace wh::test {

/// A child process (our binaries under test) with stdout and stderr
/// appended to a log file. Killed with SIGKILL if still running on destruction.
class process {
public:
  process() = default;
  process(process&& other) noexcept;
  process& operator=(process&& other) noexcept;
  ~process();

  /// Starts `argv[0]` with `argv`; fails the test on error.
  static process spawn(const std::vector<std::string>& argv, const std::string& log_path);

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  /// Sends `sig`.
  void signal(int sig);

  /// Waits up to `timeout`; returns true and the exit code (or 128+signal) if it ended.
  bool wait_for(std::chrono::milliseconds timeout, int& exit_code);

  /// SIGKILL and reap.
  void kill_now();

private:
  pid_t pid_ = -1;
};

/// Waits until `path` holds a port number written by a binary's --port-file,
/// or `proc` exits (0 is returned then).
uint16_t wait_for_port(const std::string& path, process& proc,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20));

/// Reads a whole file ("" if missing).
std::string read_file(const std::string& path);

/// Writes a whole file.
void write_file(const std::string& path, const std::string& content);

/// Path of one of our binaries in build/bin.
std::string bin(const std::string& name);

} // namespace wh::test
