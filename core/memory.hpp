#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

namespace wh {

/// Caps glibc's malloc arenas at `n` (glibc's default is 8 per core). Call it
/// before any thread starts. A no-op with other C libraries.
void limit_malloc_arenas(int n);

/// Free bytes glibc's malloc holds in its arenas (mallinfo2's fordblks: free
/// chunks, returned to the OS or not); 0 with other C libraries.
size_t malloc_free_bytes();

/// Returns the free pages of every arena to the OS (glibc's malloc_trim(0)).
void trim_malloc();

/// Gives memory back to the OS after bursts of freeing. glibc keeps freed
/// chunks of its arenas resident (only the top of an arena shrinks by
/// itself), so a cold pass over a million keys, which starts and stops
/// actors by the ten thousand, would otherwise keep its peak RSS for good.
/// A thread samples malloc's free bytes every `interval` and trims once
/// they have grown by `threshold` since their lowest point after the last
/// trim (memory was used, then freed). The rate is bounded by `interval`:
/// a trim takes the arena locks for a few milliseconds per GiB freed.
class heap_trimmer {
public:
  struct options {
    std::chrono::milliseconds interval{2000};
    size_t threshold = size_t{32} << 20;
  };

  /// Decides, from successive samples of malloc's free bytes, when to trim
  /// (a plain class so tests can step it).
  class policy {
  public:
    explicit policy(size_t threshold) : threshold_(threshold) {}
    /// Takes a sample; true when the caller should trim now.
    bool sample(size_t free_bytes);

  private:
    size_t threshold_;
    size_t low_ = static_cast<size_t>(-1);
  };

  explicit heap_trimmer(options opts);
  heap_trimmer(const heap_trimmer&) = delete;
  heap_trimmer& operator=(const heap_trimmer&) = delete;
  /// Stops the thread.
  ~heap_trimmer();

  /// Trims done so far.
  size_t trims() const;

private:
  void run();

  options opts_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  size_t trims_ = 0;
  std::thread thread_;
};

} // namespace wh
