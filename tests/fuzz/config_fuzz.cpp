// Config files (TOML through toml++ 3.3.0, then validation). Environment
// lookups are answered from a fixed map so `*_env` keys are reached.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text{reinterpret_cast<const char*>(data), size};
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "SECRET")
      return std::string{"s3cret"};
    if (name == "AES")
      return std::string(43, 'a');
    return std::nullopt;
  };
  (void) wh::parse_config(text, "fuzz.toml", env);
  return 0;
}
