#include "persistence/definitions.hpp"

#include <boost/json.hpp>

#include "core/log.hpp"
#include "persistence/store.hpp"

namespace wh::persistence::definitions {

namespace json = boost::json;

std::string encode(const app_config& app) {
  json::object o;
  o["v"] = 1;
  o["appid"] = app.appid;
  o["secret"] = app.secret;
  o["token_api"] = app.api == token_api::classic ? "classic" : "stable";
  return json::serialize(o);
}

std::string encode(const component_config& comp) {
  json::object o;
  o["v"] = 1;
  o["appid"] = comp.appid;
  o["secret"] = comp.secret;
  o["token"] = comp.token;
  o["encoding_aes_key"] = comp.encoding_aes_key;
  return json::serialize(o);
}

caf::error load(store& db, std::vector<app_config>& apps, std::vector<component_config>& comps) {
  auto err = db.scan(app_prefix, [&](std::string_view key, std::string_view value) {
    boost::system::error_code ec;
    auto v = json::parse(value, ec);
    auto o = ec ? nullptr : v.if_object();
    if (!o || !o->contains("appid") || !o->contains("secret")) {
      WH_ERROR("registry", "ignoring corrupt runtime app " << key);
      return true;
    }
    app_config a;
    a.appid = std::string{o->at("appid").as_string()};
    a.secret = std::string{o->at("secret").as_string()};
    a.api = o->contains("token_api") && o->at("token_api") == "classic" ? token_api::classic : token_api::stable;
    apps.push_back(std::move(a));
    return true;
  });
  if (err)
    return err;
  return db.scan(component_prefix, [&](std::string_view key, std::string_view value) {
    boost::system::error_code ec;
    auto v = json::parse(value, ec);
    auto o = ec ? nullptr : v.if_object();
    if (!o || !o->contains("appid") || !o->contains("secret") || !o->contains("token")
        || !o->contains("encoding_aes_key")) {
      WH_ERROR("registry", "ignoring corrupt runtime component " << key);
      return true;
    }
    component_config c;
    c.appid = std::string{o->at("appid").as_string()};
    c.secret = std::string{o->at("secret").as_string()};
    c.token = std::string{o->at("token").as_string()};
    c.encoding_aes_key = std::string{o->at("encoding_aes_key").as_string()};
    comps.push_back(std::move(c));
    return true;
  });
}

} // namespace wh::persistence::definitions
