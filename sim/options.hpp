#pragma once

#include <string>
#include <vector>

#include "sim/server.hpp"
#include "sim/service.hpp"

namespace wh::sim {

/// Everything the wechat-sim command line configures.
struct cli_options {
  service_options svc;
  server_options srv;
  /// Write the bound port here once listening; empty = don't.
  std::string port_file;
  /// --help was given.
  bool help = false;
};

/// The --help text.
std::string usage();

/// Parses `args` (without argv[0]). Returns false and sets `error` to a
/// one-line message on bad input.
bool parse_cli(const std::vector<std::string>& args, cli_options& out, std::string& error);

} // namespace wh::sim
