// Wires the sim tokenizer and model into a LoadedBackend: settings from the
// defaults, then a simulated model file's header (--model FILE), then the
// --sim-* flags; honours the simulated load time.
#include <chrono>
#include <sstream>
#include <thread>

#include "orchard/backend.h"
#include "orchard/backends/sim.h"
#include "orchard/backends/sim_model.h"
#include "orchard/log.h"

namespace orchard {
namespace {

BackendLoad failed(std::string message) {
  BackendLoad result;
  result.error = protocol::make_error(protocol::ErrorCode::LoadFailed, std::move(message));
  return result;
}

std::string base_name(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string format_rate(double value) {
  std::ostringstream out;
  out << value;  // 20, 12.5, 1e+06
  return out.str();
}

}  // namespace

BackendLoad load_sim_backend(const Options& options) {
  sim::SimConfig config;
  config.max_context = options.max_context.value_or(kDefaultSimContext);
  config.prefill_tok_s = kDefaultSimPrefillTokS;
  config.decode_tok_s = kDefaultSimDecodeTokS;
  int load_ms = kDefaultSimLoadMs;
  std::string model_name = "sim (no model)";
  bool fail_load = false;

  if (!options.model_path.empty()) {
    sim::SimHeaderParse read = sim::read_sim_model(options.model_path);
    if (!read.header) return failed(read.error);
    const sim::SimModelHeader& header = *read.header;
    config.prefill_tok_s = header.prefill_tok_s.value_or(config.prefill_tok_s);
    config.decode_tok_s = header.decode_tok_s.value_or(config.decode_tok_s);
    config.token_offset = header.token_offset;
    load_ms = header.load_ms.value_or(load_ms);
    fail_load = header.fail_load;
    // Labelled like the model-less sim, so no one mistakes it for a real model.
    model_name = "sim (" + header.name.value_or(base_name(options.model_path)) + ")";
  }
  config.prefill_tok_s = options.sim_prefill_tok_s.value_or(config.prefill_tok_s);
  config.decode_tok_s = options.sim_decode_tok_s.value_or(config.decode_tok_s);
  load_ms = options.sim_load_ms.value_or(load_ms);

  if (!options.model_path.empty()) {
    log_line("sim: simulated model " + options.model_path + " (\"" + model_name + "\"): prefill " +
             format_rate(config.prefill_tok_s) + " tok/s, decode " + format_rate(config.decode_tok_s) +
             " tok/s, load " + std::to_string(load_ms) + " ms, token offset " +
             std::to_string(config.token_offset) + (fail_load ? ", configured to fail loading" : ""));
  }

  std::this_thread::sleep_for(std::chrono::milliseconds(load_ms));
  if (fail_load) return failed("this simulated model is configured to fail loading");

  LoadedBackend loaded;
  loaded.backend = "sim";
  loaded.model_name = options.model_name.value_or(model_name);
  loaded.tokenizer = std::make_unique<sim::SimTokenizer>();
  loaded.model = std::make_unique<sim::SimModel>(config);
  BackendLoad result;
  result.loaded = std::move(loaded);
  return result;
}

}  // namespace orchard
