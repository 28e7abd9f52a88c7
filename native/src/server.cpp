#include "orchard/server.h"

#include <thread>
#include <type_traits>

#include "orchard/log.h"
#include "orchard/process_stats.h"

namespace orchard {

using protocol::ErrorCode;
using protocol::make_error;

Server::Server(Generator& generator, ProtocolWriter& out, int input_fd)
    : generator_(generator), out_(out), input_fd_(input_fd) {}

void Server::send_error(const protocol::ErrorMessage& error) { send(protocol::serialise(error)); }

void Server::stop(const char* why) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!stopping_) log_line(std::string("stopping: ") + why);
  stopping_ = true;
  cancel_ = true;  // a running generation ends with finish_reason "cancelled"
  wake_.notify_all();
}

void Server::handle_line(const std::string& line) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return;  // blank lines are not requests

  protocol::ParseResult parsed = protocol::parse_request(line);
  if (!parsed.ok()) {
    send_error(parsed.error);
    return;
  }

  std::visit(
      [this](auto& request) {
        using T = std::decay_t<decltype(request)>;
        if constexpr (std::is_same_v<T, protocol::GenerateRequest>) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (stopping_) return;
          if (busy_) {
            send_error(make_error(ErrorCode::Busy,
                                  "generation " + current_id_.value_or("?") + " is still running",
                                  request.id));
            return;
          }
          busy_ = true;
          current_id_ = request.id;
          cancel_ = false;
          jobs_.emplace_back(std::move(request));
          wake_.notify_all();
        } else if constexpr (std::is_same_v<T, protocol::CancelRequest>) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (busy_ && current_id_ == request.id) {
            cancel_ = true;  // the generation answers with done {finish_reason: "cancelled"}
          } else {
            send_error(make_error(ErrorCode::NotFound,
                                  "no generation with id " + request.id + " is running", request.id));
          }
        } else if constexpr (std::is_same_v<T, protocol::ResetRequest>) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (stopping_) return;
          if (busy_) {
            send_error(make_error(ErrorCode::Busy, "cannot reset while generation " +
                                                       current_id_.value_or("?") + " is running"));
            return;
          }
          jobs_.emplace_back(std::move(request));
          wake_.notify_all();
        } else if constexpr (std::is_same_v<T, protocol::StatsRequest>) {
          protocol::Stats stats;
          const MemoryUsage memory = read_memory_usage();
          const Generator::Snapshot snapshot = generator_.snapshot();
          stats.rss_bytes = memory.rss_bytes;
          stats.peak_rss_bytes = memory.peak_rss_bytes;
          {
            std::lock_guard<std::mutex> lock(mutex_);
            stats.busy = busy_;
          }
          stats.session = snapshot.session;
          stats.resident_tokens = snapshot.resident_tokens;
          stats.max_context = generator_.max_context();
          send(protocol::serialise(stats));
        } else if constexpr (std::is_same_v<T, protocol::ShutdownRequest>) {
          stop("shutdown requested");
        }
      },
      *parsed.request);
}

void Server::read_loop() {
  LineReader reader(input_fd_, protocol::kMaxLineBytes);
  std::string line;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
    switch (reader.next(&line)) {
      case LineReader::Result::Line:
        handle_line(line);
        break;
      case LineReader::Result::TooLong:
        send_error(make_error(ErrorCode::BadRequest, "request line longer than " +
                                                         std::to_string(protocol::kMaxLineBytes) +
                                                         " bytes; it was skipped"));
        break;
      case LineReader::Result::Eof:
        stop("stdin closed");
        return;
      case LineReader::Result::Error:
        stop("stdin could not be read");
        return;
    }
  }
}

void Server::run_job(Job& job) {
  if (auto* request = std::get_if<protocol::GenerateRequest>(&job)) {
    GenerationOutcome outcome = generator_.generate(
        *request, cancel_, [this](const protocol::Token& token) { send(protocol::serialise(token)); });
    {
      // Free before the final line goes out, so a request sent right after
      // reading it is never refused as busy.
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
      current_id_.reset();
    }
    if (outcome.done) {
      send(protocol::serialise(*outcome.done));
    } else if (outcome.error) {
      send_error(*outcome.error);
    }
    return;
  }
  auto& reset = std::get<protocol::ResetRequest>(job);
  if (auto error = generator_.reset(reset.session)) {
    send_error(*error);
  } else {
    send(protocol::serialise(protocol::ResetDone{reset.session}));
  }
}

int Server::run() {
  std::thread reader([this] { read_loop(); });
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) break;  // stopping and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    run_job(job);
  }
  // The reader has seen EOF or shutdown (that is what stops the loop).
  reader.join();
  return 0;
}

}  // namespace orchard
