#define CAF_SUITE core_memory

#include "caf/test/dsl.hpp"

#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "core/memory.hpp"

using namespace wh;

namespace {

/// Resident set size of this process in bytes (/proc/self/statm).
size_t rss_bytes() {
  std::ifstream in{"/proc/self/statm"};
  size_t pages = 0;
  size_t resident = 0;
  in >> pages >> resident;
  return resident * 4096;
}

} // namespace

CAF_TEST(the policy trims once per burst of freed memory) {
  heap_trimmer::policy p{100};
  CAF_CHECK(!p.sample(1000));
  CAF_CHECK(!p.sample(1050)); // below the threshold
  CAF_CHECK(p.sample(1100));  // 100 freed since the low point
  // Freed chunks stay counted as free after a trim: no trim without a new burst.
  CAF_CHECK(!p.sample(1100));
  CAF_CHECK(!p.sample(1150));
  // Memory used again (free bytes fall), then freed again.
  CAF_CHECK(!p.sample(400));
  CAF_CHECK(!p.sample(480));
  CAF_CHECK(p.sample(520));
  CAF_CHECK(!p.sample(520));
}

CAF_TEST(trimming returns freed heap memory to the os) {
  // 40 MiB in chunks below the mmap threshold (so they come from an arena;
  // less than the 64 MiB of one heap of a thread's arena, which glibc unmaps
  // once it is entirely free), pinned by a live allocation above them:
  // free() alone keeps them resident.
  constexpr size_t chunk = 32 << 10;
  constexpr size_t count = 1280;
  std::vector<char*> blocks;
  blocks.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    blocks.push_back(new char[chunk]);
    std::memset(blocks.back(), 1, chunk);
    // Keeps the compiler from eliding the new/delete pair.
    asm volatile("" : : "r"(blocks.back()) : "memory");
  }
  // As large as a block: no free chunk fits it, so it comes from the top of
  // the arena, above the blocks.
  auto pin = std::make_unique<char[]>(chunk);
  std::memset(pin.get(), 1, chunk);
  CAF_MESSAGE("RSS with the blocks " << rss_bytes() / 1024 << " KiB");
  auto free_before = malloc_free_bytes();
  for (auto* b : blocks)
    delete[] b;
  auto free_after = malloc_free_bytes();
  CAF_MESSAGE("free bytes " << free_before << " -> " << free_after);
  CAF_CHECK_GREATER_OR_EQUAL(free_after - free_before, count * chunk / 2);
  heap_trimmer::policy p{size_t{16} << 20};
  CAF_CHECK(!p.sample(free_before));
  CAF_CHECK(p.sample(free_after));
  auto rss_before = rss_bytes();
  trim_malloc();
  auto rss_after = rss_bytes();
  CAF_MESSAGE("RSS " << rss_before / 1024 << " KiB -> " << rss_after / 1024 << " KiB");
  CAF_CHECK_GREATER_OR_EQUAL(rss_before - std::min(rss_before, rss_after), size_t{24} << 20);
}

CAF_TEST(the trimmer thread starts and stops cleanly) {
  heap_trimmer t{{std::chrono::milliseconds{1}, size_t{1} << 40}};
  CAF_CHECK_EQUAL(t.trims(), 0u);
}
