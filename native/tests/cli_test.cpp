#include <gtest/gtest.h>

#include "orchard/cli.h"

namespace orchard {
namespace {

using Action = CommandLine::Action;

TEST(CommandLine, SimDefaults) {
  CommandLine c = parse_command_line({"--backend", "sim"});
  ASSERT_EQ(c.action, Action::Run) << c.error;
  EXPECT_EQ(c.options.backend, "sim");
  EXPECT_FALSE(c.options.max_context);
  // Unset: the sim takes them from a simulated model file, else the defaults.
  EXPECT_FALSE(c.options.sim_prefill_tok_s);
  EXPECT_FALSE(c.options.sim_decode_tok_s);
  EXPECT_FALSE(c.options.sim_load_ms);
  EXPECT_EQ(kDefaultSimPrefillTokS, 200.0);
  EXPECT_EQ(kDefaultSimDecodeTokS, 20.0);
  EXPECT_EQ(kDefaultSimLoadMs, 200);
  EXPECT_TRUE(c.options.model_path.empty());
  EXPECT_FALSE(c.options.verify);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(CommandLine, SimTakesASimulatedModelFile) {
  CommandLine c = parse_command_line({"--backend", "sim", "--model", "/data/models/abc/model.sim", "--sim-load-ms=0"});
  ASSERT_EQ(c.action, Action::Run) << c.error;
  EXPECT_EQ(c.options.model_path, "/data/models/abc/model.sim");
  EXPECT_EQ(c.options.sim_load_ms, std::optional<int>(0));
  EXPECT_TRUE(c.warnings.empty()) << "--model is not ignored by the sim any more";
}

TEST(CommandLine, SimFlagsBothSpellings) {
  CommandLine c = parse_command_line({"--backend=sim", "--max-context", "64", "--sim-prefill-tok-s=5000",
                                      "--sim-decode-tok-s", "2000", "--sim-load-ms", "0", "--model-name", "demo"});
  ASSERT_EQ(c.action, Action::Run) << c.error;
  EXPECT_EQ(c.options.max_context, std::optional<std::size_t>(64));
  EXPECT_EQ(c.options.sim_prefill_tok_s, std::optional<double>(5000.0));
  EXPECT_EQ(c.options.sim_decode_tok_s, std::optional<double>(2000.0));
  EXPECT_EQ(c.options.sim_load_ms, std::optional<int>(0));
  EXPECT_EQ(c.options.model_name, std::optional<std::string>("demo"));
}

TEST(CommandLine, ExecuTorchFlags) {
  CommandLine c = parse_command_line({"--backend", "executorch", "--model", "/m/model.pte", "--tokenizer", "/m/tok",
                                      "--profile", "llm-standard", "--threads", "4", "--verify"});
  ASSERT_EQ(c.action, Action::Run) << c.error;
  EXPECT_EQ(c.options.model_path, "/m/model.pte");
  EXPECT_EQ(c.options.tokenizer_dir, "/m/tok");
  EXPECT_EQ(c.options.profile, "llm-standard");
  EXPECT_EQ(c.options.threads, 4);
  EXPECT_TRUE(c.options.verify);
  EXPECT_EQ(parse_command_line({"--backend", "executorch", "--model", "a", "--tokenizer", "b"}).options.profile,
            "gemma4-e2b-extcache");
}

TEST(CommandLine, VersionCapabilitiesAndHelp) {
  EXPECT_EQ(parse_command_line({"--version"}).action, Action::Version);
  EXPECT_EQ(parse_command_line({"--capabilities"}).action, Action::Capabilities);
  EXPECT_EQ(parse_command_line({"--help"}).action, Action::Help);
  EXPECT_NE(usage_text().find("--capabilities"), std::string::npos);
}

TEST(CommandLine, UsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"--backend"},
      {"--backend", "gpu"},
      {"--backend", "sim", "--frobnicate"},
      {"--backend", "sim", "extra"},
      {"--backend", "sim", "--max-context", "many"},
      {"--backend", "sim", "--max-context", "1"},
      {"--backend", "sim", "--sim-decode-tok-s", "0"},
      {"--backend", "sim", "--sim-decode-tok-s", "-5"},
      {"--backend", "sim", "--sim-load-ms", "1.5"},
      {"--backend", "sim", "--verify"},  // sim has no built-in reference ids
      {"--backend", "sim", "--verify", "--verify-ids", "1,,2"},
      {"--backend", "executorch", "--tokenizer", "t"},
      {"--backend", "executorch", "--model", "m"},
      {"--backend", "executorch", "--model", "m", "--tokenizer", "t", "--threads", "0"},
      {"--version=1"},
      {"--capabilities=yes"},
      {"--backend", "sim", "--model", ""},
  };
  for (const auto& args : bad) {
    CommandLine c = parse_command_line(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(c.action, Action::Usage) << joined;
    EXPECT_FALSE(c.error.empty()) << joined;
  }
  EXPECT_NE(parse_command_line({"--backend", "sim", "--frobnicate"}).error.find("--frobnicate"), std::string::npos);
}

TEST(CommandLine, VerifyIds) {
  CommandLine c = parse_command_line({"--backend", "sim", "--verify", "--verify-ids", "818, 5279,106"});
  ASSERT_EQ(c.action, Action::Run) << c.error;
  EXPECT_EQ(c.options.verify_ids, (std::optional<std::vector<std::int32_t>>{{818, 5279, 106}}));
  EXPECT_FALSE(parse_id_list(""));
  EXPECT_FALSE(parse_id_list("1,-2"));
  EXPECT_FALSE(parse_id_list("x"));
  EXPECT_FALSE(parse_id_list("99999999999"));
}

TEST(CommandLine, FlagsForTheOtherBackendWarn) {
  CommandLine c = parse_command_line({"--backend", "sim", "--threads", "2"});
  ASSERT_EQ(c.action, Action::Run);
  EXPECT_FALSE(c.warnings.empty());
}

}  // namespace
}  // namespace orchard
