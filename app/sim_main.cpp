// wechat-sim: wires the CLI to the simulator library; all logic lives in sim/.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "sim/options.hpp"
#include "sim/server.hpp"
#include "sim/service.hpp"

namespace {

/// Writes atomically so a poller never reads a half-written number.
bool write_port_file(const std::string& path, uint16_t port) {
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    if (!(out << port << '\n'))
      return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

} // namespace

int main(int argc, char** argv) {
  wh::sim::cli_options opts;
  std::string error;
  if (!wh::sim::parse_cli(std::vector<std::string>(argv + 1, argv + argc), opts, error)) {
    std::cerr << "wechat-sim: " << error << '\n';
    return 2;
  }
  if (opts.help) {
    std::cout << wh::sim::usage();
    return 0;
  }
  wh::log::set_level(opts.srv.verbose ? wh::log::level::info : wh::log::level::warning);
  wh::system_clock clock;
  wh::sim::service svc{clock, opts.svc};
  opts.srv.handle_signals = true;
  wh::sim::server srv{svc, opts.srv};
  auto port = srv.start(error);
  if (port == 0) {
    std::cerr << "wechat-sim: " << error << '\n';
    return 1;
  }
  if (!opts.port_file.empty() && !write_port_file(opts.port_file, port)) {
    std::cerr << "wechat-sim: cannot write port file " << opts.port_file << '\n';
    return 1;
  }
  std::cerr << "wechat-sim listening on " << opts.srv.host << ':' << port << " ("
            << opts.svc.apps.size() << " apps, " << opts.svc.components.size()
            << " components, " << opts.svc.push_urls.size() << " push urls, ticket push "
            << (opts.srv.push_interval_s > 0
                  ? "every " + std::to_string(opts.srv.push_interval_s) + " s"
                  : std::string{"off"})
            << ")\n";
  srv.run();
  return 0;
}
