#include "orchard/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace orchard {

std::int32_t argmax(const float* logits, std::size_t count) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < count; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<std::int32_t>(best);
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), greedy_(!(params.temperature > 1e-6)), engine_(params.seed) {}

double Sampler::uniform() {
  // 53 random bits → [0, 1); std::uniform_real_distribution is not specified
  // bit-for-bit, this is.
  return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0);
}

std::int32_t Sampler::sample(const float* logits, std::size_t count) {
  if (greedy_ || count == 1) return argmax(logits, count);

  const double max_logit = logits[argmax(logits, count)];
  weights_.resize(count);
  double total = 0.0;
  for (std::size_t i = 0; i < count; ++i) {
    const double w = std::isfinite(logits[i])
                         ? std::exp((static_cast<double>(logits[i]) - max_logit) / params_.temperature)
                         : 0.0;
    weights_[i] = w;
    total += w;
  }
  if (!(total > 0.0)) return argmax(logits, count);

  if (params_.top_p < 1.0) {
    // Smallest set of most likely tokens whose mass reaches top_p.
    order_.resize(count);
    std::iota(order_.begin(), order_.end(), 0);
    std::sort(order_.begin(), order_.end(), [this](std::int32_t a, std::int32_t b) {
      return weights_[static_cast<std::size_t>(a)] > weights_[static_cast<std::size_t>(b)] ||
             (weights_[static_cast<std::size_t>(a)] == weights_[static_cast<std::size_t>(b)] && a < b);
    });
    const double limit = params_.top_p * total;
    double mass = 0.0;
    std::size_t kept = 0;
    while (kept < count) {
      mass += weights_[static_cast<std::size_t>(order_[kept])];
      ++kept;
      if (mass >= limit) break;
    }
    double r = uniform() * mass;
    for (std::size_t k = 0; k < kept; ++k) {
      r -= weights_[static_cast<std::size_t>(order_[k])];
      if (r < 0.0) return order_[k];
    }
    return order_[kept - 1];
  }

  double r = uniform() * total;
  std::size_t last_nonzero = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (weights_[i] <= 0.0) continue;
    last_nonzero = i;
    r -= weights_[i];
    if (r < 0.0) return static_cast<std::int32_t>(i);
  }
  return static_cast<std::int32_t>(last_nonzero);
}

}  // namespace orchard
