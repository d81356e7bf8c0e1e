#define CAF_SUITE client_hub

// The library and the CLI against real wechat-hub and wechat-sim processes.

#include "caf/test/dsl.hpp"

#include <fstream>
#include <tuple>

#include <boost/json.hpp>

#include "client/client.hpp"
#include "tests/client/procs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace wh;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

constexpr const char* appid = "wxhubapp0001";
constexpr const char* secret = "hubsecret0001";

client::request_options with_body(json::value body) {
  client::request_options opts;
  opts.body = std::move(body);
  return opts;
}

struct fixture {
  fixture()
    : sim(dir.path(), {std::string{appid} + ":" + secret}),
      hub(dir.path(), sim.base(), {{appid, secret}}) {
    client::hub_options opts;
    opts.hub_url = hub.base();
    source = std::make_shared<client::hub_token_source>(client::account::app(appid), opts);
    client::client_options copts;
    copts.api_base = sim.base();
    api = std::make_unique<client::client>(source, copts);
  }

  /// Runs the CLI; returns (exit code, stdout, stderr).
  std::tuple<int, std::string, std::string> cli(std::vector<std::string> args) {
    auto bin = test::find_binary("wechat");
    CAF_REQUIRE(!bin.empty());
    args.insert(args.begin(), bin);
    auto out = dir / "cli.out";
    auto err = dir / "cli.err";
    auto rc = test::run_process(args, out, err);
    return {rc, test::read_file(out), test::read_file(err)};
  }

  test::temp_dir dir;
  test::sim_process sim;
  test::hub_process hub;
  std::shared_ptr<client::hub_token_source> source;
  std::unique_ptr<client::client> api;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(client_hub_tests, fixture)

CAF_TEST(tokens from the hub are appended automatically) {
  auto res = api->request("GET", "/cgi-bin/get_api_domain_ip");
  CAF_REQUIRE(res);
  CAF_CHECK(res->as_object().contains("ip_list"));
  CAF_REQUIRE(api->request("GET", "/cgi-bin/get_api_domain_ip"));
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/get_api_domain_ip", appid), 2);
}

CAF_TEST(an invalidated token is refreshed through the hub and retried once) {
  CAF_REQUIRE(api->request("POST", "/cgi-bin/material/batchget_material",
                           with_body(json::object{{"type", "image"}})));
  auto before = source->get(client::token_kind::access_token);
  CAF_REQUIRE(before);
  CAF_REQUIRE(sim.control("/sim/invalidate", R"({"appid":"wxhubapp0001"})").is_object());
  auto res = api->request("POST", "/cgi-bin/material/batchget_material",
                          with_body(json::object{{"type", "image"}}));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/material/batchget_material", appid), 3);
  auto after = source->get(client::token_kind::access_token);
  CAF_REQUIRE(after);
  CAF_CHECK_NOT_EQUAL(before->value, after->value);
}

CAF_TEST(no endless loop when the refreshed token is rejected too) {
  sim.control("/sim/fault", R"({"path":"/cgi-bin/material/batchget_material",
                                 "kind":"errcode","errcode":40001,"times":-1})");
  auto res = api->request("POST", "/cgi-bin/material/batchget_material",
                          with_body(json::object{{"type", "image"}}));
  CAF_REQUIRE(!res);
  CAF_CHECK_EQUAL(res.err().errcode, 40001);
  CAF_CHECK_EQUAL(sim.calls("/cgi-bin/material/batchget_material", appid), 2);
}

CAF_TEST(tickets come from the hub) {
  auto ticket = source->ticket("jsapi");
  CAF_REQUIRE(ticket);
  CAF_CHECK(!ticket->value.empty());
  auto sig = client::sign_jssdk(ticket->value, "https://example.com/page?x=1#top");
  CAF_CHECK_EQUAL(sig.signature.size(), 40u);
}

CAF_TEST(the CLI talks to the hub) {
  auto [rc, out, err] = cli({"request", "--hub", hub.base(), "--api-base", sim.base(), "--appid",
                             appid, "GET", "/cgi-bin/get_api_domain_ip"});
  CAF_CHECK_EQUAL(rc, 0);
  CAF_CHECK(out.find("ip_list") != std::string::npos);
  auto [rc2, out2, err2] = cli({"token", "--hub", hub.base(), "--appid", appid});
  CAF_CHECK_EQUAL(rc2, 0);
  CAF_CHECK(json::parse(out2).as_object().contains("access_token"));
  // Unknown appid: typed error on stderr, nothing on stdout, exit 1.
  auto [rc3, out3, err3] = cli({"token", "--hub", hub.base(), "--appid", "wxunknown"});
  CAF_CHECK_EQUAL(rc3, 1);
  CAF_CHECK(out3.empty());
  CAF_MESSAGE("stderr: " << err3);
  CAF_CHECK(json::parse(err3).as_object().contains("reason"));
}

CAF_TEST(the CLI uploads media) {
  auto path = dir / "voice.amr";
  {
    std::ofstream out{path, std::ios::binary};
    out << std::string(5000, '\x01') << "tail";
  }
  auto [rc, out, err] = cli({"request", "--hub", hub.base(), "--api-base", sim.base(), "--appid",
                             appid, "POST", "/cgi-bin/media/upload", "--query", "type=voice",
                             "--file", "media=@" + path});
  CAF_CHECK_EQUAL(rc, 0);
  CAF_MESSAGE("stdout: " << out << " stderr: " << err);
  auto media_id = std::string{json::parse(out).at("media_id").as_string()};
  auto list = sim.get("/sim/media");
  bool found = false;
  for (auto& item : list.at("media").as_array())
    if (item.at("media_id").as_string() == media_id) {
      found = true;
      CAF_CHECK_EQUAL(item.at("md5").as_string(), test::md5_hex(std::string(5000, '\x01') + "tail"));
    }
  CAF_CHECK(found);
}

CAF_TEST_FIXTURE_SCOPE_END()
