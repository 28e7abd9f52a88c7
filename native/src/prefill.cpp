#include "orchard/prefill.h"

#include <algorithm>

namespace orchard {

PrefillPlan plan_prefill(const ResidentTokens& resident, const std::vector<std::int32_t>& prompt,
                         bool same_session) {
  PrefillPlan plan;
  const auto& fed = resident.fed;
  const bool extends = same_session && !fed.empty() && prompt.size() > fed.size() &&
                       std::equal(fed.begin(), fed.end(), prompt.begin());
  plan.keep = extends ? fed.size() : 0;
  plan.reset = !extends && (!fed.empty() || resident.pending.has_value());
  plan.feed.assign(prompt.begin() + static_cast<std::ptrdiff_t>(plan.keep), prompt.end());
  return plan;
}

}  // namespace orchard
