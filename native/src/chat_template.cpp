#include "orchard/chat_template.h"

#include "orchard/utf8.h"

namespace orchard {
namespace {

PromptPiece text_piece(std::string text) {
  PromptPiece piece;
  piece.kind = PromptPiece::Kind::Text;
  piece.text = std::move(text);
  return piece;
}

PromptPiece marker(PromptPiece::Kind kind) {
  PromptPiece piece;
  piece.kind = kind;
  return piece;
}

}  // namespace

RenderedPrompt render_gemma_chat(const std::vector<protocol::ChatMessage>& messages) {
  using protocol::Role;
  RenderedPrompt out;
  if (messages.empty()) {
    out.error = "a conversation needs at least one message";
    return out;
  }

  std::size_t first = 0;
  std::string first_user_prefix;
  if (messages[0].role == Role::System) {
    // Gemma has no system role: the system text opens the first user turn.
    first_user_prefix = messages[0].content + "\n\n";
    first = 1;
  }
  if (first == messages.size()) {
    out.error = "a conversation needs a user message after the system message";
    return out;
  }

  out.pieces.push_back(marker(PromptPiece::Kind::Bos));
  for (std::size_t i = first; i < messages.size(); ++i) {
    const auto& message = messages[i];
    const bool expect_user = (i - first) % 2 == 0;
    if (message.role == Role::System) {
      out.error = "only the first message may be a system message (message " +
                  std::to_string(i) + ")";
      out.pieces.clear();
      return out;
    }
    if ((message.role == Role::User) != expect_user) {
      out.error = "conversation roles must alternate user/assistant/user/… (message " +
                  std::to_string(i) + ")";
      out.pieces.clear();
      return out;
    }
    const char* role = message.role == Role::User ? "user" : "model";
    std::string text = std::string(role) + "\n";
    if (i == first) text += first_user_prefix;
    text += trim_ascii_whitespace(message.content);
    out.pieces.push_back(marker(PromptPiece::Kind::StartOfTurn));
    out.pieces.push_back(text_piece(std::move(text)));
    out.pieces.push_back(marker(PromptPiece::Kind::EndOfTurn));
    out.pieces.push_back(text_piece("\n"));
  }
  out.pieces.push_back(marker(PromptPiece::Kind::StartOfTurn));
  out.pieces.push_back(text_piece("model\n"));
  return out;
}

RenderedPrompt render_raw_prompt(const std::string& text) {
  RenderedPrompt out;
  out.pieces.push_back(marker(PromptPiece::Kind::Bos));
  if (!text.empty()) out.pieces.push_back(text_piece(text));
  return out;
}

std::string to_template_text(const std::vector<PromptPiece>& pieces) {
  std::string out;
  for (const auto& piece : pieces) {
    switch (piece.kind) {
      case PromptPiece::Kind::Bos: out += "<bos>"; break;
      case PromptPiece::Kind::StartOfTurn: out += "<start_of_turn>"; break;
      case PromptPiece::Kind::EndOfTurn: out += "<end_of_turn>"; break;
      case PromptPiece::Kind::Text: out += piece.text; break;
    }
  }
  return out;
}

}  // namespace orchard
