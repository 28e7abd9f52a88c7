// The runner's own version, reported in `ready.version` and by `--version`.
#pragma once

namespace orchard {

inline constexpr const char* kRunnerVersion = "0.1.0";

}  // namespace orchard
