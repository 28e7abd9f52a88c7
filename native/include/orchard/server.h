// The protocol loop: a reader thread takes request lines from stdin and
// answers what needs no model at once (stats, cancel, errors); generate and
// reset go to the worker (the thread that calls run()), one at a time.
// While a generation runs, generate and reset are refused with `busy`;
// `cancel {id}` is honoured between tokens; EOF on stdin or `shutdown` cancels
// any generation and ends run() with exit code 0.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "orchard/generator.h"
#include "orchard/protocol.h"
#include "orchard/transport.h"

namespace orchard {

class Server {
 public:
  Server(Generator& generator, ProtocolWriter& out, int input_fd);

  /// Serves until EOF or shutdown; returns the process exit code.
  int run();

  /// Handles one request line as the reader thread does (exposed for tests).
  void handle_line(const std::string& line);

 private:
  using Job = std::variant<protocol::GenerateRequest, protocol::ResetRequest>;

  void read_loop();
  void stop(const char* why);
  void send(const std::string& line) { out_.write_line(line); }
  void send_error(const protocol::ErrorMessage& error);
  void run_job(Job& job);

  Generator& generator_;
  ProtocolWriter& out_;
  int input_fd_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool busy_ = false;               // a generate is queued or running
  std::optional<std::string> current_id_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};
};

}  // namespace orchard
