// Next-token choice from logits: greedy (temperature 0, the default and what
// reference checks use) or temperature + top-p (nucleus) sampling with a
// seeded generator, so a given seed reproduces the same ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace orchard {

struct SamplingParams {
  double temperature = 0.0;
  double top_p = 1.0;
  std::uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  /// Picks a token id from `count` logits (count > 0).
  std::int32_t sample(const float* logits, std::size_t count);

  bool greedy() const { return greedy_; }

 private:
  double uniform();  // [0, 1), same sequence on every platform for a seed

  SamplingParams params_;
  bool greedy_;
  std::mt19937_64 engine_;
  std::vector<double> weights_;
  std::vector<std::int32_t> order_;
};

/// Index of the largest logit (the first one on ties).
std::int32_t argmax(const float* logits, std::size_t count);

}  // namespace orchard
