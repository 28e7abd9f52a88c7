#include "orchard/generator.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "orchard/chat_template.h"
#include "orchard/log.h"
#include "orchard/process_stats.h"
#include "orchard/sampler.h"
#include "orchard/utf8.h"

namespace orchard {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::ErrorCode;
using protocol::make_error;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

double per_second(std::size_t count, double ms) {
  return (count > 0 && ms > 0) ? static_cast<double>(count) * 1000.0 / ms : 0.0;
}

bool contains(const std::vector<std::int32_t>& ids, std::int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::uint64_t fresh_seed() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

}  // namespace

Generator::Generator(Model& model, const Tokenizer& tokenizer)
    : model_(model), tokenizer_(tokenizer), special_(tokenizer.special_tokens()) {}

void Generator::publish() {
  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  snapshot_.session = session_;
  snapshot_.resident_tokens = resident_.fed.size();
}

Generator::Snapshot Generator::snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  return snapshot_;
}

void Generator::forget_session() {
  resident_ = ResidentTokens{};
  session_.reset();
  const Status status = model_.reset();
  if (!status.ok) log_line("cache reset failed: " + status.message);
  publish();
}

std::optional<protocol::ErrorMessage> Generator::reset(const std::optional<std::string>& session) {
  if (session && session_ && *session != *session_) return std::nullopt;  // not resident: nothing to drop
  resident_ = ResidentTokens{};
  session_.reset();
  const Status status = model_.reset();
  publish();
  if (!status.ok) return make_error(ErrorCode::ModelError, "reset failed: " + status.message);
  return std::nullopt;
}

std::optional<protocol::ErrorMessage> Generator::prompt_ids(const protocol::GenerateRequest& request,
                                                            std::vector<std::int32_t>* ids) const {
  if (request.rendered) {
    const Status status = tokenizer_.encode(*request.rendered, ids);
    if (!status.ok) return make_error(ErrorCode::ModelError, "the tokenizer failed: " + status.message, request.id);
    return std::nullopt;
  }
  const RenderedPrompt rendered =
      request.prompt ? render_raw_prompt(*request.prompt) : render_gemma_chat(request.messages);
  if (rendered.error) return make_error(ErrorCode::BadRequest, *rendered.error, request.id);

  ids->clear();
  std::vector<std::int32_t> piece_ids;
  for (const auto& piece : rendered.pieces) {
    std::int32_t marker_id = -1;
    const char* marker_text = "";
    switch (piece.kind) {
      case PromptPiece::Kind::Bos: marker_id = special_.bos; marker_text = "<bos>"; break;
      case PromptPiece::Kind::StartOfTurn: marker_id = special_.start_of_turn; marker_text = "<start_of_turn>"; break;
      case PromptPiece::Kind::EndOfTurn: marker_id = special_.end_of_turn; marker_text = "<end_of_turn>"; break;
      case PromptPiece::Kind::Text: break;
    }
    if (piece.kind != PromptPiece::Kind::Text && marker_id >= 0) {
      ids->push_back(marker_id);
      continue;
    }
    // A text piece, or a marker this tokenizer has no single id for: encode its text.
    const std::string& text = piece.kind == PromptPiece::Kind::Text ? piece.text : std::string(marker_text);
    const Status status = tokenizer_.encode(text, &piece_ids);
    if (!status.ok) {
      return make_error(ErrorCode::ModelError, "the tokenizer failed: " + status.message, request.id);
    }
    ids->insert(ids->end(), piece_ids.begin(), piece_ids.end());
  }
  return std::nullopt;
}

GenerationOutcome Generator::generate(const protocol::GenerateRequest& request,
                                      const std::atomic<bool>& cancel, const TokenSink& emit) {
  GenerationOutcome outcome;
  const auto started = Clock::now();

  std::vector<std::int32_t> prompt;
  if (auto error = prompt_ids(request, &prompt)) {
    outcome.error = std::move(error);
    return outcome;
  }

  // Positions the request can occupy: the prompt, and every generated token but the
  // last, which is sampled and never fed back.
  const std::size_t max_context = model_.max_context();
  const std::size_t needed = prompt.size() + static_cast<std::size_t>(request.max_new_tokens) - 1;
  if (needed > max_context) {
    outcome.error = make_error(
        ErrorCode::ContextFull,
        "prompt (" + std::to_string(prompt.size()) + " tokens) + max_new_tokens (" +
            std::to_string(request.max_new_tokens) + ") exceeds the context of " +
            std::to_string(max_context) + " tokens",
        request.id);
    return outcome;
  }

  protocol::Done done;
  done.id = request.id;
  done.prompt_tokens = prompt.size();

  const bool same_session = request.session && session_ && *request.session == *session_;
  const PrefillPlan plan = plan_prefill(resident_, prompt, same_session);
  model_.take_decode_execute_ms();  // count this request's decode steps only
  if (plan.reset) {
    const Status status = model_.reset();
    resident_ = ResidentTokens{};
    if (!status.ok) {
      forget_session();
      outcome.error = make_error(ErrorCode::ModelError, "cache reset failed: " + status.message, request.id);
      return outcome;
    }
  }
  resident_.fed.resize(plan.keep);
  resident_.pending.reset();
  session_ = request.session;
  done.reused_tokens = plan.keep;
  publish();

  auto fail = [&](const std::string& what, const Status& status) {
    // The cache is in an unknown state: start the next request from scratch.
    forget_session();
    outcome.error = make_error(ErrorCode::ModelError, what + ": " + status.message, request.id);
    return outcome;
  };

  // ---- prefill: feed the prompt suffix in chunks, cancel checked between them
  Logits logits;
  const std::size_t chunk = std::max<std::size_t>(1, model_.max_tokens_per_step());
  const auto prefill_started = Clock::now();
  std::size_t fed_now = 0;
  bool cancelled = cancel.load();
  while (!cancelled && fed_now < plan.feed.size()) {
    const std::size_t count = std::min(chunk, plan.feed.size() - fed_now);
    const Status status = model_.forward(plan.feed.data() + fed_now, count, resident_.fed.size(),
                                         FeedKind::Prompt, &logits);
    if (!status.ok) return fail("the model failed while feeding the prompt", status);
    resident_.fed.insert(resident_.fed.end(), plan.feed.begin() + static_cast<std::ptrdiff_t>(fed_now),
                         plan.feed.begin() + static_cast<std::ptrdiff_t>(fed_now + count));
    fed_now += count;
    publish();
    cancelled = cancel.load();
  }
  const auto prefill_finished = Clock::now();
  done.prefill_ms = ms_between(prefill_started, prefill_finished);
  done.prefill_tok_s = per_second(fed_now, done.prefill_ms);

  // ---- decode: sample, emit, stop or feed the token back
  SamplingParams params;
  params.temperature = request.temperature;
  params.top_p = request.top_p;
  params.seed = request.seed ? *request.seed : fresh_seed();
  Sampler sampler(params);
  Utf8Holdback holdback;
  Clock::time_point first_token_at{};
  Clock::time_point last_token_at{};
  done.finish_reason = protocol::FinishReason::Cancelled;

  while (!cancelled) {
    if (logits.data == nullptr || logits.size == 0) {
      return fail("the model returned no logits", Status::failure("empty logits"));
    }
    const std::int32_t id = sampler.sample(logits.data, logits.size);
    const bool stop = contains(special_.stop_ids, id);

    protocol::Token token;
    token.id = request.id;
    token.token_id = id;
    if (!stop) token.text = holdback.push(tokenizer_.token_bytes(id));
    done.token_ids.push_back(id);
    last_token_at = Clock::now();
    if (done.token_ids.size() == 1) {
      first_token_at = last_token_at;
      done.ttft_ms = ms_between(started, first_token_at);
    }
    emit(token);

    resident_.pending = id;
    if (stop) {
      done.finish_reason = protocol::FinishReason::Stop;
      break;
    }
    if (done.token_ids.size() >= static_cast<std::size_t>(request.max_new_tokens)) {
      done.finish_reason = protocol::FinishReason::Length;
      break;
    }
    if (cancel.load()) break;

    const Status status =
        model_.forward(&id, 1, resident_.fed.size(), FeedKind::Generated, &logits);
    if (!status.ok) return fail("the model failed while generating", status);
    resident_.fed.push_back(id);
    resident_.pending.reset();
    publish();
  }

  const std::size_t dropped = holdback.discard();
  if (dropped > 0) {
    log_line(request.id + ": dropped " + std::to_string(dropped) +
             " byte(s) of an unfinished UTF-8 character at the end of the generation");
  }

  done.generated_tokens = done.token_ids.size();
  if (done.generated_tokens > 0) {
    done.decode_ms = ms_between(first_token_at, last_token_at);
    done.decode_tok_s = per_second(done.generated_tokens - 1, done.decode_ms);
  }
  done.decode_execute_ms = model_.take_decode_execute_ms();
  done.peak_rss_bytes = read_memory_usage().peak_rss_bytes;
  publish();
  outcome.done = std::move(done);
  return outcome;
}

}  // namespace orchard
