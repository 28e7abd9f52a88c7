#include <gtest/gtest.h>

#include "orchard/utf8.h"

namespace orchard {
namespace {

TEST(Utf8Holdback, AsciiPassesStraightThrough) {
  Utf8Holdback h;
  EXPECT_EQ(h.push("abc"), "abc");
  EXPECT_EQ(h.pending(), 0u);
}

TEST(Utf8Holdback, HoldsATwoByteCharacterUntilComplete) {
  Utf8Holdback h;
  EXPECT_EQ(h.push("caf"), "caf");
  EXPECT_EQ(h.push("\xC3"), "");
  EXPECT_EQ(h.pending(), 1u);
  EXPECT_EQ(h.push("\xA9"), "é");
  EXPECT_EQ(h.pending(), 0u);
}

TEST(Utf8Holdback, FourByteEmojiFedByteByByte) {
  Utf8Holdback h;
  const std::string apple = "🍎";
  ASSERT_EQ(apple.size(), 4u);
  EXPECT_EQ(h.push(apple.substr(0, 1)), "");
  EXPECT_EQ(h.push(apple.substr(1, 1)), "");
  EXPECT_EQ(h.push(apple.substr(2, 1)), "");
  EXPECT_EQ(h.push(apple.substr(3, 1)), apple);
}

TEST(Utf8Holdback, CompletesAndStartsInOneToken) {
  Utf8Holdback h;
  EXPECT_EQ(h.push("\xE2\x80"), "");
  // Finishes "—" and starts "é": only the dash comes out.
  EXPECT_EQ(h.push("\x94 \xC3"), "— ");
  EXPECT_EQ(h.push("\xA9!"), "é!");
}

TEST(Utf8Holdback, InvalidBytesBecomeReplacementCharacters) {
  Utf8Holdback h;
  EXPECT_EQ(h.push("\xFF"), "\xEF\xBF\xBD");
  EXPECT_EQ(h.push("\x80" "a"), "\xEF\xBF\xBD" "a");                  // stray continuation
  EXPECT_EQ(h.push("\xC3" "b"), "\xEF\xBF\xBD" "b");                  // lead without continuation
  EXPECT_EQ(h.push("\xE0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(h.push("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(h.pending(), 0u);
}

TEST(Utf8Holdback, OutputIsAlwaysValid) {
  Utf8Holdback h;
  std::string all;
  for (int b = 0; b < 256; ++b) all += h.push(std::string(1, static_cast<char>(b)));
  EXPECT_TRUE(is_valid_utf8(all));
}

TEST(Utf8Holdback, DiscardDropsAnUnfinishedCharacter) {
  Utf8Holdback h;
  EXPECT_EQ(h.push("ok\xF0\x9F"), "ok");
  EXPECT_EQ(h.discard(), 2u);
  EXPECT_EQ(h.pending(), 0u);
  EXPECT_EQ(h.push("x"), "x");
}

TEST(Utf8, Validity) {
  EXPECT_TRUE(is_valid_utf8("naïve café — 🍎"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));
}

TEST(Utf8, Utf16Length) {
  EXPECT_EQ(utf16_length(""), 0u);
  EXPECT_EQ(utf16_length("abc"), 3u);
  EXPECT_EQ(utf16_length("é"), 1u);
  EXPECT_EQ(utf16_length("—"), 1u);
  EXPECT_EQ(utf16_length("🍎"), 2u);
}

TEST(Utf8, TrimAsciiWhitespace) {
  EXPECT_EQ(trim_ascii_whitespace("  hi there\n\t"), "hi there");
  EXPECT_EQ(trim_ascii_whitespace(" \n "), "");
  EXPECT_EQ(trim_ascii_whitespace("x"), "x");
}

}  // namespace
}  // namespace orchard
