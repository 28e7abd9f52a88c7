// The chat template, built by the runner so the agent can send messages.
// Gemma's structure (what chat_template.jinja renders for Gemma 3/4):
//   <bos><start_of_turn>user\n{content}<end_of_turn>\n
//   <start_of_turn>model\n{content}<end_of_turn>\n … <start_of_turn>model\n
// A leading system message is folded into the first user turn ("{system}\n\n"),
// roles must alternate user/assistant, and content is trimmed, as the Jinja does.
// The result is a list of pieces; the backend's tokenizer turns it into ids.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "orchard/protocol.h"

namespace orchard {

struct PromptPiece {
  enum class Kind { Bos, StartOfTurn, EndOfTurn, Text };
  Kind kind = Kind::Text;
  std::string text;  // only for Kind::Text

  bool operator==(const PromptPiece& other) const {
    return kind == other.kind && text == other.text;
  }
};

struct RenderedPrompt {
  std::vector<PromptPiece> pieces;
  std::optional<std::string> error;  // set when the conversation cannot be rendered
};

/// Renders a conversation with Gemma's template and the generation prompt.
RenderedPrompt render_gemma_chat(const std::vector<protocol::ChatMessage>& messages);

/// A raw prompt: BOS followed by the text, no template (reference checks).
RenderedPrompt render_raw_prompt(const std::string& text);

/// The pieces as template text ("<bos><start_of_turn>user\n…"), for tests and logs.
std::string to_template_text(const std::vector<PromptPiece>& pieces);

}  // namespace orchard
