// What a backend provides to the shared token loop (generator.h): a tokenizer
// and a model step function. Both backends (sim, executorch) implement these;
// everything else — template, prefill plan, sampling, stop ids, cancel,
// timings, UTF-8 holdback, stats — lives once, in the generator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orchard {

/// The outcome of a step that can fail; `message` says why when !ok.
struct Status {
  bool ok = true;
  std::string message;

  static Status success() { return Status{}; }
  static Status failure(std::string why) { return Status{false, std::move(why)}; }
};

/// Control token ids the template and the loop need.
struct SpecialTokens {
  std::int32_t bos = -1;
  std::int32_t start_of_turn = -1;  // -1: the tokenizer encodes the marker text itself
  std::int32_t end_of_turn = -1;
  std::vector<std::int32_t> stop_ids;  // sampling one of these ends the generation
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Encodes text without adding BOS or any other token.
  virtual Status encode(const std::string& text, std::vector<std::int32_t>* ids) const = 0;

  /// The bytes a generated token stands for; they may be part of a UTF-8
  /// character. Control tokens give "".
  virtual std::string token_bytes(std::int32_t id) const = 0;

  virtual SpecialTokens special_tokens() const = 0;
};

/// Whether tokens are a prompt being fed (prefill) or a generated token.
enum class FeedKind { Prompt, Generated };

/// Logits of the next token; valid until the next call on the model.
struct Logits {
  const float* data = nullptr;
  std::size_t size = 0;
};

class Model {
 public:
  virtual ~Model() = default;

  /// Positions the model can hold (prompt + generated).
  virtual std::size_t max_context() const = 0;

  /// Most tokens one forward() call accepts (1 for token-by-token models).
  virtual std::size_t max_tokens_per_step() const = 0;

  /// Forgets the cache contents.
  virtual Status reset() = 0;

  /// Feeds `count` tokens at positions [start_pos, start_pos + count); positions
  /// at or after start_pos that were fed before are overwritten. On success
  /// `logits` predicts the token after the last one fed.
  virtual Status forward(const std::int32_t* tokens, std::size_t count, std::size_t start_pos,
                         FeedKind kind, Logits* logits) = 0;

  /// Milliseconds the runtime's own execute call took in forward() calls of
  /// generated tokens since the last call of this, and resets the count;
  /// nullopt for models that do not measure it (ExecuTorch: Module::execute).
  virtual std::optional<double> take_decode_execute_ms() { return std::nullopt; }
};

}  // namespace orchard
