#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "orchard/sampler.h"

namespace orchard {
namespace {

std::vector<std::int32_t> draw(const SamplingParams& params, const std::vector<float>& logits, int n) {
  Sampler sampler(params);
  std::vector<std::int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(sampler.sample(logits.data(), logits.size()));
  return ids;
}

TEST(Sampler, GreedyPicksTheLargestLogitAndTheFirstOnTies) {
  const std::vector<float> logits = {0.1f, 3.0f, -2.0f, 3.0f};
  Sampler sampler(SamplingParams{0.0, 1.0, 123});
  EXPECT_TRUE(sampler.greedy());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(sampler.sample(logits.data(), logits.size()), 1);
  EXPECT_EQ(argmax(logits.data(), logits.size()), 1);
}

TEST(Sampler, SeededTemperatureSamplingIsReproducible) {
  const std::vector<float> logits = {1.0f, 1.2f, 0.8f, 1.1f, 0.9f};
  const auto a = draw(SamplingParams{1.0, 1.0, 42}, logits, 200);
  const auto b = draw(SamplingParams{1.0, 1.0, 42}, logits, 200);
  EXPECT_EQ(a, b);
  const auto c = draw(SamplingParams{1.0, 1.0, 43}, logits, 200);
  EXPECT_NE(a, c) << "another seed gives another sequence";
}

TEST(Sampler, TemperatureReallySamples) {
  const std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f};
  const auto ids = draw(SamplingParams{1.0, 1.0, 7}, logits, 400);
  std::map<std::int32_t, int> counts;
  for (auto id : ids) ++counts[id];
  EXPECT_EQ(counts.size(), 4u) << "every equally likely token shows up";
  for (const auto& [id, count] : counts) {
    EXPECT_GT(count, 50) << "token " << id;
  }
}

TEST(Sampler, TopPKeepsOnlyTheNucleus) {
  // Probabilities ≈ 0.84, 0.11, 0.04, 0.01: top_p 0.5 leaves only token 0,
  // top_p 0.9 leaves tokens 0 and 1.
  const std::vector<float> logits = {4.0f, 2.0f, 1.0f, -0.5f};
  for (auto id : draw(SamplingParams{1.0, 0.5, 9}, logits, 300)) EXPECT_EQ(id, 0);
  std::map<std::int32_t, int> counts;
  for (auto id : draw(SamplingParams{1.0, 0.9, 9}, logits, 600)) ++counts[id];
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts.count(2), 0u);
  EXPECT_EQ(counts.count(3), 0u);
}

TEST(Sampler, LowTemperatureApproachesGreedy) {
  const std::vector<float> logits = {1.0f, 2.0f, 1.5f};
  for (auto id : draw(SamplingParams{0.01, 1.0, 5}, logits, 100)) EXPECT_EQ(id, 1);
}

}  // namespace
}  // namespace orchard
