// Profile validation against a method description, as the executorch backend
// does at load with method_meta("forward").
#include <gtest/gtest.h>

#include "orchard/profile.h"

namespace orchard {
namespace {

// The description a correct export of the profile would give.
MethodDescription describe_as_exported(const ModelProfile& p, std::int64_t vocab = 262144) {
  MethodDescription m;
  for (const auto& slot : p.inputs) {
    TensorDescription t;
    t.dtype = slot.spec.dtypes.front();
    for (auto d : *slot.spec.shape) t.shape.push_back(d < 0 ? 7 : d);
    m.inputs.push_back(t);
  }
  for (const auto& slot : p.outputs) {
    TensorDescription t;
    t.dtype = slot.spec.dtypes.front();
    if (slot.spec.shape) {
      for (auto d : *slot.spec.shape) t.shape.push_back(d < 0 ? vocab : d);
    } else {
      t.shape = {1, vocab};
    }
    m.outputs.push_back(t);
  }
  return m;
}

TEST(GemmaProfile, DescribesTheReferenceExport) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  EXPECT_EQ(p.name, "gemma4-e2b-extcache");
  ASSERT_EQ(p.inputs.size(), 4u + 45u);
  ASSERT_EQ(p.outputs.size(), 91u);
  EXPECT_EQ(p.max_context, 511u);
  EXPECT_EQ(p.stop_ids, (std::vector<std::int32_t>{106, 1, 2}));
  EXPECT_EQ(p.bos_id, 2);
  EXPECT_EQ(p.start_of_turn_id, 105);
  EXPECT_EQ(p.end_of_turn_id, 106);
  EXPECT_EQ(p.reference_ids, (std::vector<std::int32_t>{818, 5279, 529, 7001, 563, 5213, 50429, 84750, 106}));

  EXPECT_EQ(*p.inputs[1].spec.shape, (std::vector<std::int64_t>{1, 511}));
  // head_dim 256 on sliding layers, 512 on every 5th (full attention) layer.
  EXPECT_EQ(*p.inputs[4].spec.shape, (std::vector<std::int64_t>{1, 1, 512, 256}));
  EXPECT_EQ(*p.inputs[4 + 4].spec.shape, (std::vector<std::int64_t>{1, 1, 512, 512}));
  EXPECT_EQ(*p.inputs[4 + 15 + 9].spec.shape, (std::vector<std::int64_t>{1, 1, 512, 512}));
  EXPECT_EQ(p.inputs[4 + 30].role, InputRole::CacheLength);

  EXPECT_EQ(p.outputs[45].use, OutputSlot::Use::Logits);
  for (std::size_t i = 46; i < 91; ++i) {
    EXPECT_EQ(p.outputs[i].use, OutputSlot::Use::UpdateInput);
    EXPECT_EQ(p.outputs[i].input_index, i - 42) << "output " << i;
  }
  for (std::size_t i = 0; i < 45; ++i) EXPECT_EQ(p.outputs[i].use, OutputSlot::Use::Ignore);
}

// The tiny Gemma 4 export's sizes (tools/export): 3 cache layers, a 64-slot
// cache, head_dim 16 on sliding layers and 32 on the full-attention one.
ExternalCacheShape tiny_shape() {
  ExternalCacheShape shape;
  shape.layers = 3;
  shape.cache_length = 64;
  shape.kv_heads = 1;
  shape.head_dims = {16, 16, 32};
  return shape;
}

MethodDescription tiny_export() { return describe_as_exported(external_cache_profile("tiny", "", tiny_shape()), 768); }

TEST(ProfileValidation, RightLayoutIsAccepted) {
  for (const auto& name : profile_names()) {
    ModelProfile p = *find_profile(name);
    const MethodDescription m = p.shape_from_program ? tiny_export() : describe_as_exported(p);
    EXPECT_EQ(validate_profile(resolve_profile(p, m), m), std::nullopt) << name;
  }
}

TEST(ShapeFromProgram, TakesLayersAndSizesFromTheProgram) {
  const ModelProfile p = resolve_profile(gemma4_extcache_profile(), tiny_export());
  EXPECT_EQ(p.name, "gemma4-extcache");
  ASSERT_EQ(p.inputs.size(), 4u + 9u);
  ASSERT_EQ(p.outputs.size(), 19u);
  EXPECT_EQ(p.max_context, 63u);
  EXPECT_EQ(*p.inputs[1].spec.shape, (std::vector<std::int64_t>{1, 63}));
  EXPECT_EQ(*p.inputs[6].spec.shape, (std::vector<std::int64_t>{1, 1, 64, 32}));
  EXPECT_EQ(*p.inputs[9].spec.shape, (std::vector<std::int64_t>{1, 1, 64, 32}));  // v_cache_2
  EXPECT_EQ(p.inputs[10].role, InputRole::CacheLength);
  EXPECT_EQ(p.outputs[9].use, OutputSlot::Use::Logits);
  EXPECT_EQ(p.outputs[18].input_index, 12u);
  // Control ids are left to the tokenizer's names.
  EXPECT_EQ(p.bos_id, -1);
  EXPECT_TRUE(p.stop_ids.empty());
}

TEST(ShapeFromProgram, TheE2BReferenceResolvesToTheFixedProfile) {
  const ModelProfile fixed = gemma4_e2b_extcache_profile();
  const ModelProfile p = resolve_profile(gemma4_extcache_profile(), describe_as_exported(fixed));
  ASSERT_EQ(p.inputs.size(), fixed.inputs.size());
  for (std::size_t i = 0; i < p.inputs.size(); ++i) EXPECT_EQ(*p.inputs[i].spec.shape, *fixed.inputs[i].spec.shape) << i;
  EXPECT_EQ(p.max_context, fixed.max_context);
}

TEST(ShapeFromProgram, NamesTheFirstInputThatDoesNotFit) {
  const ModelProfile generic = gemma4_extcache_profile();
  // A mask that is not cache length - 1.
  MethodDescription m = tiny_export();
  m.inputs[1] = TensorDescription{DType::Int64, {1, 64}};
  auto problem = validate_profile(resolve_profile(generic, m), m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 1 (attention_mask): expected int64[1,63], the model has int64[1,64]");

  // A V cache whose head size differs from its K cache.
  m = tiny_export();
  m.inputs[4 + 3 + 2] = TensorDescription{DType::Float32, {1, 1, 64, 16}};
  problem = validate_profile(resolve_profile(generic, m), m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 9 (v_cache_2): expected float32[1,1,64,32], the model has float32[1,1,64,16]");

  // An llm-standard program: forward(tokens, input_pos).
  m.inputs = {TensorDescription{DType::Int64, {1, 1}}, TensorDescription{DType::Int64, {1}}};
  m.outputs = {TensorDescription{DType::Float32, {1, 1, 768}}};
  problem = validate_profile(resolve_profile(generic, m), m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 1 (attention_mask): expected int64[1,*], the model has int64[1]");

  // Four plain inputs and no cache at all.
  m = tiny_export();
  m.inputs.resize(4);
  m.outputs = {TensorDescription{DType::Float32, {1, 1, 768}}};
  problem = validate_profile(resolve_profile(generic, m), m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->rfind("the model has 4 inputs and no KV cache among them", 0), 0u) << *problem;

  // One input short of whole layers.
  m = tiny_export();
  m.inputs.pop_back();
  problem = validate_profile(resolve_profile(generic, m), m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 12 (cumlen_2) is missing: the model has 12 inputs, profile gemma4-extcache expects 13");
}

TEST(ProfileValidation, MissingInputIsNamed) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  MethodDescription m = describe_as_exported(p);
  m.inputs.pop_back();
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem,
            "input 48 (cumlen_14) is missing: the model has 48 inputs, profile gemma4-e2b-extcache expects 49");
}

TEST(ProfileValidation, ExtraOutputIsNamed) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  MethodDescription m = describe_as_exported(p);
  m.outputs.push_back(TensorDescription{DType::Float32, {1}});
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem,
            "output 91 is not in profile gemma4-e2b-extcache: the model has 92 outputs, the profile expects 91");
}

TEST(ProfileValidation, WrongDtypeIsNamed) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  MethodDescription m = describe_as_exported(p);
  m.inputs[3]->dtype = DType::Int32;
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 3 (cache_position): expected int64[1], the model has int32[1]");
}

TEST(ProfileValidation, WrongShapeIsNamed) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  MethodDescription m = describe_as_exported(p);
  m.inputs[1]->shape = {1, 1023};  // exported for a longer context
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 1 (attention_mask): expected int64[1,511], the model has int64[1,1023]");

  m = describe_as_exported(p);
  m.inputs[8]->shape = {1, 1, 512, 256};  // layer 4 must be a 512-wide full-attention layer
  problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 8 (k_cache_4): expected float32[1,1,512,512], the model has float32[1,1,512,256]");
}

TEST(ProfileValidation, WrongRankIsNamed) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  MethodDescription m = describe_as_exported(p);
  m.outputs[45]->shape = {1, 262144};
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "output 45 (logits): expected float32[1,1,*], the model has float32[1,262144]");
}

TEST(ProfileValidation, NonTensorIsNamed) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  MethodDescription m = describe_as_exported(p);
  m.inputs[0] = std::nullopt;
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "input 0 (input_ids): expected int64[1,1], the model has a non-tensor value");
}

TEST(ProfileValidation, FirstDifferenceWins) {
  ModelProfile p = gemma4_e2b_extcache_profile();
  MethodDescription m = describe_as_exported(p);
  m.inputs[10]->dtype = DType::Float16;
  m.inputs[2]->dtype = DType::Float16;
  m.outputs[0]->dtype = DType::Float16;
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->rfind("input 2 (position_ids)", 0), 0u) << *problem;
}

TEST(ProfileValidation, LlmStandardAcceptsDynamicLengthsAndHalfLogits) {
  ModelProfile p = llm_standard_profile();
  MethodDescription m;
  m.inputs = {TensorDescription{DType::Int64, {1, 128}}, TensorDescription{DType::Int64, {1}}};
  m.outputs = {TensorDescription{DType::Float16, {1, 32000}}};
  EXPECT_EQ(validate_profile(p, m), std::nullopt);
  m.outputs = {TensorDescription{DType::Int32, {1, 32000}}};
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem,
            "output 0 (logits): expected float32|float16|bfloat16 (any shape), the model has int32[1,32000]");
  m.outputs = {TensorDescription{DType::Float32, {1, 32000}}};
  m.inputs = {TensorDescription{DType::Int64, {1, 128}}};
  problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->rfind("input 1 (start_pos) is missing", 0), 0u) << *problem;
}

TEST(ProfileValidation, UpdatedCacheMustFitItsInput) {
  // A hand-written profile whose output spec is looser than its input.
  ModelProfile p;
  p.name = "custom";
  p.inputs.push_back({InputRole::KeyCache, TensorSpec{"k", {DType::Float32}, std::nullopt}});
  p.outputs.push_back({OutputSlot::Use::UpdateInput, 0, TensorSpec{"k_out", {DType::Float32}, std::nullopt}});
  MethodDescription m;
  m.inputs = {TensorDescription{DType::Float32, {1, 8}}};
  m.outputs = {TensorDescription{DType::Float32, {1, 16}}};
  auto problem = validate_profile(p, m);
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem, "output 0 (k_out): float32[1,16] cannot update input 0 which is float32[1,8]");
}

TEST(Profiles, LookUpByName) {
  EXPECT_TRUE(find_profile("gemma4-e2b-extcache"));
  EXPECT_TRUE(find_profile("llm-standard"));
  EXPECT_TRUE(find_profile("gemma4-extcache"));
  EXPECT_FALSE(find_profile("nope"));
}

}  // namespace
}  // namespace orchard
