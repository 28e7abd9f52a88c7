// Backend selection. Compiled into the executable (not the core library) so
// that ORCHARD_WITH_EXECUTORCH decides whether the executorch backend exists.
#include "orchard/backend.h"

namespace orchard {

std::optional<std::string> executorch_runtime_version() {
#ifdef ORCHARD_WITH_EXECUTORCH
  return std::string(ORCHARD_EXECUTORCH_VERSION);
#else
  return std::nullopt;
#endif
}

BackendLoad load_backend(const Options& options) {
  if (options.backend == "sim") return load_sim_backend(options);
  if (options.backend == "executorch") {
#ifdef ORCHARD_WITH_EXECUTORCH
    return load_executorch_backend(options);
#else
    BackendLoad result;
    result.error = protocol::make_error(protocol::ErrorCode::Unsupported, kExecuTorchMissingMessage);
    return result;
#endif
  }
  BackendLoad result;
  result.error = protocol::make_error(protocol::ErrorCode::Unsupported,
                                      "unknown backend \"" + options.backend + "\"");
  return result;
}

}  // namespace orchard
