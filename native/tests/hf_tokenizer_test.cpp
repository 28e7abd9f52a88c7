// Tests for the Hugging Face tokenizer.json loader and BPE encoder, on small
// tokenizers built inline (the real Gemma file is compared separately).
#include "orchard/hf_tokenizer.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace orchard {
namespace {

using json = nlohmann::json;
using Ids = std::vector<std::int32_t>;

const char* kSp = "\xE2\x96\x81";  // ▁

// Writes `doc` to a temp file and loads it.
std::optional<HfTokenizer> load_json(const json& doc, std::string* error) {
  char path[] = "/tmp/hf_tokenizer_testXXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return std::nullopt;
  ::close(fd);
  std::ofstream(path) << doc.dump();
  auto tok = HfTokenizer::load(path, error);
  std::remove(path);
  return tok;
}

json base_doc(json vocab, json merges) {
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"decoder", nullptr},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", std::move(vocab)},
                {"merges", std::move(merges)}}}};
}

HfTokenizer must_load(const json& doc) {
  std::string error;
  auto tok = load_json(doc, &error);
  EXPECT_TRUE(tok.has_value()) << error;
  if (!tok) std::abort();
  return *tok;
}

TEST(HfTokenizer, MergesByRank) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"c", 3}, {"ab", 4}, {"bc", 5}};
  // "b c" ranks before "a b", so "abc" becomes a + bc even though "a b" is leftmost.
  const auto tok = must_load(base_doc(vocab, json::array({"b c", "a b"})));
  EXPECT_EQ(tok.encode("abc"), (Ids{1, 5}));
  EXPECT_EQ(tok.encode("abab"), (Ids{4, 4}));
  // The same merges given as pairs.
  const auto pairs = must_load(base_doc(vocab, json::array({json::array({"b", "c"}), json::array({"a", "b"})})));
  EXPECT_EQ(pairs.encode("abc"), (Ids{1, 5}));
}

TEST(HfTokenizer, EqualRankTieGoesLeftmost) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"aa", 2}, {"aaaa", 3}};
  const auto tok = must_load(base_doc(vocab, json::array({"a a", "aa aa"})));
  EXPECT_EQ(tok.encode("aaa"), (Ids{2, 1}));
  EXPECT_EQ(tok.encode("aaaaa"), (Ids{3, 1}));
}

TEST(HfTokenizer, ByteFallbackAndUnk) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
  json doc = base_doc(vocab, json::array());
  doc["model"]["byte_fallback"] = true;
  const auto tok = must_load(doc);
  EXPECT_EQ(tok.encode("a\xC3\xA9"), (Ids{1, 2, 3}));  // é -> its two bytes
  // ü (C3 BC) lacks <0xBC>, so it is unknown; consecutive unknowns fuse.
  EXPECT_EQ(tok.encode("\xC3\xBC\xC3\xBC" "a"), (Ids{0, 1}));
  EXPECT_EQ(tok.token_bytes(2), "<0xC3>");  // no decoder: the token text as is
}

TEST(HfTokenizer, UnkFusing) {
  json vocab = {{"<unk>", 0}, {"a", 1}};
  const auto fused = must_load(base_doc(vocab, json::array()));
  EXPECT_EQ(fused.encode("xyza"), (Ids{0, 1}));
  json doc = base_doc(vocab, json::array());
  doc["model"]["fuse_unk"] = false;
  const auto unfused = must_load(doc);
  EXPECT_EQ(unfused.encode("xyza"), (Ids{0, 0, 0, 1}));
}

TEST(HfTokenizer, AddedTokensLeftmostLongest) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"<", 3}, {">", 4}};
  json doc = base_doc(vocab, json::array());
  const auto added = [](int id, const char* content, bool special) {
    return json{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false},   {"normalized", false}, {"special", special}};
  };
  doc["added_tokens"] = json::array({added(10, "<s>", true), added(11, "<start>", true),
                                     added(12, "<start_of>", true), added(13, "\n", false)});
  const auto tok = must_load(doc);
  EXPECT_EQ(tok.encode("a<start_of>b<start>a<s>\n"), (Ids{1, 12, 2, 11, 1, 10, 13}));
  EXPECT_EQ(tok.encode("<sta"), (Ids{3, 0, 1}));  // "st" fused unk, then "a"
  EXPECT_EQ(tok.token_id("<start>"), std::optional<std::int32_t>(11));
  EXPECT_EQ(tok.token_id("a"), std::optional<std::int32_t>(1));
  EXPECT_FALSE(tok.token_id("zzz").has_value());
  EXPECT_TRUE(tok.is_special(10));
  EXPECT_FALSE(tok.is_special(13));
  EXPECT_FALSE(tok.is_special(1));
  EXPECT_EQ(tok.vocab_size(), 14u);
  EXPECT_EQ(tok.token_bytes(10), "");
  EXPECT_EQ(tok.token_bytes(13), "\n");
}

TEST(HfTokenizer, ReplaceNormalizerAndSplit) {
  const std::string a_sp = std::string("a") + kSp;
  json vocab = {{"<unk>", 0}, {"a", 1}, {"b", 2}, {kSp, 3}, {a_sp, 4}, {std::string(kSp) + "b", 5}};
  json doc = base_doc(vocab, json::array({json::array({"a", kSp}), json::array({kSp, "b"})}));
  doc["normalizer"] = {{"type", "Sequence"},
                       {"normalizers", {{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSp}}}}};
  doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", kSp}}}, {"behavior", "MergedWithPrevious"},
                          {"invert", false}};
  const auto tok = must_load(doc);
  // "a b" -> "a▁b" -> split "a▁" | "b": without the split "▁b" would never form.
  EXPECT_EQ(tok.encode("a b"), (Ids{4, 2}));
  // Consecutive delimiters: "a▁" | "▁" | "b".
  EXPECT_EQ(tok.encode("a  b"), (Ids{4, 3, 2}));
  // Without the pre-tokenizer the merges decide: a▁ ranks first.
  doc["pre_tokenizer"] = nullptr;
  const auto plain = must_load(doc);
  EXPECT_EQ(plain.encode("b b"), (Ids{2, 5}));
}

TEST(HfTokenizer, MetaspacePrependFirst) {
  const std::string sp = kSp;
  json vocab = {{"<unk>", 0}, {sp, 1}, {"h", 2}, {"i", 3}, {sp + "h", 4}, {sp + "hi", 5}, {"hi", 6}};
  json doc = base_doc(vocab, json::array({json::array({sp, "h"}), json::array({sp + "h", "i"}), json::array({"h", "i"})}));
  doc["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "first"}, {"split", true}};
  doc["decoder"] = {{"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "first"}, {"split", true}};
  doc["added_tokens"] = json::array({json{{"id", 7}, {"content", "<s>"}, {"single_word", false}, {"lstrip", false},
                                          {"rstrip", false}, {"normalized", false}, {"special", true}}});
  const auto tok = must_load(doc);
  EXPECT_EQ(tok.encode("hi hi"), (Ids{5, 5}));
  // Only the piece at the start of the input gets the prefix.
  EXPECT_EQ(tok.encode("<s>hi"), (Ids{7, 6}));
  EXPECT_EQ(tok.encode("hi<s>hi"), (Ids{5, 7, 6}));
  EXPECT_EQ(tok.token_bytes(5), " hi");
  EXPECT_EQ(tok.token_bytes(5, true), "hi");
}

TEST(HfTokenizer, TokenBytesWithGemmaDecoder) {
  const std::string sp = kSp;
  json vocab = {{"<unk>", 0}, {sp + "the", 1}, {"<0x0A>", 2}, {"<0xE2>", 3}};
  json doc = base_doc(vocab, json::array());
  doc["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", sp}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  const auto tok = must_load(doc);
  EXPECT_EQ(tok.token_bytes(1), " the");
  EXPECT_EQ(tok.token_bytes(1, true), "the");  // Strip after Fuse: start of the text only
  EXPECT_EQ(tok.token_bytes(2), "\n");
  EXPECT_EQ(tok.token_bytes(3), "\xE2");
  EXPECT_EQ(tok.token_bytes(99), "");
}

TEST(HfTokenizer, LongInputIsFast) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"aa", 2}, {"b", 3}, {"ab", 4}};
  const auto tok = must_load(base_doc(vocab, json::array({"a a", "a b"})));
  std::string text;
  for (int i = 0; i < 20000; ++i) text += (i % 3 == 2) ? 'b' : 'a';
  const auto ids = tok.encode(text);
  EXPECT_EQ(ids.size(), 2u * 6666 + 1);  // "aab" -> aa, b repeated, then "aa"
}

TEST(HfTokenizer, RejectsByteLevelPreTokenizer) {
  json doc = base_doc(json{{"<unk>", 0}}, json::array());
  doc["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  std::string error;
  EXPECT_FALSE(load_json(doc, &error).has_value());
  EXPECT_NE(error.find("pre_tokenizer ByteLevel is not supported"), std::string::npos) << error;
  EXPECT_NE(error.find("Split, Metaspace"), std::string::npos) << error;
}

TEST(HfTokenizer, RejectsUnsupportedComponents) {
  std::string error;
  json doc = base_doc(json{{"<unk>", 0}}, json::array());
  doc["normalizer"] = {{"type", "NFC"}};
  EXPECT_FALSE(load_json(doc, &error).has_value());
  EXPECT_NE(error.find("normalizer NFC is not supported"), std::string::npos) << error;
  doc = base_doc(json{{"<unk>", 0}}, json::array());
  doc["model"]["type"] = "WordPiece";
  EXPECT_FALSE(load_json(doc, &error).has_value());
  EXPECT_NE(error.find("model WordPiece is not supported"), std::string::npos) << error;
  doc = base_doc(json{{"<unk>", 0}, {"a", 1}}, json::array({"a b"}));
  EXPECT_FALSE(load_json(doc, &error).has_value());
  EXPECT_NE(error.find("missing from the vocab"), std::string::npos) << error;
}

TEST(HfTokenizer, MissingFileAndBadJson) {
  std::string error;
  EXPECT_FALSE(HfTokenizer::load("/nonexistent/dir/tokenizer.json", &error).has_value());
  EXPECT_NE(error.find("cannot open tokenizer file /nonexistent/dir/tokenizer.json"), std::string::npos) << error;
  char path[] = "/tmp/hf_tokenizer_badXXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << "{\"model\": ";
  EXPECT_FALSE(HfTokenizer::load(path, &error).has_value());
  EXPECT_NE(error.find("is not valid JSON"), std::string::npos) << error;
  std::remove(path);
}

}  // namespace
}  // namespace orchard
