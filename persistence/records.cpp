#include "persistence/records.hpp"

#include <cstdio>

#include <boost/json.hpp>

#include "core/error.hpp"

namespace json = boost::json;

namespace wh::persistence {

namespace keys {

std::string app_prefix(std::string_view appid) {
  return "app/" + std::string{appid} + "/";
}

std::string component_prefix(std::string_view component_appid) {
  return "comp/" + std::string{component_appid} + "/";
}

std::string authorizers_of(std::string_view component_appid) {
  return "auth/" + std::string{component_appid} + "/";
}

std::string authorizer_prefix(std::string_view component_appid, std::string_view authorizer_appid) {
  return authorizers_of(component_appid) + std::string{authorizer_appid} + "/";
}

std::string app_token(std::string_view appid) {
  return token(app_prefix(appid));
}

std::string app_ticket(std::string_view appid, std::string_view type) {
  return ticket(app_prefix(appid), type);
}

std::string app_force(std::string_view appid) {
  return force(app_prefix(appid));
}

} // namespace keys

namespace {

constexpr int64_t record_version = 1;

caf::error corrupt(std::string why) {
  return make_detail_error(ec::corrupt_record, std::move(why));
}

/// Parses `bytes` as a JSON object of a supported record version.
caf::expected<json::object> open_record(std::string_view bytes) {
  boost::system::error_code err;
  auto val = json::parse(bytes, err);
  if (err || !val.is_object())
    return corrupt("record is not a JSON object");
  auto& obj = val.as_object();
  auto v = obj.if_contains("v");
  if (!v || !v->is_int64())
    return corrupt("record has no version");
  if (v->as_int64() != record_version)
    return corrupt("unsupported record version " + std::to_string(v->as_int64()));
  return std::move(obj);
}

bool get_int(const json::object& obj, const char* key, int64_t& out) {
  auto v = obj.if_contains(key);
  if (!v)
    return false;
  if (v->is_int64())
    out = v->as_int64();
  else if (v->is_uint64())
    out = static_cast<int64_t>(v->as_uint64());
  else
    return false;
  return true;
}

} // namespace

std::string encode(const credential& x) {
  json::object obj;
  obj["v"] = record_version;
  obj["value"] = x.value;
  obj["obtained_at"] = x.obtained_at;
  obj["expires_at"] = x.expires_at;
  obj["version"] = x.version;
  return json::serialize(obj);
}

std::string encode(const force_budget_record& x) {
  json::object obj;
  obj["v"] = record_version;
  obj["day"] = x.day;
  obj["used"] = x.used;
  obj["last_at"] = x.last_at;
  return json::serialize(obj);
}

std::string encode_status(std::string_view status, int64_t at) {
  json::object obj;
  obj["v"] = record_version;
  obj["status"] = status;
  obj["at"] = at;
  return json::serialize(obj);
}

caf::expected<std::string> decode_status(std::string_view bytes) {
  auto obj = open_record(bytes);
  if (!obj)
    return std::move(obj.error());
  auto st = obj->if_contains("status");
  if (!st || !st->is_string() || (st->as_string() != "revoked" && st->as_string() != "needs_reauthorization"))
    return corrupt("status record has an unknown status");
  return std::string{st->as_string()};
}

int64_t decode_status_time(std::string_view bytes) {
  auto obj = open_record(bytes);
  if (!obj)
    return 0;
  auto at = obj->if_contains("at");
  return at && at->is_int64() ? at->as_int64() : 0;
}

caf::expected<credential> decode_credential(std::string_view bytes) {
  auto obj = open_record(bytes);
  if (!obj)
    return std::move(obj.error());
  credential x;
  int64_t version = 0;
  auto value = obj->if_contains("value");
  if (!value || !value->is_string() || value->as_string().empty())
    return corrupt("credential record has no value");
  x.value = std::string{value->as_string()};
  if (!get_int(*obj, "obtained_at", x.obtained_at) || !get_int(*obj, "expires_at", x.expires_at)
      || !get_int(*obj, "version", version) || version < 0)
    return corrupt("credential record lacks obtained_at, expires_at or version");
  if (x.expires_at < x.obtained_at)
    return corrupt("credential record expires before it was obtained");
  x.version = static_cast<uint64_t>(version);
  return x;
}

caf::expected<force_budget_record> decode_force_budget(std::string_view bytes) {
  auto obj = open_record(bytes);
  if (!obj)
    return std::move(obj.error());
  force_budget_record x;
  int64_t used = 0;
  if (!get_int(*obj, "day", x.day) || !get_int(*obj, "used", used) || used < 0
      || !get_int(*obj, "last_at", x.last_at))
    return corrupt("force budget record is incomplete");
  x.used = static_cast<uint32_t>(used);
  return x;
}

namespace keys {

std::string schedule(int64_t due, std::string_view key) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(due < 0 ? 0 : due));
  std::string out{schedule_prefix};
  out += buf;
  out += '/';
  out += key;
  return out;
}

bool parse_schedule(std::string_view record, int64_t& due, std::string& key) {
  if (record.substr(0, schedule_prefix.size()) != schedule_prefix)
    return false;
  auto rest = record.substr(schedule_prefix.size());
  if (rest.size() < 22 || rest[20] != '/')
    return false;
  int64_t x = 0;
  for (char c : rest.substr(0, 20)) {
    if (c < '0' || c > '9')
      return false;
    x = x * 10 + (c - '0');
  }
  due = x;
  key.assign(rest.substr(21));
  return true;
}

} // namespace keys

} // namespace wh::persistence
