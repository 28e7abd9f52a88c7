#include <gtest/gtest.h>

#include "orchard/process_stats.h"

namespace orchard {
namespace {

TEST(ProcStatus, ReadsRssAndPeakInBytes) {
  const char* status =
      "Name:\torchard-runner\n"
      "VmPeak:\t 9000000 kB\n"
      "VmHWM:\t 6815744 kB\n"
      "VmRSS:\t 5242880 kB\n"
      "Threads:\t2\n";
  MemoryUsage m = parse_proc_status(status);
  EXPECT_EQ(m.rss_bytes, 5242880ull * 1024);
  EXPECT_EQ(m.peak_rss_bytes, 6815744ull * 1024);
}

TEST(ProcStatus, MissingFieldsAreZero) {
  MemoryUsage m = parse_proc_status("Name:\tx\n");
  EXPECT_EQ(m.rss_bytes, 0u);
  EXPECT_EQ(m.peak_rss_bytes, 0u);
  // VmRSSx is not VmRSS.
  EXPECT_EQ(parse_proc_status("VmRSSx:\t 5 kB\n").rss_bytes, 0u);
}

TEST(ProcStatus, ThisProcess) {
  MemoryUsage m = read_memory_usage();
  EXPECT_GT(m.rss_bytes, 0u);
  EXPECT_GE(m.peak_rss_bytes, m.rss_bytes);
}

}  // namespace
}  // namespace orchard
