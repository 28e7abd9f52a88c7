// Line framing and the bounded reader, over a real pipe.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <string>
#include <thread>

#include "orchard/transport.h"

namespace orchard {
namespace {

class Pipe {
 public:
  Pipe() { EXPECT_EQ(::pipe(fds_), 0); }
  ~Pipe() {
    close_write();
    ::close(fds_[0]);
  }
  int read_fd() const { return fds_[0]; }
  int write_fd() const { return fds_[1]; }
  void close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

void write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    ASSERT_GT(n, 0);
    off += static_cast<std::size_t>(n);
  }
}

TEST(LineReader, SplitsLinesAndReportsEof) {
  Pipe pipe;
  write_all(pipe.write_fd(), "one\ntwo\r\n\nlast-without-newline");
  pipe.close_write();
  LineReader reader(pipe.read_fd(), 100);
  std::string line;
  ASSERT_EQ(reader.next(&line), LineReader::Result::Line);
  EXPECT_EQ(line, "one");
  ASSERT_EQ(reader.next(&line), LineReader::Result::Line);
  EXPECT_EQ(line, "two\r");
  ASSERT_EQ(reader.next(&line), LineReader::Result::Line);
  EXPECT_EQ(line, "");
  ASSERT_EQ(reader.next(&line), LineReader::Result::Line);
  EXPECT_EQ(line, "last-without-newline");
  EXPECT_EQ(reader.next(&line), LineReader::Result::Eof);
}

TEST(LineReader, RefusesOverlongLinesAndCarriesOn) {
  Pipe pipe;
  const std::size_t limit = 1000;
  std::thread writer([&] {
    write_all(pipe.write_fd(), std::string(limit, 'a') + "\n");       // exactly the limit: fine
    write_all(pipe.write_fd(), std::string(300000, 'b') + "\n");      // far over: refused
    write_all(pipe.write_fd(), std::string(limit + 1, 'c') + "\nok\n");  // one over: refused
    write_all(pipe.write_fd(), std::string(5000, 'd'));                // over, then EOF
    pipe.close_write();
  });
  LineReader reader(pipe.read_fd(), limit);
  std::string line;
  ASSERT_EQ(reader.next(&line), LineReader::Result::Line);
  EXPECT_EQ(line.size(), limit);
  EXPECT_EQ(reader.next(&line), LineReader::Result::TooLong);
  EXPECT_EQ(reader.next(&line), LineReader::Result::TooLong);
  ASSERT_EQ(reader.next(&line), LineReader::Result::Line);
  EXPECT_EQ(line, "ok");
  EXPECT_EQ(reader.next(&line), LineReader::Result::TooLong);
  EXPECT_EQ(reader.next(&line), LineReader::Result::Eof);
  writer.join();
}

TEST(ProtocolWriter, WritesWholeLinesFromManyThreads) {
  Pipe pipe;
  ProtocolWriter out(pipe.write_fd());
  const std::string a(10000, 'a');
  const std::string b(10000, 'b');
  std::string received;
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(pipe.read_fd(), buf, sizeof buf)) > 0) received.append(buf, static_cast<std::size_t>(n));
  });
  std::thread t1([&] { for (int i = 0; i < 50; ++i) out.write_line(a); });
  std::thread t2([&] { for (int i = 0; i < 50; ++i) out.write_line(b); });
  t1.join();
  t2.join();
  pipe.close_write();
  reader.join();
  std::size_t lines = 0;
  std::size_t pos = 0;
  while (pos < received.size()) {
    const std::size_t nl = received.find('\n', pos);
    ASSERT_NE(nl, std::string::npos);
    const std::string line = received.substr(pos, nl - pos);
    EXPECT_TRUE(line == a || line == b) << "a line was interleaved";
    ++lines;
    pos = nl + 1;
  }
  EXPECT_EQ(lines, 100u);
}

std::string drain(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

TEST(ClaimStdout, OtherStdoutWritesLandOnStderr) {
  // In a child process: stdout and stderr are pipes we read back.
  Pipe out;
  Pipe err;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out.write_fd(), STDOUT_FILENO);
    ::dup2(err.write_fd(), STDERR_FILENO);
    out.close_write();
    err.close_write();
    const int protocol_fd = claim_stdout_for_protocol();
    if (protocol_fd < 0) ::_exit(3);
    std::printf("an engine printf\n");  // what ExecuTorch's examples do
    std::fflush(stdout);
    ProtocolWriter writer(protocol_fd);
    writer.write_line(R"({"type":"stats"})");
    ::_exit(0);
  }
  out.close_write();
  err.close_write();
  const std::string stdout_text = drain(out.read_fd());
  const std::string stderr_text = drain(err.read_fd());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(stdout_text, "{\"type\":\"stats\"}\n");
  EXPECT_EQ(stderr_text, "an engine printf\n");
}

}  // namespace
}  // namespace orchard
