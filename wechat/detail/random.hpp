#pragma once

// Internal: the module's single source of randomness (OpenSSL RAND_bytes).

#include <cstddef>

namespace wh::wechat::detail {

/// Fills `out` with `n` random bytes; aborts if the CSPRNG fails.
void random_or_die(unsigned char* out, std::size_t n);

} // namespace wh::wechat::detail
