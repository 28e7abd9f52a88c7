// The sim backend: deterministic, word-like, multi-byte, finishing on its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "orchard/backends/sim.h"
#include "orchard/sampler.h"
#include "orchard/utf8.h"

namespace orchard::sim {
namespace {

SimConfig fast() {
  SimConfig c;
  c.prefill_tok_s = 1e9;  // effectively no sleeping in unit tests
  c.decode_tok_s = 1e9;
  return c;
}

std::vector<std::int32_t> encode(const std::string& text) {
  SimTokenizer t;
  std::vector<std::int32_t> ids;
  EXPECT_TRUE(t.encode(text, &ids).ok);
  return ids;
}

// Greedy generation straight on the model: returns the ids up to and including a stop id.
std::vector<std::int32_t> run_greedy(SimModel& model, const std::vector<std::int32_t>& prompt, std::size_t max_new) {
  Logits logits;
  EXPECT_TRUE(model.forward(prompt.data(), prompt.size(), 0, FeedKind::Prompt, &logits).ok);
  std::vector<std::int32_t> out;
  std::size_t pos = prompt.size();
  while (out.size() < max_new) {
    const std::int32_t id = argmax(logits.data, logits.size);
    out.push_back(id);
    if (id == kEndOfTurn || id == kEos) break;
    EXPECT_TRUE(model.forward(&id, 1, pos++, FeedKind::Generated, &logits).ok);
  }
  return out;
}

std::string text_of(const std::vector<std::int32_t>& ids) {
  SimTokenizer t;
  std::string bytes;
  for (auto id : ids) bytes += t.token_bytes(id);
  return bytes;
}

TEST(SimTokenizer, IsByteLevelWithControlTokens) {
  SimTokenizer t;
  EXPECT_EQ(encode("aé"), (std::vector<std::int32_t>{'a', 0xC3, 0xA9}));
  EXPECT_EQ(t.token_bytes('a'), "a");
  EXPECT_EQ(t.token_bytes(0xC3), "\xC3");
  EXPECT_EQ(t.token_bytes(kBos), "");
  EXPECT_EQ(t.token_bytes(kEndOfTurn), "");
  SpecialTokens s = t.special_tokens();
  EXPECT_EQ(s.bos, kBos);
  EXPECT_EQ(s.start_of_turn, kStartOfTurn);
  EXPECT_EQ(s.end_of_turn, kEndOfTurn);
  EXPECT_NE(std::find(s.stop_ids.begin(), s.stop_ids.end(), kEndOfTurn), s.stop_ids.end());
}

TEST(SimModel, GreedyOutputIsADeterministicFunctionOfTheHistory) {
  SimModel a(fast());
  SimModel b(fast());
  const auto prompt = encode("hello orchard");
  EXPECT_EQ(run_greedy(a, prompt, 1000), run_greedy(b, prompt, 1000));
  // …and the same model gives the same again after a reset.
  const auto first = run_greedy(a, prompt, 1000);
  ASSERT_TRUE(a.reset().ok);
  EXPECT_EQ(run_greedy(a, prompt, 1000), first);
  // A different conversation gives a different text.
  SimModel c(fast());
  EXPECT_NE(run_greedy(c, encode("something else entirely"), 1000), first);
}

TEST(SimModel, TextReadsLikeWordsAndEndsWithEndOfTurn) {
  for (const char* p : {"a", "hello", "The capital of France is", "tell me about apples"}) {
    SimModel model(fast());
    const auto ids = run_greedy(model, encode(p), 10000);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.back(), kEndOfTurn) << p;
    const std::string text = text_of(ids);
    EXPECT_TRUE(is_valid_utf8(text)) << text;
    EXPECT_EQ(text.back(), '.') << text;
    EXPECT_NE(text.front(), ' ');
    const auto words = static_cast<std::size_t>(std::count(text.begin(), text.end(), ' ')) + 1;
    EXPECT_GE(words, kMinWords) << text;
    EXPECT_LE(words, kMaxWords) << text;
    EXPECT_LT(ids.size(), 256u) << "finishes before the default max_new_tokens";
  }
}

TEST(SimModel, SomeTextsContainMultiByteCharacters) {
  bool multibyte = false;
  for (int i = 0; i < 20 && !multibyte; ++i) {
    SimModel model(fast());
    const std::string text = text_of(run_greedy(model, encode("prompt " + std::to_string(i)), 10000));
    multibyte = std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  }
  EXPECT_TRUE(multibyte) << "the vocabulary's café/naïve/—/🍎 words appear";
}

TEST(SimModel, SampledTextIsAlwaysValidUtf8) {
  // Sampling may wander off a word, but never in the middle of a character: a letter
  // sampled after the first byte of "é" or "🍎" made invalid UTF-8, which the runner
  // sent on as U+FFFD (the chat's missing-glyph box).
  int multibyte = 0;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    SimModel model(fast());
    SamplingParams params;
    params.temperature = 1.5;
    params.seed = seed;
    Sampler sampler(params);
    const auto prompt = encode("prompt " + std::to_string(seed));
    Logits logits;
    ASSERT_TRUE(model.forward(prompt.data(), prompt.size(), 0, FeedKind::Prompt, &logits).ok);
    std::vector<std::int32_t> out;
    std::size_t pos = prompt.size();
    while (out.size() < 400) {
      const std::int32_t id = sampler.sample(logits.data, logits.size);
      out.push_back(id);
      if (id == kEndOfTurn || id == kEos) break;
      ASSERT_TRUE(model.forward(&id, 1, pos++, FeedKind::Generated, &logits).ok);
    }
    const std::string text = text_of(out);
    ASSERT_TRUE(is_valid_utf8(text)) << "seed " << seed << ": " << text;
    multibyte += std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  }
  EXPECT_GT(multibyte, 0) << "the sampled texts still spell multi-byte words";
}

TEST(SimModel, SampledTokenChangesWhatFollows) {
  // Feeding a token other than the favoured one moves the history; the model
  // follows the history it holds rather than a script.
  SimModel model(fast());
  const auto prompt = encode("x");
  Logits logits;
  ASSERT_TRUE(model.forward(prompt.data(), prompt.size(), 0, FeedKind::Prompt, &logits).ok);
  const std::int32_t favoured = argmax(logits.data, logits.size);
  const std::int32_t other = favoured == 'q' ? 'z' : 'q';
  ASSERT_TRUE(model.forward(&other, 1, prompt.size(), FeedKind::Generated, &logits).ok);
  // After a wrong letter, the word ends: a space is favoured.
  EXPECT_EQ(argmax(logits.data, logits.size), ' ');
}

TEST(SimModel, PositionsOverwriteAndAreChecked) {
  SimConfig config = fast();
  config.max_context = 8;
  SimModel model(config);
  Logits logits;
  const std::int32_t tokens[4] = {'a', 'b', 'c', 'd'};
  EXPECT_FALSE(model.forward(tokens, 1, 3, FeedKind::Prompt, &logits).ok) << "gap past the cache";
  ASSERT_TRUE(model.forward(tokens, 4, 0, FeedKind::Prompt, &logits).ok);
  EXPECT_EQ(logits.size, kVocabSize);
  ASSERT_TRUE(model.forward(tokens, 4, 4, FeedKind::Prompt, &logits).ok);
  EXPECT_FALSE(model.forward(tokens, 1, 8, FeedKind::Generated, &logits).ok) << "past max_context";
  const std::int32_t bad = 9999;
  EXPECT_FALSE(model.forward(&bad, 1, 0, FeedKind::Prompt, &logits).ok) << "outside the vocabulary";
}

TEST(SimModel, TokenOffsetRotatesEveryGeneratedByteId) {
  for (const char* p : {"The capital of France is", "hello orchard", "prompt 3"}) {
    SimModel plain(fast());
    const auto base = run_greedy(plain, encode(p), 10000);
    for (int offset : {1, 7, 255}) {
      SimConfig config = fast();
      config.token_offset = offset;
      SimModel shifted(config);
      const auto ids = run_greedy(shifted, encode(p), 10000);
      ASSERT_EQ(ids.size(), base.size()) << p << " offset " << offset;
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (base[i] < 256) {
          EXPECT_EQ(ids[i], (base[i] + offset) % 256) << p << " offset " << offset << " token " << i;
          EXPECT_NE(ids[i], base[i]);
        } else {
          EXPECT_EQ(ids[i], base[i]) << "control ids stay put, so the answer still ends";
        }
      }
      EXPECT_EQ(ids.back(), kEndOfTurn);
    }
  }
}

TEST(SimModel, TokenOffsetModelIsDeterministicAndSamplesNearItsText) {
  SimConfig config = fast();
  config.token_offset = 2;
  SimModel a(config);
  SimModel b(config);
  const auto prompt = encode("hello orchard");
  EXPECT_EQ(run_greedy(a, prompt, 1000), run_greedy(b, prompt, 1000));

  // The noise logits sit on the rotated letters and space, like the plain sim's on the letters.
  Logits logits;
  ASSERT_TRUE(a.forward(prompt.data(), prompt.size(), 0, FeedKind::Prompt, &logits).ok);
  const float never = -std::numeric_limits<float>::infinity();
  EXPECT_GT(logits.data[('a' + 2) % 256], never);
  EXPECT_GT(logits.data[(' ' + 2) % 256], never);
  EXPECT_EQ(logits.data[static_cast<unsigned char>('a')], never) << "'a' is ('_' + 2): not a rotated word byte, never sampled";
}

TEST(SimModel, VocabularyHasMultiByteWords) {
  const auto& words = vocabulary();
  for (const char* w : {"café", "naïve", "—", "🍎"}) {
    EXPECT_NE(std::find(words.begin(), words.end(), w), words.end()) << w;
  }
}

}  // namespace
}  // namespace orchard::sim
