// Logging for the runner: one whole line per write to stderr (fd 2), never to
// the protocol stream, so log lines from different threads do not interleave.
#pragma once

#include <string>

namespace orchard {

void log_line(const std::string& message);

}  // namespace orchard
