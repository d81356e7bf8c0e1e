#pragma once

#include <filesystem>
#include <string>

#include <cstdlib>
#include <unistd.h>

namespace wh::test {

/// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class temp_dir {
public:
  temp_dir() {
    auto base = std::filesystem::temp_directory_path() / "wh-test-XXXXXX";
    std::string tmpl = base.string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      std::abort();
    path_ = tmpl;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }

  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

} // namespace wh::test
