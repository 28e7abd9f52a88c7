// Moving protocol lines in and out. Output goes to a private duplicate of the
// original stdout, and fd 1 itself is pointed at stderr, so anything else that
// prints to stdout (ExecuTorch printf()s) lands in the log instead of the
// protocol stream. Input is read line by line with a hard bound on line length.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>

namespace orchard {

/// dup()s fd 1 to a private close-on-exec fd for the protocol and dup2()s
/// stderr onto fd 1. Returns the protocol fd, or -1 (errno set) on failure.
int claim_stdout_for_protocol();

/// Writes whole lines to one fd; concurrent callers never interleave.
class ProtocolWriter {
 public:
  explicit ProtocolWriter(int fd) : fd_(fd) {}

  /// Writes `line` + '\n'. False once the reader is gone (EPIPE) or on error.
  bool write_line(std::string_view line);

 private:
  int fd_;
  std::mutex mutex_;
  bool broken_ = false;
};

/// Reads '\n'-terminated lines from an fd without ever buffering more than
/// max_line_bytes (+ one read) of a single line.
class LineReader {
 public:
  enum class Result { Line, TooLong, Eof, Error };

  LineReader(int fd, std::size_t max_line_bytes) : fd_(fd), max_line_(max_line_bytes) {}

  /// Next line without its '\n' (a trailing '\r' is kept; JSON ignores it).
  /// TooLong: a line over the limit was skipped up to and including its '\n'.
  /// A last line without '\n' before EOF is returned as a Line.
  Result next(std::string* line);

 private:
  bool fill();  // one read(); false on EOF or error (see eof_/error_)

  int fd_;
  std::size_t max_line_;
  std::string buffer_;
  std::size_t scanned_ = 0;  // bytes of buffer_ known to hold no '\n'
  bool eof_ = false;
  bool error_ = false;
};

}  // namespace orchard
