#define CAF_SUITE client_sim

// The library against a real wechat-sim process, with the direct source.

#include "caf/test/dsl.hpp"

#include <fstream>
#include <random>

#include <boost/json.hpp>

#include "client/client.hpp"
#include "tests/client/procs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

constexpr const char* appid = "wxsimapp0001";
constexpr const char* secret = "simsecret0001";

client::request_options with_body(json::value body) {
  client::request_options opts;
  opts.body = std::move(body);
  return opts;
}

struct fixture {
  fixture() : sim(dir.path(), {std::string{appid} + ":" + secret}) {
    client::direct_options opts;
    opts.api_base = sim.base();
    opts.secret = secret;
    source = std::make_shared<client::direct_token_source>(appid, opts);
    client::client_options copts;
    copts.api_base = sim.base();
    api = std::make_unique<client::client>(source, copts);
  }

  std::string random_bytes(size_t n) {
    std::mt19937 gen{42};
    std::string out(n, '\0');
    for (auto& c : out)
      c = static_cast<char>(gen() & 0xFF);
    return out;
  }

  json::object find_media(const std::string& media_id) {
    auto list = sim.get("/sim/media");
    for (auto& item : list.at("media").as_array())
      if (item.at("media_id").as_string() == media_id)
        return item.as_object();
    return {};
  }

  test::temp_dir dir;
  test::sim_process sim;
  std::shared_ptr<client::direct_token_source> source;
  std::unique_ptr<client::client> api;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(client_sim_tests, fixture)

CAF_TEST(the token is appended automatically) {
  auto res = api->request("GET", "/cgi-bin/get_api_domain_ip");
  CAF_REQUIRE(res);
  CAF_CHECK(res->as_object().contains("ip_list"));
  res = api->request("POST", "/cgi-bin/material/batchget_material",
                     with_body(json::object{{"type", "image"}, {"offset", 0}, {"count", 1}}));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/stable_token", appid), 1);
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/material/batchget_material", appid), 1);
}

CAF_TEST(an invalidated token is refreshed and the call retried once) {
  CAF_REQUIRE(api->request("POST", "/cgi-bin/material/batchget_material",
                           with_body(json::object{{"type", "image"}})));
  auto old_token = source->get(client::token_kind::access_token);
  CAF_REQUIRE(old_token);
  CAF_REQUIRE(sim.control("/sim/invalidate", R"({"appid":"wxsimapp0001"})").is_object());
  auto res = api->request("POST", "/cgi-bin/material/batchget_material",
                          with_body(json::object{{"type", "image"}}));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/material/batchget_material", appid), 3);
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/stable_token", appid), 2);
  auto new_token = source->get(client::token_kind::access_token);
  CAF_REQUIRE(new_token);
  CAF_CHECK_NOT_EQUAL(new_token->value, old_token->value);
}

CAF_TEST(no endless loop when the refreshed token is rejected too) {
  CAF_REQUIRE(sim.control("/sim/fault", R"({"path":"/cgi-bin/material/batchget_material",
                            "kind":"errcode","errcode":42001,"times":-1})").is_object());
  auto res = api->request("POST", "/cgi-bin/material/batchget_material",
                          with_body(json::object{{"type", "image"}}));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().errcode, 42001);
  CAF_CHECK_EQUAL(res.err().http_status, 200u);
  CAF_MESSAGE("error: " << res.err().to_string());
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/material/batchget_material", appid), 2);
  sim.control("/sim/clear_faults");
}

CAF_TEST(media uploads arrive intact) {
  auto data = random_bytes(300 * 1024 + 7);
  // Bytes that look like multipart syntax must survive too.
  data += "\r\n--boundary\r\n\r\n";
  auto res = api->upload_media("image", client::media::from_bytes("photo.jpg", data));
  CAF_REQUIRE(res);
  auto media_id = std::string{res->at("media_id").as_string()};
  auto stored = find_media(media_id);
  CAF_REQUIRE(!stored.empty());
  CAF_CHECK_EQUAL(stored.at("md5").as_string(), test::md5_hex(data));
  CAF_CHECK_EQUAL(stored.at("size").as_int64(), static_cast<int64_t>(data.size()));
  CAF_CHECK_EQUAL(stored.at("filename").as_string(), "photo.jpg");
  CAF_CHECK_EQUAL(stored.at("content_type").as_string(), "image/jpeg");
  // From a file, as permanent material with a description.
  auto path = dir / "clip.mp4";
  {
    std::ofstream out{path, std::ios::binary};
    out << data;
  }
  auto file = client::media::from_file(path);
  CAF_REQUIRE(file);
  auto added = api->add_material("video", std::move(*file),
                                 json::object{{"title", "t"}, {"introduction", "i"}});
  CAF_REQUIRE(added);
  auto stored2 = find_media(std::string{added->at("media_id").as_string()});
  CAF_REQUIRE(!stored2.empty());
  CAF_CHECK_EQUAL(stored2.at("md5").as_string(), test::md5_hex(data));
  CAF_CHECK(stored2.at("permanent").as_bool());
  CAF_CHECK(std::string{stored2.at("description").as_string()}.find("introduction")
            != std::string::npos);
}

CAF_TEST(a bad secret is a typed error) {
  client::direct_options opts;
  opts.api_base = sim.base();
  opts.secret = "wrong";
  auto src = std::make_shared<client::direct_token_source>(appid, opts);
  client::client_options copts;
  copts.api_base = sim.base();
  client::client bad{src, copts};
  auto res = bad.request("GET", "/cgi-bin/get_api_domain_ip");
  CAF_REQUIRE(!res);
  CAF_MESSAGE("error: " << res.err().to_string());
  CAF_CHECK_NOT_EQUAL(res.err().errcode, 0);
  CAF_CHECK(res.err().to_string().find("wrong") == std::string::npos);
}

CAF_TEST(sim faults give clear errors) {
  sim.control("/sim/fault", R"({"path":"/cgi-bin/get_api_domain_ip","kind":"html","times":1})");
  auto res = api->request("GET", "/cgi-bin/get_api_domain_ip");
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "invalid_json");
  sim.control("/sim/fault", R"({"path":"/cgi-bin/get_api_domain_ip","kind":"http500","times":1})");
  res = api->request("GET", "/cgi-bin/get_api_domain_ip");
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "http_error");
  CAF_CHECK_EQUAL(res.err().http_status, 500u);
  // A POST is not replayed after the peer closed without answering.
  sim.control("/sim/fault",
              R"({"path":"/cgi-bin/material/batchget_material","kind":"drop","times":1})");
  res = api->request("POST", "/cgi-bin/material/batchget_material",
                     with_body(json::object{{"type", "image"}}));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "transport_failure");
  CAF_REQUIRE(api->request("GET", "/cgi-bin/get_api_domain_ip"));
}

CAF_TEST(stable_token faults keep their reasons) {
  auto fetch = [&] {
    client::direct_options opts;
    opts.api_base = sim.base();
    opts.secret = secret;
    return client::direct_token_source{appid, opts}.get(client::token_kind::access_token);
  };
  auto check_clean = [](const client::error& err) {
    CAF_MESSAGE("error: " << err.to_string());
    CAF_CHECK(err.to_string().find(secret) == std::string::npos);
  };
  sim.control("/sim/fault", R"({"path":"/cgi-bin/stable_token","kind":"html","times":1})");
  auto res = fetch();
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "invalid_json");
  CAF_CHECK_EQUAL(res.err().http_status, 200u);
  check_clean(res.err());
  sim.control("/sim/fault", R"({"path":"/cgi-bin/stable_token","kind":"http500","times":1})");
  res = fetch();
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "invalid_json");
  CAF_CHECK_EQUAL(res.err().http_status, 500u);
  CAF_CHECK(res.err().errmsg.find("HTTP 500") != std::string::npos);
  check_clean(res.err());
  sim.control("/sim/fault",
              R"({"path":"/cgi-bin/stable_token","kind":"errcode","errcode":45009,"times":1})");
  res = fetch();
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().reason, "api_daily_quota");
  CAF_CHECK_EQUAL(res.err().errcode, 45009);
  CAF_CHECK_EQUAL(res.err().errmsg, "simulated fault");
  CAF_CHECK_EQUAL(res.err().http_status, 200u);
  check_clean(res.err());
  CAF_REQUIRE(fetch());
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/stable_token", appid), 4);
}

CAF_TEST_FIXTURE_SCOPE_END()
