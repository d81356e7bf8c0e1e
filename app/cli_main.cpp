// `wechat`: the command-line face of the client library. Wiring only: every
// command maps its flags onto one library call and prints JSON to stdout;
// errors go to stderr (as JSON) with a non-zero exit code.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "client/client.hpp"
#include "core/log.hpp"
#include "core/error.hpp"
#include "wechat/msg_crypto.hpp"
#include "wechat/signature.hpp"

namespace json = boost::json;
using namespace wh;

namespace {

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

const char* usage_text = R"(usage: wechat <command> [options]

commands:
  request  [--hub URL [--key K] | --secret S] [--api-base URL] --appid A
           [--authorizer-appid B | --component] METHOD PATH
           [--query k=v]... [--body JSON|@file] [--file field=@path]...
           [--field name=value]...
  token    [--hub URL [--key K] | --secret S] [--api-base URL] --appid A
           [--authorizer-appid B] [--component]
  ticket   --hub URL [--key K] --appid A [--authorizer-appid B] [--type jsapi|wx_card]
  sign-jssdk --ticket T --url U [--noncestr N] [--timestamp TS]
  sign-card  --ticket T [--card-id C] [--code X] [--openid O] [--value V]...
             [--nonce-str N] [--timestamp TS]
  decrypt-push --token T --aes-key K --appid A --timestamp TS --nonce N
               --msg-signature S --encrypt B64
  encrypt-push --token T --aes-key K --appid A --message TEXT|@file
               [--timestamp TS] [--nonce N]

common options:
  --timeout MS       per-request deadline (default 10000)
  --ca-file PEM      extra trusted CA bundle for https
  --insecure         do not verify TLS certificates (testing only)
  --verbose          log to stderr
The hub key and the AppSecret may also come from WECHAT_HUB_KEY and
WECHAT_APP_SECRET, which keeps them out of the process list.
)";

/// Parsed command line: repeated options keep every value in order.
struct args {
  std::string command;
  std::multimap<std::string, std::string> opts;
  std::vector<std::string> positional;
  std::vector<std::string> flags;

  bool has(const std::string& key) const {
    return opts.count(key) > 0;
  }

  std::string get(const std::string& key, std::string fallback = {}) const {
    auto it = opts.find(key);
    return it == opts.end() ? fallback : it->second;
  }

  std::vector<std::string> all(const std::string& key) const {
    std::vector<std::string> out;
    auto [first, last] = opts.equal_range(key);
    for (auto it = first; it != last; ++it)
      out.push_back(it->second);
    return out;
  }

  bool flag(const std::string& name) const {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
  }
};

struct usage_error {
  std::string msg;
};

const std::vector<std::string> boolean_flags = {"--component", "--verbose", "--insecure", "--help"};

args parse_args(int argc, char** argv) {
  args out;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.starts_with("--")) {
      if (std::find(boolean_flags.begin(), boolean_flags.end(), arg) != boolean_flags.end()) {
        out.flags.push_back(arg);
        continue;
      }
      std::string key = arg;
      std::string value;
      if (auto eq = arg.find('='); eq != std::string::npos) {
        key = arg.substr(0, eq);
        value = arg.substr(eq + 1);
      } else {
        if (i + 1 >= argc)
          throw usage_error{"option " + arg + " needs a value"};
        value = argv[++i];
      }
      out.opts.emplace(key, value);
    } else if (out.command.empty()) {
      out.command = arg;
    } else {
      out.positional.push_back(arg);
    }
  }
  return out;
}

std::string require(const args& a, const std::string& key) {
  if (!a.has(key))
    throw usage_error{a.command + " needs " + key};
  return a.get(key);
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw usage_error{"cannot read " + path};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// "@file" reads the file, anything else is the literal value.
std::string value_or_file(const std::string& value) {
  return value.starts_with("@") ? read_file(value.substr(1)) : value;
}

int64_t to_int(const std::string& key, const std::string& value) {
  try {
    size_t used = 0;
    auto n = std::stoll(value, &used);
    if (used == value.size())
      return n;
  } catch (...) {
  }
  throw usage_error{key + " must be an integer"};
}

void print_json(const json::value& v) {
  std::cout << json::serialize(v) << '\n';
}

int fail(const client::error& err) {
  json::object out;
  out["errcode"] = err.errcode;
  out["errmsg"] = err.errmsg;
  out["http_status"] = err.http_status;
  out["reason"] = err.reason;
  std::cerr << json::serialize(out) << '\n';
  return exit_failure;
}

int fail(std::string reason, std::string msg) {
  return fail(client::make_error(std::move(reason), std::move(msg)));
}

std::string env_or(const args& a, const std::string& key, const char* env) {
  if (a.has(key))
    return a.get(key);
  if (const char* v = std::getenv(env))
    return v;
  return {};
}

/// Builds the token source the flags describe: a hub, or direct with a secret.
std::shared_ptr<client::token_source> make_source(const args& a) {
  auto appid = require(a, "--appid");
  auto timeout = std::chrono::milliseconds{to_int("--timeout", a.get("--timeout", "10000"))};
  client::account acc = client::account::app(appid);
  if (a.has("--authorizer-appid"))
    acc = client::account::authorizer(appid, a.get("--authorizer-appid"));
  else if (a.flag("--component"))
    acc = client::account::component(appid);
  if (a.has("--hub")) {
    client::hub_options opts;
    opts.hub_url = a.get("--hub");
    opts.key = env_or(a, "--key", "WECHAT_HUB_KEY");
    opts.timeout = timeout;
    opts.ca_file = a.get("--ca-file");
    opts.verify_peer = !a.flag("--insecure");
    return std::make_shared<client::hub_token_source>(acc, std::move(opts));
  }
  auto secret = env_or(a, "--secret", "WECHAT_APP_SECRET");
  if (secret.empty())
    throw usage_error{"give --hub URL (with --key) or --secret S (or WECHAT_APP_SECRET)"};
  if (acc.type != client::account_type::app)
    throw usage_error{"--secret serves official accounts only; use --hub for components"};
  client::direct_options opts;
  opts.secret = secret;
  opts.api_base = a.get("--api-base", opts.api_base);
  opts.timeout = timeout;
  opts.ca_file = a.get("--ca-file");
  opts.verify_peer = !a.flag("--insecure");
  return std::make_shared<client::direct_token_source>(appid, std::move(opts));
}

// -- commands ---------------------------------------------------------------------

int cmd_request(const args& a) {
  if (a.positional.size() != 2)
    throw usage_error{"request needs METHOD PATH"};
  auto source = make_source(a);
  client::client_options copts;
  copts.api_base = a.get("--api-base", copts.api_base);
  copts.timeout = std::chrono::milliseconds{to_int("--timeout", a.get("--timeout", "10000"))};
  copts.ca_file = a.get("--ca-file");
  copts.verify_peer = !a.flag("--insecure");
  client::client api{source, copts};
  client::request_options ropts;
  for (auto& kv : a.all("--query")) {
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      throw usage_error{"--query takes k=v"};
    ropts.query.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  if (a.has("--body")) {
    auto text = value_or_file(a.get("--body"));
    boost::system::error_code ec;
    ropts.body = json::parse(text, ec);
    if (ec)
      throw usage_error{"--body is not valid JSON: " + ec.message()};
  }
  for (auto& spec : a.all("--file")) {
    auto eq = spec.find("=@");
    if (eq == std::string::npos)
      throw usage_error{"--file takes field=@path"};
    auto file = client::media::from_file(spec.substr(eq + 2));
    if (!file)
      return fail(file.err());
    ropts.form.push_back(client::form_part{spec.substr(0, eq), std::move(file->filename),
                                           std::move(file->content_type), std::move(file->data)});
  }
  for (auto& kv : a.all("--field")) {
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      throw usage_error{"--field takes name=value"};
    ropts.form.push_back(client::form_part{kv.substr(0, eq), {}, {}, value_or_file(kv.substr(eq + 1))});
  }
  if (!ropts.form.empty() && !ropts.body.is_null())
    throw usage_error{"--body and --file/--field are exclusive"};
  auto res = api.request(a.positional[0], a.positional[1], std::move(ropts));
  if (!res)
    return fail(res.err());
  print_json(*res);
  return 0;
}

int cmd_token(const args& a) {
  auto source = make_source(a);
  auto kind = a.flag("--component") ? client::token_kind::component_access_token
                                    : client::token_kind::access_token;
  auto tok = source->get(kind);
  if (!tok)
    return fail(tok.err());
  json::object out;
  out[client::to_string(kind)] = tok->value;
  out["expires_at"] = tok->expires_at;
  print_json(out);
  return 0;
}

int cmd_ticket(const args& a) {
  if (!a.has("--hub"))
    throw usage_error{"ticket needs --hub"};
  auto source = make_source(a);
  auto type = a.get("--type", "jsapi");
  auto tok = static_cast<client::hub_token_source&>(*source).ticket(type);
  if (!tok)
    return fail(tok.err());
  json::object out;
  out["ticket"] = tok->value;
  out["type"] = type;
  out["expires_at"] = tok->expires_at;
  print_json(out);
  return 0;
}

int cmd_sign_jssdk(const args& a) {
  auto ts = a.has("--timestamp") ? to_int("--timestamp", a.get("--timestamp")) : 0;
  auto sig = client::sign_jssdk(require(a, "--ticket"), require(a, "--url"), a.get("--noncestr"),
                                ts);
  json::object out;
  out["noncestr"] = sig.noncestr;
  out["timestamp"] = sig.timestamp;
  out["signature"] = sig.signature;
  print_json(out);
  return 0;
}

int cmd_sign_card(const args& a) {
  std::vector<std::string> values{require(a, "--ticket")};
  for (auto key : {"--card-id", "--code", "--openid", "--location-id", "--card-type", "--app-id"})
    for (auto& v : a.all(key))
      values.push_back(v);
  for (auto& v : a.all("--value"))
    values.push_back(v);
  auto ts = a.has("--timestamp") ? to_int("--timestamp", a.get("--timestamp")) : 0;
  auto sig = client::sign_card(std::move(values), a.get("--nonce-str"), ts);
  json::object out;
  out["nonce_str"] = sig.nonce_str;
  out["timestamp"] = sig.timestamp;
  out["signature"] = sig.signature;
  print_json(out);
  return 0;
}

caf::expected<wechat::msg_crypto> make_crypto(const args& a) {
  return wechat::msg_crypto::make(require(a, "--aes-key"), require(a, "--token"),
                                  require(a, "--appid"));
}

int cmd_decrypt_push(const args& a) {
  auto crypto = make_crypto(a);
  if (!crypto)
    return fail("invalid_config", "bad --aes-key: " + wh::detail_of(crypto.error()));
  auto ts = require(a, "--timestamp");
  auto nonce = require(a, "--nonce");
  auto sig = require(a, "--msg-signature");
  auto encrypt = require(a, "--encrypt");
  if (!crypto->verify(sig, ts, nonce, encrypt))
    return fail("bad_signature", "msg_signature does not match token, timestamp, nonce and Encrypt");
  auto parts = crypto->decrypt_parts(encrypt);
  if (!parts)
    return fail("invalid_request", "cannot decrypt: " + wh::detail_of(parts.error()));
  std::cout << parts->msg << '\n';
  return 0;
}

int cmd_encrypt_push(const args& a) {
  auto crypto = make_crypto(a);
  if (!crypto)
    return fail("invalid_config", "bad --aes-key: " + wh::detail_of(crypto.error()));
  auto msg = value_or_file(require(a, "--message"));
  auto ts = a.get("--timestamp");
  if (ts.empty())
    ts = std::to_string(std::time(nullptr));
  auto nonce = a.get("--nonce");
  if (nonce.empty())
    nonce = wechat::random_nonce(10);
  auto encrypt = crypto->encrypt(msg);
  std::cout << crypto->envelope_xml(encrypt, ts, nonce) << '\n';
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  try {
    auto a = parse_args(argc, argv);
    if (a.command.empty() || a.command == "help" || a.flag("--help")) {
      std::cout << usage_text;
      return a.command.empty() && !a.flag("--help") ? exit_usage : 0;
    }
    wh::log::set_level(a.flag("--verbose") ? wh::log::level::debug : wh::log::level::off);
    if (a.command == "request")
      return cmd_request(a);
    if (a.command == "token")
      return cmd_token(a);
    if (a.command == "ticket")
      return cmd_ticket(a);
    if (a.command == "sign-jssdk")
      return cmd_sign_jssdk(a);
    if (a.command == "sign-card")
      return cmd_sign_card(a);
    if (a.command == "decrypt-push")
      return cmd_decrypt_push(a);
    if (a.command == "encrypt-push")
      return cmd_encrypt_push(a);
    throw usage_error{"unknown command '" + a.command + "'"};
  } catch (const usage_error& e) {
    std::cerr << "wechat: " << e.msg << "\n(see wechat --help)\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "wechat: " << e.what() << '\n';
    return exit_failure;
  }
}
