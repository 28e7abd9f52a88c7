#include "orchard/cli.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace orchard {
namespace {

bool parse_int(const std::string& text, long long min, long long max, long long* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || value < min || value > max) return false;
  *out = value;
  return true;
}

bool parse_positive_double(const std::string& text, double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(value) || value <= 0) return false;
  *out = value;
  return true;
}

}  // namespace

std::string usage_text() {
  return R"(usage: orchard-runner --backend sim|executorch [options]

Speaks the runner protocol (NDJSON) on stdin/stdout; logs go to stderr.

common:
  --backend sim|executorch   engine to load (required)
  --model-name NAME          name reported in the ready line
  --max-context N            sim: context size (default 2048);
                             executorch: cap below the model's own context
  --verify                   reference check: greedy "The capital of France is"
                             (chat template), compare the generated ids, exit
                             0 on match, 1 on mismatch, 2 on error
  --verify-ids 1,2,3         expected ids (default: the profile's reference;
                             required for sim)
  --capabilities             print the runtimes, versions and profiles this
                             build can load (one JSON line) and exit
  --version                  print the version and exit
  --help                     print this help and exit

sim (simulated inference, for tests and demos):
  --model FILE               a simulated model file (JSON header line, then
                             padding); without it: no model at all
  --sim-prefill-tok-s X      prompt feed rate (default 200, or the file's)
  --sim-decode-tok-s Y       decode rate (default 20, or the file's)
  --sim-load-ms N            simulated load time (default 200, or the file's)

executorch:
  --model PATH.pte           ExecuTorch program (memory-mapped, not locked)
  --tokenizer DIR            directory holding tokenizer.json
  --profile NAME             gemma4-e2b-extcache (default) | llm-standard
  --threads N                CPU threads for the XNNPACK threadpool
)";
}

std::optional<std::vector<std::int32_t>> parse_id_list(const std::string& text) {
  std::vector<std::int32_t> ids;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    long long value = 0;
    if (!parse_int(item, 0, std::numeric_limits<std::int32_t>::max(), &value)) return std::nullopt;
    ids.push_back(static_cast<std::int32_t>(value));
    pos = comma + 1;
  }
  if (ids.empty()) return std::nullopt;
  return ids;
}

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine cli;
  Options& o = cli.options;
  bool sim_flag = false;
  bool executorch_flag = false;

  auto fail = [&cli](std::string message) {
    cli.action = CommandLine::Action::Usage;
    cli.error = std::move(message);
    return cli;
  };

  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    const std::size_t eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    auto value = [&](std::string* out) {
      if (inline_value) {
        *out = *inline_value;
        return true;
      }
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    auto no_value = [&]() { return !inline_value.has_value(); };

    std::string v;
    long long n = 0;
    if (flag == "--help" || flag == "-h") {
      if (!no_value()) return fail(flag + " takes no value");
      cli.action = CommandLine::Action::Help;
      return cli;
    } else if (flag == "--version") {
      if (!no_value()) return fail(flag + " takes no value");
      cli.action = CommandLine::Action::Version;
      return cli;
    } else if (flag == "--capabilities") {
      if (!no_value()) return fail(flag + " takes no value");
      cli.action = CommandLine::Action::Capabilities;
      return cli;
    } else if (flag == "--backend") {
      if (!value(&v)) return fail("--backend needs a value");
      if (v != "sim" && v != "executorch") return fail("--backend must be sim or executorch, not \"" + v + "\"");
      o.backend = v;
    } else if (flag == "--model-name") {
      if (!value(&v) || v.empty()) return fail("--model-name needs a value");
      o.model_name = v;
    } else if (flag == "--max-context") {
      if (!value(&v) || !parse_int(v, 2, 1 << 24, &n)) return fail("--max-context needs an integer from 2 to 16777216");
      o.max_context = static_cast<std::size_t>(n);
    } else if (flag == "--sim-prefill-tok-s") {
      double rate = 0;
      if (!value(&v) || !parse_positive_double(v, &rate)) return fail("--sim-prefill-tok-s needs a number > 0");
      o.sim_prefill_tok_s = rate;
      sim_flag = true;
    } else if (flag == "--sim-decode-tok-s") {
      double rate = 0;
      if (!value(&v) || !parse_positive_double(v, &rate)) return fail("--sim-decode-tok-s needs a number > 0");
      o.sim_decode_tok_s = rate;
      sim_flag = true;
    } else if (flag == "--sim-load-ms") {
      if (!value(&v) || !parse_int(v, 0, 600000, &n)) return fail("--sim-load-ms needs an integer from 0 to 600000");
      o.sim_load_ms = static_cast<int>(n);
      sim_flag = true;
    } else if (flag == "--model") {
      if (!value(&v) || v.empty()) return fail("--model needs a path (executorch: a .pte; sim: a simulated model file)");
      o.model_path = v;
    } else if (flag == "--tokenizer") {
      if (!value(&v) || v.empty()) return fail("--tokenizer needs a directory");
      o.tokenizer_dir = v;
      executorch_flag = true;
    } else if (flag == "--profile") {
      if (!value(&v) || v.empty()) return fail("--profile needs a name");
      o.profile = v;
      executorch_flag = true;
    } else if (flag == "--threads") {
      if (!value(&v) || !parse_int(v, 1, 256, &n)) return fail("--threads needs an integer from 1 to 256");
      o.threads = static_cast<int>(n);
      executorch_flag = true;
    } else if (flag == "--verify") {
      if (!no_value()) return fail(flag + " takes no value");
      o.verify = true;
    } else if (flag == "--verify-ids") {
      if (!value(&v)) return fail("--verify-ids needs a list like 818,5279,106");
      auto ids = parse_id_list(v);
      if (!ids) return fail("--verify-ids needs comma-separated non-negative integers, not \"" + v + "\"");
      o.verify_ids = std::move(*ids);
    } else {
      return fail("unknown argument \"" + args[i] + "\"");
    }
  }

  if (o.backend.empty()) return fail("--backend is required");
  if (o.backend == "executorch") {
    if (o.model_path.empty()) return fail("--backend executorch needs --model PATH.pte");
    if (o.tokenizer_dir.empty()) return fail("--backend executorch needs --tokenizer DIR");
    if (sim_flag) cli.warnings.push_back("--sim-* flags are ignored by the executorch backend");
  } else {
    if (executorch_flag) {
      cli.warnings.push_back("--tokenizer, --profile and --threads are ignored by the sim backend");
    }
    if (o.verify && !o.verify_ids) {
      return fail("the sim backend has no reference output: --verify needs --verify-ids");
    }
  }
  if (!o.verify && o.verify_ids) cli.warnings.push_back("--verify-ids has no effect without --verify");
  return cli;
}

}  // namespace orchard
