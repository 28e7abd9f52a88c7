#include "orchard/app.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "orchard/backend.h"
#include "orchard/generator.h"
#include "orchard/log.h"
#include "orchard/process_stats.h"
#include "orchard/protocol.h"
#include "orchard/server.h"
#include "orchard/transport.h"
#include "orchard/version.h"

namespace orchard {
namespace {

constexpr const char* kReferencePrompt = "The capital of France is";

std::string join_ids(const std::vector<std::int32_t>& ids) {
  std::string out = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

// The reference check: greedy, chat template, one user turn, exactly as the
// reference deployment's runner does it.
int run_verify(Generator& generator, ProtocolWriter& out, const std::vector<std::int32_t>& expected) {
  protocol::GenerateRequest request;
  request.id = "verify";
  request.messages.push_back(protocol::ChatMessage{protocol::Role::User, kReferencePrompt});
  request.max_new_tokens = static_cast<int>(expected.size());
  request.temperature = 0.0;

  std::vector<std::int32_t> prompt;
  if (auto error = generator.prompt_ids(request, &prompt)) {
    log_line("verify: ERROR " + error->message);
    out.write_line(protocol::serialise(*error));
    return 2;
  }
  log_line("verify: prompt \"" + std::string(kReferencePrompt) + "\" -> " +
           std::to_string(prompt.size()) + " ids " + join_ids(prompt));

  std::atomic<bool> never{false};
  GenerationOutcome outcome = generator.generate(
      request, never, [&out](const protocol::Token& token) { out.write_line(protocol::serialise(token)); });
  if (outcome.error) {
    log_line("verify: ERROR " + outcome.error->message);
    out.write_line(protocol::serialise(*outcome.error));
    return 2;
  }
  out.write_line(protocol::serialise(*outcome.done));
  const auto& got = outcome.done->token_ids;
  if (got == expected) {
    log_line("verify: PASS " + join_ids(got));
    return 0;
  }
  log_line("verify: FAIL expected " + join_ids(expected) + ", got " + join_ids(got));
  return 1;
}

}  // namespace

int run_runner(const Options& options) {
  // A vanished agent must surface as a failed write, not kill the process.
  ::signal(SIGPIPE, SIG_IGN);

  const int protocol_fd = claim_stdout_for_protocol();
  if (protocol_fd < 0) {
    log_line(std::string("cannot set up the protocol stream: ") + std::strerror(errno));
    return 2;
  }
  ProtocolWriter out(protocol_fd);

  const auto load_started = std::chrono::steady_clock::now();
  BackendLoad load = load_backend(options);
  if (load.error) {
    log_line(std::string(protocol::to_string(load.error->code)) + ": " + load.error->message);
    out.write_line(protocol::serialise(*load.error));
    return load.error->code == protocol::ErrorCode::LoadFailed ? 1 : 2;
  }
  LoadedBackend& backend = *load.loaded;
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_started).count();

  Generator generator(*backend.model, *backend.tokenizer);

  protocol::Ready ready;
  ready.backend = backend.backend;
  ready.model = backend.model_name;
  ready.max_context = generator.max_context();
  ready.load_ms = load_ms;
  ready.rss_bytes = read_memory_usage().rss_bytes;
  ready.version = kRunnerVersion;
  out.write_line(protocol::serialise(ready));
  log_line("ready: backend " + ready.backend + ", model \"" + ready.model + "\", context " +
           std::to_string(ready.max_context) + ", loaded in " + std::to_string(static_cast<long>(load_ms)) +
           " ms");

  if (options.verify) {
    const std::vector<std::int32_t> expected = options.verify_ids.value_or(backend.reference_ids);
    if (expected.empty()) {
      log_line("verify: ERROR no expected ids: pass --verify-ids");
      return 2;
    }
    return run_verify(generator, out, expected);
  }

  Server server(generator, out, STDIN_FILENO);
  return server.run();
}

}  // namespace orchard
