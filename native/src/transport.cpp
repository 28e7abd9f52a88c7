#include "orchard/transport.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace orchard {

int claim_stdout_for_protocol() {
  std::fflush(stdout);
  const int protocol_fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (protocol_fd < 0) return -1;
  if (::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    const int saved = errno;
    ::close(protocol_fd);
    errno = saved;
    return -1;
  }
  return protocol_fd;
}

bool ProtocolWriter::write_line(std::string_view line) {
  std::string data;
  data.reserve(line.size() + 1);
  data.append(line.data(), line.size());
  data.push_back('\n');

  std::lock_guard<std::mutex> lock(mutex_);
  if (broken_) return false;
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      broken_ = true;  // EPIPE: the agent went away; later lines are dropped
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

bool LineReader::fill() {
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    error_ = true;
    return false;
  }
}

LineReader::Result LineReader::next(std::string* line) {
  bool skipping = false;  // inside a line that is already over the limit
  for (;;) {
    const std::size_t newline = buffer_.find('\n', scanned_);
    if (newline != std::string::npos) {
      if (skipping || newline > max_line_) {
        buffer_.erase(0, newline + 1);
        scanned_ = 0;
        return Result::TooLong;
      }
      line->assign(buffer_, 0, newline);
      buffer_.erase(0, newline + 1);
      scanned_ = 0;
      return Result::Line;
    }
    scanned_ = buffer_.size();
    if (buffer_.size() > max_line_) {
      // Too long already: forget what we have and drop the rest of the line.
      skipping = true;
      buffer_.clear();
      scanned_ = 0;
    }
    if (eof_ || error_ || !fill()) {
      if (skipping) {
        buffer_.clear();
        return Result::TooLong;
      }
      if (!buffer_.empty()) {
        line->swap(buffer_);
        buffer_.clear();
        scanned_ = 0;
        return Result::Line;
      }
      return error_ ? Result::Error : Result::Eof;
    }
  }
}

}  // namespace orchard
