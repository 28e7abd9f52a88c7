// Hugging Face tokenizer.json for SentencePiece-style BPE tokenizers (Gemma,
// Llama-2, Mistral): loads the file and encodes text to the same ids as the
// `tokenizers` library's encode(text, add_special_tokens=False), and gives the
// bytes each token contributes to decoded text. Only the components those
// tokenizers use are supported; anything else is refused at load with a
// sentence naming it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace orchard {

class HfTokenizer {
 public:
  /// Loads <dir>/tokenizer.json (or a path to a .json file). On failure returns
  /// nullopt and sets *error (when not null) to a sentence naming the problem.
  static std::optional<HfTokenizer> load(const std::string& path, std::string* error);

  /// Like HF encode(text, add_special_tokens=False): added tokens are split out
  /// first (leftmost-longest), the rest normalized, pre-tokenized and BPE'd.
  std::vector<std::int32_t> encode(const std::string& text) const;

  /// Bytes one token contributes to decoded text when streaming token by token
  /// ("▁" -> " ", "<0xAB>" -> the byte, special added tokens -> "").
  std::string token_bytes(std::int32_t id) const;
  /// As above; `first_token` applies the decoder's leading Strip / Metaspace
  /// prefix-space removal, which HF applies to the start of the decoded text:
  /// pass true for the first non-special token of the text.
  std::string token_bytes(std::int32_t id, bool first_token) const;

  /// Id of a token by its exact content (added token first, then vocab).
  std::optional<std::int32_t> token_id(const std::string& content) const;

  /// True for an added token with special=true.
  bool is_special(std::int32_t id) const;

  /// Max id + 1 over the vocab and the added tokens.
  std::size_t vocab_size() const;

  struct Impl;

 private:
  explicit HfTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace orchard
