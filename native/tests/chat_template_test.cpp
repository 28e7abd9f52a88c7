#include <gtest/gtest.h>

#include "orchard/chat_template.h"

namespace orchard {
namespace {

using protocol::ChatMessage;
using protocol::Role;

TEST(GemmaChatTemplate, OneTurnMatchesTheReferenceStructure) {
  RenderedPrompt r = render_gemma_chat({ChatMessage{Role::User, "The capital of France is"}});
  ASSERT_FALSE(r.error);
  EXPECT_EQ(to_template_text(r.pieces),
            "<bos><start_of_turn>user\nThe capital of France is<end_of_turn>\n<start_of_turn>model\n");
  // Control tokens are separate pieces, never text to tokenize.
  ASSERT_EQ(r.pieces.size(), 7u);
  EXPECT_EQ(r.pieces[0].kind, PromptPiece::Kind::Bos);
  EXPECT_EQ(r.pieces[1].kind, PromptPiece::Kind::StartOfTurn);
  EXPECT_EQ(r.pieces[2].text, "user\nThe capital of France is");
  EXPECT_EQ(r.pieces[3].kind, PromptPiece::Kind::EndOfTurn);
  EXPECT_EQ(r.pieces[4].text, "\n");
  EXPECT_EQ(r.pieces[5].kind, PromptPiece::Kind::StartOfTurn);
  EXPECT_EQ(r.pieces[6].text, "model\n");
}

TEST(GemmaChatTemplate, SeveralTurnsWithAssistantAsModel) {
  RenderedPrompt r = render_gemma_chat({
      ChatMessage{Role::User, "Hi"},
      ChatMessage{Role::Assistant, "Hello!"},
      ChatMessage{Role::User, "  How are you?\n"},
  });
  ASSERT_FALSE(r.error);
  EXPECT_EQ(to_template_text(r.pieces),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nHow are you?<end_of_turn>\n"
            "<start_of_turn>model\n");
}

TEST(GemmaChatTemplate, SystemMessageIsFoldedIntoTheFirstUserTurn) {
  RenderedPrompt r = render_gemma_chat({
      ChatMessage{Role::System, "Answer in French."},
      ChatMessage{Role::User, "Hello"},
      ChatMessage{Role::Assistant, "Bonjour"},
      ChatMessage{Role::User, "Thanks"},
  });
  ASSERT_FALSE(r.error);
  EXPECT_EQ(to_template_text(r.pieces),
            "<bos><start_of_turn>user\nAnswer in French.\n\nHello<end_of_turn>\n"
            "<start_of_turn>model\nBonjour<end_of_turn>\n"
            "<start_of_turn>user\nThanks<end_of_turn>\n"
            "<start_of_turn>model\n");
}

TEST(GemmaChatTemplate, ASecondTurnExtendsTheFirstTurnsText) {
  // What makes KV reuse possible: turn 2's rendering starts with turn 1's
  // rendering followed by the answer.
  const std::string first = to_template_text(render_gemma_chat({ChatMessage{Role::User, "Hi"}}).pieces);
  const std::string second = to_template_text(render_gemma_chat({
      ChatMessage{Role::User, "Hi"}, ChatMessage{Role::Assistant, "apple tree"}, ChatMessage{Role::User, "More"}}).pieces);
  EXPECT_EQ(second.rfind(first + "apple tree<end_of_turn>\n", 0), 0u);
}

TEST(GemmaChatTemplate, RefusesWhatTheJinjaRefuses) {
  EXPECT_TRUE(render_gemma_chat({}).error);
  EXPECT_TRUE(render_gemma_chat({ChatMessage{Role::System, "only a system message"}}).error);
  EXPECT_TRUE(render_gemma_chat({ChatMessage{Role::Assistant, "model first"}}).error);
  EXPECT_TRUE(render_gemma_chat({ChatMessage{Role::User, "a"}, ChatMessage{Role::User, "b"}}).error);
  RenderedPrompt late_system =
      render_gemma_chat({ChatMessage{Role::User, "a"}, ChatMessage{Role::System, "b"}});
  ASSERT_TRUE(late_system.error);
  EXPECT_NE(late_system.error->find("message 1"), std::string::npos);
  EXPECT_TRUE(late_system.pieces.empty());
}

TEST(RawPrompt, IsBosAndText) {
  RenderedPrompt r = render_raw_prompt("The capital of France is");
  ASSERT_FALSE(r.error);
  EXPECT_EQ(to_template_text(r.pieces), "<bos>The capital of France is");
  EXPECT_EQ(to_template_text(render_raw_prompt("").pieces), "<bos>");
}

}  // namespace
}  // namespace orchard
