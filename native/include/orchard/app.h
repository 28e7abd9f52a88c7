// The runner process once flags are parsed: take stdout for the protocol,
// load the backend, announce `ready`, then serve requests (or run the
// reference check with --verify).
#pragma once

#include "orchard/cli.h"

namespace orchard {

/// Returns the process exit code.
int run_runner(const Options& options);

}  // namespace orchard
