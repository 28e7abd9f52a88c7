// Hugging Face tokenizer.json loading, encoding and per-token decoding for
// SentencePiece-style BPE tokenizers. The encode pipeline mirrors the Rust
// `tokenizers` crate: added tokens are split out of the raw text
// (added_vocabulary.rs), each remaining piece is normalized, split again on
// normalized added tokens, pre-tokenized and run through BPE (models/bpe/
// model.rs merge_word and word.rs merge_all, including their quirks).
#include "orchard/hf_tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cstdio>
#include <fstream>
#include <queue>
#include <sstream>
#include <sys/stat.h>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

namespace orchard {

using json = nlohmann::json;

namespace {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
enum class PrependScheme { Always, First, Never };

struct NormStep {
  enum Kind { Replace, Prepend } kind;
  std::string pattern;  // Replace
  std::string content;  // Replace: replacement; Prepend: prefix
};

struct PreStep {
  enum Kind { Split, Metaspace } kind;
  std::string pattern;  // Split: literal; Metaspace: replacement
  SplitBehavior behavior = SplitBehavior::Isolated;
  PrependScheme prepend = PrependScheme::Always;
  bool split = true;
};

struct DecStep {
  enum Kind { Replace, ByteFallback, Fuse, Strip, Metaspace } kind;
  std::string pattern;  // Replace; Metaspace: replacement; Strip: content
  std::string content;  // Replace
  std::size_t start = 0, stop = 0;
  PrependScheme prepend = PrependScheme::Always;
  bool after_fuse = false;
};

struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// Byte trie over added-token contents, for leftmost-longest matching.
class Trie {
 public:
  Trie() : nodes_(1) {}
  void insert(const std::string& key, int value) {
    if (key.empty()) return;
    int node = 0;
    for (unsigned char c : key) {
      int child = find(node, c);
      if (child < 0) {
        child = static_cast<int>(nodes_.size());
        nodes_[static_cast<std::size_t>(node)].next.emplace_back(c, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    nodes_[static_cast<std::size_t>(node)].value = value;
  }
  bool empty() const { return nodes_.size() == 1; }
  // Longest key starting at text[pos]: returns its value (or -1) and length.
  int longest(const std::string& text, std::size_t pos, std::size_t* length) const {
    int node = 0, best = -1;
    for (std::size_t i = pos; i < text.size(); ++i) {
      node = find(node, static_cast<unsigned char>(text[i]));
      if (node < 0) break;
      const int v = nodes_[static_cast<std::size_t>(node)].value;
      if (v >= 0) {
        best = v;
        *length = i + 1 - pos;
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> next;
    int value = -1;
  };
  int find(int node, unsigned char c) const {
    for (const auto& [byte, child] : nodes_[static_cast<std::size_t>(node)].next) {
      if (byte == c) return child;
    }
    return -1;
  }
  std::vector<Node> nodes_;
};

std::size_t char_length(const std::string& s, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  std::size_t n = 1;
  if (lead >= 0xF0 && lead <= 0xF7) n = 4;
  else if (lead >= 0xE0) n = 3;
  else if (lead >= 0xC0) n = 2;
  if (lead >= 0xF8) n = 1;
  return std::min(n, s.size() - pos);
}

std::uint32_t decode_at(const std::string& s, std::size_t pos, std::size_t len) {
  const auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[pos + i])); };
  switch (len) {
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    case 4: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    default: return b(0);
  }
}

// Rust char::is_whitespace (Unicode White_Space).
bool is_whitespace(std::uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Approximates Rust's `is_alphanumeric() || '_'`: ASCII exactly, any other
// non-whitespace code point above U+007F counts as a word character.
bool is_word_char(std::uint32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) != 0 || c == '_';
  return !is_whitespace(c);
}

std::uint32_t last_char(const std::string& s, std::size_t end) {
  std::size_t start = end;
  while (start > 0) {
    --start;
    if ((static_cast<unsigned char>(s[start]) & 0xC0) != 0x80) break;
  }
  return decode_at(s, start, char_length(s, start));
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

struct Piece {
  std::string text;
  bool at_start;  // begins at offset 0 of the original input
};

// NormalizedString::split with a literal pattern (normalizer.rs).
std::vector<Piece> split_literal(const Piece& piece, const std::string& pattern, SplitBehavior behavior) {
  struct Part {
    std::size_t start, end;
    bool flag;  // is_match before folding; "remove" after
  };
  std::vector<Part> matches;
  const std::string& s = piece.text;
  std::size_t pos = 0;
  while (true) {
    const std::size_t hit = s.find(pattern, pos);
    if (hit == std::string::npos) break;
    if (hit > pos) matches.push_back({pos, hit, false});
    matches.push_back({hit, hit + pattern.size(), true});
    pos = hit + pattern.size();
  }
  if (pos < s.size()) matches.push_back({pos, s.size(), false});

  std::vector<Part> parts;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      parts = matches;
      break;
    case SplitBehavior::Isolated:
      for (const Part& m : matches) parts.push_back({m.start, m.end, false});
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Part& m : matches) {
        if (m.flag && !previous_match) {
          if (!parts.empty()) parts.back().end = m.end;
          else parts.push_back({m.start, m.end, false});
        } else {
          parts.push_back({m.start, m.end, false});
        }
        previous_match = m.flag;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->flag && !previous_match) {
          if (!parts.empty()) parts.back().start = it->start;
          else parts.push_back({it->start, it->end, false});
        } else {
          parts.push_back({it->start, it->end, false});
        }
        previous_match = it->flag;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    case SplitBehavior::Contiguous:
      for (const Part& m : matches) {
        if (m.flag == previous_match && !parts.empty()) parts.back().end = m.end;
        else parts.push_back({m.start, m.end, false});
        previous_match = m.flag;
      }
      break;
  }
  std::vector<Piece> out;
  for (const Part& p : parts) {
    if (p.flag || p.end <= p.start) continue;
    out.push_back({s.substr(p.start, p.end - p.start), piece.at_start && p.start == 0});
  }
  return out;
}

std::string get_string(const json& j, const char* key, const std::string& fallback = "") {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

bool get_bool(const json& j, const char* key, bool fallback) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

std::string type_of(const json& j) { return j.is_object() ? get_string(j, "type", "(untyped)") : "(not an object)"; }

// Reads {"String": s}; Regex patterns are refused.
bool string_pattern(const json& j, const std::string& where, std::string* out, std::string* error) {
  const auto it = j.find("pattern");
  if (it == j.end() || !it->is_object()) {
    *error = where + " has no pattern";
    return false;
  }
  if (it->contains("String") && (*it)["String"].is_string()) {
    *out = (*it)["String"].get<std::string>();
    if (out->empty()) {
      *error = where + " has an empty String pattern, which is not supported";
      return false;
    }
    return true;
  }
  *error = where + " with a Regex pattern is not supported (only {\"String\": ...} patterns are)";
  return false;
}

bool parse_prepend_scheme(const json& j, PrependScheme* out, std::string* error, const std::string& where) {
  std::string scheme = get_string(j, "prepend_scheme");
  if (scheme.empty()) scheme = get_bool(j, "add_prefix_space", true) ? "always" : "never";
  if (scheme == "always") *out = PrependScheme::Always;
  else if (scheme == "first") *out = PrependScheme::First;
  else if (scheme == "never") *out = PrependScheme::Never;
  else {
    *error = where + " prepend_scheme \"" + scheme + "\" is not supported (supported: always, first, never)";
    return false;
  }
  return true;
}

}  // namespace

struct HfTokenizer::Impl {
  std::unordered_map<std::string, std::int32_t> vocab;
  std::vector<std::string> id_to_token;
  std::vector<char> special;
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::int32_t>> merges;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  std::int32_t unk_id = -1;
  std::array<std::int32_t, 256> byte_ids{};
  std::vector<AddedToken> added;
  std::unordered_map<std::string, std::int32_t> added_by_content;
  Trie raw_trie, norm_trie;
  std::vector<NormStep> normalizers;
  std::vector<PreStep> pre_tokenizers;
  std::vector<DecStep> decoders;

  bool parse_normalizer(const json& j, std::string* error);
  bool parse_pre_tokenizer(const json& j, std::string* error);
  bool parse_decoder(const json& j, std::string* error, bool* fused);
  bool parse_model(const json& j, std::string* error);

  std::string normalize(std::string s) const;
  std::vector<Piece> pre_tokenize(Piece piece) const;
  void bpe(const std::string& word, std::vector<std::int32_t>* out) const;
  void split_added(const std::string& text, bool normalized_pass, bool at_start,
                   std::vector<std::int32_t>* out) const;
};

bool HfTokenizer::Impl::parse_normalizer(const json& j, std::string* error) {
  if (j.is_null()) return true;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    const auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) {
      *error = "normalizer Sequence has no normalizers array";
      return false;
    }
    for (const json& n : *it) {
      if (!parse_normalizer(n, error)) return false;
    }
    return true;
  }
  if (type == "Replace") {
    NormStep step{NormStep::Replace, "", get_string(j, "content")};
    if (!string_pattern(j, "normalizer Replace", &step.pattern, error)) return false;
    normalizers.push_back(std::move(step));
    return true;
  }
  if (type == "Prepend") {
    normalizers.push_back({NormStep::Prepend, "", get_string(j, "prepend")});
    return true;
  }
  *error = "normalizer " + type + " is not supported (supported: Replace, Prepend, Sequence of those, null)";
  return false;
}

bool HfTokenizer::Impl::parse_pre_tokenizer(const json& j, std::string* error) {
  if (j.is_null()) return true;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    const auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) {
      *error = "pre_tokenizer Sequence has no pretokenizers array";
      return false;
    }
    for (const json& p : *it) {
      if (!parse_pre_tokenizer(p, error)) return false;
    }
    return true;
  }
  if (type == "Split") {
    PreStep step{PreStep::Split, "", SplitBehavior::Isolated, PrependScheme::Always, true};
    if (!string_pattern(j, "pre_tokenizer Split", &step.pattern, error)) return false;
    if (get_bool(j, "invert", false)) {
      *error = "pre_tokenizer Split with invert=true is not supported";
      return false;
    }
    const std::string b = get_string(j, "behavior");
    if (b == "Removed") step.behavior = SplitBehavior::Removed;
    else if (b == "Isolated") step.behavior = SplitBehavior::Isolated;
    else if (b == "MergedWithPrevious") step.behavior = SplitBehavior::MergedWithPrevious;
    else if (b == "MergedWithNext") step.behavior = SplitBehavior::MergedWithNext;
    else if (b == "Contiguous") step.behavior = SplitBehavior::Contiguous;
    else {
      *error = "pre_tokenizer Split behavior \"" + b + "\" is not supported";
      return false;
    }
    pre_tokenizers.push_back(std::move(step));
    return true;
  }
  if (type == "Metaspace") {
    PreStep step{PreStep::Metaspace, get_string(j, "replacement", "\xE2\x96\x81"), SplitBehavior::MergedWithNext,
                 PrependScheme::Always, get_bool(j, "split", true)};
    if (step.pattern.empty()) {
      *error = "pre_tokenizer Metaspace has an empty replacement";
      return false;
    }
    if (!parse_prepend_scheme(j, &step.prepend, error, "pre_tokenizer Metaspace")) return false;
    pre_tokenizers.push_back(std::move(step));
    return true;
  }
  *error = "pre_tokenizer " + type + " is not supported (supported: Split, Metaspace, Sequence of those, null)";
  return false;
}

bool HfTokenizer::Impl::parse_decoder(const json& j, std::string* error, bool* fused) {
  if (j.is_null()) return true;
  const std::string type = type_of(j);
  if (type == "Sequence") {
    const auto it = j.find("decoders");
    if (it == j.end() || !it->is_array()) {
      *error = "decoder Sequence has no decoders array";
      return false;
    }
    for (const json& d : *it) {
      if (!parse_decoder(d, error, fused)) return false;
    }
    return true;
  }
  DecStep step{DecStep::Fuse, "", "", 0, 0, PrependScheme::Always, *fused};
  if (type == "Replace") {
    step.kind = DecStep::Replace;
    step.content = get_string(j, "content");
    if (!string_pattern(j, "decoder Replace", &step.pattern, error)) return false;
  } else if (type == "ByteFallback") {
    step.kind = DecStep::ByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecStep::Fuse;
    *fused = true;
  } else if (type == "Strip") {
    step.kind = DecStep::Strip;
    step.pattern = get_string(j, "content", " ");
    step.start = j.value("start", std::size_t{0});
    step.stop = j.value("stop", std::size_t{0});
  } else if (type == "Metaspace") {
    step.kind = DecStep::Metaspace;
    step.pattern = get_string(j, "replacement", "\xE2\x96\x81");
    if (!parse_prepend_scheme(j, &step.prepend, error, "decoder Metaspace")) return false;
  } else {
    *error = "decoder " + type +
             " is not supported (supported: Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence of those, null)";
    return false;
  }
  decoders.push_back(std::move(step));
  return true;
}

bool HfTokenizer::Impl::parse_model(const json& m, std::string* error) {
  if (!m.is_object()) {
    *error = "model is missing or not an object";
    return false;
  }
  const std::string type = get_string(m, "type", "BPE");
  if (type != "BPE") {
    *error = "model " + type + " is not supported (supported: BPE)";
    return false;
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = m.find(key);
    if (it != m.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
      *error = std::string("model BPE ") + key + " is not supported (must be null)";
      return false;
    }
  }
  const auto dropout = m.find("dropout");
  if (dropout != m.end() && !dropout->is_null() && !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    *error = "model BPE dropout is not supported (must be null)";
    return false;
  }
  byte_fallback = get_bool(m, "byte_fallback", false);
  fuse_unk = get_bool(m, "fuse_unk", false);
  ignore_merges = get_bool(m, "ignore_merges", false);

  const auto v = m.find("vocab");
  if (v == m.end() || !v->is_object()) {
    *error = "model BPE has no vocab object";
    return false;
  }
  vocab.reserve(v->size());
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
        it.value().get<std::int64_t>() > INT32_MAX) {
      *error = "model BPE vocab entry \"" + it.key() + "\" has no valid id";
      return false;
    }
    const auto id = static_cast<std::int32_t>(it.value().get<std::int64_t>());
    vocab[it.key()] = id;
    if (id_to_token.size() <= static_cast<std::size_t>(id)) id_to_token.resize(static_cast<std::size_t>(id) + 1);
    id_to_token[static_cast<std::size_t>(id)] = it.key();
  }
  const std::string unk = get_string(m, "unk_token");
  if (!unk.empty()) {
    const auto it = vocab.find(unk);
    if (it != vocab.end()) unk_id = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    const auto it = vocab.find(name);
    byte_ids[static_cast<std::size_t>(b)] = it == vocab.end() ? -1 : it->second;
  }

  const auto ms = m.find("merges");
  if (ms == m.end() || ms->is_null()) return true;
  if (!ms->is_array()) {
    *error = "model BPE merges is not an array";
    return false;
  }
  merges.reserve(ms->size());
  std::string a, b;
  std::uint32_t rank = 0;
  for (const json& entry : *ms) {
    if (entry.is_string()) {
      const std::string& s = entry.get_ref<const std::string&>();
      const std::size_t space = s.find(' ');
      if (space == std::string::npos) {
        *error = "model BPE merge \"" + s + "\" is not two space-separated tokens";
        return false;
      }
      a.assign(s, 0, space);
      b.assign(s, space + 1, std::string::npos);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      *error = "model BPE merge #" + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]";
      return false;
    }
    const auto ia = vocab.find(a), ib = vocab.find(b), inew = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || inew == vocab.end()) {
      *error = "model BPE merge #" + std::to_string(rank) + " (\"" + a + "\", \"" + b +
               "\") uses a token missing from the vocab";
      return false;
    }
    const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(ia->second)) << 32) |
                              static_cast<std::uint32_t>(ib->second);
    merges[key] = {rank, inew->second};  // a repeated pair keeps its last rank, like HF
    ++rank;
  }
  return true;
}

std::string HfTokenizer::Impl::normalize(std::string s) const {
  for (const NormStep& n : normalizers) {
    if (n.kind == NormStep::Replace) s = replace_all(s, n.pattern, n.content);
    else if (!s.empty()) s.insert(0, n.content);
  }
  return s;
}

std::vector<Piece> HfTokenizer::Impl::pre_tokenize(Piece piece) const {
  std::vector<Piece> pieces{std::move(piece)};
  for (const PreStep& p : pre_tokenizers) {
    std::vector<Piece> next;
    for (Piece& cur : pieces) {
      if (p.kind == PreStep::Split) {
        for (Piece& sub : split_literal(cur, p.pattern, p.behavior)) next.push_back(std::move(sub));
        continue;
      }
      cur.text = replace_all(cur.text, " ", p.pattern);
      const bool starts = cur.text.compare(0, p.pattern.size(), p.pattern) == 0;
      if (!starts && (p.prepend == PrependScheme::Always || (p.prepend == PrependScheme::First && cur.at_start))) {
        cur.text.insert(0, p.pattern);
      }
      if (p.split) {
        for (Piece& sub : split_literal(cur, p.pattern, SplitBehavior::MergedWithNext)) next.push_back(std::move(sub));
      } else if (!cur.text.empty()) {
        next.push_back(std::move(cur));
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

void HfTokenizer::Impl::bpe(const std::string& word, std::vector<std::int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    const auto it = vocab.find(word);
    if (it != vocab.end()) {
      out->push_back(it->second);
      return;
    }
  }
  struct Symbol {
    std::int32_t id;
    std::int64_t prev, next;
    std::size_t len;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&symbols](std::int32_t id, std::size_t len) {
    const auto n = static_cast<std::int64_t>(symbols.size());
    if (!symbols.empty()) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, len});
  };
  bool have_unk = false;
  std::size_t unk_len = 0;
  std::string ch;
  for (std::size_t pos = 0; pos < word.size();) {
    const std::size_t len = char_length(word, pos);
    ch.assign(word, pos, len);
    pos += len;
    const auto it = vocab.find(ch);
    if (it != vocab.end()) {
      if (have_unk) {
        add(unk_id, unk_len);
        have_unk = false;
      }
      add(it->second, len);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (unsigned char c : ch) all = all && byte_ids[c] >= 0;
      if (all) {
        // HF adds the bytes without flushing a pending unk first.
        for (unsigned char c : ch) add(byte_ids[c], 1);
        continue;
      }
    }
    if (unk_id >= 0) {
      if (have_unk && fuse_unk) {
        unk_len += len;
      } else {
        if (have_unk) add(unk_id, unk_len);
        have_unk = true;
        unk_len = len;
      }
    }
  }
  if (have_unk) add(unk_id, unk_len);

  struct Merge {
    std::uint32_t rank;
    std::size_t pos;
    std::int32_t new_id;
    bool operator<(const Merge& o) const {  // max-heap on "better": lower rank, then lower pos
      if (rank != o.rank) return rank > o.rank;
      return pos > o.pos;
    }
  };
  const auto lookup = [this](std::int32_t a, std::int32_t b) {
    const std::uint64_t key =
        (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    const auto it = merges.find(key);
    return it == merges.end() ? nullptr : &it->second;
  };
  std::priority_queue<Merge> queue;
  for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const auto* m = lookup(symbols[i].id, symbols[i + 1].id)) queue.push({m->first, i, m->second});
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    const auto next_pos = static_cast<std::size_t>(cur.next);
    const Symbol right = symbols[next_pos];
    const auto* m = lookup(cur.id, right.id);
    if (m == nullptr || m->second != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0 && static_cast<std::size_t>(right.next) < symbols.size()) {
      symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::int64_t>(top.pos);
    }
    if (cur.prev >= 0) {
      const auto prev = static_cast<std::size_t>(cur.prev);
      if (const auto* pm = lookup(symbols[prev].id, cur.id)) queue.push({pm->first, prev, pm->second});
    }
    if (cur.next >= 0 && static_cast<std::size_t>(cur.next) < symbols.size()) {
      if (const auto* nm = lookup(cur.id, symbols[static_cast<std::size_t>(cur.next)].id)) {
        queue.push({nm->first, top.pos, nm->second});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) out->push_back(s.id);
  }
}

// Splits `text` on added tokens (raw pass: normalized=false tokens on the
// original text; normalized pass: normalized=true tokens on normalized text),
// emitting their ids and processing the pieces between them.
void HfTokenizer::Impl::split_added(const std::string& text, bool normalized_pass, bool at_start,
                                    std::vector<std::int32_t>* out) const {
  const Trie& trie = normalized_pass ? norm_trie : raw_trie;
  const auto flush = [&](std::size_t from, std::size_t to) {
    if (to <= from) return;
    const std::string piece = text.substr(from, to - from);
    const bool piece_at_start = at_start && from == 0;
    if (!normalized_pass) {
      split_added(normalize(piece), true, piece_at_start, out);
      return;
    }
    for (const Piece& p : pre_tokenize({piece, piece_at_start})) bpe(p.text, out);
  };
  std::size_t start_offset = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t length = 0;
    const int index = trie.empty() ? -1 : trie.longest(text, pos, &length);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = added[static_cast<std::size_t>(index)];
    std::size_t start = pos, stop = pos + length;
    if (tok.single_word) {
      const bool start_ok = start == 0 || !is_word_char(last_char(text, start));
      const bool stop_ok = stop == text.size() || !is_word_char(decode_at(text, stop, char_length(text, stop)));
      if (!start_ok || !stop_ok) {
        pos = stop;  // like the Aho-Corasick iterator, resume after the discarded match
        continue;
      }
    }
    if (tok.lstrip) {
      std::size_t s = start;
      while (s > start_offset) {
        std::size_t b = s - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        if (!is_whitespace(decode_at(text, b, char_length(text, b)))) break;
        s = b;
      }
      start = std::max(s, start_offset);
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        const std::size_t len = char_length(text, stop);
        if (!is_whitespace(decode_at(text, stop, len))) break;
        stop += len;
      }
    }
    flush(start_offset, start);
    out->push_back(tok.id);
    start_offset = stop;
    pos = stop;
  }
  flush(start_offset, text.size());
}

std::optional<HfTokenizer> HfTokenizer::load(const std::string& path, std::string* error) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  try {
    std::string file = path;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      file = path + (path.empty() || path.back() == '/' ? "" : "/") + "tokenizer.json";
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      *error = "cannot open tokenizer file " + file;
      return std::nullopt;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    auto impl = std::make_shared<Impl>();
    {
      json doc;
      try {
        doc = json::parse(buffer.str());
      } catch (const json::exception& e) {
        *error = "tokenizer file " + file + " is not valid JSON: " + e.what();
        return std::nullopt;
      }
      buffer.str(std::string());
      if (!doc.is_object()) {
        *error = "tokenizer file " + file + " is not a JSON object";
        return std::nullopt;
      }
      bool fused = false;
      if (!impl->parse_normalizer(doc.value("normalizer", json()), error) ||
          !impl->parse_pre_tokenizer(doc.value("pre_tokenizer", json()), error) ||
          !impl->parse_decoder(doc.value("decoder", json()), error, &fused)) {
        return std::nullopt;
      }
      auto model = doc.find("model");
      if (!impl->parse_model(model == doc.end() ? json() : *model, error)) return std::nullopt;
      if (model != doc.end()) *model = json();  // free the vocab/merges DOM early

      const auto at = doc.find("added_tokens");
      if (at != doc.end() && at->is_array()) {
        for (const json& t : *at) {
          AddedToken tok;
          tok.content = get_string(t, "content");
          if (!t.contains("id") || !t["id"].is_number_integer() || t["id"].get<std::int64_t>() < 0 ||
              t["id"].get<std::int64_t>() > INT32_MAX || tok.content.empty()) {
            *error = "added token \"" + tok.content + "\" has no valid id or content";
            return std::nullopt;
          }
          tok.id = static_cast<std::int32_t>(t["id"].get<std::int64_t>());
          // Like HF's AddedVocabulary::add_tokens: content the model already
          // knows keeps the model's id, whatever the file says.
          const auto known = impl->vocab.find(tok.content);
          if (known != impl->vocab.end()) tok.id = known->second;
          tok.special = get_bool(t, "special", false);
          tok.lstrip = get_bool(t, "lstrip", false);
          tok.rstrip = get_bool(t, "rstrip", false);
          tok.single_word = get_bool(t, "single_word", false);
          tok.normalized = get_bool(t, "normalized", !tok.special);
          impl->added.push_back(std::move(tok));
        }
      }
    }
    Impl& im = *impl;
    for (std::size_t i = 0; i < im.added.size(); ++i) {
      const AddedToken& tok = im.added[i];
      const auto idx = static_cast<std::size_t>(tok.id);
      if (im.id_to_token.size() <= idx) im.id_to_token.resize(idx + 1);
      im.id_to_token[idx] = tok.content;
      if (im.special.size() <= idx) im.special.resize(idx + 1, 0);
      im.special[idx] = tok.special ? 1 : 0;
      im.added_by_content[tok.content] = tok.id;
      if (tok.normalized) im.norm_trie.insert(im.normalize(tok.content), static_cast<int>(i));
      else im.raw_trie.insert(tok.content, static_cast<int>(i));
    }
    im.special.resize(im.id_to_token.size(), 0);
    return HfTokenizer(std::move(impl));
  } catch (const std::exception& e) {
    *error = std::string("cannot load tokenizer ") + path + ": " + e.what();
    return std::nullopt;
  }
}

std::vector<std::int32_t> HfTokenizer::encode(const std::string& text) const {
  std::vector<std::int32_t> out;
  try {
    impl_->split_added(text, false, true, &out);
  } catch (const std::exception&) {
    // Allocation failure only; return what was produced.
  }
  return out;
}

std::string HfTokenizer::token_bytes(std::int32_t id) const { return token_bytes(id, false); }

std::string HfTokenizer::token_bytes(std::int32_t id, bool first_token) const {
  const Impl& im = *impl_;
  if (id < 0 || static_cast<std::size_t>(id) >= im.id_to_token.size()) return std::string();
  const auto idx = static_cast<std::size_t>(id);
  if (im.special[idx]) return std::string();
  std::string tok = im.id_to_token[idx];
  if (im.decoders.empty()) return tok;
  for (const DecStep& d : im.decoders) {
    switch (d.kind) {
      case DecStep::Replace:
        tok = replace_all(tok, d.pattern, d.content);
        break;
      case DecStep::ByteFallback:
        if (tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>') {
          const std::string hex = tok.substr(3, 2);
          if (std::isxdigit(static_cast<unsigned char>(hex[0])) && std::isxdigit(static_cast<unsigned char>(hex[1]))) {
            tok = std::string(1, static_cast<char>(std::stoi(hex, nullptr, 16)));
          }
        }
        break;
      case DecStep::Fuse:
        break;
      case DecStep::Strip: {
        // After a Fuse the strip applies to the whole text: its start only to
        // the first token, its end to a last token we cannot know of.
        if (d.after_fuse && !first_token) break;
        std::size_t cut = 0;
        for (std::size_t n = 0; n < d.start && tok.compare(cut, d.pattern.size(), d.pattern) == 0; ++n) {
          cut += d.pattern.size();
        }
        tok.erase(0, cut);
        if (!d.after_fuse) {
          for (std::size_t n = 0; n < d.stop && tok.size() >= d.pattern.size() &&
                                  tok.compare(tok.size() - d.pattern.size(), d.pattern.size(), d.pattern) == 0;
               ++n) {
            tok.erase(tok.size() - d.pattern.size());
          }
        }
        break;
      }
      case DecStep::Metaspace:
        tok = replace_all(tok, d.pattern, " ");
        if (first_token && d.prepend != PrependScheme::Never && !tok.empty() && tok[0] == ' ') tok.erase(0, 1);
        break;
    }
  }
  return tok;
}

std::optional<std::int32_t> HfTokenizer::token_id(const std::string& content) const {
  const auto a = impl_->added_by_content.find(content);
  if (a != impl_->added_by_content.end()) return a->second;
  const auto v = impl_->vocab.find(content);
  if (v != impl_->vocab.end()) return v->second;
  return std::nullopt;
}

bool HfTokenizer::is_special(std::int32_t id) const {
  return id >= 0 && static_cast<std::size_t>(id) < impl_->special.size() && impl_->special[static_cast<std::size_t>(id)];
}

std::size_t HfTokenizer::vocab_size() const { return impl_->id_to_token.size(); }

}  // namespace orchard
