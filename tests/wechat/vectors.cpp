#include "tests/wechat/vectors.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace wh::test {

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "vectors: %s\n", what.c_str());
  std::abort();
}

// Minimal JSON for the vectors: a string or an array of strings.
std::string parse_json_string(const std::string& s, std::size_t& i) {
  if (s[i] != '"')
    die("expected JSON string in: " + s);
  ++i;
  std::string out;
  while (i < s.size() && s[i] != '"') {
    char c = s[i++];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i >= s.size())
      die("bad escape in: " + s);
    char e = s[i++];
    switch (e) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      default: die("unsupported escape in: " + s);
    }
  }
  if (i >= s.size())
    die("unterminated JSON string: " + s);
  ++i;
  return out;
}

std::vector<std::string> parse_json_array(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  if (s.empty() || s[i++] != '[')
    die("expected JSON array: " + s);
  while (i < s.size() && s[i] != ']') {
    out.push_back(parse_json_string(s, i));
    while (i < s.size() && (s[i] == ',' || s[i] == ' '))
      ++i;
  }
  return out;
}

std::vector<vector_entry> load() {
  std::string path = WH_TEST_DATA_DIR "/vectors/VECTORS.md";
  std::ifstream in{path, std::ios::binary};
  if (!in)
    die("cannot open " + path);
  std::vector<vector_entry> out;
  std::string line;
  vector_entry* cur = nullptr;
  while (std::getline(in, line)) {
    if (cur == nullptr) {
      if (line.rfind("```vector ", 0) != 0)
        continue;
      out.emplace_back();
      cur = &out.back();
      std::istringstream hdr{line.substr(10)};
      std::string attr;
      while (hdr >> attr) {
        if (attr.rfind("id=", 0) == 0)
          cur->id = attr.substr(3);
        else if (attr.rfind("kind=", 0) == 0)
          cur->kind = attr.substr(5);
      }
      continue;
    }
    if (line == "```") {
      cur = nullptr;
      continue;
    }
    auto eq = line.find(" = ");
    if (eq == std::string::npos)
      die("bad vector line: " + line);
    auto key = line.substr(0, eq);
    auto value = line.substr(eq + 3);
    if (key.size() > 5 && key.compare(key.size() - 5, 5, "_json") == 0) {
      key.resize(key.size() - 5);
      if (!value.empty() && value[0] == '[') {
        cur->lists[key] = parse_json_array(value);
      } else {
        std::size_t i = 0;
        cur->fields[key] = parse_json_string(value, i);
      }
    } else {
      cur->fields[key] = value;
    }
  }
  if (cur != nullptr)
    die("unterminated vector block");
  return out;
}

} // namespace

const std::string& vector_entry::at(const std::string& key) const {
  auto i = fields.find(key);
  if (i == fields.end())
    die("vector " + id + " has no field " + key);
  return i->second;
}

const std::vector<vector_entry>& all_vectors() {
  static const auto vectors = load();
  return vectors;
}

const vector_entry& vec(const std::string& id) {
  for (const auto& v : all_vectors())
    if (v.id == id)
      return v;
  die("no vector " + id);
}

} // namespace wh::test
