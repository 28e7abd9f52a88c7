// The `executorch` backend: drives an exported ExecuTorch program with
// `extension/module`'s Module::execute, one step per call, described by a model
// profile (profile.h). The program is memory-mapped (LoadMode::Mmap, not
// mlock: the reference .pte is 5.14 GB on an 8 GB board). For external-cache
// profiles the K/V/cumlen buffers are owned here, stay resident between steps
// and are refreshed from the updated copies the method returns. Tokenizer:
// Orchard's own HfTokenizer (hf_tokenizer.h) reading the model's tokenizer.json,
// so a build needs no tokenizers library. Compiled only with
// -DORCHARD_WITH_EXECUTORCH=ON.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
// The PyPI wheel (1.5.1) ships the thread pool library but not this header.
#if __has_include(<executorch/extension/threadpool/threadpool.h>)
#include <executorch/extension/threadpool/threadpool.h>
#define ORCHARD_HAVE_THREADPOOL_API 1
#endif
#include <executorch/runtime/core/error.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/core/exec_aten/exec_aten.h>
#include <executorch/runtime/executor/method_meta.h>

#include "orchard/backend.h"
#include "orchard/hf_tokenizer.h"
#include "orchard/log.h"
#include "orchard/profile.h"

namespace orchard {
namespace {

using ::executorch::aten::ScalarType;
using ::executorch::aten::Tensor;
using ::executorch::extension::Module;
using ::executorch::extension::TensorPtr;
using ::executorch::runtime::Error;
using ::executorch::runtime::EValue;
using ::executorch::runtime::MethodMeta;
using ::executorch::runtime::Tag;

std::string describe_error(Error error) {
  return std::string(::executorch::runtime::to_string(error)) + " (error " +
         std::to_string(static_cast<int>(error)) + ")";
}

DType to_dtype(ScalarType type) {
  switch (type) {
    case ScalarType::Float: return DType::Float32;
    case ScalarType::Half: return DType::Float16;
    case ScalarType::BFloat16: return DType::BFloat16;
    case ScalarType::Long: return DType::Int64;
    case ScalarType::Int: return DType::Int32;
    case ScalarType::Bool: return DType::Bool;
    case ScalarType::UInt16: return DType::UInt16;
    default: return DType::Other;
  }
}

ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return ScalarType::Float;
    case DType::Float16: return ScalarType::Half;
    case DType::BFloat16: return ScalarType::BFloat16;
    case DType::Int64: return ScalarType::Long;
    case DType::Int32: return ScalarType::Int;
    case DType::Bool: return ScalarType::Bool;
    case DType::UInt16: return ScalarType::UInt16;
    case DType::Other: break;
  }
  return ScalarType::Float;
}

std::size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float16: case DType::BFloat16: case DType::UInt16: return 2;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
    case DType::Other: break;
  }
  return 8;
}

/// The tensor metadata of input/output `i`, read only when its tag says it is a
/// tensor (asking for the tensor metadata of an int input is an error).
template <typename ReadMeta>
std::optional<TensorDescription> describe_value(const ::executorch::runtime::Result<Tag>& tag,
                                                const ReadMeta& read_meta) {
  if (!tag.ok() || *tag != Tag::Tensor) return std::nullopt;
  const auto info = read_meta();
  if (!info.ok()) return std::nullopt;
  TensorDescription d;
  d.dtype = to_dtype(info->scalar_type());
  for (auto size : info->sizes()) d.shape.push_back(static_cast<std::int64_t>(size));
  return d;
}

/// method_meta → the plain description validate_profile() checks.
MethodDescription describe_method(const MethodMeta& meta) {
  MethodDescription m;
  for (std::size_t i = 0; i < meta.num_inputs(); ++i) {
    m.inputs.push_back(describe_value(meta.input_tag(i), [&] { return meta.input_tensor_meta(i); }));
  }
  for (std::size_t i = 0; i < meta.num_outputs(); ++i) {
    m.outputs.push_back(describe_value(meta.output_tag(i), [&] { return meta.output_tensor_meta(i); }));
  }
  return m;
}

/// Zeroed, 64-byte aligned memory with slack at the end (XNNPACK kernels may
/// read a few bytes past a tensor).
class Buffer {
 public:
  explicit Buffer(std::size_t bytes) : bytes_(bytes) {
    const std::size_t allocated = ((bytes + 64 + 63) / 64) * 64;
    data_.reset(static_cast<unsigned char*>(std::aligned_alloc(64, allocated)));
    if (data_) std::memset(data_.get(), 0, allocated);
  }
  void* data() { return data_.get(); }
  std::size_t bytes() const { return bytes_; }
  bool ok() const { return data_ != nullptr; }
  void zero() { std::memset(data_.get(), 0, bytes_); }

 private:
  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  std::unique_ptr<unsigned char, Free> data_;
  std::size_t bytes_;
};

/// Writes an integer value into element `index` of a buffer of `dtype`.
void store(Buffer& buffer, DType dtype, std::size_t index, std::int64_t value) {
  void* p = buffer.data();
  switch (dtype) {
    case DType::Int64: static_cast<std::int64_t*>(p)[index] = value; break;
    case DType::Int32: static_cast<std::int32_t*>(p)[index] = static_cast<std::int32_t>(value); break;
    case DType::Float32: static_cast<float*>(p)[index] = static_cast<float>(value); break;
    case DType::Bool: static_cast<bool*>(p)[index] = value != 0; break;
    default: break;  // validated profiles only use the types above for these roles
  }
}

/// Copies the last row of a logits tensor ([.., vocab]) into `out` as float.
Status read_logits(const Tensor& tensor, std::vector<float>* out) {
  if (tensor.dim() < 1) return Status::failure("logits tensor has no dimensions");
  const auto vocab = static_cast<std::size_t>(tensor.size(tensor.dim() - 1));
  const auto numel = static_cast<std::size_t>(tensor.numel());
  if (vocab == 0 || numel < vocab) return Status::failure("logits tensor is empty");
  const std::size_t offset = numel - vocab;  // last position of the last batch row
  out->resize(vocab);
  switch (tensor.scalar_type()) {
    case ScalarType::Float: {
      const float* data = tensor.const_data_ptr<float>() + offset;
      std::copy(data, data + vocab, out->begin());
      return Status::success();
    }
    case ScalarType::Half: {
      const auto* data = tensor.const_data_ptr<::executorch::aten::Half>() + offset;
      for (std::size_t i = 0; i < vocab; ++i) (*out)[i] = static_cast<float>(data[i]);
      return Status::success();
    }
    case ScalarType::BFloat16: {
      const auto* data = tensor.const_data_ptr<::executorch::aten::BFloat16>() + offset;
      for (std::size_t i = 0; i < vocab; ++i) (*out)[i] = static_cast<float>(data[i]);
      return Status::success();
    }
    default:
      return Status::failure("logits have an unsupported dtype");
  }
}

std::optional<std::int64_t> scalar_of(const EValue& value) {
  if (value.isInt()) return value.toInt();
  if (value.isBool()) return value.toBool() ? 1 : 0;
  if (value.isDouble()) return static_cast<std::int64_t>(value.toDouble());
  return std::nullopt;
}

// ---------------------------------------------------------------------- model

class ExecuTorchModel final : public Model {
 public:
  struct Input {
    InputSlot slot;
    DType dtype = DType::Other;
    std::vector<::executorch::aten::SizesType> sizes;
    std::unique_ptr<Buffer> buffer;  // fixed-shape inputs
    TensorPtr tensor;
  };

  ExecuTorchModel(std::unique_ptr<Module> module, ModelProfile profile, std::size_t max_context,
                  std::size_t tokens_per_step, bool start_pos_is_vector)
      : module_(std::move(module)),
        profile_(std::move(profile)),
        max_context_(max_context),
        tokens_per_step_(tokens_per_step),
        start_pos_is_vector_(start_pos_is_vector) {}

  /// Allocates resident buffers for every fixed-shape input (external cache).
  Status allocate(const MethodDescription& method) {
    for (std::size_t i = 0; i < profile_.inputs.size(); ++i) {
      Input input;
      input.slot = profile_.inputs[i];
      input.dtype = method.inputs[i]->dtype;
      for (auto d : method.inputs[i]->shape) input.sizes.push_back(static_cast<::executorch::aten::SizesType>(d));
      if (profile_.family == ModelProfile::Family::ExternalCache) {
        std::size_t count = 1;
        for (auto d : input.sizes) count *= static_cast<std::size_t>(d);
        input.buffer = std::make_unique<Buffer>(count * element_size(input.dtype));
        if (!input.buffer->ok()) return Status::failure("out of memory allocating input " + std::to_string(i));
        input.tensor = ::executorch::extension::from_blob(input.buffer->data(), input.sizes,
                                                          to_scalar_type(input.dtype));
      }
      inputs_.push_back(std::move(input));
    }
    std::size_t cache_bytes = 0;
    for (const auto& in : inputs_) {
      if (in.slot.role == InputRole::KeyCache || in.slot.role == InputRole::ValueCache) {
        cache_bytes += in.buffer->bytes();
      }
    }
    if (cache_bytes > 0) log_line("KV cache buffers: " + std::to_string(cache_bytes / (1024 * 1024)) + " MiB resident");
    return Status::success();
  }

  std::size_t max_context() const override { return max_context_; }
  std::size_t max_tokens_per_step() const override { return tokens_per_step_; }

  std::optional<double> take_decode_execute_ms() override {
    const double ms = decode_execute_ms_;
    decode_execute_ms_ = 0;
    return ms;
  }

  Status reset() override {
    // External cache: empty it. llm-standard: the cache lives in the program
    // and positions are simply overwritten from 0.
    for (auto& in : inputs_) {
      if (in.buffer) in.buffer->zero();
    }
    return Status::success();
  }

  Status forward(const std::int32_t* tokens, std::size_t count, std::size_t start_pos, FeedKind kind,
                 Logits* logits) override {
    timing_decode_ = kind == FeedKind::Generated;
    if (count == 0) return Status::failure("forward called with no tokens");
    if (start_pos + count > max_context_) {
      return Status::failure("position " + std::to_string(start_pos + count - 1) + " is outside the context of " +
                             std::to_string(max_context_));
    }
    if (profile_.family == ModelProfile::Family::ExternalCache) {
      for (std::size_t k = 0; k < count; ++k) {
        Status status = step_external(tokens[k], start_pos + k);
        if (!status.ok) return status;
      }
    } else {
      for (std::size_t done = 0; done < count;) {
        const std::size_t n = std::min(tokens_per_step_, count - done);
        Status status = step_standard(tokens + done, n, start_pos + done);
        if (!status.ok) return status;
        done += n;
      }
    }
    logits->data = logits_.data();
    logits->size = logits_.size();
    return Status::success();
  }

 private:
  Status step_external(std::int32_t token, std::size_t pos) {
    const auto p = static_cast<std::int64_t>(pos);
    std::vector<EValue> values;
    values.reserve(inputs_.size());
    for (auto& in : inputs_) {
      switch (in.slot.role) {
        case InputRole::InputIds: store(*in.buffer, in.dtype, 0, token); break;
        case InputRole::PositionIds:
        case InputRole::CachePosition:
        case InputRole::CacheLength:  // tokens already in the cache = this position
          store(*in.buffer, in.dtype, 0, p);
          break;
        case InputRole::AttentionMask: {
          const std::size_t length = static_cast<std::size_t>(in.sizes.back());
          for (std::size_t j = 0; j < length; ++j) store(*in.buffer, in.dtype, j, j <= pos ? 1 : 0);
          break;
        }
        case InputRole::KeyCache:
        case InputRole::ValueCache:
          break;  // resident, refreshed from the outputs after each step
        case InputRole::Tokens:
        case InputRole::StartPos:
          return Status::failure("input role " + std::string(to_string(in.slot.role)) +
                                 " is not used by external-cache profiles");
      }
      values.emplace_back(*in.tensor);
    }

    auto result = execute(values);
    if (!result.ok()) return Status::failure("forward failed: " + describe_error(result.error()));
    const std::vector<EValue>& outputs = *result;
    if (outputs.size() != profile_.outputs.size()) {
      return Status::failure("forward returned " + std::to_string(outputs.size()) + " outputs, the profile expects " +
                             std::to_string(profile_.outputs.size()));
    }
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      const OutputSlot& slot = profile_.outputs[i];
      if (slot.use == OutputSlot::Use::Ignore) continue;
      if (!outputs[i].isTensor()) return Status::failure("output " + std::to_string(i) + " is not a tensor");
      const Tensor tensor = outputs[i].toTensor();
      if (slot.use == OutputSlot::Use::Logits) {
        Status status = read_logits(tensor, &logits_);
        if (!status.ok) return status;
      } else {
        Buffer& target = *inputs_[slot.input_index].buffer;
        if (tensor.nbytes() != target.bytes()) {
          return Status::failure("output " + std::to_string(i) + " has " + std::to_string(tensor.nbytes()) +
                                 " bytes, input " + std::to_string(slot.input_index) + " has " +
                                 std::to_string(target.bytes()));
        }
        // The method may have updated our buffer in place and returned it.
        if (tensor.const_data_ptr() != target.data()) {
          std::memcpy(target.data(), tensor.const_data_ptr(), target.bytes());
        }
      }
    }
    return Status::success();
  }

  Status step_standard(const std::int32_t* tokens, std::size_t n, std::size_t start_pos) {
    token_scratch_.assign(tokens, tokens + n);
    TensorPtr token_tensor = ::executorch::extension::from_blob(
        token_scratch_.data(), {1, static_cast<::executorch::aten::SizesType>(n)}, ScalarType::Long);
    // start_pos is one value, or the list of cache positions when the
    // export declares a longer tensor (as ExecuTorch's own runner does).
    position_scratch_.clear();
    if (start_pos_is_vector_) {
      for (std::size_t i = 0; i < n; ++i) position_scratch_.push_back(static_cast<std::int64_t>(start_pos + i));
    } else {
      position_scratch_.push_back(static_cast<std::int64_t>(start_pos));
    }
    TensorPtr pos_tensor = ::executorch::extension::from_blob(
        position_scratch_.data(), {static_cast<::executorch::aten::SizesType>(position_scratch_.size())},
        ScalarType::Long);

    std::vector<EValue> values;
    values.emplace_back(*token_tensor);
    values.emplace_back(*pos_tensor);
    auto result = execute(values);
    if (!result.ok()) return Status::failure("forward failed: " + describe_error(result.error()));
    const std::vector<EValue>& outputs = *result;
    if (outputs.empty() || !outputs[0].isTensor()) return Status::failure("forward returned no logits tensor");
    return read_logits(outputs[0].toTensor(), &logits_);
  }

  /// Module::execute, timed when the step feeds a generated token.
  ::executorch::runtime::Result<std::vector<EValue>> execute(const std::vector<EValue>& values) {
    const auto started = std::chrono::steady_clock::now();
    auto result = module_->execute(profile_.method, values);
    if (timing_decode_) {
      decode_execute_ms_ +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    }
    return result;
  }

  std::unique_ptr<Module> module_;
  ModelProfile profile_;
  bool timing_decode_ = false;
  double decode_execute_ms_ = 0;
  std::size_t max_context_;
  std::size_t tokens_per_step_;
  bool start_pos_is_vector_;
  std::vector<Input> inputs_;
  std::vector<float> logits_;
  std::vector<std::int64_t> token_scratch_;
  std::vector<std::int64_t> position_scratch_;
};

// ---------------------------------------------------------------------- tokenizer

class HfTokenizerAdapter final : public Tokenizer {
 public:
  HfTokenizerAdapter(HfTokenizer tokenizer, SpecialTokens special)
      : tokenizer_(std::move(tokenizer)), special_(std::move(special)) {
    for (auto id : {special_.bos, special_.start_of_turn, special_.end_of_turn}) {
      if (id >= 0) control_.insert(id);
    }
    control_.insert(special_.stop_ids.begin(), special_.stop_ids.end());
  }

  Status encode(const std::string& text, std::vector<std::int32_t>* ids) const override {
    *ids = tokenizer_.encode(text);
    return Status::success();
  }

  /// Control ids give "", and so does every special token (as the reference
  /// decodes with skip_special_tokens); token_bytes() already skips those.
  std::string token_bytes(std::int32_t id) const override {
    if (id < 0 || control_.count(id) > 0) return std::string();
    return tokenizer_.token_bytes(id);
  }

  SpecialTokens special_tokens() const override { return special_; }

 private:
  HfTokenizer tokenizer_;
  SpecialTokens special_;
  std::set<std::int32_t> control_;
};

/// The id of the first of these marker names the tokenizer has as one token
/// (Gemma 4 names its turn markers "<|turn>" / "<turn|>", Gemma 3 "<start_of_turn>"
/// / "<end_of_turn>"); -1 when it has none (the template then encodes the text).
std::int32_t marker_id(const HfTokenizer& tokenizer, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (auto id = tokenizer.token_id(name)) return *id;
  }
  return -1;
}

/// Fills what the program did not say from the tokenizer's token names: BOS,
/// the turn markers, and the stop ids (end-of-sequence, then end of turn).
/// Returns the problem when no stop id can be found.
std::optional<std::string> complete_from_tokenizer(const HfTokenizer& tokenizer, SpecialTokens* special) {
  if (special->bos < 0) special->bos = marker_id(tokenizer, {"<bos>", "<s>", "<|begin_of_text|>"});
  if (special->stop_ids.empty()) {
    const std::int32_t eos = marker_id(tokenizer, {"<eos>", "</s>", "<|end_of_text|>"});
    if (eos < 0) return "the program has no get_eos_ids and the tokenizer names no end-of-sequence token";
    special->stop_ids.push_back(eos);
  }
  special->start_of_turn = marker_id(tokenizer, {"<|turn>", "<start_of_turn>"});
  special->end_of_turn = marker_id(tokenizer, {"<turn|>", "<end_of_turn>"});
  if (special->end_of_turn >= 0 && std::find(special->stop_ids.begin(), special->stop_ids.end(),
                                             special->end_of_turn) == special->stop_ids.end()) {
    special->stop_ids.push_back(special->end_of_turn);
  }
  return std::nullopt;
}

BackendLoad failed(std::string message) {
  BackendLoad result;
  result.error = protocol::make_error(protocol::ErrorCode::LoadFailed, std::move(message));
  return result;
}

std::string base_name(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

BackendLoad load_executorch_backend(const Options& options) {
  std::optional<ModelProfile> found = find_profile(options.profile);
  if (!found) {
    std::string known;
    for (const auto& name : profile_names()) known += (known.empty() ? "" : ", ") + name;
    return failed("unknown profile \"" + options.profile + "\" (known: " + known + ")");
  }
  ModelProfile profile = std::move(*found);

  struct stat info {};
  if (::stat(options.model_path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return failed("no model file at " + options.model_path);
  }

  if (options.threads > 0) {
#ifdef ORCHARD_HAVE_THREADPOOL_API
    auto* pool = ::executorch::extension::threadpool::get_threadpool();
    if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<std::uint32_t>(options.threads))) {
      log_line("could not set the threadpool to " + std::to_string(options.threads) + " threads");
    }
#else
    log_line("--threads " + std::to_string(options.threads) +
             " ignored: this ExecuTorch package ships no threadpool header; ExecuTorch picks the thread count");
#endif
  }

  // Memory-map the program; pages come from the page cache on demand and are
  // never locked (mlock of 5 GB on an 8 GB Pi would starve everything else).
  auto module = std::make_unique<Module>(options.model_path, Module::LoadMode::Mmap);
  if (const Error error = module->load(); error != Error::Ok) {
    return failed("cannot load " + options.model_path + ": " + describe_error(error));
  }
  auto names = module->method_names();
  if (!names.ok()) return failed("cannot list the methods of " + options.model_path + ": " + describe_error(names.error()));
  if (names->count(profile.method) == 0) {
    return failed("the program has no method \"" + profile.method + "\"");
  }

  auto meta = module->method_meta(profile.method);
  if (!meta.ok()) return failed("cannot read method_meta(\"" + profile.method + "\"): " + describe_error(meta.error()));
  const MethodDescription method = describe_method(*meta);
  profile = resolve_profile(profile, method);
  if (auto problem = validate_profile(profile, method)) {
    return failed("the model does not match profile " + profile.name + ": " + *problem);
  }

  // Tokenizer: tokenizer.json in the given directory.
  std::string tokenizer_error;
  std::optional<HfTokenizer> hf = HfTokenizer::load(options.tokenizer_dir, &tokenizer_error);
  if (!hf) return failed("cannot load the tokenizer in " + options.tokenizer_dir + ": " + tokenizer_error);

  SpecialTokens special;
  std::size_t max_context = profile.max_context;
  std::size_t tokens_per_step = 1;
  bool start_pos_is_vector = false;

  if (profile.family == ModelProfile::Family::LlmStandard) {
    auto metadata = [&](const char* name) -> std::optional<std::int64_t> {
      if (names->count(name) == 0) return std::nullopt;
      auto value = module->get(name);
      if (!value.ok()) return std::nullopt;
      return scalar_of(*value);
    };
    const auto max_seq_len = metadata("get_max_seq_len");
    if (!max_seq_len || *max_seq_len <= 0) {
      return failed("profile llm-standard needs the metadata method get_max_seq_len, which this program lacks");
    }
    if (const auto kv = metadata("use_kv_cache"); kv && *kv == 0) {
      return failed("this program was exported without a KV cache (use_kv_cache = 0); the runner needs one");
    }
    max_context = static_cast<std::size_t>(metadata("get_max_context_len").value_or(*max_seq_len));
    if (metadata("enable_dynamic_shape").value_or(0) != 0) {
      const std::int64_t declared = method.inputs[0]->shape.back();
      tokens_per_step = static_cast<std::size_t>(std::max<std::int64_t>(1, std::min(*max_seq_len, declared)));
    }
    start_pos_is_vector = method.inputs[1]->shape.front() > 1;

    special.bos = static_cast<std::int32_t>(metadata("get_bos_id").value_or(-1));
    if (names->count("get_eos_ids") > 0) {
      auto eos = module->execute("get_eos_ids");
      if (eos.ok()) {
        for (const auto& value : *eos) {
          if (auto id = scalar_of(value)) special.stop_ids.push_back(static_cast<std::int32_t>(*id));
        }
      }
    }
    if (auto problem = complete_from_tokenizer(*hf, &special)) return failed(*problem);
  } else if (profile.bos_id < 0) {
    // gemma4-extcache: the program carries no metadata; the tokenizer names the tokens.
    if (auto problem = complete_from_tokenizer(*hf, &special)) return failed(*problem);
  } else {
    special.bos = profile.bos_id;
    special.start_of_turn = profile.start_of_turn_id;
    special.end_of_turn = profile.end_of_turn_id;
    special.stop_ids = profile.stop_ids;
    const auto vocab = static_cast<std::int64_t>(hf->vocab_size());
    for (auto id : {special.bos, special.start_of_turn, special.end_of_turn}) {
      if (id >= vocab) {
        return failed("the tokenizer in " + options.tokenizer_dir + " has " + std::to_string(vocab) +
                      " tokens; profile " + profile.name + " needs id " + std::to_string(id));
      }
    }
  }
  if (options.max_context && *options.max_context < max_context) max_context = *options.max_context;

  if (const Error error = module->load_method(profile.method); error != Error::Ok) {
    return failed("cannot load method \"" + profile.method + "\": " + describe_error(error));
  }

  auto model = std::make_unique<ExecuTorchModel>(std::move(module), profile, max_context, tokens_per_step,
                                                 start_pos_is_vector);
  if (Status status = model->allocate(method); !status.ok) return failed(status.message);

  LoadedBackend loaded;
  loaded.backend = "executorch";
  loaded.model_name = options.model_name.value_or(base_name(options.model_path) + " (" + profile.name + ")");
  loaded.tokenizer = std::make_unique<HfTokenizerAdapter>(std::move(*hf), special);
  loaded.model = std::move(model);
  loaded.reference_ids = profile.reference_ids;
  log_line("executorch: " + options.model_path + " with profile " + profile.name + ", context " +
           std::to_string(max_context) + ", " + std::to_string(tokens_per_step) + " token(s) per step");
  BackendLoad result;
  result.loaded = std::move(loaded);
  return result;
}

}  // namespace orchard
