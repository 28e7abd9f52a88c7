#include "orchard/profile.h"

#include <algorithm>

namespace orchard {
namespace {

TensorSpec spec(std::string name, DType dtype, std::vector<std::int64_t> shape) {
  return TensorSpec{std::move(name), {dtype}, std::move(shape)};
}

std::string describe_spec(const TensorSpec& s) {
  std::string dtypes;
  if (s.dtypes.empty()) {
    dtypes = "any dtype";
  } else {
    for (std::size_t i = 0; i < s.dtypes.size(); ++i) {
      if (i > 0) dtypes += "|";
      dtypes += to_string(s.dtypes[i]);
    }
  }
  if (!s.shape) return dtypes + " (any shape)";
  std::string out = dtypes + "[";
  for (std::size_t i = 0; i < s.shape->size(); ++i) {
    if (i > 0) out += ",";
    const std::int64_t d = (*s.shape)[i];
    out += d < 0 ? std::string("*") : std::to_string(d);
  }
  return out + "]";
}

bool matches(const TensorSpec& s, const TensorDescription& t) {
  if (!s.dtypes.empty() && std::find(s.dtypes.begin(), s.dtypes.end(), t.dtype) == s.dtypes.end()) {
    return false;
  }
  if (!s.shape) return true;
  if (s.shape->size() != t.shape.size()) return false;
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    const std::int64_t want = (*s.shape)[i];
    if (want >= 0 && want != t.shape[i]) return false;
  }
  return true;
}

// Checks one side (inputs or outputs); `kind` is "input" or "output".
std::optional<std::string> check_side(const std::string& profile_name, const char* kind,
                                      const std::vector<const TensorSpec*>& specs,
                                      const std::vector<std::optional<TensorDescription>>& actual) {
  const std::size_t common = std::min(specs.size(), actual.size());
  for (std::size_t i = 0; i < common; ++i) {
    const TensorSpec& s = *specs[i];
    const std::string where = std::string(kind) + " " + std::to_string(i) + " (" + s.name + ")";
    if (!actual[i]) return where + ": expected " + describe_spec(s) + ", the model has a non-tensor value";
    if (!matches(s, *actual[i])) {
      return where + ": expected " + describe_spec(s) + ", the model has " +
             describe(actual[i]->dtype, actual[i]->shape);
    }
  }
  if (actual.size() < specs.size()) {
    return std::string(kind) + " " + std::to_string(actual.size()) + " (" + specs[actual.size()]->name +
           ") is missing: the model has " + std::to_string(actual.size()) + " " + kind +
           "s, profile " + profile_name + " expects " + std::to_string(specs.size());
  }
  if (actual.size() > specs.size()) {
    return std::string(kind) + " " + std::to_string(specs.size()) + " is not in profile " + profile_name +
           ": the model has " + std::to_string(actual.size()) + " " + kind + "s, the profile expects " +
           std::to_string(specs.size());
  }
  return std::nullopt;
}

}  // namespace

const char* to_string(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::Bool: return "bool";
    case DType::UInt16: return "uint16";
    case DType::Other: return "other";
  }
  return "other";
}

const char* to_string(InputRole role) {
  switch (role) {
    case InputRole::InputIds: return "input_ids";
    case InputRole::AttentionMask: return "attention_mask";
    case InputRole::PositionIds: return "position_ids";
    case InputRole::CachePosition: return "cache_position";
    case InputRole::KeyCache: return "key_cache";
    case InputRole::ValueCache: return "value_cache";
    case InputRole::CacheLength: return "cache_length";
    case InputRole::Tokens: return "tokens";
    case InputRole::StartPos: return "start_pos";
  }
  return "input";
}

std::string describe(DType dtype, const std::vector<std::int64_t>& shape) {
  std::string out = std::string(to_string(dtype)) + "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

ModelProfile external_cache_profile(std::string name, std::string description, const ExternalCacheShape& shape) {
  const std::int64_t length = shape.cache_length;
  const std::int64_t mask_length = length < 0 ? -1 : length - 1;
  auto head_dim = [&](std::size_t layer) { return layer < shape.head_dims.size() ? shape.head_dims[layer] : -1; };

  ModelProfile p;
  p.name = std::move(name);
  p.description = std::move(description);
  p.family = ModelProfile::Family::ExternalCache;
  p.max_context = mask_length < 0 ? 0 : static_cast<std::size_t>(mask_length);

  p.inputs.push_back({InputRole::InputIds, spec("input_ids", DType::Int64, {1, 1})});
  p.inputs.push_back({InputRole::AttentionMask, spec("attention_mask", DType::Int64, {1, mask_length})});
  p.inputs.push_back({InputRole::PositionIds, spec("position_ids", DType::Int64, {1, 1})});
  p.inputs.push_back({InputRole::CachePosition, spec("cache_position", DType::Int64, {1})});
  for (std::size_t l = 0; l < shape.layers; ++l) {
    p.inputs.push_back({InputRole::KeyCache, spec("k_cache_" + std::to_string(l), shape.cache_dtype,
                                                  {1, shape.kv_heads, length, head_dim(l)})});
  }
  for (std::size_t l = 0; l < shape.layers; ++l) {
    p.inputs.push_back({InputRole::ValueCache, spec("v_cache_" + std::to_string(l), shape.cache_dtype,
                                                    {1, shape.kv_heads, length, head_dim(l)})});
  }
  for (std::size_t l = 0; l < shape.layers; ++l) {
    p.inputs.push_back({InputRole::CacheLength, spec("cumlen_" + std::to_string(l), DType::Int64, {1})});
  }

  // Outputs: first the mutated caches torch.export emits (same layout as the
  // cache inputs), then the logits, then the caches the wrapper returns; the
  // runner copies the last group back into its resident buffers.
  constexpr std::size_t kFirstCacheInput = 4;
  const std::size_t cache_inputs = 3 * shape.layers;
  for (std::size_t i = 0; i < cache_inputs; ++i) {
    TensorSpec s = p.inputs[kFirstCacheInput + i].spec;
    s.name = "mutated_" + s.name;
    p.outputs.push_back({OutputSlot::Use::Ignore, 0, s});
  }
  p.outputs.push_back({OutputSlot::Use::Logits, 0, spec("logits", DType::Float32, {1, 1, -1})});
  for (std::size_t i = 0; i < cache_inputs; ++i) {
    TensorSpec s = p.inputs[kFirstCacheInput + i].spec;
    s.name = "updated_" + s.name;
    p.outputs.push_back({OutputSlot::Use::UpdateInput, kFirstCacheInput + i, s});
  }
  return p;
}

ModelProfile gemma4_e2b_extcache_profile() {
  // Layout of gemma4_e2b_text_int4_extcache.pte (the reference deployment):
  // 15 cache layers (35 decoder layers minus 20 KV-shared), every 5th one a
  // full-attention layer with head_dim 512, the others sliding with 256;
  // a 512-slot cache, so 511 usable positions.
  ExternalCacheShape shape;
  shape.layers = 15;
  shape.cache_length = 512;
  shape.kv_heads = 1;
  for (std::size_t l = 0; l < shape.layers; ++l) shape.head_dims.push_back(l % 5 == 4 ? 512 : 256);

  ModelProfile p = external_cache_profile(
      "gemma4-e2b-extcache", "Gemma 4 E2B exported with an external KV cache (gemma4_e2b_text_int4_extcache.pte)",
      shape);
  p.bos_id = 2;
  p.start_of_turn_id = 105;
  p.end_of_turn_id = 106;
  p.stop_ids = {106, 1, 2};
  p.reference_ids = {818, 5279, 529, 7001, 563, 5213, 50429, 84750, 106};
  return p;
}

ModelProfile gemma4_extcache_profile() {
  ModelProfile p = external_cache_profile(
      "gemma4-extcache",
      "a Gemma 4 export with the reference's external-cache layout; layers, cache length and head sizes "
      "from the program",
      ExternalCacheShape{});
  p.shape_from_program = true;
  return p;
}

ModelProfile resolve_profile(const ModelProfile& profile, const MethodDescription& method) {
  if (!profile.shape_from_program || profile.family != ModelProfile::Family::ExternalCache) return profile;
  // input_ids, attention_mask, position_ids, cache_position, then K, V, cumlen per layer.
  constexpr std::size_t kFixed = 4;
  ExternalCacheShape shape;
  // Rounded up, so an input count between whole layers is reported as a missing input.
  shape.layers = method.inputs.size() > kFixed ? (method.inputs.size() - kFixed + 2) / 3 : 0;
  auto cache_input = [&](std::size_t layer) -> const TensorDescription* {
    const std::size_t i = kFixed + layer;
    if (i >= method.inputs.size() || !method.inputs[i] || method.inputs[i]->shape.size() != 4) return nullptr;
    return &*method.inputs[i];
  };
  if (const TensorDescription* first = cache_input(0)) {
    shape.kv_heads = first->shape[1];
    shape.cache_length = first->shape[2];
    shape.cache_dtype = first->dtype;
  }
  for (std::size_t l = 0; l < shape.layers; ++l) {
    const TensorDescription* k = cache_input(l);
    shape.head_dims.push_back(k ? k->shape[3] : -1);
  }
  ModelProfile resolved = external_cache_profile(profile.name, profile.description, shape);
  resolved.bos_id = profile.bos_id;
  resolved.start_of_turn_id = profile.start_of_turn_id;
  resolved.end_of_turn_id = profile.end_of_turn_id;
  resolved.stop_ids = profile.stop_ids;
  resolved.reference_ids = profile.reference_ids;
  return resolved;
}

ModelProfile llm_standard_profile() {
  ModelProfile p;
  p.name = "llm-standard";
  p.description = "ExecuTorch LLM export: forward(tokens, start_pos) -> logits, KV cache inside, metadata methods";
  p.family = ModelProfile::Family::LlmStandard;
  p.inputs.push_back({InputRole::Tokens, spec("tokens", DType::Int64, {1, -1})});
  p.inputs.push_back({InputRole::StartPos, spec("start_pos", DType::Int64, {-1})});
  TensorSpec logits{"logits", {DType::Float32, DType::Float16, DType::BFloat16}, std::nullopt};
  p.outputs.push_back({OutputSlot::Use::Logits, 0, logits});
  return p;
}

std::vector<std::string> profile_names() { return {"gemma4-e2b-extcache", "gemma4-extcache", "llm-standard"}; }

std::optional<ModelProfile> find_profile(const std::string& name) {
  if (name == "gemma4-e2b-extcache") return gemma4_e2b_extcache_profile();
  if (name == "gemma4-extcache") return gemma4_extcache_profile();
  if (name == "llm-standard") return llm_standard_profile();
  return std::nullopt;
}

std::optional<std::string> validate_profile(const ModelProfile& profile, const MethodDescription& method) {
  std::vector<const TensorSpec*> inputs;
  for (const auto& slot : profile.inputs) inputs.push_back(&slot.spec);
  std::vector<const TensorSpec*> outputs;
  for (const auto& slot : profile.outputs) outputs.push_back(&slot.spec);

  if (auto problem = check_side(profile.name, "input", inputs, method.inputs)) return problem;
  if (profile.family == ModelProfile::Family::ExternalCache &&
      std::none_of(profile.inputs.begin(), profile.inputs.end(),
                   [](const InputSlot& slot) { return slot.role == InputRole::KeyCache; })) {
    return "the model has " + std::to_string(method.inputs.size()) + " inputs and no KV cache among them; profile " +
           profile.name + " expects input_ids, attention_mask, position_ids, cache_position and then K, V and "
           "cumulative length per layer";
  }
  if (auto problem = check_side(profile.name, "output", outputs, method.outputs)) return problem;

  // An updated cache must have exactly the shape of the input it replaces.
  for (std::size_t i = 0; i < profile.outputs.size(); ++i) {
    const OutputSlot& slot = profile.outputs[i];
    if (slot.use != OutputSlot::Use::UpdateInput) continue;
    if (slot.input_index >= method.inputs.size()) {
      return "output " + std::to_string(i) + " (" + slot.spec.name + ") refers to input " +
             std::to_string(slot.input_index) + ", which the model does not have";
    }
    const auto& in = *method.inputs[slot.input_index];
    const auto& out = *method.outputs[i];
    if (in.dtype != out.dtype || in.shape != out.shape) {
      return "output " + std::to_string(i) + " (" + slot.spec.name + "): " + describe(out.dtype, out.shape) +
             " cannot update input " + std::to_string(slot.input_index) + " which is " +
             describe(in.dtype, in.shape);
    }
  }
  return std::nullopt;
}

}  // namespace orchard
