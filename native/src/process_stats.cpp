#include "orchard/process_stats.h"

#include <fstream>
#include <sstream>
#include <string>

namespace orchard {
namespace {

// "VmRSS:\t  123456 kB" → bytes; 0 when the field is absent or malformed.
std::uint64_t field_bytes(std::string_view text, std::string_view name) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.size() > name.size() && line.substr(0, name.size()) == name &&
        line[name.size()] == ':') {
      std::uint64_t value = 0;
      bool digits = false;
      for (char c : line.substr(name.size() + 1)) {
        if (c >= '0' && c <= '9') {
          value = value * 10 + static_cast<std::uint64_t>(c - '0');
          digits = true;
        } else if (digits) {
          break;
        }
      }
      const bool kilobytes = line.find("kB") != std::string_view::npos;
      return kilobytes ? value * 1024 : value;
    }
    pos = end + 1;
  }
  return 0;
}

}  // namespace

MemoryUsage parse_proc_status(std::string_view status_text) {
  MemoryUsage usage;
  usage.rss_bytes = field_bytes(status_text, "VmRSS");
  usage.peak_rss_bytes = field_bytes(status_text, "VmHWM");
  if (usage.peak_rss_bytes < usage.rss_bytes) usage.peak_rss_bytes = usage.rss_bytes;
  return usage;
}

MemoryUsage read_memory_usage() {
  std::ifstream file("/proc/self/status");
  if (!file) return MemoryUsage{};
  std::ostringstream text;
  text << file.rdbuf();
  return parse_proc_status(text.str());
}

}  // namespace orchard
