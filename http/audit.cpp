#include "http/audit.hpp"

#include <chrono>
#include <ctime>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <boost/url.hpp>

#include "core/log.hpp"

namespace wh::http {

std::string normalise_path(std::string_view target) {
  constexpr std::size_t max_len = 512;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed)
    return "(malformed) " + std::string{target.substr(0, std::min(max_len, target.find('?')))};
  // Dot segments removed by hand: Boost.URL 1.81's normalize_path() can
  // leave NUL bytes behind when it shortens the path.
  std::string decoded = parsed->path();
  std::vector<std::string_view> segs;
  std::string_view path{decoded};
  for (size_t pos = 0; pos < path.size();) {
    auto end = std::min(path.find('/', pos), path.size());
    auto seg = path.substr(pos, end - pos);
    pos = end + 1;
    if (seg == "..") {
      if (!segs.empty())
        segs.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
  }
  std::string out;
  for (auto seg : segs)
    out.append("/").append(seg);
  if (out.empty())
    out = "/";
  if (out.size() > max_len)
    out.resize(max_len);
  return out;
}

audit_log::audit_log(const std::string& path) {
  if (path.empty())
    return;
  // Create with owner-only permissions before the stream opens it.
  if (auto fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600); fd >= 0)
    ::close(fd);
  out_.open(path, std::ios::app);
  ok_ = static_cast<bool>(out_);
  if (!ok_)
    WH_ERROR("audit", "cannot open audit log " << path);
}

void audit_log::record(std::string_view client, std::string_view action, std::string_view target,
                       unsigned status) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[32];
  std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  boost::json::object o;
  o["time"] = ts;
  o["client"] = client;
  o["action"] = action;
  o["target"] = target;
  o["status"] = status;
  auto line = boost::json::serialize(o);
  std::lock_guard<std::mutex> guard{mtx_};
  WH_INFO("audit", line);
  if (ok_) {
    out_ << line << '\n';
    out_.flush();
  }
}

} // namespace wh::http
