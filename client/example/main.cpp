// Uses the installed client library. Without arguments it only signs the
// official JS-SDK example; with HUB_URL APPID it also calls WeChat via a hub.
#include <iostream>

#include "client/client.hpp"

int main(int argc, char** argv) {
  using namespace wh::client;
  auto sig = sign_jssdk("sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
                        "http://mp.weixin.qq.com?params=value", "Wm3WZYTPz0wzccnW", 1414587457);
  std::cout << "jssdk signature " << sig.signature << '\n';
  if (argc < 3)
    return 0;
  hub_options opts;
  opts.hub_url = argv[1];
  client api{std::make_shared<hub_token_source>(account::app(argv[2]), opts)};
  auto res = api.request("GET", "/cgi-bin/get_api_domain_ip");
  if (!res) {
    std::cerr << res.err().to_string() << '\n';
    return 1;
  }
  std::cout << *res << "\n";
  return 0;
}
