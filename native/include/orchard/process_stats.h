// Memory figures of this process from /proc/self/status: VmRSS (resident now)
// and VmHWM (the peak), in bytes. On the Pi these are what tell a 4 GB board
// from an 8 GB one: the reference model peaks at 6–7 GB.
#pragma once

#include <cstdint>
#include <string_view>

namespace orchard {

struct MemoryUsage {
  std::uint64_t rss_bytes = 0;
  std::uint64_t peak_rss_bytes = 0;
};

/// Parses the text of /proc/<pid>/status; missing fields stay 0.
MemoryUsage parse_proc_status(std::string_view status_text);

/// Reads /proc/self/status; zeros when it cannot be read.
MemoryUsage read_memory_usage();

}  // namespace orchard
