#include "orchard/prefill.h"

#include <algorithm>

namespace orchard {

PrefillPlan plan_prefill(const ResidentTokens& resident, const std::vector<std::int32_t>& prompt,
                         bool same_session) {
  PrefillPlan plan;
  const auto& fed = resident.fed;
  if (same_session && !prompt.empty()) {
    // At least one prompt token must be fed, to get fresh logits.
    const std::size_t limit = std::min(fed.size(), prompt.size() - 1);
    while (plan.keep < limit && fed[plan.keep] == prompt[plan.keep]) ++plan.keep;
  }
  plan.reset = plan.keep == 0 && (!fed.empty() || resident.pending.has_value());
  plan.feed.assign(prompt.begin() + static_cast<std::ptrdiff_t>(plan.keep), prompt.end());
  return plan;
}

}  // namespace orchard
