// Loading a backend: the engine parts (tokenizer + model) the generator runs
// on, and what the ready line says about them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "orchard/cli.h"
#include "orchard/engine.h"
#include "orchard/protocol.h"

namespace orchard {

struct LoadedBackend {
  std::string backend;     // "sim" | "executorch"
  std::string model_name;  // ready.model
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Model> model;
  std::vector<std::int32_t> reference_ids;  // default for --verify; may be empty
};

/// Exactly one of loaded / error is set; error.code is load_failed or unsupported.
struct BackendLoad {
  std::optional<LoadedBackend> loaded;
  std::optional<protocol::ErrorMessage> error;
};

/// Picks the backend named by options.backend (defined with the executable,
/// which knows whether ExecuTorch was compiled in).
BackendLoad load_backend(const Options& options);

/// The ExecuTorch version this executable links, or nullopt when it was built
/// without ExecuTorch (defined with the executable, like load_backend).
std::optional<std::string> executorch_runtime_version();

/// The sim backend (always available): no model, or a simulated model file
/// (--model FILE, see backends/sim_model.h).
BackendLoad load_sim_backend(const Options& options);

#ifdef ORCHARD_WITH_EXECUTORCH
/// The ExecuTorch backend (src/backends/executorch.cpp).
BackendLoad load_executorch_backend(const Options& options);
#endif

/// The message a build without ExecuTorch gives for --backend executorch.
inline constexpr const char* kExecuTorchMissingMessage =
    "this orchard-runner was built without ExecuTorch; rebuild with -DORCHARD_WITH_EXECUTORCH=ON "
    "(see docs/runner.md)";

}  // namespace orchard
