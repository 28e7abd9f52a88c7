// Wires the sim tokenizer and model into a LoadedBackend, honouring the
// simulated load time.
#include <chrono>
#include <thread>

#include "orchard/backend.h"
#include "orchard/backends/sim.h"

namespace orchard {

BackendLoad load_sim_backend(const Options& options) {
  sim::SimConfig config;
  config.max_context = options.max_context.value_or(kDefaultSimContext);
  config.prefill_tok_s = options.sim_prefill_tok_s;
  config.decode_tok_s = options.sim_decode_tok_s;

  std::this_thread::sleep_for(std::chrono::milliseconds(options.sim_load_ms));

  LoadedBackend loaded;
  loaded.backend = "sim";
  loaded.model_name = options.model_name.value_or("sim (no model)");
  loaded.tokenizer = std::make_unique<sim::SimTokenizer>();
  loaded.model = std::make_unique<sim::SimModel>(config);
  BackendLoad result;
  result.loaded = std::move(loaded);
  return result;
}

}  // namespace orchard
