#include "sim/options.hpp"

#include <set>
#include <sstream>

#include <boost/url/parse.hpp>

#include "core/config.hpp"

namespace wh::sim {

namespace {

bool parse_int(const std::string& str, int64_t min, int64_t max, int64_t& out) {
  if (str.empty() || str.size() > 18)
    return false;
  int64_t value = 0;
  std::size_t i = 0;
  bool neg = str[0] == '-';
  if (neg)
    i = 1;
  if (i == str.size())
    return false;
  for (; i < str.size(); ++i) {
    if (str[i] < '0' || str[i] > '9')
      return false;
    value = value * 10 + (str[i] - '0');
  }
  if (neg)
    value = -value;
  if (value < min || value > max)
    return false;
  out = value;
  return true;
}

std::vector<std::string> split(const std::string& str, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : str) {
    if (c == sep) {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(std::move(cur));
  return out;
}

bool is_alnum(const std::string& s) {
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

} // namespace

std::string usage() {
  return R"(usage: wechat-sim [options]
WeChat upstream simulator for tests, demos and benchmarks.

  --listen HOST:PORT          listen address (default 127.0.0.1:9000; port 0 = any free port)
  --port-file PATH            write the bound port number to PATH once listening
  --app APPID:SECRET          an official account (repeatable)
  --component APPID:SECRET:TOKEN:ENCODING_AES_KEY
                              a third-party platform (repeatable)
  --token-lifetime S          access token lifetime in seconds (default 7200)
  --ticket-lifetime S         jsapi / wx_card ticket lifetime in seconds (default 7200)
  --daily-quota N             token calls per app per sim-day (default 2000)
  --force-limit N             forced stable_token refreshes per app per day (default 20)
  --latency-ms N              delay added to every upstream answer (default 0)
  --push-url APPID=URL        register a component's authorization-event URL (http://)
                              at startup, as POST /sim/register_push does (repeatable)
  --push-interval S           push a fresh component_verify_ticket to every registered
                              URL every S seconds (default 600 as on WeChat; 0 = off)
  --no-push-on-start          don't push a ticket to the --push-url URLs right after
                              startup (by default they get one at once)
  --threads N                 I/O threads (default 1)
  --verbose                   log one line per request to stderr
  --help                      show this text
)";
}

bool parse_cli(const std::vector<std::string>& args, cli_options& out, std::string& error) {
  std::set<std::string> appids;
  auto add_appid = [&](const std::string& appid) {
    if (!appids.insert(appid).second) {
      error = "duplicate appid '" + appid + "'";
      return false;
    }
    return true;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); name.starts_with("--") && eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "--help" || name == "-h") {
      out.help = true;
      continue;
    }
    if (name == "--verbose") {
      out.srv.verbose = true;
      continue;
    }
    if (name == "--no-push-on-start") {
      out.srv.push_on_start = false;
      continue;
    }
    static const std::set<std::string> valued = {
      "--listen", "--port-file", "--app", "--component", "--token-lifetime", "--ticket-lifetime",
      "--daily-quota", "--force-limit", "--latency-ms", "--threads", "--push-url",
      "--push-interval"};
    if (valued.count(name) == 0) {
      error = "unknown option '" + name + "' (see --help)";
      return false;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        error = "option " + name + " needs a value";
        return false;
      }
      value = args[++i];
    }
    auto bad = [&](const std::string& why) {
      error = "invalid " + name + " '" + value + "': " + why;
      return false;
    };
    int64_t n = 0;
    if (name == "--listen") {
      if (!split_host_port(value, out.srv.host, out.srv.port))
        return bad("expected HOST:PORT");
    } else if (name == "--port-file") {
      if (value.empty())
        return bad("must not be empty");
      out.port_file = value;
    } else if (name == "--app") {
      auto parts = split(value, ':');
      if (parts.size() != 2 || parts[0].empty() || parts[1].empty())
        return bad("expected APPID:SECRET");
      if (!add_appid(parts[0]))
        return false;
      out.svc.apps.push_back(app_account{parts[0], parts[1]});
    } else if (name == "--component") {
      auto parts = split(value, ':');
      if (parts.size() != 4 || parts[0].empty() || parts[1].empty() || parts[2].empty())
        return bad("expected APPID:SECRET:TOKEN:ENCODING_AES_KEY");
      if (parts[3].size() != 43 || !is_alnum(parts[3]))
        return bad("ENCODING_AES_KEY must be 43 characters [A-Za-z0-9]");
      if (!add_appid(parts[0]))
        return false;
      out.svc.components.push_back(component_account{parts[0], parts[1], parts[2], parts[3]});
    } else if (name == "--token-lifetime") {
      if (!parse_int(value, 1, 10'000'000, n))
        return bad("expected seconds >= 1");
      out.svc.lim.token_lifetime = n;
    } else if (name == "--ticket-lifetime") {
      if (!parse_int(value, 1, 10'000'000, n))
        return bad("expected seconds >= 1");
      out.svc.lim.ticket_lifetime = n;
    } else if (name == "--daily-quota") {
      if (!parse_int(value, 0, 1'000'000'000'000, n))
        return bad("expected a count >= 0");
      out.svc.lim.daily_quota = n;
    } else if (name == "--force-limit") {
      if (!parse_int(value, 0, 1'000'000'000, n))
        return bad("expected a count >= 0");
      out.svc.lim.force_limit = n;
    } else if (name == "--latency-ms") {
      if (!parse_int(value, 0, 600'000, n))
        return bad("expected milliseconds 0..600000");
      out.svc.latency_ms = n;
    } else if (name == "--push-url") {
      auto eq = value.find('=');
      if (eq == std::string::npos || eq == 0)
        return bad("expected APPID=URL");
      auto url = value.substr(eq + 1);
      auto parsed = boost::urls::parse_absolute_uri(url);
      if (!parsed || parsed->scheme() != "http" || parsed->host().empty())
        return bad("URL must be an absolute http:// URL");
      out.svc.push_urls.emplace_back(value.substr(0, eq), url);
    } else if (name == "--push-interval") {
      if (!parse_int(value, 0, 10'000'000, n))
        return bad("expected seconds >= 0");
      out.srv.push_interval_s = n;
    } else if (name == "--threads") {
      if (!parse_int(value, 1, 64, n))
        return bad("expected 1..64");
      out.srv.threads = static_cast<unsigned>(n);
    } else {
      error = "unknown option '" + name + "' (see --help)";
      return false;
    }
  }
  // Components may follow --push-url on the command line, so check here.
  for (auto& [comp, url] : out.svc.push_urls) {
    bool known = false;
    for (auto& c : out.svc.components)
      known = known || c.appid == comp;
    if (!known) {
      error = "invalid --push-url: '" + comp + "' is not a --component";
      return false;
    }
  }
  return true;
}

} // namespace wh::sim
