// The `sim` backend: no model. A byte-level tokenizer and a step function
// whose logits favour a next token derived from a hash of the resident token
// history, so greedy output is a deterministic function of the conversation
// and seeded sampling really samples. The text reads like words (including
// multi-byte UTF-8 ones, emitted one byte per token), and ends with the
// end-of-turn id after 10–30 words. It sleeps to honour the configured
// prefill/decode rates, so the loop's tokens/s figures are real measurements.
// It never pretends to be a real model: its backend name is "sim".
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "orchard/engine.h"

namespace orchard::sim {

// Ids 0..255 are bytes; control tokens follow.
inline constexpr std::int32_t kBos = 256;
inline constexpr std::int32_t kStartOfTurn = 257;
inline constexpr std::int32_t kEndOfTurn = 258;
inline constexpr std::int32_t kEos = 259;
inline constexpr std::size_t kVocabSize = 260;

inline constexpr std::size_t kMinWords = 10;
inline constexpr std::size_t kMaxWords = 30;

struct SimConfig {
  std::size_t max_context = 2048;
  double prefill_tok_s = 200.0;
  double decode_tok_s = 20.0;
};

class SimTokenizer final : public Tokenizer {
 public:
  Status encode(const std::string& text, std::vector<std::int32_t>* ids) const override;
  std::string token_bytes(std::int32_t id) const override;
  SpecialTokens special_tokens() const override;
};

class SimModel final : public Model {
 public:
  explicit SimModel(const SimConfig& config);

  std::size_t max_context() const override { return config_.max_context; }
  std::size_t max_tokens_per_step() const override { return 16; }
  Status reset() override;
  Status forward(const std::int32_t* tokens, std::size_t count, std::size_t start_pos,
                 FeedKind kind, Logits* logits) override;

  /// The token the current history favours (what greedy decoding picks).
  std::int32_t favoured_token() const;

 private:
  void compute_logits();

  SimConfig config_;
  std::vector<std::int32_t> history_;  // the "KV cache": every id fed, by position
  std::size_t generation_start_ = 0;   // position after the last prompt fed
  std::vector<float> logits_;
};

/// The built-in vocabulary the sim's text is made of.
const std::vector<std::string>& vocabulary();

}  // namespace orchard::sim
