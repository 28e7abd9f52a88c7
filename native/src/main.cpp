// orchard-runner: parses flags and hands over to the runner (app.cpp).
#include <iostream>
#include <string>
#include <vector>

#include "orchard/app.h"
#include "orchard/backend.h"
#include "orchard/capabilities.h"
#include "orchard/cli.h"
#include "orchard/version.h"

int main(int argc, char** argv) {
  const orchard::CommandLine cli =
      orchard::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  switch (cli.action) {
    case orchard::CommandLine::Action::Version:
      std::cout << "orchard-runner " << orchard::kRunnerVersion << "\n";
      return 0;
    case orchard::CommandLine::Action::Capabilities:
      std::cout << orchard::capabilities_json(orchard::executorch_runtime_version()) << "\n";
      return 0;
    case orchard::CommandLine::Action::Help:
      std::cout << orchard::usage_text();
      return 0;
    case orchard::CommandLine::Action::Usage:
      std::cerr << "orchard-runner: " << cli.error << "\n\n" << orchard::usage_text();
      return 2;
    case orchard::CommandLine::Action::Run:
      break;
  }
  for (const auto& warning : cli.warnings) std::cerr << "orchard-runner: warning: " << warning << "\n";
  return orchard::run_runner(cli.options);
}
