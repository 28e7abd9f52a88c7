// The prefill plan: which prompt tokens to feed given what the cache holds.
#include <gtest/gtest.h>

#include "orchard/prefill.h"

namespace orchard {
namespace {

using Ids = std::vector<std::int32_t>;

TEST(PrefillPlan, EmptyCacheFeedsEverything) {
  PrefillPlan p = plan_prefill(ResidentTokens{}, {1, 2, 3}, false);
  EXPECT_EQ(p.keep, 0u);
  EXPECT_EQ(p.feed, (Ids{1, 2, 3}));
  EXPECT_FALSE(p.reset) << "nothing to clear";
}

TEST(PrefillPlan, SecondTurnFeedsOnlyTheSuffixIncludingThePendingToken) {
  // Turn 1: prompt [2,105,9,106,10,105,11], generated [20,21,106]; the last
  // sampled id (106) was emitted but never fed.
  ResidentTokens resident{{2, 105, 9, 106, 10, 105, 11, 20, 21}, 106};
  // Turn 2 re-renders the whole conversation: it repeats turn 1, then the
  // end-of-turn for the answer (the pending id), then the new user turn.
  Ids prompt = {2, 105, 9, 106, 10, 105, 11, 20, 21, 106, 10, 105, 12, 106, 10, 105, 11};
  PrefillPlan p = plan_prefill(resident, prompt, true);
  EXPECT_EQ(p.keep, 9u);
  EXPECT_EQ(p.feed, (Ids{106, 10, 105, 12, 106, 10, 105, 11}));
  EXPECT_FALSE(p.reset);
}

TEST(PrefillPlan, PendingTokenDoesNotHaveToMatch) {
  // The pending token is not in the cache: a prompt that diverges exactly there
  // still reuses every fed position.
  ResidentTokens resident{{1, 2, 3}, 99};
  PrefillPlan p = plan_prefill(resident, {1, 2, 3, 4, 5}, true);
  EXPECT_EQ(p.keep, 3u);
  EXPECT_EQ(p.feed, (Ids{4, 5}));
}

TEST(PrefillPlan, DifferentSessionResets) {
  ResidentTokens resident{{1, 2, 3}, 4};
  PrefillPlan p = plan_prefill(resident, {1, 2, 3, 4, 5}, false);
  EXPECT_EQ(p.keep, 0u);
  EXPECT_TRUE(p.reset);
  EXPECT_EQ(p.feed, (Ids{1, 2, 3, 4, 5}));
}

TEST(PrefillPlan, DivergingPromptKeepsTheCommonPrefix) {
  // e.g. an answer that re-tokenizes to other ids than were sampled: everything
  // before the first differing id stays, the rest is overwritten.
  ResidentTokens resident{{1, 2, 3, 4, 5}, 6};
  PrefillPlan p = plan_prefill(resident, {1, 2, 9, 4, 5, 6, 7}, true);
  EXPECT_EQ(p.keep, 2u);
  EXPECT_EQ(p.feed, (Ids{9, 4, 5, 6, 7}));
  EXPECT_FALSE(p.reset);
}

TEST(PrefillPlan, DifferentFirstTokenResets) {
  ResidentTokens resident{{1, 2, 3}, std::nullopt};
  PrefillPlan p = plan_prefill(resident, {9, 2, 3, 4}, true);
  EXPECT_EQ(p.keep, 0u);
  EXPECT_TRUE(p.reset);
  EXPECT_EQ(p.feed.size(), 4u);
}

TEST(PrefillPlan, SamePromptAgainFeedsItsLastToken) {
  // Logits only come from feeding: an identical prompt cannot reuse everything.
  ResidentTokens resident{{1, 2, 3}, std::nullopt};
  PrefillPlan p = plan_prefill(resident, {1, 2, 3}, true);
  EXPECT_EQ(p.keep, 2u);
  EXPECT_FALSE(p.reset);
  EXPECT_EQ(p.feed, (Ids{3}));
}

TEST(PrefillPlan, ShorterPromptKeepsWhatItShares) {
  ResidentTokens resident{{1, 2, 3, 4}, std::nullopt};
  PrefillPlan p = plan_prefill(resident, {1, 2}, true);
  EXPECT_EQ(p.keep, 1u);
  EXPECT_EQ(p.feed, (Ids{2}));
  EXPECT_FALSE(p.reset);
}

TEST(PrefillPlan, OnlyPendingResidentStillCountsAsStateToClear) {
  ResidentTokens resident{{}, 7};
  PrefillPlan p = plan_prefill(resident, {1}, true);
  EXPECT_EQ(p.keep, 0u);
  EXPECT_TRUE(p.reset);
}

}  // namespace
}  // namespace orchard
