#include "sim/state.hpp"

#include <algorithm>
#include <ctime>
#include <iomanip>
#include <sstream>

#include <boost/json/array.hpp>

#include <openssl/evp.h>

namespace wh::sim {

namespace {

constexpr int64_t grace_period = 300;
constexpr int64_t force_spacing = 30;
constexpr int64_t verify_ticket_lifetime = 12 * 3600;
constexpr int64_t code_lifetime = 600;
constexpr int64_t seconds_per_day = 86400;

std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xF];
  }
  return out;
}

} // namespace

answer token_error(int code) {
  switch (code) {
    case 41001: return make_error(41001, "access_token missing");
    case 42001: return make_error(42001, "access_token expired");
    default: return make_error(40001, "invalid credential, access_token is invalid or not latest");
  }
}

answer make_error(int code, std::string_view msg) {
  answer out;
  out["errcode"] = code;
  out["errmsg"] = msg;
  return out;
}

int64_t errcode_of(const answer& a) {
  if (auto* v = a.if_contains("errcode"); v && v->is_int64())
    return v->as_int64();
  return 0;
}

state::state(const wh::clock& base, limits lim, std::vector<app_account> apps,
             std::vector<component_account> components)
  : base_(base), limits_(lim), rng_(std::random_device{}()) {
  for (auto& a : apps)
    apps_[a.appid].secret = a.secret;
  for (auto& c : components) {
    auto appid = c.appid;
    components_[appid].account = std::move(c);
  }
}

// -- clock ------------------------------------------------------------------

int64_t state::now_locked() const { return base_.now() + offset_; }

int64_t state::now() const {
  std::lock_guard guard{mtx_};
  return now_locked();
}

void state::advance(int64_t seconds) {
  std::lock_guard guard{mtx_};
  offset_ += seconds;
}

// -- token pool -------------------------------------------------------------

std::string state::random_string(std::size_t len) {
  static constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out(len, '\0');
  for (std::size_t i = 0; i < len; i += 10) {
    auto bits = rng_();
    for (std::size_t j = i; j < std::min(len, i + 10); ++j, bits >>= 6)
      out[j] = alphabet[bits & 63];
  }
  return out;
}

std::string state::issue_token(const std::string& owner, token_kind kind, int64_t lifetime) {
  maybe_prune();
  // The prefix only helps humans reading logs; clients must treat tokens as opaque.
  std::string token;
  do {
    token = std::to_string(now_locked() % 100) + "_" + random_string(110);
  } while (tokens_.count(token) != 0);
  tokens_.emplace(token, token_info{owner, kind, now_locked() + lifetime});
  return token;
}

void state::revoke(const std::string& token) {
  if (auto i = tokens_.find(token); i != tokens_.end())
    i->second.revoked = true;
}

std::string state::rotate(std::string& current, std::string& grace, const std::string& owner,
                          token_kind kind, int64_t lifetime, int64_t grace_len) {
  if (!grace.empty())
    revoke(grace);
  grace.clear();
  if (!current.empty()) {
    if (auto i = tokens_.find(current); i != tokens_.end() && !i->second.revoked) {
      i->second.expires_at = std::min(i->second.expires_at, now_locked() + grace_len);
      grace = current;
    }
  }
  current = issue_token(owner, kind, lifetime);
  return current;
}

int64_t state::remaining(const std::string& token) const {
  auto i = tokens_.find(token);
  if (i == tokens_.end() || i->second.revoked)
    return 0;
  return std::max<int64_t>(0, i->second.expires_at - now_locked());
}

void state::maybe_prune() {
  // Dropping tokens that expired a day ago keeps memory bounded under long
  // benchmarks; such tokens then read as unknown (40001) rather than 42001.
  if (++issued_ % 4096 != 0)
    return;
  auto cutoff = now_locked() - seconds_per_day;
  std::erase_if(tokens_, [cutoff](const auto& kv) { return kv.second.expires_at < cutoff; });
}

token_check state::check_locked(std::string_view token) const {
  if (token.empty())
    return {41001, ""};
  auto i = tokens_.find(std::string{token});
  if (i == tokens_.end())
    return {40001, ""};
  auto& info = i->second;
  if (info.kind == token_kind::component)
    return {40001, info.owner};
  if (info.revoked)
    return {40001, info.owner};
  if (info.expires_at <= now_locked())
    return {42001, info.owner};
  return {0, info.owner};
}

token_check state::check_token(std::string_view token) const {
  std::lock_guard guard{mtx_};
  return check_locked(token);
}

std::string state::token_owner(std::string_view token) const {
  std::lock_guard guard{mtx_};
  auto i = tokens_.find(std::string{token});
  return i == tokens_.end() ? std::string{} : i->second.owner;
}

// -- official account -------------------------------------------------------

void state::roll_day(app_state& app) {
  auto day = now_locked() / seconds_per_day;
  if (day != app.day) {
    app.day = day;
    app.quota_remaining = limits_.daily_quota;
    app.force_count = 0;
  }
}

std::optional<answer> state::admit_token_call(std::string_view grant_type, std::string_view appid,
                                              std::string_view secret, app_state*& app) {
  if (appid.empty())
    return make_error(41002, "appid missing");
  auto i = apps_.find(appid);
  if (i == apps_.end())
    return make_error(40013, "invalid appid");
  app = &i->second;
  roll_day(*app);
  // Failed calls of a known app consume quota too, as on WeChat.
  if (app->quota_remaining <= 0)
    return make_error(45009, "reach max api daily quota limit");
  --app->quota_remaining;
  if (secret.empty())
    return make_error(41004, "appsecret missing");
  if (grant_type != "client_credential")
    return make_error(40002, "invalid grant_type");
  if (secret != app->secret)
    return make_error(40125, "invalid appsecret");
  return std::nullopt;
}

answer state::classic_token(std::string_view grant_type, std::string_view appid,
                            std::string_view secret) {
  std::lock_guard guard{mtx_};
  app_state* app = nullptr;
  if (auto err = admit_token_call(grant_type, appid, secret, app))
    return std::move(*err);
  answer out;
  out["access_token"] = rotate(app->classic_current, app->classic_grace, std::string{appid},
                               token_kind::classic, limits_.token_lifetime, grace_period);
  out["expires_in"] = limits_.token_lifetime;
  return out;
}

answer state::stable_token(std::string_view grant_type, std::string_view appid,
                           std::string_view secret, bool force_refresh) {
  std::lock_guard guard{mtx_};
  app_state* app = nullptr;
  if (auto err = admit_token_call(grant_type, appid, secret, app))
    return std::move(*err);
  auto now = now_locked();
  auto reply = [&](const std::string& token) {
    answer out;
    out["access_token"] = token;
    out["expires_in"] = remaining(token);
    return out;
  };
  if (force_refresh) {
    // Calls closer than 30 s to the last forced refresh change nothing.
    if (app->last_force_refresh && now - *app->last_force_refresh < force_spacing
        && remaining(app->stable_current) > 0)
      return reply(app->stable_current);
    if (app->force_count >= limits_.force_limit)
      return make_error(45009, "reach max api daily quota limit");
    ++app->force_count;
    app->last_force_refresh = now;
    return reply(rotate(app->stable_current, app->stable_grace, std::string{appid},
                        token_kind::stable, limits_.token_lifetime, grace_period));
  }
  if (remaining(app->stable_current) > grace_period)
    return reply(app->stable_current);
  // Renewal in the last 5 minutes: the old token keeps its own expiry.
  return reply(rotate(app->stable_current, app->stable_grace, std::string{appid},
                      token_kind::stable, limits_.token_lifetime, limits_.token_lifetime));
}

answer state::get_ticket(std::string_view access_token, std::string_view type) {
  std::lock_guard guard{mtx_};
  auto chk = check_locked(access_token);
  if (chk.errcode != 0)
    return token_error(chk.errcode);
  if (type != "jsapi" && type != "wx_card")
    return make_error(40097, "invalid args");
  auto& t = tickets_[{chk.owner, std::string{type}}];
  auto now = now_locked();
  if (t.value.empty() || t.expires_at <= now) {
    t.value = random_string(86);
    t.expires_at = now + limits_.ticket_lifetime;
  }
  answer out;
  out["errcode"] = 0;
  out["errmsg"] = "ok";
  out["ticket"] = t.value;
  // WeChat reports the full lifetime, not the remaining one.
  out["expires_in"] = limits_.ticket_lifetime;
  return out;
}

answer state::api_domain_ip(std::string_view access_token) {
  auto chk = check_token(access_token);
  if (chk.errcode != 0)
    return token_error(chk.errcode);
  answer out;
  out["ip_list"] = boost::json::array{"101.226.103.0/25", "101.226.233.128/25",
                                      "58.247.206.128/25", "182.254.86.128/25"};
  return out;
}

answer state::clear_quota(std::string_view access_token, std::string_view appid) {
  constexpr int64_t clears_per_month = 10;
  std::lock_guard guard{mtx_};
  auto chk = check_locked(access_token);
  if (chk.errcode != 0)
    return token_error(chk.errcode);
  if (appid.empty())
    return make_error(41002, "appid missing");
  auto owner = tokens_.find(std::string{access_token});
  if (owner == tokens_.end() || owner->second.owner != appid)
    return make_error(40013, "invalid appid");
  auto i = apps_.find(appid);
  if (i == apps_.end())
    return make_error(40013, "invalid appid");
  auto& app = i->second;
  std::time_t bj = static_cast<std::time_t>(now_locked() + 8 * 3600);
  std::tm tm{};
  gmtime_r(&bj, &tm);
  int64_t month = (tm.tm_year + 1900) * 100 + tm.tm_mon + 1;
  if (app.clear_month != month) {
    app.clear_month = month;
    app.clears = 0;
  }
  if (app.clears >= clears_per_month)
    return make_error(48006, "forbid to clear quota because of reaching the limit");
  ++app.clears;
  roll_day(app);
  app.quota_remaining = limits_.daily_quota;
  return make_error(0, "ok");
}

answer state::batchget_material(std::string_view access_token) {
  auto chk = check_token(access_token);
  if (chk.errcode != 0)
    return token_error(chk.errcode);
  answer out;
  out["item"] = boost::json::array{};
  out["total_count"] = 0;
  out["item_count"] = 0;
  return out;
}

answer state::upload_media(std::string_view access_token, std::string_view type,
                           const media_file* file, bool permanent,
                           std::optional<std::string> description) {
  std::lock_guard guard{mtx_};
  auto chk = check_locked(access_token);
  if (chk.errcode != 0)
    return token_error(chk.errcode);
  if (type != "image" && type != "voice" && type != "video" && type != "thumb")
    return make_error(40004, "invalid media type");
  if (file == nullptr || file->data.empty())
    return make_error(41005, "media data missing");
  if (permanent && type == "video") {
    if (!description)
      return make_error(40097, "invalid args: video needs a description");
  }
  media_record rec;
  rec.media_id = random_string(64);
  rec.owner = chk.owner;
  rec.type = type;
  rec.filename = file->filename;
  rec.content_type = file->content_type;
  rec.md5_hex = md5_hex(file->data);
  rec.size = file->data.size();
  rec.description = description.value_or("");
  rec.permanent = permanent;
  rec.created_at = now_locked();
  answer out;
  if (permanent) {
    out["media_id"] = rec.media_id;
    out["url"] = type == "image" ? "http://mmbiz.qpic.cn/sim/" + rec.media_id + "/0" : std::string{};
  } else {
    out["type"] = type;
    out["media_id"] = rec.media_id;
    out["created_at"] = rec.created_at;
  }
  media_.push_back(std::move(rec));
  return out;
}

// -- component --------------------------------------------------------------

answer state::start_push_ticket(std::string_view component_appid,
                                std::string_view component_secret,
                                std::optional<push_event>& push) {
  {
    std::lock_guard guard{mtx_};
    if (component_appid.empty())
      return make_error(41002, "appid missing");
    auto i = components_.find(component_appid);
    if (i == components_.end())
      return make_error(61011, "invalid component");
    if (component_secret.empty())
      return make_error(41004, "appsecret missing");
    if (component_secret != i->second.account.secret)
      return make_error(40125, "invalid appsecret");
    if (i->second.push_url.empty())
      return make_error(0, "ok");
  }
  std::string ignored;
  push = make_push(component_appid, "component_verify_ticket", "", "", ignored);
  return make_error(0, "ok");
}

answer state::component_token(std::string_view component_appid,
                              std::string_view component_secret,
                              std::string_view verify_ticket) {
  std::lock_guard guard{mtx_};
  if (component_appid.empty())
    return make_error(41002, "component_appid missing");
  auto i = components_.find(component_appid);
  if (i == components_.end())
    return make_error(61011, "invalid component");
  auto& comp = i->second;
  if (component_secret.empty())
    return make_error(41004, "component_appsecret missing");
  if (component_secret != comp.account.secret)
    return make_error(40125, "invalid appsecret");
  // WeChat answers 61005 both for a ticket it never pushed and for one past
  // its 12 h: either way the cure is waiting for (or restarting) pushes.
  auto t = comp.tickets.find(std::string{verify_ticket});
  if (verify_ticket.empty() || t == comp.tickets.end()
      || now_locked() - t->second >= verify_ticket_lifetime)
    return make_error(61005, "component ticket is expired");
  answer out;
  out["component_access_token"] = rotate(comp.token_current, comp.token_grace, comp.account.appid,
                                         token_kind::component, limits_.token_lifetime,
                                         grace_period);
  out["expires_in"] = limits_.token_lifetime;
  return out;
}

std::optional<answer> state::check_component(std::string_view token,
                                             std::string_view component_appid,
                                             component_state*& comp) {
  if (token.empty())
    return make_error(41001, "component_access_token missing");
  auto i = tokens_.find(std::string{token});
  if (i == tokens_.end() || i->second.kind != token_kind::component || i->second.revoked)
    return token_error(40001);
  if (i->second.expires_at <= now_locked())
    return token_error(42001);
  if (component_appid.empty())
    return make_error(41002, "component_appid missing");
  if (i->second.owner != component_appid)
    return make_error(61011, "invalid component");
  comp = &components_.find(component_appid)->second;
  return std::nullopt;
}

answer state::create_preauthcode(std::string_view component_token,
                                 std::string_view component_appid) {
  std::lock_guard guard{mtx_};
  component_state* comp = nullptr;
  if (auto err = check_component(component_token, component_appid, comp))
    return std::move(*err);
  auto code = "preauthcode@@@" + random_string(48);
  comp->pre_auth_codes[code] = now_locked() + code_lifetime;
  answer out;
  out["pre_auth_code"] = code;
  out["expires_in"] = code_lifetime;
  return out;
}

answer state::query_auth(std::string_view component_token, std::string_view component_appid,
                         std::string_view authorization_code) {
  std::lock_guard guard{mtx_};
  component_state* comp = nullptr;
  if (auto err = check_component(component_token, component_appid, comp))
    return std::move(*err);
  auto c = auth_codes_.find(std::string{authorization_code});
  if (authorization_code.empty() || c == auth_codes_.end() || c->second.used
      || c->second.component_appid != component_appid)
    return make_error(61009, "code is invalid");
  if (c->second.expires_at <= now_locked())
    return make_error(61010, "code is expired");
  c->second.used = true;
  auto& auth = authorizers_[c->second.authorizer_appid];
  if (!auth.authorized)
    return make_error(61003, "component is not authorized by this account");
  auto token = rotate(auth.token_current, auth.token_grace, c->second.authorizer_appid,
                      token_kind::authorizer, limits_.token_lifetime, grace_period);
  boost::json::object info;
  info["authorizer_appid"] = c->second.authorizer_appid;
  info["authorizer_access_token"] = token;
  info["expires_in"] = limits_.token_lifetime;
  info["authorizer_refresh_token"] = auth.refresh_token;
  boost::json::array funcs;
  for (int id : {1, 2, 3}) {
    boost::json::object cat;
    cat["id"] = id;
    boost::json::object f;
    f["funcscope_category"] = std::move(cat);
    funcs.push_back(std::move(f));
  }
  info["func_info"] = std::move(funcs);
  answer out;
  out["authorization_info"] = std::move(info);
  return out;
}

answer state::authorizer_token(std::string_view component_token, std::string_view component_appid,
                               std::string_view authorizer_appid,
                               std::string_view refresh_token) {
  std::lock_guard guard{mtx_};
  component_state* comp = nullptr;
  if (auto err = check_component(component_token, component_appid, comp))
    return std::move(*err);
  if (authorizer_appid.empty())
    return make_error(41002, "authorizer_appid missing");
  auto i = authorizers_.find(authorizer_appid);
  if (i == authorizers_.end() || i->second.component_appid != component_appid
      || !i->second.authorized)
    return make_error(61003, "component is not authorized by this account");
  auto& auth = i->second;
  if (refresh_token.empty() || refresh_token != auth.refresh_token)
    return make_error(61023, "refresh_token is invalid");
  answer out;
  out["authorizer_access_token"] = rotate(auth.token_current, auth.token_grace, i->first,
                                          token_kind::authorizer, limits_.token_lifetime,
                                          grace_period);
  out["expires_in"] = limits_.token_lifetime;
  out["authorizer_refresh_token"] = auth.refresh_token;
  return out;
}

answer state::authorizer_list(std::string_view component_token, std::string_view component_appid,
                              int64_t offset, int64_t count) {
  std::lock_guard guard{mtx_};
  component_state* comp = nullptr;
  if (auto err = check_component(component_token, component_appid, comp))
    return std::move(*err);
  if (offset < 0 || count <= 0 || count > 500)
    return make_error(40097, "invalid args");
  boost::json::array list;
  int64_t total = 0;
  for (auto& [appid, auth] : authorizers_) {
    if (auth.component_appid != component_appid || !auth.authorized)
      continue;
    if (total >= offset && total < offset + count) {
      boost::json::object item;
      item["authorizer_appid"] = appid;
      item["refresh_token"] = auth.refresh_token;
      item["auth_time"] = auth.auth_time;
      list.push_back(std::move(item));
    }
    ++total;
  }
  answer out;
  out["total_count"] = total;
  out["list"] = std::move(list);
  return out;
}

// -- control ----------------------------------------------------------------

bool state::register_push(std::string_view component_appid, std::string url) {
  std::lock_guard guard{mtx_};
  auto i = components_.find(component_appid);
  if (i == components_.end())
    return false;
  i->second.push_url = std::move(url);
  return true;
}

std::optional<push_event> state::make_push(std::string_view component_appid,
                                           std::string_view info_type,
                                           std::string_view authorizer_appid,
                                           std::string_view url_override, std::string& error) {
  std::lock_guard guard{mtx_};
  auto i = components_.find(component_appid);
  if (i == components_.end()) {
    error = "unknown component_appid";
    return std::nullopt;
  }
  auto& comp = i->second;
  push_event ev;
  ev.url = url_override.empty() ? comp.push_url : std::string{url_override};
  if (ev.url.empty()) {
    error = "no push url registered for this component";
    return std::nullopt;
  }
  auto now = now_locked();
  ev.component_appid = comp.account.appid;
  ev.token = comp.account.token;
  ev.encoding_aes_key = comp.account.encoding_aes_key;
  ev.info_type = info_type;
  ev.create_time = now;
  if (info_type == "component_verify_ticket") {
    ev.verify_ticket = "ticket@@@" + random_string(80);
    comp.tickets[ev.verify_ticket] = now;
    comp.latest_ticket = ev.verify_ticket;
    return ev;
  }
  bool grant = info_type == "authorized" || info_type == "updateauthorized";
  if (!grant && info_type != "unauthorized") {
    error = "unknown info_type";
    return std::nullopt;
  }
  if (authorizer_appid.empty()) {
    error = "authorizer_appid missing";
    return std::nullopt;
  }
  ev.authorizer_appid = authorizer_appid;
  auto& auth = authorizers_[std::string{authorizer_appid}];
  if (!grant) {
    auth.authorized = false;
    auth.component_appid = comp.account.appid;
    // Revocation kills the authorizer's tokens at once.
    revoke(auth.token_current);
    revoke(auth.token_grace);
    return ev;
  }
  // A fresh (re-)authorization gets a new refresh token; an update keeps it.
  if (!auth.authorized || auth.refresh_token.empty() || auth.component_appid != comp.account.appid) {
    auth.refresh_token = "refreshtoken@@@" + random_string(43);
    auth.auth_time = now;
  }
  auth.authorized = true;
  auth.component_appid = comp.account.appid;
  ev.authorization_code = "queryauthcode@@@" + random_string(64);
  ev.code_expired_time = now + code_lifetime;
  auth_codes_[ev.authorization_code] =
    auth_code_info{comp.account.appid, std::string{authorizer_appid}, ev.code_expired_time, false};
  ev.pre_auth_code = "preauthcode@@@" + random_string(48);
  comp.last_grant = ev;
  return ev;
}

std::optional<push_event> state::last_grant(std::string_view component_appid, std::string_view url_override) const {
  std::lock_guard guard{mtx_};
  auto i = components_.find(component_appid);
  if (i == components_.end() || !i->second.last_grant)
    return std::nullopt;
  auto ev = *i->second.last_grant;
  if (!url_override.empty())
    ev.url = std::string{url_override};
  return ev;
}

std::vector<push_event> state::verify_ticket_pushes() {
  std::vector<std::string> due;
  {
    std::lock_guard guard{mtx_};
    for (auto& [appid, comp] : components_)
      if (!comp.push_url.empty())
        due.push_back(appid);
  }
  std::vector<push_event> out;
  std::string ignored;
  for (auto& appid : due)
    if (auto ev = make_push(appid, "component_verify_ticket", "", "", ignored))
      out.push_back(std::move(*ev));
  return out;
}

bool state::create_authorizers(std::string_view component_appid, int64_t count,
                               std::string_view prefix,
                               std::vector<std::pair<std::string, std::string>>& out,
                               std::string& error) {
  constexpr std::size_t digits = 9;
  constexpr std::size_t max_appid = 32;
  if (count < 1 || count > max_bulk_authorizers) {
    error = "count must be 1.." + std::to_string(max_bulk_authorizers);
    return false;
  }
  if (prefix.empty() || prefix.size() + digits > max_appid) {
    error = "prefix must be 1.." + std::to_string(max_appid - digits) + " characters";
    return false;
  }
  for (char c : prefix)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      error = "prefix must be [A-Za-z0-9_]";
      return false;
    }
  std::lock_guard guard{mtx_};
  auto c = components_.find(component_appid);
  if (c == components_.end()) {
    error = "unknown component_appid";
    return false;
  }
  // Refuse before creating anything, so a bad call leaves no half-made batch.
  auto in_range = [&](const std::string& appid) {
    if (appid.size() != prefix.size() + digits || !appid.starts_with(prefix))
      return false;
    int64_t n = 0;
    for (std::size_t k = prefix.size(); k < appid.size(); ++k) {
      if (appid[k] < '0' || appid[k] > '9')
        return false;
      n = n * 10 + (appid[k] - '0');
    }
    return n >= 1 && n <= count;
  };
  std::vector<const std::string*> taken;
  for (auto& kv : apps_)
    taken.push_back(&kv.first);
  for (auto& kv : components_)
    taken.push_back(&kv.first);
  for (auto* appid : taken)
    if (in_range(*appid)) {
      error = "appid '" + *appid + "' belongs to an app or component";
      return false;
    }
  const auto& comp_appid = c->second.account.appid;
  auto now = now_locked();
  out.reserve(out.size() + static_cast<std::size_t>(count));
  std::string appid{prefix};
  appid.resize(prefix.size() + digits);
  for (int64_t i = 1; i <= count; ++i) {
    auto n = i;
    for (std::size_t d = 0; d < digits; ++d, n /= 10)
      appid[appid.size() - 1 - d] = static_cast<char>('0' + n % 10);
    auto [it, fresh] = authorizers_.try_emplace(appid);
    auto& auth = it->second;
    if (fresh || !auth.authorized || auth.refresh_token.empty()
        || auth.component_appid != comp_appid) {
      auth.refresh_token = "refreshtoken@@@" + random_string(43);
      auth.auth_time = now;
      auth.authorized = true;
      auth.component_appid = comp_appid;
    }
    out.emplace_back(appid, auth.refresh_token);
  }
  return true;
}

bool state::invalidate(std::string_view appid) {
  std::lock_guard guard{mtx_};
  bool known = false;
  if (auto i = apps_.find(appid); i != apps_.end()) {
    known = true;
    auto& app = i->second;
    for (auto* t : {&app.classic_current, &app.classic_grace, &app.stable_current,
                    &app.stable_grace}) {
      revoke(*t);
      t->clear();
    }
  }
  if (auto i = authorizers_.find(appid); i != authorizers_.end()) {
    known = true;
    revoke(i->second.token_current);
    revoke(i->second.token_grace);
    i->second.token_current.clear();
    i->second.token_grace.clear();
  }
  if (auto i = components_.find(appid); i != components_.end()) {
    known = true;
    revoke(i->second.token_current);
    revoke(i->second.token_grace);
    i->second.token_current.clear();
    i->second.token_grace.clear();
  }
  // Catch tokens that already left current/grace but have not expired.
  std::string key{appid};
  for (auto& [token, info] : tokens_)
    if (info.owner == key)
      info.revoked = true;
  return known;
}

bool state::set_quota(std::string_view appid, int64_t remaining_calls) {
  std::lock_guard guard{mtx_};
  auto i = apps_.find(appid);
  if (i == apps_.end())
    return false;
  roll_day(i->second);
  i->second.quota_remaining = remaining_calls;
  return true;
}

std::optional<boost::json::object> state::describe(std::string_view appid) const {
  std::lock_guard guard{mtx_};
  boost::json::object out;
  out["appid"] = appid;
  boost::json::object tickets;
  for (auto& [key, t] : tickets_)
    if (key.first == appid && t.expires_at > now_locked())
      tickets[key.second] = t.value;
  bool known = false;
  if (auto i = apps_.find(appid); i != apps_.end()) {
    known = true;
    auto& app = i->second;
    out["kind"] = "app";
    out["classic_token"] = app.classic_current;
    out["stable_token"] = app.stable_current;
    out["stable_expires_in"] = remaining(app.stable_current);
    out["classic_expires_in"] = remaining(app.classic_current);
    out["quota_remaining"] =
      app.day == now_locked() / seconds_per_day ? app.quota_remaining : limits_.daily_quota;
    out["force_count"] = app.day == now_locked() / seconds_per_day ? app.force_count : 0;
  }
  if (auto i = authorizers_.find(appid); i != authorizers_.end()) {
    known = true;
    auto& auth = i->second;
    out["kind"] = "authorizer";
    out["component_appid"] = auth.component_appid;
    out["authorizer_token"] = auth.token_current;
    out["refresh_token"] = auth.refresh_token;
    out["authorized"] = auth.authorized;
  }
  if (auto i = components_.find(appid); i != components_.end()) {
    known = true;
    auto& comp = i->second;
    out["kind"] = "component";
    out["component_token"] = comp.token_current;
    out["verify_ticket"] = comp.latest_ticket;
    out["push_url"] = comp.push_url;
  }
  if (!known)
    return std::nullopt;
  out["tickets"] = std::move(tickets);
  return out;
}

std::vector<media_record> state::media() const {
  std::lock_guard guard{mtx_};
  return media_;
}

} // namespace wh::sim
