// Multi-turn KV-cache reuse as a pure function. The cache holds the ids that
// were fed (`fed`); the last sampled token of a generation is `pending`: it was
// emitted but never fed, so it is not in the cache. A prompt of the same
// session keeps the longest prefix it shares with the fed ids (leaving at least
// one token to feed, to get fresh logits) and feeds the rest from there,
// overwriting the positions after the prefix; a prompt that shares nothing, or
// another session's, starts over from position 0. A re-rendered history whose
// earlier answer does not re-tokenize to the sampled ids so still reuses
// everything before the first differing id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace orchard {

struct ResidentTokens {
  std::vector<std::int32_t> fed;         // in the KV cache, positions 0..fed.size()-1
  std::optional<std::int32_t> pending;   // sampled last, not yet fed
};

struct PrefillPlan {
  std::size_t keep = 0;               // cache positions kept
  std::vector<std::int32_t> feed;     // prompt[keep:], fed from position `keep`
  bool reset = false;                 // the cache must be cleared first (nothing kept)
};

/// same_session: the request names the session the cache belongs to.
PrefillPlan plan_prefill(const ResidentTokens& resident, const std::vector<std::int32_t>& prompt,
                         bool same_session);

}  // namespace orchard
