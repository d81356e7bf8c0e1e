#define CAF_SUITE sim_repush

// WeChat's retry of an authorization push: the same single-use code.

#include "caf/test/dsl.hpp"

#include "core/clock.hpp"
#include "sim/state.hpp"
#include "tests/sim/sim_test_util.hpp"

using namespace wh;
using namespace wh::sim;
using namespace wh::sim::test;

CAF_TEST(the last grant repeats the spent code and a used code answers 61009) {
  manual_clock clk{1'700'000'000};
  state st{clk, limits{}, {}, {{"wxcomp", "csecret", "ctoken", test_aes_key}}};
  CAF_CHECK(!st.last_grant("wxcomp", ""));
  std::string error;
  auto t = st.make_push("wxcomp", "component_verify_ticket", "", "http://127.0.0.1:1/x", error);
  CAF_REQUIRE(t);
  auto ctoken = str(st.component_token("wxcomp", "csecret", t->verify_ticket), "component_access_token");
  auto ev = st.make_push("wxcomp", "authorized", "wxauth1", "http://127.0.0.1:1/x", error);
  CAF_REQUIRE(ev);
  auto again = st.last_grant("wxcomp", "http://127.0.0.1:2/y");
  CAF_REQUIRE(again);
  CAF_CHECK_EQUAL(again->authorization_code, ev->authorization_code);
  CAF_CHECK_EQUAL(again->create_time, ev->create_time);
  CAF_CHECK_EQUAL(again->url, "http://127.0.0.1:2/y");
  CAF_CHECK_EQUAL(code(st.query_auth(ctoken, "wxcomp", ev->authorization_code)), 0);
  CAF_CHECK_EQUAL(code(st.query_auth(ctoken, "wxcomp", again->authorization_code)), 61009);
  // The authorizer is still listed with its refresh token (the recovery path).
  auto list = st.authorizer_list(ctoken, "wxcomp", 0, 500);
  CAF_CHECK_EQUAL(num(list, "total_count"), 1);
  CAF_CHECK(!st.last_grant("nope", ""));
}
