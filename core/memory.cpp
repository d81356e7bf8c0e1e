#include "core/memory.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace wh {

void limit_malloc_arenas(int n) {
#if defined(__GLIBC__)
  mallopt(M_ARENA_MAX, n);
#else
  (void) n;
#endif
}

size_t malloc_free_bytes() {
#if defined(__GLIBC__)
  return mallinfo2().fordblks;
#else
  return 0;
#endif
}

void trim_malloc() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

bool heap_trimmer::policy::sample(size_t free_bytes) {
  if (free_bytes < low_)
    low_ = free_bytes;
  if (free_bytes - low_ < threshold_)
    return false;
  // After a trim the freed chunks still count as free: measure the next
  // burst from here.
  low_ = free_bytes;
  return true;
}

heap_trimmer::heap_trimmer(options opts) : opts_(opts), thread_([this] { run(); }) {
}

heap_trimmer::~heap_trimmer() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

size_t heap_trimmer::trims() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return trims_;
}

void heap_trimmer::run() {
  policy p{opts_.threshold};
  std::unique_lock<std::mutex> lock{mtx_};
  while (!cv_.wait_for(lock, opts_.interval, [this] { return stop_; })) {
    lock.unlock();
    bool trim = p.sample(malloc_free_bytes());
    if (trim)
      trim_malloc();
    lock.lock();
    if (trim)
      ++trims_;
  }
}

} // namespace wh
