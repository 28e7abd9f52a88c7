// Model profiles: plain data describing how an exported ExecuTorch program is
// driven — what each input of its method is, where the logits are, which
// outputs are updated caches to copy back, the context, the control token ids.
// A profile is checked against the program's method metadata at load by
// validate_profile(), a pure function over a small description, so the check is
// unit-tested without ExecuTorch. To support another export, add a profile
// (see docs/runner.md, "Adding a profile").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orchard {

enum class DType { Float32, Float16, BFloat16, Int64, Int32, Bool, UInt16, Other };

const char* to_string(DType dtype);

/// What a profile expects of one tensor. A dim of -1 matches any size;
/// an absent shape matches any shape; an empty dtype list matches any dtype.
struct TensorSpec {
  std::string name;
  std::vector<DType> dtypes;
  std::optional<std::vector<std::int64_t>> shape;
};

/// What the program declares for one input or output (from method_meta).
struct TensorDescription {
  DType dtype = DType::Other;
  std::vector<std::int64_t> shape;
};

/// A method's inputs and outputs as the program declares them; nullopt marks
/// a value that is not a tensor (an int, a bool, …).
struct MethodDescription {
  std::vector<std::optional<TensorDescription>> inputs;
  std::vector<std::optional<TensorDescription>> outputs;
};

/// What the runner writes into an input before each step.
enum class InputRole {
  InputIds,       // int64 [1, 1]: the token fed
  AttentionMask,  // int64 [1, L]: 1 for positions 0..pos, 0 after
  PositionIds,    // int64 [1, 1]: pos
  CachePosition,  // int64 [1]: pos
  KeyCache,       // resident cache buffer, updated from an output after each step
  ValueCache,     // likewise
  CacheLength,    // int64 [1]: tokens already in the cache (= pos before the step)
  Tokens,         // int64 [1, n]: tokens fed in one step (llm-standard)
  StartPos,       // int64 [1] start position, or [n] cache positions (llm-standard)
};

const char* to_string(InputRole role);

struct InputSlot {
  InputRole role = InputRole::InputIds;
  TensorSpec spec;
};

/// What the runner does with an output after each step.
struct OutputSlot {
  enum class Use { Ignore, Logits, UpdateInput };
  Use use = Use::Ignore;
  std::size_t input_index = 0;  // for UpdateInput: the input whose buffer receives it
  TensorSpec spec;
};

struct ModelProfile {
  enum class Family {
    /// Cache passed in and returned explicitly (the reference Gemma 4 E2B export).
    ExternalCache,
    /// ExecuTorch's own LLM export: forward(tokens, start_pos) -> logits with the
    /// cache inside the program, plus metadata methods (get_max_seq_len, …).
    LlmStandard,
  };

  std::string name;
  std::string description;
  Family family = Family::ExternalCache;
  std::string method = "forward";
  std::vector<InputSlot> inputs;
  std::vector<OutputSlot> outputs;
  std::size_t max_context = 0;  // 0: read from the program's metadata

  // Control tokens; -1: from the program's metadata or the tokenizer.
  std::int32_t bos_id = -1;
  std::int32_t start_of_turn_id = -1;
  std::int32_t end_of_turn_id = -1;
  std::vector<std::int32_t> stop_ids;  // empty: from get_eos_ids / the tokenizer

  /// Greedy ids for the reference prompt (user turn "The capital of France is").
  std::vector<std::int32_t> reference_ids;

  /// ExternalCache only: the layer count and tensor sizes are read from the
  /// program (external_cache_profile_for) instead of being fixed here.
  bool shape_from_program = false;
};

/// The sizes of an external-cache export: one K, V and cumulative-length input
/// per cache-owning layer; the mask covers cache_length - 1 positions.
/// A size of -1 matches any (used while reading an unknown program).
struct ExternalCacheShape {
  std::size_t layers = 0;
  std::int64_t cache_length = -1;
  std::int64_t kv_heads = -1;
  std::vector<std::int64_t> head_dims;  // one per layer
  DType cache_dtype = DType::Float32;
};

/// The profile of an external-cache export with these sizes (inputs input_ids,
/// attention_mask, position_ids, cache_position, K×layers, V×layers,
/// cumlen×layers; outputs the mutated caches, the logits, the updated caches).
ModelProfile external_cache_profile(std::string name, std::string description, const ExternalCacheShape& shape);

/// The reference deployment's `gemma4_e2b_text_int4_extcache.pte`.
ModelProfile gemma4_e2b_extcache_profile();

/// Any Gemma 4 export with the reference layout (e.g. the tiny one tools/export
/// makes for tests): sizes from the program, control ids from the tokenizer.
ModelProfile gemma4_extcache_profile();

/// For a shape_from_program profile: the same profile with the sizes the
/// program declares, so validate_profile() then names the first input that
/// does not fit the layout. Other profiles are returned unchanged.
ModelProfile resolve_profile(const ModelProfile& profile, const MethodDescription& method);

/// A `.pte` from ExecuTorch's LLM export (metadata methods, internal KV cache).
ModelProfile llm_standard_profile();

/// The profile with this name, or nullopt.
std::optional<ModelProfile> find_profile(const std::string& name);

std::vector<std::string> profile_names();

/// Checks the program's method against the profile. Returns nullopt when they
/// agree, otherwise a message naming the first input or output that differs,
/// e.g. "input 3 (cache_position): expected int64[1], the model has int32[1]".
std::optional<std::string> validate_profile(const ModelProfile& profile,
                                            const MethodDescription& method);

/// "int64[1,511]" — for messages.
std::string describe(DType dtype, const std::vector<std::int64_t>& shape);

}  // namespace orchard
