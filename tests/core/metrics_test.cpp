#define CAF_SUITE core_metrics

#include "caf/test/dsl.hpp"

#include <thread>

#include "core/metrics.hpp"

using namespace wh;
using namespace std::chrono_literals;

namespace {

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
    ++n;
  return n;
}

} // namespace

CAF_TEST(a family is rendered once whoever produces its samples) {
  metrics m;
  m.describe("x_age_seconds", "Age", "gauge");
  m.describe("x_total", "Things");
  m.inc("x_total", {{"k", "a"}});
  m.inc("x_total", {{"k", "b"}});
  // Two collectors add samples to the same gauge family.
  m.add_collector([](metrics::sink& out) { out.add("x_age_seconds", {{"appid", "one"}}, 5); });
  m.add_collector([](metrics::sink& out) { out.add("x_age_seconds", {{"appid", "two"}}, 7.5); });
  auto text = m.render();
  CAF_CHECK_EQUAL(occurrences(text, "# HELP x_age_seconds "), 1u);
  CAF_CHECK_EQUAL(occurrences(text, "# TYPE x_age_seconds gauge\n"), 1u);
  CAF_CHECK_EQUAL(occurrences(text, "# TYPE x_total counter\n"), 1u);
  CAF_CHECK(text.find("x_age_seconds{appid=\"one\"} 5\n") != std::string::npos);
  CAF_CHECK(text.find("x_age_seconds{appid=\"two\"} 7.5\n") != std::string::npos);
  CAF_CHECK(text.find("x_total{k=\"a\"} 1\n") != std::string::npos);
  // Samples follow their own family's TYPE line.
  auto type = text.find("# TYPE x_age_seconds");
  CAF_CHECK_LESS(type, text.find("x_age_seconds{appid=\"one\"}"));
  CAF_CHECK_LESS(text.find("x_age_seconds{appid=\"two\"}"), text.find("# TYPE x_total"));
}

CAF_TEST(histogram buckets resolve sub-millisecond latencies) {
  metrics m;
  m.describe("h_seconds", "Latency", "histogram");
  auto& h = m.histogram("h_seconds", {{"route", "/r"}});
  CAF_CHECK_EQUAL(&h, &m.histogram("h_seconds", {{"route", "/r"}})); // created once
  h.observe(40us);
  h.observe(80us);
  h.observe(300us);
  h.observe(2s);
  h.observe(100s);
  auto text = m.render();
  CAF_CHECK_EQUAL(occurrences(text, "# TYPE h_seconds histogram\n"), 1u);
  CAF_CHECK(text.find("h_seconds_bucket{route=\"/r\",le=\"5e-05\"} 1\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_bucket{route=\"/r\",le=\"0.0001\"} 2\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_bucket{route=\"/r\",le=\"0.00025\"} 2\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_bucket{route=\"/r\",le=\"0.0005\"} 3\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_bucket{route=\"/r\",le=\"2.5\"} 4\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_bucket{route=\"/r\",le=\"30\"} 4\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_bucket{route=\"/r\",le=\"+Inf\"} 5\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_count{route=\"/r\"} 5\n") != std::string::npos);
  CAF_CHECK(text.find("h_seconds_sum{route=\"/r\"} 102.00042\n") != std::string::npos);
}

CAF_TEST(concurrent observations are all counted) {
  metrics m;
  auto& h = m.histogram("c_seconds", {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10'000; ++i)
        h.observe(std::chrono::microseconds(t * 100 + i % 7));
    });
  for (auto& t : threads)
    t.join();
  CAF_CHECK_EQUAL(h.count(), 40'000u);
  CAF_CHECK(m.render().find("c_seconds_count 40000\n") != std::string::npos);
}
