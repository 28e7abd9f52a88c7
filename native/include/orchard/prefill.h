// Multi-turn KV-cache reuse as a pure function. The cache holds the ids that
// were fed (`fed`); the last sampled token of a generation is `pending`: it was
// emitted but never fed, so it is not in the cache. A new prompt that extends
// the fed ids exactly (and adds at least one token, to get fresh logits) keeps
// them and feeds only the suffix; anything else starts over from position 0.
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
  bool reset = false;                 // the cache must be cleared first
};

/// same_session: the request names the session the cache belongs to.
PrefillPlan plan_prefill(const ResidentTokens& resident, const std::vector<std::int32_t>& prompt,
                         bool same_session);

}  // namespace orchard
