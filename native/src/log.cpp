#include "orchard/log.h"

#include <unistd.h>

#include <cerrno>

namespace orchard {

void log_line(const std::string& message) {
  std::string line = "orchard-runner: " + message + "\n";
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // stderr is gone; nothing sensible to do with a log line
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace orchard
