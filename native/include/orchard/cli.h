// Command-line flags of orchard-runner, parsed into plain options. Parsing is
// a pure function so flags are unit-tested; main() only acts on the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orchard {

struct Options {
  std::string backend;                    // "sim" | "executorch"
  std::optional<std::string> model_name;  // what `ready.model` says
  std::optional<std::size_t> max_context; // sim: default 2048; executorch: cap below the model's

  // sim: set only when the flag was given (a flag beats a simulated model's
  // header, which beats the defaults below)
  std::optional<double> sim_prefill_tok_s;
  std::optional<double> sim_decode_tok_s;
  std::optional<int> sim_load_ms;

  // executorch: the .pte; sim: a simulated model file (optional)
  std::string model_path;

  // executorch
  std::string tokenizer_dir;
  std::string profile = "gemma4-e2b-extcache";
  int threads = 0;  // 0: ExecuTorch's default

  // reference check
  bool verify = false;
  std::optional<std::vector<std::int32_t>> verify_ids;
};

inline constexpr std::size_t kDefaultSimContext = 2048;
inline constexpr double kDefaultSimPrefillTokS = 200.0;
inline constexpr double kDefaultSimDecodeTokS = 20.0;
inline constexpr int kDefaultSimLoadMs = 200;

struct CommandLine {
  enum class Action { Run, Version, Capabilities, Help, Usage };
  Action action = Action::Run;
  Options options;
  std::string error;  // for Action::Usage: what was wrong
  std::vector<std::string> warnings;
};

/// Parses argv[1..]; never exits or prints.
CommandLine parse_command_line(const std::vector<std::string>& args);

std::string usage_text();

/// "1,2,3" → ids; nullopt when malformed.
std::optional<std::vector<std::int32_t>> parse_id_list(const std::string& text);

}  // namespace orchard
