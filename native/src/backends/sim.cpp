#include "orchard/backends/sim.h"

#include <algorithm>
#include <limits>
#include <thread>

namespace orchard::sim {
namespace {

constexpr std::int32_t kSpace = ' ';
constexpr std::int32_t kPeriod = '.';
constexpr float kFavouredLogit = 9.0f;
constexpr float kNoiseRange = 4.0f;    // letters and space: noise in [0, 4)
// Every other byte and control token is never sampled (a sampled control byte or a stray
// byte >= 0x80 would be unprintable text); only the favoured token, letters and space are.
constexpr float kNeverLogit = -std::numeric_limits<float>::infinity();

std::uint64_t fnv1a(const std::int32_t* ids, std::size_t count) {
  std::uint64_t hash = 1469598103934665603ull;
  for (std::size_t i = 0; i < count; ++i) {
    auto value = static_cast<std::uint32_t>(ids[i]);
    for (int b = 0; b < 4; ++b) {
      hash ^= (value >> (8 * b)) & 0xFFu;
      hash *= 1099511628211ull;
    }
  }
  return hash;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

bool is_word_byte(std::int32_t id) { return (id >= 'a' && id <= 'z') || id == kSpace; }

}  // namespace

const std::vector<std::string>& vocabulary() {
  static const std::vector<std::string> words = {
      "apple",  "orchard", "tree",   "branch", "leaf",    "blossom", "harvest", "river",
      "stone",  "light",   "quiet",  "garden", "morning", "evening", "field",   "path",
      "bee",    "honey",   "crate",  "ladder", "basket",  "cider",   "seed",    "root",
      "fruit",  "ripe",    "sweet",  "cool",   "warm",    "rain",    "sun",     "wind",
      "the",    "a",       "of",     "and",    "under",   "over",    "slowly",  "bright",
      "green",  "red",     "little", "old",    "north",   "south",   "pi",      "board",
      "café",   "naïve",   "—",      "🍎",     "über",    "façade",  "jalapeño", "déjà",
      "vu",     "crème",   "🌳",     "½",      "señor",   "smörgås",
  };
  return words;
}

// ------------------------------------------------------------------ tokenizer

Status SimTokenizer::encode(const std::string& text, std::vector<std::int32_t>* ids) const {
  ids->clear();
  ids->reserve(text.size());
  for (unsigned char byte : text) ids->push_back(static_cast<std::int32_t>(byte));
  return Status::success();
}

std::string SimTokenizer::token_bytes(std::int32_t id) const {
  if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
  return std::string();  // control tokens have no text
}

SpecialTokens SimTokenizer::special_tokens() const {
  SpecialTokens special;
  special.bos = kBos;
  special.start_of_turn = kStartOfTurn;
  special.end_of_turn = kEndOfTurn;
  special.stop_ids = {kEndOfTurn, kEos};
  return special;
}

// ------------------------------------------------------------------ model

SimModel::SimModel(const SimConfig& config) : config_(config), logits_(kVocabSize, 0.0f) {}

Status SimModel::reset() {
  history_.clear();
  generation_start_ = 0;
  return Status::success();
}

Status SimModel::forward(const std::int32_t* tokens, std::size_t count, std::size_t start_pos,
                         FeedKind kind, Logits* logits) {
  const auto started = std::chrono::steady_clock::now();
  if (count == 0) return Status::failure("forward called with no tokens");
  if (start_pos > history_.size()) {
    return Status::failure("position " + std::to_string(start_pos) + " is past the " +
                           std::to_string(history_.size()) + " tokens in the cache");
  }
  if (start_pos + count > config_.max_context) {
    return Status::failure("position " + std::to_string(start_pos + count - 1) +
                           " is outside the context of " + std::to_string(config_.max_context));
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (tokens[i] < 0 || static_cast<std::size_t>(tokens[i]) >= kVocabSize) {
      return Status::failure("token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
    }
  }

  history_.resize(start_pos);
  history_.insert(history_.end(), tokens, tokens + count);
  if (kind == FeedKind::Prompt) generation_start_ = history_.size();
  if (generation_start_ > history_.size()) generation_start_ = history_.size();
  compute_logits();

  // Pace the step so tokens/s measured by the loop matches the configured rate.
  const double rate = kind == FeedKind::Prompt ? config_.prefill_tok_s : config_.decode_tok_s;
  if (rate > 0) {
    const auto duration = std::chrono::duration<double>(static_cast<double>(count) / rate);
    std::this_thread::sleep_until(started +
                                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(duration));
  }

  logits->data = logits_.data();
  logits->size = logits_.size();
  return Status::success();
}

std::int32_t SimModel::shift(std::int32_t id) const {
  if (config_.token_offset == 0 || id < 0 || id > 255) return id;
  return (id + config_.token_offset) & 0xFF;
}

std::int32_t SimModel::unshift(std::int32_t id) const {
  if (config_.token_offset == 0 || id < 0 || id > 255) return id;
  return (id - config_.token_offset + 256) & 0xFF;
}

std::int32_t SimModel::favoured_token() const {
  const auto& words = vocabulary();
  const std::size_t start = generation_start_;
  // The history as the plain sim would have produced it: what this generation
  // emitted (everything after the prompt) with the token offset undone. The
  // prompt is taken as fed, so a conversation is the same whether its earlier
  // answers come from the cache or are sent back as text.
  std::vector<std::int32_t> plain(history_);
  for (std::size_t i = start; i < plain.size(); ++i) plain[i] = unshift(plain[i]);

  const std::uint64_t prompt_hash = fnv1a(plain.data(), start);
  const std::size_t target_words = kMinWords + mix(prompt_hash) % (kMaxWords - kMinWords + 1);

  // Words completed so far, and where the current word starts.
  std::size_t spaces = 0;
  std::size_t word_start = start;
  for (std::size_t i = start; i < plain.size(); ++i) {
    if (plain[i] == kSpace) {
      ++spaces;
      word_start = i + 1;
    }
  }
  const bool last_word = spaces + 1 >= target_words;

  // The word this position should spell, chosen by the history before it.
  const std::string& word = words[mix(fnv1a(plain.data(), word_start)) % words.size()];
  std::string target = word;
  if (last_word) target += '.';

  const std::size_t typed = plain.size() - word_start;
  bool prefix = typed < target.size();
  for (std::size_t i = 0; prefix && i < typed; ++i) {
    prefix = plain[word_start + i] == static_cast<std::int32_t>(static_cast<unsigned char>(target[i]));
  }
  if (prefix) return shift(static_cast<std::int32_t>(static_cast<unsigned char>(target[typed])));
  // The word is complete, or sampling wandered off it: end the word or the turn.
  if (last_word) {
    const bool ends_with_period = typed > 0 && plain.back() == kPeriod;
    return ends_with_period || typed == 0 ? kEndOfTurn : shift(kPeriod);
  }
  return shift(kSpace);
}

void SimModel::compute_logits() {
  const std::int32_t favoured = favoured_token();
  // Inside a multi-byte character (the favoured byte continues one) nothing else may be
  // sampled: a letter there would make invalid UTF-8, shown as U+FFFD (a missing-glyph
  // box). Sampling still wanders between characters, as before.
  const std::int32_t plain = unshift(favoured);
  if (plain >= 0x80 && plain <= 0xBF) {
    std::fill(logits_.begin(), logits_.end(), kNeverLogit);
    logits_[static_cast<std::size_t>(favoured)] = kFavouredLogit;
    return;
  }
  const std::uint64_t history_hash = fnv1a(history_.data(), history_.size());
  for (std::size_t id = 0; id < kVocabSize; ++id) {
    const auto token = static_cast<std::int32_t>(id);
    if (is_word_byte(unshift(token))) {
      const double unit = static_cast<double>(mix(history_hash ^ (id * 0x100000001B3ull)) >> 11) *
                          (1.0 / 9007199254740992.0);
      logits_[id] = static_cast<float>(unit) * kNoiseRange;
    } else {
      logits_[id] = kNeverLogit;
    }
  }
  logits_[static_cast<std::size_t>(favoured)] = kFavouredLogit;
}

}  // namespace orchard::sim
