// The shared token loop, driven by the sim backend and by a scripted fake model.
#include <gtest/gtest.h>

#include <atomic>

#include "orchard/backends/sim.h"
#include "orchard/generator.h"
#include "orchard/utf8.h"

namespace orchard {
namespace {

using protocol::ChatMessage;
using protocol::ErrorCode;
using protocol::FinishReason;
using protocol::GenerateRequest;
using protocol::Role;

sim::SimConfig fast_sim(std::size_t max_context = 2048) {
  sim::SimConfig c;
  c.max_context = max_context;
  c.prefill_tok_s = 1e9;
  c.decode_tok_s = 1e9;
  return c;
}

GenerateRequest chat(const std::string& id, std::vector<ChatMessage> messages,
                     std::optional<std::string> session = std::nullopt) {
  GenerateRequest r;
  r.id = id;
  r.messages = std::move(messages);
  r.session = std::move(session);
  return r;
}

struct RunResult {
  GenerationOutcome outcome;
  std::vector<protocol::Token> tokens;
  std::string text;
};

RunResult run(Generator& g, const GenerateRequest& r, std::atomic<bool>* cancel = nullptr,
        std::size_t cancel_after = 0) {
  std::atomic<bool> local{false};
  std::atomic<bool>& flag = cancel ? *cancel : local;
  RunResult result;
  result.outcome = g.generate(r, flag, [&](const protocol::Token& t) {
    result.tokens.push_back(t);
    result.text += t.text;
    if (cancel_after > 0 && result.tokens.size() == cancel_after) flag = true;
  });
  return result;
}

class SimGeneratorTest : public ::testing::Test {
 protected:
  sim::SimTokenizer tokenizer;
  sim::SimModel model{fast_sim()};
  Generator generator{model, tokenizer};
};

TEST_F(SimGeneratorTest, StreamsTokensThenDone) {
  RunResult r = run(generator, chat("r1", {ChatMessage{Role::User, "hello"}}));
  ASSERT_TRUE(r.outcome.done) << r.outcome.error->message;
  const protocol::Done& d = *r.outcome.done;
  EXPECT_EQ(d.id, "r1");
  EXPECT_EQ(d.finish_reason, FinishReason::Stop);
  EXPECT_EQ(d.generated_tokens, d.token_ids.size());
  ASSERT_EQ(r.tokens.size(), d.token_ids.size());
  for (std::size_t i = 0; i < r.tokens.size(); ++i) {
    EXPECT_EQ(r.tokens[i].id, "r1");
    EXPECT_EQ(r.tokens[i].token_id, d.token_ids[i]);
  }
  EXPECT_EQ(d.token_ids.back(), sim::kEndOfTurn);
  EXPECT_EQ(r.tokens.back().text, "") << "the stop token has no text";
  EXPECT_TRUE(is_valid_utf8(r.text));
  // "user\nhello" + "\n" + "model\n" are 17 bytes, plus BOS and three turn markers.
  EXPECT_EQ(d.prompt_tokens, 21u);
  EXPECT_EQ(d.reused_tokens, 0u);
  EXPECT_GT(d.peak_rss_bytes, 0u);
  EXPECT_GE(d.decode_ms, 0.0);
}

TEST_F(SimGeneratorTest, TokenTextsConcatenateToTheGeneratedBytes) {
  RunResult r = run(generator, chat("r", {ChatMessage{Role::User, "prompt 3"}}));
  ASSERT_TRUE(r.outcome.done);
  std::string bytes;
  for (auto id : r.outcome.done->token_ids) bytes += tokenizer.token_bytes(id);
  EXPECT_EQ(r.text, bytes);
}

TEST_F(SimGeneratorTest, GreedyIsDeterministic) {
  RunResult a = run(generator, chat("a", {ChatMessage{Role::User, "same"}}));
  RunResult b = run(generator, chat("b", {ChatMessage{Role::User, "same"}}));
  ASSERT_TRUE(a.outcome.done && b.outcome.done);
  EXPECT_EQ(a.outcome.done->token_ids, b.outcome.done->token_ids);
}

TEST_F(SimGeneratorTest, SeededSamplingIsReproducibleAndDiffersFromGreedy) {
  auto sampled = [&](std::uint32_t seed) {
    GenerateRequest r = chat("s", {ChatMessage{Role::User, "sample me"}});
    r.temperature = 1.5;
    r.seed = seed;
    r.max_new_tokens = 200;
    RunResult out = run(generator, r);
    EXPECT_TRUE(out.outcome.done);
    return out.outcome.done->token_ids;
  };
  const auto greedy = run(generator, chat("g", {ChatMessage{Role::User, "sample me"}})).outcome.done->token_ids;
  EXPECT_EQ(sampled(11), sampled(11));
  EXPECT_NE(sampled(11), sampled(12));
  EXPECT_NE(sampled(11), greedy);
}

TEST_F(SimGeneratorTest, SecondTurnReusesTheCache) {
  RunResult first = run(generator, chat("t1", {ChatMessage{Role::User, "hi"}}, "s1"));
  ASSERT_TRUE(first.outcome.done);
  const auto& d1 = *first.outcome.done;
  EXPECT_EQ(generator.snapshot().session, std::optional<std::string>("s1"));
  EXPECT_EQ(generator.snapshot().resident_tokens, d1.prompt_tokens + d1.generated_tokens - 1)
      << "the last sampled token is not fed";

  RunResult second = run(generator, chat("t2", {ChatMessage{Role::User, "hi"}, ChatMessage{Role::Assistant, first.text},
                                          ChatMessage{Role::User, "and then?"}}, "s1"));
  ASSERT_TRUE(second.outcome.done);
  EXPECT_EQ(second.outcome.done->reused_tokens, d1.prompt_tokens + d1.generated_tokens - 1);

  // The output does not depend on whether the cache was reused.
  sim::SimModel fresh_model(fast_sim());
  Generator fresh(fresh_model, tokenizer);
  RunResult cold = run(fresh, chat("t2", {ChatMessage{Role::User, "hi"}, ChatMessage{Role::Assistant, first.text},
                                    ChatMessage{Role::User, "and then?"}}, "s1"));
  ASSERT_TRUE(cold.outcome.done);
  EXPECT_EQ(cold.outcome.done->reused_tokens, 0u);
  EXPECT_EQ(cold.outcome.done->token_ids, second.outcome.done->token_ids);
}

TEST_F(SimGeneratorTest, OtherSessionOrNoSessionStartsOver) {
  ASSERT_TRUE(run(generator, chat("t1", {ChatMessage{Role::User, "hi"}}, "s1")).outcome.done);
  RunResult other = run(generator, chat("t2", {ChatMessage{Role::User, "hi"}, ChatMessage{Role::Assistant, "x"},
                                         ChatMessage{Role::User, "y"}}, "s2"));
  ASSERT_TRUE(other.outcome.done);
  EXPECT_EQ(other.outcome.done->reused_tokens, 0u);
  RunResult none = run(generator, chat("t3", {ChatMessage{Role::User, "hi"}}));
  ASSERT_TRUE(none.outcome.done);
  EXPECT_EQ(none.outcome.done->reused_tokens, 0u);
  EXPECT_FALSE(generator.snapshot().session.has_value());
}

TEST_F(SimGeneratorTest, ResetDropsTheResidentSession) {
  RunResult first = run(generator, chat("t1", {ChatMessage{Role::User, "hi"}}, "s1"));
  ASSERT_TRUE(first.outcome.done);
  EXPECT_FALSE(generator.reset(std::string("other")));  // not resident: nothing happens
  EXPECT_GT(generator.snapshot().resident_tokens, 0u);
  EXPECT_FALSE(generator.reset(std::string("s1")));
  EXPECT_EQ(generator.snapshot().resident_tokens, 0u);
  EXPECT_FALSE(generator.snapshot().session.has_value());
  RunResult again = run(generator, chat("t2", {ChatMessage{Role::User, "hi"}, ChatMessage{Role::Assistant, first.text},
                                         ChatMessage{Role::User, "more"}}, "s1"));
  ASSERT_TRUE(again.outcome.done);
  EXPECT_EQ(again.outcome.done->reused_tokens, 0u);
}

TEST_F(SimGeneratorTest, LengthStopsAtMaxNewTokens) {
  GenerateRequest r = chat("l", {ChatMessage{Role::User, "hello"}});
  r.max_new_tokens = 3;
  RunResult out = run(generator, r);
  ASSERT_TRUE(out.outcome.done);
  EXPECT_EQ(out.outcome.done->finish_reason, FinishReason::Length);
  EXPECT_EQ(out.outcome.done->generated_tokens, 3u);
}

TEST_F(SimGeneratorTest, RawPromptIsBosAndBytes) {
  GenerateRequest r;
  r.id = "raw";
  r.prompt = "The capital of France is";
  RunResult out = run(generator, r);
  ASSERT_TRUE(out.outcome.done);
  EXPECT_EQ(out.outcome.done->prompt_tokens, 1 + std::string("The capital of France is").size());
}

TEST_F(SimGeneratorTest, CancelBetweenTokens) {
  std::atomic<bool> cancel{false};
  RunResult out = run(generator, chat("c", {ChatMessage{Role::User, "hello"}}), &cancel, 5);
  ASSERT_TRUE(out.outcome.done);
  EXPECT_EQ(out.outcome.done->finish_reason, FinishReason::Cancelled);
  EXPECT_EQ(out.outcome.done->generated_tokens, 5u);
  EXPECT_EQ(out.tokens.size(), 5u);
}

TEST_F(SimGeneratorTest, CancelledBeforeStartingFeedsNothing) {
  std::atomic<bool> cancel{true};
  RunResult out = run(generator, chat("c", {ChatMessage{Role::User, "hello"}}), &cancel);
  ASSERT_TRUE(out.outcome.done);
  EXPECT_EQ(out.outcome.done->finish_reason, FinishReason::Cancelled);
  EXPECT_EQ(out.outcome.done->generated_tokens, 0u);
  EXPECT_TRUE(out.tokens.empty());
}

TEST_F(SimGeneratorTest, TemplateErrorIsABadRequest) {
  RunResult out = run(generator, chat("e", {ChatMessage{Role::Assistant, "first"}}));
  ASSERT_TRUE(out.outcome.error);
  EXPECT_EQ(out.outcome.error->code, ErrorCode::BadRequest);
  EXPECT_EQ(out.outcome.error->id, std::optional<std::string>("e"));
}

TEST_F(SimGeneratorTest, ARenderedPromptIsEncodedAsIsWithNothingAdded) {
  GenerateRequest rendered;
  rendered.id = "r";
  rendered.rendered = "hello there";
  std::vector<std::int32_t> ids;
  ASSERT_FALSE(generator.prompt_ids(rendered, &ids));
  std::vector<std::int32_t> text_ids;
  ASSERT_TRUE(tokenizer.encode("hello there", &text_ids).ok);
  EXPECT_EQ(ids, text_ids);  // no BOS, no turn markers
  GenerateRequest raw;
  raw.id = "p";
  raw.prompt = "hello there";
  std::vector<std::int32_t> raw_ids;
  ASSERT_FALSE(generator.prompt_ids(raw, &raw_ids));
  EXPECT_EQ(raw_ids.size(), text_ids.size() + 1);  // a raw prompt gets BOS
}

TEST(GeneratorContext, RefusesBeforeFeedingWhenTheRequestCannotFit) {
  sim::SimTokenizer tokenizer;
  sim::SimModel model(fast_sim(64));
  Generator generator(model, tokenizer);
  GenerateRequest r = chat("big", {ChatMessage{Role::User, "hello"}});  // 21 prompt tokens
  r.max_new_tokens = 45;
  RunResult out = run(generator, r);
  ASSERT_TRUE(out.outcome.error);
  EXPECT_EQ(out.outcome.error->code, ErrorCode::ContextFull);
  EXPECT_EQ(out.outcome.error->id, std::optional<std::string>("big"));
  EXPECT_NE(out.outcome.error->message.find("64"), std::string::npos);
  EXPECT_TRUE(out.tokens.empty());
  // The last token sampled is never fed, so 21 prompt + 44 new occupy 21 + 43 = 64
  // positions: it fits exactly.
  r.max_new_tokens = 44;
  RunResult fits = run(generator, r);
  ASSERT_TRUE(fits.outcome.done) << fits.outcome.error->message;
}

// A model whose logits follow a script, recording what it is fed.
class ScriptedModel final : public Model {
 public:
  struct Call {
    std::vector<std::int32_t> tokens;
    std::size_t start_pos;
    FeedKind kind;
  };
  std::vector<std::int32_t> script;  // token favoured after the n-th call
  std::vector<Call> calls;
  int fail_on_call = -1;
  int resets = 0;
  std::size_t per_step = 4;

  std::size_t max_context() const override { return 100; }
  std::size_t max_tokens_per_step() const override { return per_step; }
  Status reset() override {
    ++resets;
    return Status::success();
  }
  Status forward(const std::int32_t* tokens, std::size_t count, std::size_t start_pos, FeedKind kind,
                 Logits* logits) override {
    if (static_cast<int>(calls.size()) == fail_on_call) return Status::failure("boom");
    calls.push_back(Call{std::vector<std::int32_t>(tokens, tokens + count), start_pos, kind});
    const std::size_t n = std::min(calls.size() - 1, script.size() - 1);
    logits_.assign(sim::kVocabSize, 0.0f);
    logits_[static_cast<std::size_t>(script[n])] = 1.0f;
    logits->data = logits_.data();
    logits->size = logits_.size();
    return Status::success();
  }

 private:
  std::vector<float> logits_;
};

TEST(GeneratorScripted, FeedsThePromptInChunksAndGeneratedTokensOneByOne) {
  sim::SimTokenizer tokenizer;
  ScriptedModel model;
  model.per_step = 4;
  GenerateRequest r;
  r.id = "p";
  r.prompt = "abcdefghi";  // BOS + 9 bytes = 10 ids → chunks of 4, 4, 2
  r.max_new_tokens = 10;
  Generator generator(model, tokenizer);
  // After the 3 prompt chunks: 'x', then 'y', then end-of-turn.
  model.script = {'?', '?', 'x', 'y', sim::kEndOfTurn};
  RunResult out = run(generator, r);
  ASSERT_TRUE(out.outcome.done);
  EXPECT_EQ(out.outcome.done->token_ids, (std::vector<std::int32_t>{'x', 'y', sim::kEndOfTurn}));
  ASSERT_EQ(model.calls.size(), 5u);
  EXPECT_EQ(model.calls[0].tokens.size(), 4u);
  EXPECT_EQ(model.calls[1].start_pos, 4u);
  EXPECT_EQ(model.calls[2].tokens.size(), 2u);
  EXPECT_EQ(model.calls[2].kind, FeedKind::Prompt);
  EXPECT_EQ(model.calls[3].tokens, (std::vector<std::int32_t>{'x'}));
  EXPECT_EQ(model.calls[3].start_pos, 10u);
  EXPECT_EQ(model.calls[3].kind, FeedKind::Generated);
  EXPECT_EQ(model.calls[4].start_pos, 11u);
  EXPECT_EQ(out.text, "xy");
}

TEST(GeneratorScripted, HoldsBackSplitCharacters) {
  sim::SimTokenizer tokenizer;
  ScriptedModel model;
  model.per_step = 16;
  GenerateRequest r;
  r.id = "u";
  r.prompt = "q";
  r.max_new_tokens = 10;
  Generator generator(model, tokenizer);
  model.script = {0xF0, 0x9F, 0x8D, 0x8E, 'a', sim::kEndOfTurn};  // "🍎a"
  RunResult out = run(generator, r);
  ASSERT_TRUE(out.outcome.done);
  ASSERT_EQ(out.tokens.size(), 6u);
  EXPECT_EQ(out.tokens[0].text, "");
  EXPECT_EQ(out.tokens[1].text, "");
  EXPECT_EQ(out.tokens[2].text, "");
  EXPECT_EQ(out.tokens[3].text, "🍎");
  EXPECT_EQ(out.tokens[4].text, "a");
}

TEST(GeneratorScripted, ModelFailureIsAModelErrorAndForgetsTheSession) {
  sim::SimTokenizer tokenizer;
  ScriptedModel model;
  model.script = {'a', 'b', 'c', 'd', 'e'};
  model.fail_on_call = 2;
  GenerateRequest r;
  r.id = "f";
  r.prompt = "z";
  r.max_new_tokens = 10;
  r.session = "s";
  Generator generator(model, tokenizer);
  RunResult out = run(generator, r);
  ASSERT_TRUE(out.outcome.error);
  EXPECT_EQ(out.outcome.error->code, ErrorCode::ModelError);
  EXPECT_EQ(out.outcome.error->id, std::optional<std::string>("f"));
  EXPECT_NE(out.outcome.error->message.find("boom"), std::string::npos);
  EXPECT_EQ(generator.snapshot().resident_tokens, 0u);
  EXPECT_FALSE(generator.snapshot().session.has_value());
  EXPECT_GE(model.resets, 1);
}

}  // namespace
}  // namespace orchard
