#include "orchard/utf8.h"

namespace orchard {
namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the sequence a lead byte starts, or 0 when it cannot start one.
std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether `byte` may follow at position `index` (1-based) of a sequence that
// starts with `lead`; encodes the well-formedness table of Unicode 3.9.
bool valid_continuation(unsigned char lead, std::size_t index, unsigned char byte) {
  if (index == 1) {
    switch (lead) {
      case 0xE0: return byte >= 0xA0 && byte <= 0xBF;
      case 0xED: return byte >= 0x80 && byte <= 0x9F;
      case 0xF0: return byte >= 0x90 && byte <= 0xBF;
      case 0xF4: return byte >= 0x80 && byte <= 0x8F;
      default: break;
    }
  }
  return byte >= 0x80 && byte <= 0xBF;
}

enum class Scan { Complete, Incomplete, Invalid };

// Examines the sequence at text[pos]; `length` receives its byte length when complete.
Scan scan(std::string_view text, std::size_t pos, std::size_t* length) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  const std::size_t need = sequence_length(lead);
  if (need == 0) return Scan::Invalid;
  for (std::size_t i = 1; i < need; ++i) {
    if (pos + i >= text.size()) return Scan::Incomplete;
    if (!valid_continuation(lead, i, static_cast<unsigned char>(text[pos + i]))) {
      return Scan::Invalid;
    }
  }
  *length = need;
  return Scan::Complete;
}

}  // namespace

std::string Utf8Holdback::push(std::string_view bytes) {
  held_.append(bytes.data(), bytes.size());
  std::string out;
  std::size_t pos = 0;
  while (pos < held_.size()) {
    std::size_t length = 0;
    const Scan result = scan(held_, pos, &length);
    if (result == Scan::Complete) {
      out.append(held_, pos, length);
      pos += length;
    } else if (result == Scan::Invalid) {
      out += kReplacement;
      pos += 1;  // resynchronise on the next byte
    } else {
      break;  // an unfinished character: keep it for the next token
    }
  }
  held_.erase(0, pos);
  return out;
}

std::size_t Utf8Holdback::discard() {
  const std::size_t dropped = held_.size();
  held_.clear();
  return dropped;
}

bool is_valid_utf8(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t length = 0;
    if (scan(text, pos, &length) != Scan::Complete) return false;
    pos += length;
  }
  return true;
}

std::size_t utf16_length(std::string_view utf8) {
  std::size_t units = 0;
  for (unsigned char c : utf8) {
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    units += (c >= 0xF0) ? 2 : 1;      // 4-byte sequences are surrogate pairs
  }
  return units;
}

std::string trim_ascii_whitespace(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const std::size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return std::string();
  const std::size_t last = text.find_last_not_of(kSpace);
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace orchard
