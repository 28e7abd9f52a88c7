// UTF-8 helpers. Tokens are byte pieces: a character such as "é" or "🍎" can be
// split across two or more tokens, so the text of a token line is only what
// completes a character; the rest is held back until the next token.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace orchard {

/// Accumulates token bytes and releases them only as complete UTF-8.
/// Bytes that can never start or continue a valid character are released as
/// U+FFFD, so whatever push() returns is always valid UTF-8.
class Utf8Holdback {
 public:
  /// Adds the bytes of one token; returns the complete characters now available.
  std::string push(std::string_view bytes);

  /// Drops an unfinished character (e.g. at the end of a generation) and
  /// returns how many bytes were dropped.
  std::size_t discard();

  /// Bytes currently held back.
  std::size_t pending() const { return held_.size(); }

 private:
  std::string held_;
};

/// True when `text` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool is_valid_utf8(std::string_view text);

/// Length as JavaScript counts it (UTF-16 code units) of well-formed UTF-8;
/// used to apply the contract's string bounds exactly as zod does.
std::size_t utf16_length(std::string_view utf8);

/// Strips leading and trailing ASCII whitespace (Jinja's `trim` on ASCII text).
std::string trim_ascii_whitespace(std::string_view text);

}  // namespace orchard
