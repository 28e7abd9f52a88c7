// `orchard-runner --capabilities`: one JSON object naming what the build can load.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "orchard/capabilities.h"
#include "orchard/profile.h"
#include "orchard/version.h"

namespace orchard {
namespace {

using json = nlohmann::json;

TEST(Capabilities, SimOnlyBuild) {
  const std::string line = capabilities_json(std::nullopt);
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line";
  const json caps = json::parse(line);
  EXPECT_EQ(caps.at("version"), kRunnerVersion);
  EXPECT_EQ(caps.at("runtimes"), json::parse(R"({"sim":{"versions":["1"],"profiles":[]}})"));
  EXPECT_FALSE(caps.at("runtimes").contains("executorch"));
}

TEST(Capabilities, BuildWithExecuTorchListsItsVersionAndProfiles) {
  const json caps = json::parse(capabilities_json(std::string("1.2.0")));
  EXPECT_EQ(caps.at("runtimes").at("sim"), json::parse(R"({"versions":["1"],"profiles":[]})"));
  const json& executorch = caps.at("runtimes").at("executorch");
  EXPECT_EQ(executorch.at("versions"), json::array({"1.2.0"}));
  EXPECT_EQ(executorch.at("profiles"), json::array({"gemma4-e2b-extcache", "gemma4-extcache", "llm-standard"}));
  EXPECT_EQ(executorch.at("profiles").get<std::vector<std::string>>(), profile_names());
}

TEST(Capabilities, VersionComesFirstInTheLine) {
  const std::string line = capabilities_json(std::nullopt);
  EXPECT_EQ(line.rfind(std::string("{\"version\":\"") + kRunnerVersion + "\",\"runtimes\":", 0), 0u) << line;
}

}  // namespace
}  // namespace orchard
