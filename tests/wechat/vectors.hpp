#pragma once

// Loads the published vectors from tests/data/vectors/VECTORS.md (a verbatim
// copy of the shared file): every "```vector id=.. kind=.." fenced block.

#include <map>
#include <string>
#include <vector>

namespace wh::test {

/// One vector: id, kind and its `key = value` lines. `*_json` keys are
/// decoded (a JSON string becomes `fields[key without _json]`, a JSON string
/// array becomes `lists[key without _json]`).
struct vector_entry {
  std::string id;
  std::string kind;
  std::map<std::string, std::string> fields;
  std::map<std::string, std::vector<std::string>> lists;

  /// The field `key`; aborts the test binary when absent (a typo in a test).
  const std::string& at(const std::string& key) const;
};

/// All vectors, parsed once.
const std::vector<vector_entry>& all_vectors();

/// The vector with `id`; aborts when absent.
const vector_entry& vec(const std::string& id);

} // namespace wh::test
