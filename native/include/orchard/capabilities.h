// `orchard-runner --capabilities`: what this build can load, as one JSON line,
// so an agent can refuse a model before downloading it (rollout preflight):
//
//   {"version":"0.1.0","runtimes":{"sim":{"versions":["1"],"profiles":[]},
//    "executorch":{"versions":["1.2.0"],"profiles":["gemma4-e2b-extcache","llm-standard"]}}}
//
// `executorch` is present only in a build with ExecuTorch.
#pragma once

#include <optional>
#include <string>

namespace orchard {

/// The JSON line (without its newline). `executorch_version` is the ExecuTorch
/// version the build links, or nullopt for a build without ExecuTorch.
std::string capabilities_json(const std::optional<std::string>& executorch_version);

}  // namespace orchard
