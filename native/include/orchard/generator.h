// The token loop, shared by every backend: renders the request (chat template
// or raw prompt), plans the prefill against the resident session, feeds the
// prompt, samples, streams complete UTF-8 text, stops on a stop id, on
// max_new_tokens or on cancel, and measures the run with steady_clock.
// One session is resident at a time (one model, one KV cache).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "orchard/engine.h"
#include "orchard/prefill.h"
#include "orchard/protocol.h"

namespace orchard {

/// Exactly one of done / error is set.
struct GenerationOutcome {
  std::optional<protocol::Done> done;
  std::optional<protocol::ErrorMessage> error;
};

using TokenSink = std::function<void(const protocol::Token&)>;

class Generator {
 public:
  Generator(Model& model, const Tokenizer& tokenizer);

  /// Runs one request to completion. `cancel` is polled between tokens (and
  /// between prompt chunks); every call ends in a Done or an error.
  GenerationOutcome generate(const protocol::GenerateRequest& request,
                             const std::atomic<bool>& cancel, const TokenSink& emit);

  /// Drops the resident session (and clears the cache) when `session` is
  /// absent or names the resident one.
  std::optional<protocol::ErrorMessage> reset(const std::optional<std::string>& session);

  /// The prompt ids a request renders to; errors carry bad_request (template)
  /// or model_error (tokenizer).
  std::optional<protocol::ErrorMessage> prompt_ids(const protocol::GenerateRequest& request,
                                                   std::vector<std::int32_t>* ids) const;

  struct Snapshot {
    std::optional<std::string> session;
    std::size_t resident_tokens = 0;  // ids in the KV cache
  };
  /// Safe to call from any thread, also while generate() runs.
  Snapshot snapshot() const;

  std::size_t max_context() const { return model_.max_context(); }

 private:
  void publish();
  void forget_session();

  Model& model_;
  const Tokenizer& tokenizer_;
  SpecialTokens special_;
  ResidentTokens resident_;
  std::optional<std::string> session_;

  mutable std::mutex snapshot_mutex_;
  Snapshot snapshot_;
};

}  // namespace orchard
