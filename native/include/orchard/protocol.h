// The runner protocol, C++ side: NDJSON requests from the agent and the
// messages the runner writes back. The schema is fixed by
// packages/contracts/src/runner.ts; field names, `type` values, bounds and
// error codes here follow it exactly. Parsing never throws: anything that
// is not a valid request becomes an ErrorMessage with code bad_request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace orchard::protocol {

/// Longest line either side accepts (RUNNER_MAX_LINE_BYTES in runner.ts).
inline constexpr std::size_t kMaxLineBytes = 1024 * 1024;

// Bounds from runner.ts (string lengths are JavaScript lengths: UTF-16 units).
inline constexpr std::size_t kMaxIdLength = 64;
inline constexpr std::size_t kMaxSessionLength = 128;
inline constexpr std::size_t kMaxTextLength = 256 * 1024;
inline constexpr std::int64_t kMaxNewTokensLimit = 100000;
inline constexpr int kDefaultMaxNewTokens = 256;
inline constexpr double kMaxTemperature = 10.0;

enum class Role { System, User, Assistant };

struct ChatMessage {
  Role role = Role::User;
  std::string content;
};

// ------------------------------------------------------------ agent → runner

struct GenerateRequest {
  std::string id;
  std::optional<std::string> session;
  /// Exactly one of messages (non-empty), prompt and rendered is set.
  std::vector<ChatMessage> messages;
  /// Raw text fed after BOS, no template.
  std::optional<std::string> prompt;
  /// The whole prompt as the model's own chat template rendered it (the agent
  /// renders chat_template.jinja): encoded as is, special tokens by name, nothing added.
  std::optional<std::string> rendered;
  int max_new_tokens = kDefaultMaxNewTokens;
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  std::optional<std::uint32_t> seed;
};

struct CancelRequest {
  std::string id;
};

struct ResetRequest {
  std::optional<std::string> session;
};

struct StatsRequest {};
struct ShutdownRequest {};

using Request =
    std::variant<GenerateRequest, CancelRequest, ResetRequest, StatsRequest, ShutdownRequest>;

// ------------------------------------------------------------ runner → agent

enum class ErrorCode { BadRequest, Busy, ContextFull, NotFound, ModelError, LoadFailed, Unsupported };

const char* to_string(ErrorCode code);

struct ErrorMessage {
  std::optional<std::string> id;
  ErrorCode code = ErrorCode::BadRequest;
  std::string message;
};

struct Ready {
  std::string backend;  // "sim" | "executorch"
  std::string model;
  std::size_t max_context = 0;
  double load_ms = 0;
  std::uint64_t rss_bytes = 0;
  std::string version;
};

struct Token {
  std::string id;
  std::string text;  // complete UTF-8 only
  std::int32_t token_id = 0;
};

enum class FinishReason { Stop, Length, Cancelled };

const char* to_string(FinishReason reason);

struct Done {
  std::string id;
  FinishReason finish_reason = FinishReason::Stop;
  std::size_t prompt_tokens = 0;
  std::size_t reused_tokens = 0;
  std::size_t generated_tokens = 0;
  double ttft_ms = 0;
  double prefill_ms = 0;
  double decode_ms = 0;
  double prefill_tok_s = 0;
  double decode_tok_s = 0;
  std::uint64_t peak_rss_bytes = 0;
  std::vector<std::int32_t> token_ids;
  /// Of decode_ms, the time inside the runtime's execute call (executorch only).
  std::optional<double> decode_execute_ms;
};

struct Stats {
  std::uint64_t rss_bytes = 0;
  std::uint64_t peak_rss_bytes = 0;
  bool busy = false;
  std::optional<std::string> session;
  std::size_t resident_tokens = 0;
  std::size_t max_context = 0;
};

struct ResetDone {
  std::optional<std::string> session;
};

// ------------------------------------------------------------ parse / serialise

/// The outcome of parsing one line: a request, or the error to answer with.
struct ParseResult {
  std::optional<Request> request;
  ErrorMessage error;  // meaningful only when !request

  bool ok() const { return request.has_value(); }
};

/// Parses one request line (without its newline). Never throws.
ParseResult parse_request(std::string_view line) noexcept;

/// Each returns one protocol line WITHOUT the trailing newline. Never throw;
/// text that is not valid UTF-8 is written with U+FFFD in place of bad bytes.
std::string serialise(const Ready& message) noexcept;
std::string serialise(const Token& message) noexcept;
std::string serialise(const Done& message) noexcept;
std::string serialise(const Stats& message) noexcept;
std::string serialise(const ResetDone& message) noexcept;
std::string serialise(const ErrorMessage& message) noexcept;

/// Shorthand for building an error.
ErrorMessage make_error(ErrorCode code, std::string message,
                        std::optional<std::string> id = std::nullopt);

}  // namespace orchard::protocol
