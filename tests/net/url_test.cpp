#define CAF_SUITE net_url

#include "caf/test/dsl.hpp"

#include "net/http_client.hpp"

using namespace wh::net;

CAF_TEST(url_encode keeps unreserved characters only) {
  CAF_CHECK_EQUAL(url_encode("abcXYZ019-_.~"), "abcXYZ019-_.~");
  CAF_CHECK_EQUAL(url_encode("a b&c=d/e?f#g+h"), "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh");
  CAF_CHECK_EQUAL(url_encode("\xE4\xB8\xAD"), "%E4%B8%AD");
  CAF_CHECK_EQUAL(url_encode(""), "");
}

CAF_TEST(add_query picks the separator) {
  CAF_CHECK_EQUAL(add_query("http://h/p", "a", "1"), "http://h/p?a=1");
  CAF_CHECK_EQUAL(add_query("http://h/p?x=2", "a", "b c"), "http://h/p?x=2&a=b%20c");
  CAF_CHECK_EQUAL(add_query("http://h/p?", "a", "1"), "http://h/p?a=1");
  CAF_CHECK_EQUAL(add_query("http://h/p?x=1&", "a", "1"), "http://h/p?x=1&a=1");
  CAF_CHECK_EQUAL(add_query("http://h/p#frag", "a", "1"), "http://h/p?a=1#frag");
  CAF_CHECK_EQUAL(add_query("/p", "k&", "v="), "/p?k%26=v%3D");
}

CAF_TEST(resolve_url joins paths and keeps full URLs) {
  CAF_CHECK_EQUAL(resolve_url("https://api.weixin.qq.com", "/cgi-bin/token"),
                  "https://api.weixin.qq.com/cgi-bin/token");
  CAF_CHECK_EQUAL(resolve_url("https://api.weixin.qq.com/", "cgi-bin/token"),
                  "https://api.weixin.qq.com/cgi-bin/token");
  CAF_CHECK_EQUAL(resolve_url("http://127.0.0.1:9000/prefix/", "/x?a=1"),
                  "http://127.0.0.1:9000/prefix/x?a=1");
  CAF_CHECK_EQUAL(resolve_url("https://a", "http://other/x"), "http://other/x");
  CAF_CHECK_EQUAL(resolve_url("https://a", "HTTPS://other/x"), "HTTPS://other/x");
}
