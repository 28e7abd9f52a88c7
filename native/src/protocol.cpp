#include "orchard/protocol.h"

#include <cmath>
#include <exception>
#include <utility>

#include <nlohmann/json.hpp>

#include "orchard/utf8.h"

namespace orchard::protocol {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// Thrown inside the parser only; parse_request turns it into an ErrorMessage.
struct Invalid {
  std::string message;
};

[[noreturn]] void invalid(std::string message) { throw Invalid{std::move(message)}; }

std::string quoted(const std::string& name) { return "\"" + name + "\""; }

bool is_valid_id(const json& value) {
  if (!value.is_string()) return false;
  const auto& text = value.get_ref<const std::string&>();
  const std::size_t length = utf16_length(text);
  return length >= 1 && length <= kMaxIdLength;
}

std::string required_string(const json& object, const std::string& where, const char* name,
                            std::size_t min_length, std::size_t max_length) {
  auto it = object.find(name);
  if (it == object.end()) invalid(where + ": " + quoted(name) + " is required");
  if (!it->is_string()) invalid(where + ": " + quoted(name) + " must be a string");
  const auto& text = it->get_ref<const std::string&>();
  const std::size_t length = utf16_length(text);
  if (length < min_length || length > max_length) {
    invalid(where + ": " + quoted(name) + " must be " + std::to_string(min_length) + " to " +
            std::to_string(max_length) + " characters long");
  }
  return text;
}

std::optional<std::string> optional_string(const json& object, const std::string& where,
                                           const char* name, std::size_t min_length,
                                           std::size_t max_length) {
  if (object.find(name) == object.end()) return std::nullopt;
  return required_string(object, where, name, min_length, max_length);
}

// zod's z.number(): any JSON number. Returns nullopt when the key is absent.
std::optional<double> optional_number(const json& object, const std::string& where,
                                      const char* name) {
  auto it = object.find(name);
  if (it == object.end()) return std::nullopt;
  if (!it->is_number()) invalid(where + ": " + quoted(name) + " must be a number");
  return it->get<double>();
}

bool is_integral(double value) { return std::isfinite(value) && std::floor(value) == value; }

Role parse_role(const json& value, std::size_t index) {
  const std::string where = "generate: messages[" + std::to_string(index) + "]";
  if (!value.is_string()) invalid(where + ".role must be a string");
  const auto& role = value.get_ref<const std::string&>();
  if (role == "system") return Role::System;
  if (role == "user") return Role::User;
  if (role == "assistant") return Role::Assistant;
  invalid(where + ".role must be one of system, user, assistant");
}

GenerateRequest parse_generate(const json& object) {
  const std::string where = "generate";
  GenerateRequest request;
  request.id = required_string(object, where, "id", 1, kMaxIdLength);
  request.session = optional_string(object, where, "session", 1, kMaxSessionLength);

  const auto messages = object.find("messages");
  const bool has_messages = messages != object.end();
  const bool has_prompt = object.find("prompt") != object.end();
  const bool has_rendered = object.find("rendered") != object.end();
  if (static_cast<int>(has_messages) + static_cast<int>(has_prompt) + static_cast<int>(has_rendered) != 1) {
    invalid("generate: exactly one of messages, prompt or rendered is required");
  }

  if (has_messages) {
    if (!messages->is_array()) invalid("generate: \"messages\" must be an array");
    if (messages->empty()) invalid("generate: \"messages\" must hold at least one message");
    std::size_t index = 0;
    for (const auto& item : *messages) {
      const std::string at = "generate: messages[" + std::to_string(index) + "]";
      if (!item.is_object()) invalid(at + " must be an object");
      auto role = item.find("role");
      if (role == item.end()) invalid(at + ".role is required");
      ChatMessage message;
      message.role = parse_role(*role, index);
      auto content = item.find("content");
      if (content == item.end()) invalid(at + ".content is required");
      if (!content->is_string()) invalid(at + ".content must be a string");
      message.content = content->get<std::string>();
      if (utf16_length(message.content) > kMaxTextLength) {
        invalid(at + ".content is longer than " + std::to_string(kMaxTextLength) + " characters");
      }
      request.messages.push_back(std::move(message));
      ++index;
    }
  }
  if (has_prompt) {
    request.prompt = required_string(object, where, "prompt", 0, kMaxTextLength);
  }
  if (has_rendered) {
    request.rendered = required_string(object, where, "rendered", 1, kMaxTextLength);
  }

  if (auto value = optional_number(object, where, "max_new_tokens")) {
    if (!is_integral(*value) || *value < 1 || *value > static_cast<double>(kMaxNewTokensLimit)) {
      invalid("generate: \"max_new_tokens\" must be an integer from 1 to " +
              std::to_string(kMaxNewTokensLimit));
    }
    request.max_new_tokens = static_cast<int>(*value);
  }
  if (auto value = optional_number(object, where, "temperature")) {
    if (!(*value >= 0 && *value <= kMaxTemperature)) {
      invalid("generate: \"temperature\" must be a number from 0 to 10");
    }
    request.temperature = *value;
  }
  if (auto value = optional_number(object, where, "top_p")) {
    if (!(*value > 0 && *value <= 1)) {
      invalid("generate: \"top_p\" must be a number greater than 0 and at most 1");
    }
    request.top_p = *value;
  }
  if (auto value = optional_number(object, where, "seed")) {
    if (!is_integral(*value) || *value < 0 || *value > 4294967295.0) {
      invalid("generate: \"seed\" must be an integer from 0 to 4294967295");
    }
    request.seed = static_cast<std::uint32_t>(*value);
  }
  return request;
}

Request parse_object(const json& object) {
  auto type = object.find("type");
  if (type == object.end() || !type->is_string()) invalid("a request needs a \"type\" string");
  const auto& name = type->get_ref<const std::string&>();
  if (name == "generate") return parse_generate(object);
  if (name == "cancel") return CancelRequest{required_string(object, "cancel", "id", 1, kMaxIdLength)};
  if (name == "reset") {
    return ResetRequest{optional_string(object, "reset", "session", 1, kMaxSessionLength)};
  }
  if (name == "stats") return StatsRequest{};
  if (name == "shutdown") return ShutdownRequest{};
  invalid("unknown request type \"" + name.substr(0, 64) +
          "\" (expected generate, cancel, reset, stats or shutdown)");
}

// Non-finite or negative figures would break the contract's nonnegative()
// numbers; rounding to microseconds keeps lines short and readable.
double figure(double value) {
  if (!std::isfinite(value) || value < 0) return 0.0;
  return std::round(value * 1000.0) / 1000.0;
}

std::string dump(const ordered_json& message) noexcept {
  try {
    return message.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  } catch (...) {
    return R"({"type":"error","code":"model_error","message":"the runner could not serialise a message"})";
  }
}

}  // namespace

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadRequest: return "bad_request";
    case ErrorCode::Busy: return "busy";
    case ErrorCode::ContextFull: return "context_full";
    case ErrorCode::NotFound: return "not_found";
    case ErrorCode::ModelError: return "model_error";
    case ErrorCode::LoadFailed: return "load_failed";
    case ErrorCode::Unsupported: return "unsupported";
  }
  return "model_error";
}

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "stop";
}

ErrorMessage make_error(ErrorCode code, std::string message, std::optional<std::string> id) {
  ErrorMessage error;
  error.id = std::move(id);
  error.code = code;
  error.message = std::move(message);
  return error;
}

ParseResult parse_request(std::string_view line) noexcept {
  ParseResult result;
  try {
    // The parser validates UTF-8 inside strings, so text we keep is well-formed.
    json document = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) {
      result.error = make_error(ErrorCode::BadRequest, "the line is not valid JSON");
      return result;
    }
    if (!document.is_object()) {
      result.error = make_error(ErrorCode::BadRequest, "a request must be a JSON object");
      return result;
    }
    try {
      result.request = parse_object(document);
    } catch (const Invalid& problem) {
      std::optional<std::string> id;
      auto it = document.find("id");
      if (it != document.end() && is_valid_id(*it)) id = it->get<std::string>();
      result.error = make_error(ErrorCode::BadRequest, problem.message, std::move(id));
    }
  } catch (const std::exception& e) {
    result.request.reset();
    result.error = make_error(ErrorCode::BadRequest, std::string("the request could not be read: ") + e.what());
  } catch (...) {
    result.request.reset();
    result.error = make_error(ErrorCode::BadRequest, "the request could not be read");
  }
  return result;
}

std::string serialise(const Ready& m) noexcept {
  try {
    ordered_json j;
    j["type"] = "ready";
    j["backend"] = m.backend;
    j["model"] = m.model;
    j["max_context"] = m.max_context;
    j["load_ms"] = figure(m.load_ms);
    j["rss_bytes"] = m.rss_bytes;
    j["version"] = m.version;
    return dump(j);
  } catch (...) {
    return dump(ordered_json{{"type", "error"}, {"code", "model_error"}, {"message", "out of memory"}});
  }
}

std::string serialise(const Token& m) noexcept {
  try {
    ordered_json j;
    j["type"] = "token";
    j["id"] = m.id;
    j["text"] = m.text;
    j["token_id"] = m.token_id;
    return dump(j);
  } catch (...) {
    return dump(ordered_json{{"type", "error"}, {"code", "model_error"}, {"message", "out of memory"}});
  }
}

std::string serialise(const Done& m) noexcept {
  try {
    ordered_json j;
    j["type"] = "done";
    j["id"] = m.id;
    j["finish_reason"] = to_string(m.finish_reason);
    j["prompt_tokens"] = m.prompt_tokens;
    j["reused_tokens"] = m.reused_tokens;
    j["generated_tokens"] = m.generated_tokens;
    j["ttft_ms"] = figure(m.ttft_ms);
    j["prefill_ms"] = figure(m.prefill_ms);
    j["decode_ms"] = figure(m.decode_ms);
    j["prefill_tok_s"] = figure(m.prefill_tok_s);
    j["decode_tok_s"] = figure(m.decode_tok_s);
    j["peak_rss_bytes"] = m.peak_rss_bytes;
    j["token_ids"] = m.token_ids;
    if (m.decode_execute_ms) j["decode_execute_ms"] = figure(*m.decode_execute_ms);
    return dump(j);
  } catch (...) {
    return dump(ordered_json{{"type", "error"}, {"code", "model_error"}, {"message", "out of memory"}});
  }
}

std::string serialise(const Stats& m) noexcept {
  try {
    ordered_json j;
    j["type"] = "stats";
    j["rss_bytes"] = m.rss_bytes;
    j["peak_rss_bytes"] = m.peak_rss_bytes;
    j["busy"] = m.busy;
    j["session"] = m.session ? ordered_json(*m.session) : ordered_json(nullptr);
    j["resident_tokens"] = m.resident_tokens;
    j["max_context"] = m.max_context;
    return dump(j);
  } catch (...) {
    return dump(ordered_json{{"type", "error"}, {"code", "model_error"}, {"message", "out of memory"}});
  }
}

std::string serialise(const ResetDone& m) noexcept {
  try {
    ordered_json j;
    j["type"] = "reset_done";
    j["session"] = m.session ? ordered_json(*m.session) : ordered_json(nullptr);
    return dump(j);
  } catch (...) {
    return dump(ordered_json{{"type", "error"}, {"code", "model_error"}, {"message", "out of memory"}});
  }
}

std::string serialise(const ErrorMessage& m) noexcept {
  try {
    ordered_json j;
    j["type"] = "error";
    if (m.id) j["id"] = *m.id;
    j["code"] = to_string(m.code);
    j["message"] = m.message;
    return dump(j);
  } catch (...) {
    return R"({"type":"error","code":"model_error","message":"out of memory"})";
  }
}

}  // namespace orchard::protocol
