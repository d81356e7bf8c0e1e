#define CAF_SUITE wechat_multipart

#include "caf/test/dsl.hpp"

#include <random>

#include "core/error.hpp"
#include "wechat/multipart.hpp"

using namespace wh;
using namespace wh::wechat;
using namespace std::string_literals;

namespace {

const std::string ct = "multipart/form-data; boundary=XyZ";

std::string problem(std::string_view body, std::string_view header = ct,
                    multipart_limits limits = {}) {
  auto res = parse_multipart(body, header, limits);
  if (res)
    return "<no error>";
  CAF_CHECK_EQUAL(code_of(res.error()), ec::invalid_request);
  return detail_of(res.error());
}

std::string binary_blob() {
  // CRLFs, delimiter look-alikes ("--XyZ" not after a CRLF, near misses after
  // one), NULs and every byte value. The real delimiter "\r\n--XyZ" must not
  // occur: RFC 2046 makes avoiding it the writer's job.
  std::string s = "\r\n--XyY\r\n--Xy\r\n\r\n--xyZ--\r\n-XyZ--\0\xff\xfe\r"s;
  s += "a--XyZ\r\n-XyZ--\0\0\r\n\r\r\n\n--"s;
  for (int i = 0; i < 256; ++i)
    s += static_cast<char>(i);
  return s;
}

} // namespace

CAF_TEST(build renders RFC 7578 form data) {
  std::vector<form_part> parts{{"type", "", "", "image"},
                               {"media", "a.jpg", "image/jpeg", std::string("\xff\xd8\0\r\n", 5)}};
  auto body = build_multipart(parts, "XyZ");
  CAF_CHECK_EQUAL(body, ("--XyZ\r\n"
                                    "Content-Disposition: form-data; name=\"type\"\r\n"
                                    "\r\n"
                                    "image\r\n"
                                    "--XyZ\r\n"
                                    "Content-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\n"
                                    "Content-Type: image/jpeg\r\n"
                                    "\r\n"
                                    "\xff\xd8\0\r\n\r\n"
                                    "--XyZ--\r\n"s));
  CAF_CHECK_EQUAL(multipart_content_type("XyZ"), ct);
  CAF_CHECK_EQUAL(multipart_content_type("a b:c"), "multipart/form-data; boundary=\"a b:c\"");
}

CAF_TEST(round trip with binary data) {
  auto blob = binary_blob();
  std::vector<form_part> parts{{"media", "x\"y.bin", "application/octet-stream", blob},
                               {"description", "", "application/json", "{\"title\":\"t\"}"},
                               {"empty", "", "", ""},
                               {"crlf", "", "", "\r\n"}};
  for (auto boundary : {std::string{"XyZ"}, make_boundary()}) {
    auto body = build_multipart(parts, boundary);
    auto res = parse_multipart(body, multipart_content_type(boundary));
    CAF_REQUIRE(res);
    CAF_REQUIRE_EQUAL(res->size(), 4u);
    CAF_CHECK_EQUAL((*res)[0].name, "media");
    CAF_CHECK_EQUAL((*res)[0].filename, "x%22y.bin");
    CAF_CHECK_EQUAL((*res)[0].content_type, "application/octet-stream");
    CAF_CHECK((*res)[0].data == blob);
    CAF_CHECK_EQUAL((*res)[0].data.size(), blob.size());
    CAF_CHECK_EQUAL((*res)[1].name, "description");
    CAF_CHECK_EQUAL((*res)[1].filename, "");
    CAF_CHECK_EQUAL((*res)[1].data, "{\"title\":\"t\"}");
    CAF_CHECK_EQUAL((*res)[2].data, "");
    CAF_CHECK_EQUAL((*res)[2].content_type, "");
    CAF_CHECK_EQUAL((*res)[3].data, "\r\n");
  }
}

CAF_TEST(boundaries) {
  auto a = make_boundary();
  auto b = make_boundary();
  CAF_CHECK_EQUAL(a.size(), 40u);
  CAF_CHECK_NOT_EQUAL(a, b);
  CAF_CHECK_EQUAL(a.substr(0, 13), "----WeChatHub");
}

CAF_TEST(curl style body and header variants) {
  std::string body = "--------------------------d74496d66958873e\r\n"
                     "content-disposition: form-data; name=\"media\"; filename=\"test.txt\"\r\n"
                     "CONTENT-TYPE: text/plain\r\n"
                     "X-Ignored: yes\r\n"
                     "\r\n"
                     "hello\n\r\n"
                     "--------------------------d74496d66958873e--\r\n";
  for (auto header : {"multipart/form-data; boundary=------------------------d74496d66958873e",
                      "Multipart/Form-Data;boundary=\"------------------------d74496d66958873e\"",
                      "multipart/form-data; charset=utf-8; BOUNDARY=------------------------d74496d66958873e ",
                      "  multipart/form-data ; boundary=------------------------d74496d66958873e"}) {
    CAF_MESSAGE("header " << header);
    auto res = parse_multipart(body, header);
    CAF_REQUIRE(res);
    CAF_REQUIRE_EQUAL(res->size(), 1u);
    CAF_CHECK_EQUAL((*res)[0].name, "media");
    CAF_CHECK_EQUAL((*res)[0].filename, "test.txt");
    CAF_CHECK_EQUAL((*res)[0].content_type, "text/plain");
    CAF_CHECK_EQUAL((*res)[0].data, "hello\n");
  }
  // Quoted boundaries may contain spaces and escaped characters.
  auto q = parse_multipart("--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b--",
                           "multipart/form-data; boundary=\"a\\ b\"");
  CAF_REQUIRE(q);
  CAF_CHECK_EQUAL((*q)[0].name, "x");
  CAF_CHECK_EQUAL((*q)[0].data, "1");
  // An epilogue after the closing delimiter is ignored.
  auto e = parse_multipart("--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--\r\nbye",
                           ct);
  CAF_REQUIRE(e);
  CAF_CHECK_EQUAL((*e)[0].data, "1");
}

CAF_TEST(malformed content type headers) {
  const std::string ok = "--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--";
  CAF_CHECK_EQUAL(problem(ok), "<no error>");
  CAF_CHECK_EQUAL(problem(ok, ""), "Content-Type is not multipart/form-data");
  CAF_CHECK_EQUAL(problem(ok, "multipart/mixed; boundary=XyZ"), "Content-Type is not multipart/form-data");
  CAF_CHECK_EQUAL(problem(ok, "application/json"), "Content-Type is not multipart/form-data");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data"), "missing boundary");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary="), "malformed Content-Type");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary=\"\""), "invalid boundary");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary=\"XyZ"), "malformed Content-Type");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary=XyZ; boundary=XyZ"),
                  "duplicate parameter in Content-Type");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data boundary=XyZ"), "malformed Content-Type");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary=" + std::string(71, 'a')),
                  "invalid boundary");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary=\"a\\\"b\""), "invalid boundary");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary=\"ab \""), "invalid boundary");
  CAF_CHECK_EQUAL(problem(ok, "multipart/form-data; boundary=\"a\r\nb\""), "malformed Content-Type");
}

CAF_TEST(malformed bodies) {
  CAF_CHECK_EQUAL(problem(""), "body does not start with the boundary");
  CAF_CHECK_EQUAL(problem("preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--"),
                  "body does not start with the boundary");
  CAF_CHECK_EQUAL(problem("--XyZ--"), "no parts");
  CAF_CHECK_EQUAL(problem("--XyZ"), "malformed boundary line");
  CAF_CHECK_EQUAL(problem("--XyZ \r\n"), "malformed boundary line");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1"),
                  "missing closing boundary");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ"),
                  "malformed boundary line");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZA\r\n"),
                  "malformed boundary line");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x\r\n1\r\n--XyZ--"),
                  "part headers too long or unterminated");
  CAF_CHECK_EQUAL(problem("--XyZ\r\n\r\n1\r\n--XyZ--"), "part without Content-Disposition");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--"),
                  "part without Content-Disposition");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: attachment; name=x\r\n\r\n1\r\n--XyZ--"),
                  "Content-Disposition is not form-data");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data\r\n\r\n1\r\n--XyZ--"),
                  "part without a name");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=\"\"\r\n\r\n1\r\n--XyZ--"),
                  "part without a name");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x; name=y\r\n\r\n1\r\n--XyZ--"),
                  "duplicate parameter in Content-Disposition");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=\"x\r\n\r\n1\r\n--XyZ--"),
                  "malformed Content-Disposition");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x\r\n"
                          "Content-Disposition: form-data; name=y\r\n\r\n1\r\n--XyZ--"),
                  "duplicate Content-Disposition");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data;\r\n name=x\r\n\r\n1\r\n--XyZ--"),
                  "malformed Content-Disposition");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x\r\n folded\r\n\r\n1\r\n--XyZ--"),
                  "malformed part header");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nNoColon\r\n\r\n1\r\n--XyZ--"), "malformed part header");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nContent-Disposition: form-data; name=x\nX: y\r\n\r\n1\r\n--XyZ--"),
                  "bare CR or LF in part header");
  CAF_CHECK_EQUAL(problem("--XyZ\r\nX: a\nb\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--"),
                  "bare CR or LF in part header");
}

CAF_TEST(limits) {
  std::vector<form_part> parts;
  for (int i = 0; i < 5; ++i)
    parts.push_back({"p" + std::to_string(i), "", "", "v"});
  auto body = build_multipart(parts, "XyZ");
  multipart_limits four;
  four.max_parts = 4;
  CAF_CHECK_EQUAL(problem(body, ct, four), "too many parts");
  four.max_parts = 5;
  CAF_CHECK_EQUAL(problem(body, ct, four), "<no error>");
  std::string long_header = "--XyZ\r\nContent-Disposition: form-data; name=x\r\nX-Pad: "
                            + std::string(9000, 'a') + "\r\n\r\n1\r\n--XyZ--";
  CAF_CHECK_EQUAL(problem(long_header), "part headers too long or unterminated");
  multipart_limits big;
  big.max_header_bytes = 10000;
  CAF_CHECK_EQUAL(problem(long_header, ct, big), "<no error>");
}

CAF_TEST(every truncation fails) {
  std::vector<form_part> parts{{"media", "a.bin", "application/octet-stream", binary_blob()},
                               {"type", "", "", "image"}};
  auto body = build_multipart(parts, "XyZ");
  // Cutting anywhere before the closing "--XyZ--" leaves an invalid body.
  const auto complete = body.size() - 2; // without the final CRLF
  int accepted = 0;
  for (std::size_t n = 0; n < complete; ++n)
    if (parse_multipart(std::string_view{body}.substr(0, n), ct))
      ++accepted;
  CAF_CHECK_EQUAL(accepted, 0);
  CAF_CHECK(parse_multipart(std::string_view{body}.substr(0, complete), ct));
}

CAF_TEST(random garbage never crashes) {
  std::mt19937 rng{777};
  auto body = build_multipart({{"media", "a.bin", "", binary_blob()}, {"x", "", "", "y"}}, "XyZ");
  static constexpr char pieces[][24] = {"--XyZ", "\r\n", "--", "Content-Disposition: ",
                                        "form-data", "; name=", "\"", "\\", ":", "a"};
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    auto n = rng() % 40;
    for (std::size_t k = 0; k < n; ++k) {
      if (rng() % 2 == 0)
        s += pieces[rng() % 10];
      else
        s += static_cast<char>(rng() & 0xff);
    }
    if (parse_multipart(s, ct))
      ++accepted;
    auto m = body;
    m[rng() % m.size()] = static_cast<char>(rng() & 0xff);
    (void) parse_multipart(m, ct);
    std::string header = "multipart/form-data; boundary=";
    for (int k = 0; k < 8; ++k)
      header += static_cast<char>(rng() & 0xff);
    (void) parse_multipart(body, header);
  }
  CAF_MESSAGE("accepted random bodies: " << accepted);
  CAF_CHECK_LESS(accepted, 20000 / 100);
}
