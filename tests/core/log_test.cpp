#define CAF_SUITE log

#include "caf/test/dsl.hpp"

#include <boost/json.hpp>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

using namespace wh;

namespace {

boost::json::object parse_line(const std::string& line) {
  boost::system::error_code ec;
  auto v = boost::json::parse(line, ec);
  if (ec || !v.is_object())
    CAF_FAIL("not a JSON object: " << line);
  return v.as_object();
}

} // namespace

CAF_TEST(a json record has the fixed members and typed fields) {
  auto line = log::render_json("2026-11-27T10:00:00.123Z", log::level::warning, "token",
                               "wx1: refresh failed", {{"key", "wx1"}, {"errcode", 40001}});
  CAF_CHECK_EQUAL(line.find('\n'), std::string::npos);
  auto o = parse_line(line);
  CAF_CHECK_EQUAL(o.at("time").as_string(), "2026-11-27T10:00:00.123Z");
  CAF_CHECK_EQUAL(o.at("level").as_string(), "warning");
  CAF_CHECK_EQUAL(o.at("component").as_string(), "token");
  CAF_CHECK_EQUAL(o.at("message").as_string(), "wx1: refresh failed");
  CAF_CHECK_EQUAL(o.at("key").as_string(), "wx1");
  CAF_CHECK_EQUAL(o.at("errcode").as_int64(), 40001);
  // The member order is stable: pipelines and people read time first.
  CAF_CHECK_EQUAL(line.rfind(R"({"time":)", 0), 0u);
}

CAF_TEST(hostile text stays inside its string on one line) {
  std::string msg = "a\"b\\c\nd\re\tf\x01g</script>";
  auto line = log::render_json("t", log::level::error, "hub\n", msg, {{"client", "x\"\ny"}});
  CAF_CHECK_EQUAL(line.find('\n'), std::string::npos);
  CAF_CHECK_EQUAL(line.find('\r'), std::string::npos);
  auto o = parse_line(line);
  CAF_CHECK_EQUAL(o.at("message").as_string(), msg);
  CAF_CHECK_EQUAL(o.at("component").as_string(), "hub\n");
  CAF_CHECK_EQUAL(o.at("client").as_string(), "x\"\ny");
}

CAF_TEST(a field cannot overwrite a fixed member) {
  auto o = parse_line(log::render_json("t", log::level::info, "hub", "real", {{"message", "forged"},
                                                                            {"level", "error"}}));
  CAF_CHECK_EQUAL(o.at("message").as_string(), "real");
  CAF_CHECK_EQUAL(o.at("level").as_string(), "info");
}

CAF_TEST(formats parse and the config validates log_format) {
  log::format f = log::format::text;
  CAF_CHECK(log::parse_format("json", f) && f == log::format::json);
  CAF_CHECK(log::parse_format("text", f) && f == log::format::text);
  CAF_CHECK(!log::parse_format("JSON", f));
  auto def = parse_config("", "t.toml");
  CAF_REQUIRE(def);
  CAF_CHECK_EQUAL(def->log_format, "text");
  auto json = parse_config("[hub]\nlog_format = \"json\"\n", "t.toml");
  CAF_REQUIRE(json);
  CAF_CHECK_EQUAL(json->log_format, "json");
  auto bad = parse_config("[hub]\nlog_format = \"xml\"\n", "t.toml");
  CAF_REQUIRE(!bad);
  CAF_CHECK_EQUAL(detail_of(bad.error()), "t.toml: hub.log_format: expected \"text\" or \"json\"");
}
