#include "orchard/capabilities.h"

#include <nlohmann/json.hpp>

#include "orchard/backends/sim_model.h"
#include "orchard/profile.h"
#include "orchard/version.h"

namespace orchard {

std::string capabilities_json(const std::optional<std::string>& executorch_version) {
  using ordered_json = nlohmann::ordered_json;
  ordered_json sim_entry = ordered_json::object();
  sim_entry["versions"] = ordered_json::array({std::to_string(sim::kSimModelFormat)});
  sim_entry["profiles"] = ordered_json::array();
  ordered_json runtimes = ordered_json::object();
  runtimes["sim"] = sim_entry;
  if (executorch_version) {
    ordered_json executorch = ordered_json::object();
    executorch["versions"] = ordered_json::array({*executorch_version});
    executorch["profiles"] = profile_names();
    runtimes["executorch"] = executorch;
  }
  ordered_json out = ordered_json::object();
  out["version"] = kRunnerVersion;
  out["runtimes"] = runtimes;
  return out.dump();
}

}  // namespace orchard
