"""Shared export pipeline: wrapper -> (quantize) -> torch.export -> XNNPACK lower -> .pte -> verify.

Used by both `tiny` (random weights) and `hf` (local checkpoint) subcommands.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn as nn

from .models import GEMMA4_LAYOUT, LLM_STANDARD_LAYOUT, RUNNER_PROFILES
from .wrappers import ExtCacheWrapper, StandardLLMWrapper

MAX_NEW_TOKENS = 16
GROUP_SIZE = 128

Logger = Callable[[str], None]


def _log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- versions

def versions() -> dict[str, str]:
    import executorch.version
    import torchao
    import transformers

    return {
        "torch": torch.__version__,
        "executorch": executorch.version.__version__,
        "torchao": torchao.__version__,
        "transformers": transformers.__version__,
    }


def strip_local(v: str) -> str:
    """'1.5.1+cpu' -> '1.5.1'."""
    return v.split("+", 1)[0]


# --------------------------------------------------------------------------- quantization

class Int8Embedding(nn.Module):
    """Per-row INT8 embedding using only index/cast/mul aten ops (lowerable by ExecuTorch).

    torchao's quantized embeddings lower to torchao::*_affine ops that have no ExecuTorch
    out-variants; this keeps Gemma's `embed_scale` (ScaledWordEmbedding) if present."""

    def __init__(self, emb: nn.Embedding, compute_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        w = emb.weight.detach().to(torch.float32)
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
        self.num_embeddings, self.embedding_dim = w.shape
        self.compute_dtype = compute_dtype
        self.register_buffer("weight_int8", (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(compute_dtype))
        es = getattr(emb, "embed_scale", None)
        self.has_embed_scale = es is not None
        self.register_buffer("embed_scale", torch.as_tensor(es if es is not None else 1.0, dtype=compute_dtype))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.weight_int8[input_ids].to(self.compute_dtype) * self.scale[input_ids].unsqueeze(-1)
        if self.has_embed_scale:
            out = out * self.embed_scale
        return out


def quantize_model(model: nn.Module, mode: str, log: Logger = _log) -> None:
    """In-place quantization. 'int4' = the reference recipe: torchao
    Int8DynamicActivationIntxWeightConfig(int4, PerGroup(128)) on every nn.Linear whose
    in_features is a multiple of 128 (others stay FP32), plus INT8 per-layer embeddings."""
    if mode == "none":
        return
    if mode != "int4":
        raise ValueError(f"unknown quantize mode {mode!r}")
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    eligible = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.in_features % GROUP_SIZE == 0]
    skipped = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.in_features % GROUP_SIZE != 0]
    quantize_(
        model,
        Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(GROUP_SIZE)),
        filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and m.in_features % GROUP_SIZE == 0,
    )
    log(f"  [quantize] int4 PerGroup({GROUP_SIZE}) on {len(eligible)} Linear(s); "
        f"{len(skipped)} left FP32 (in_features not a multiple of {GROUP_SIZE})")
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Embedding) and name.endswith("embed_tokens_per_layer"):
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, name.rsplit(".", 1)[1], Int8Embedding(mod))
            log(f"  [quantize] {name}: nn.Embedding -> Int8Embedding")


# --------------------------------------------------------------------------- stepping / greedy decode

class Stepper(Protocol):
    def reset(self) -> None: ...
    def step(self, token: int, pos: int) -> torch.Tensor: ...  # returns logits [vocab]


class EagerExtStepper:
    def __init__(self, fn: Callable[..., Any], wrapper: ExtCacheWrapper) -> None:
        self.fn, self.wrapper = fn, wrapper
        self.reset()

    def reset(self) -> None:
        self.ks, self.vs, self.cs = self.wrapper.allocate()

    def step(self, token: int, pos: int) -> torch.Tensor:
        with torch.no_grad():
            logits, ks, vs, cs = self.fn(*ext_inputs(token, pos, self.wrapper.max_cache_len), self.ks, self.vs, self.cs)
        self.ks, self.vs, self.cs = list(ks), list(vs), list(cs)
        return logits[0, -1]


class EagerStandardStepper:
    def __init__(self, wrapper: StandardLLMWrapper) -> None:
        self.wrapper = wrapper
        self.reset()

    def reset(self) -> None:
        self.wrapper.reset_cache()

    def step(self, token: int, pos: int) -> torch.Tensor:
        with torch.no_grad():
            return self.wrapper(torch.tensor([[token]], dtype=torch.long), torch.tensor([pos], dtype=torch.long))[0, -1]


class PteStepper:
    """Runs a .pte with ExecuTorch's Python runtime."""

    def __init__(self, pte_path: Path, layout: str, max_cache_len: int, n_cache_layers: int = 0,
                 cache_shapes: list[tuple[int, ...]] | None = None) -> None:
        from executorch.runtime import Runtime, Verification

        self.program = Runtime.get().load_program(str(pte_path), verification=Verification.Minimal)
        self.layout, self.max_cache_len = layout, max_cache_len
        self.n = n_cache_layers
        self.cache_shapes = cache_shapes or []
        self.reset()

    def reset(self) -> None:
        # (re)loading the method gives fresh mutable-buffer state for llm-standard
        self.method = self.program.load_method("forward")
        if self.layout == GEMMA4_LAYOUT:
            self.ks = [torch.zeros(s, dtype=torch.float32) for s in self.cache_shapes]
            self.vs = [torch.zeros(s, dtype=torch.float32) for s in self.cache_shapes]
            self.cs = [torch.zeros(1, dtype=torch.int64) for _ in self.cache_shapes]

    def step(self, token: int, pos: int) -> torch.Tensor:
        if self.layout == GEMMA4_LAYOUT:
            outs = self.method.execute([*ext_inputs(token, pos, self.max_cache_len), *self.ks, *self.vs, *self.cs])
            n = self.n
            logits = outs[3 * n]
            rest = list(outs[3 * n + 1:])
            self.ks, self.vs, self.cs = rest[:n], rest[n:2 * n], rest[2 * n:3 * n]
            return logits[0, -1]
        outs = self.method.execute([torch.tensor([[token]], dtype=torch.long), torch.tensor([pos], dtype=torch.long)])
        return outs[0][0, -1]


def ext_inputs(token: int, pos: int, max_cache_len: int) -> tuple[torch.Tensor, ...]:
    """input_ids[1,1], attention_mask[1,L-1] (1 for slots 0..pos), position_ids[1,1], cache_position[1]."""
    mask = torch.zeros(1, max_cache_len - 1, dtype=torch.long)
    mask[:, : pos + 1] = 1
    return (torch.tensor([[token]], dtype=torch.long), mask,
            torch.tensor([[pos]], dtype=torch.long), torch.tensor([pos], dtype=torch.long))


def greedy(stepper: Stepper, prompt_ids: list[int], stop_ids: tuple[int, ...], max_context: int,
           max_new_tokens: int = MAX_NEW_TOKENS) -> list[int]:
    """Token-by-token prompt feed then greedy decode; includes the stop id if produced."""
    if len(prompt_ids) + max_new_tokens > max_context:
        raise ValueError(f"prompt ({len(prompt_ids)}) + {max_new_tokens} new tokens exceeds context {max_context}")
    stepper.reset()
    logits: torch.Tensor | None = None
    for pos, tok in enumerate(prompt_ids):
        logits = stepper.step(tok, pos)
    assert logits is not None
    out: list[int] = []
    pos = len(prompt_ids)
    while True:
        nxt = int(torch.argmax(logits).item())
        out.append(nxt)
        if nxt in stop_ids or len(out) >= max_new_tokens:
            return out
        logits = stepper.step(nxt, pos)
        pos += 1


# --------------------------------------------------------------------------- export + lower

def export_program(wrapper: nn.Module, layout: str) -> torch.export.ExportedProgram:
    if layout == GEMMA4_LAYOUT:
        assert isinstance(wrapper, ExtCacheWrapper)
        ks, vs, cs = wrapper.allocate()
        args = (*ext_inputs(0, 0, wrapper.max_cache_len), ks, vs, cs)
    else:
        args = (torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    with torch.no_grad():
        return torch.export.export(wrapper, args, strict=False)


def lower_to_pte(ep: torch.export.ExportedProgram, pte_path: Path,
                 constant_methods: dict[str, Any] | None, log: Logger = _log, per_op_mode: bool = True) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(
        ep,
        partitioner=[XnnpackPartitioner(per_op_mode=per_op_mode)],
        compile_config=EdgeCompileConfig(_check_ir_validity=False),
        constant_methods=constant_methods,
    )
    for _, buf in edge.exported_program().named_buffers():
        if buf.requires_grad:
            buf.requires_grad_(False)
    with torch.inference_mode():
        prog = edge.to_executorch()
    # Reference workaround: write through an open file handle, then reload immediately.
    with open(pte_path, "wb") as f:
        prog.write_to_file(f)
    from executorch.runtime import Runtime, Verification

    Runtime.get().load_program(str(pte_path), verification=Verification.Minimal).load_method("forward")
    log(f"  [lower] wrote {pte_path} ({pte_path.stat().st_size / 1e6:.2f} MB), reload OK")


def describe_pte(pte_path: Path) -> dict[str, Any]:
    """Inputs/outputs of every method as [{'dtype': str, 'sizes': [...]}, ...]."""
    from executorch.runtime import Runtime, Verification

    prog = Runtime.get().load_program(str(pte_path), verification=Verification.Minimal)
    desc: dict[str, Any] = {}
    for name in sorted(prog.method_names):
        meta = prog.metadata(name)
        if name == "forward":
            desc[name] = {
                "inputs": [_tmeta(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
                "outputs": [_tmeta(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())],
            }
        else:  # constant metadata method (returns a non-tensor value)
            val = prog.load_method(name).execute([])
            desc[name] = {"value": [v.tolist() if isinstance(v, torch.Tensor) else v for v in val]}
    return desc


# ExecuTorch ScalarType codes -> torch-style names
_ET_DTYPES: dict[int, str] = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16",
                               6: "float32", 7: "float64", 11: "bool", 15: "bfloat16"}


def _tmeta(t: Any) -> dict[str, Any]:
    raw = t.dtype()
    code = int(raw) if not hasattr(raw, "value") else int(raw.value)
    return {"dtype": _ET_DTYPES.get(code, str(raw)), "sizes": list(t.sizes())}


def format_layout(desc: dict[str, Any], input_names: list[str], output_names: list[str]) -> str:
    lines: list[str] = []
    fwd = desc["forward"]
    lines.append("forward inputs:")
    for i, t in enumerate(fwd["inputs"]):
        nm = input_names[i] if i < len(input_names) else "?"
        lines.append(f"  [{i:2d}] {nm:18s} {t['dtype']}{t['sizes']}")
    lines.append("forward outputs:")
    for i, t in enumerate(fwd["outputs"]):
        nm = output_names[i] if i < len(output_names) else "?"
        lines.append(f"  [{i:2d}] {nm:18s} {t['dtype']}{t['sizes']}")
    for m in desc:
        if m != "forward":
            lines.append(f"constant method {m}() -> {desc[m]['value']}")
    return "\n".join(lines)


def io_names(layout: str, n: int) -> tuple[list[str], list[str]]:
    if layout == GEMMA4_LAYOUT:
        caches = [f"k_cache[{i}]" for i in range(n)] + [f"v_cache[{i}]" for i in range(n)] + [f"cumlen[{i}]" for i in range(n)]
        return (["input_ids", "attention_mask", "position_ids", "cache_position", *caches],
                [f"mut:{c}" for c in caches] + ["logits"] + [f"out:{c}" for c in caches])
    return ["tokens", "input_pos"], ["logits"]


# --------------------------------------------------------------------------- top level

@dataclass
class ExportRequest:
    layout: str
    out_dir: Path
    model: nn.Module
    hf_tokenizer: Any
    stop_ids: tuple[int, ...]
    bos_id: int
    eos_ids: list[int]
    max_cache_len: int
    quantize: str
    name: str
    version: str
    weights: str
    prompt: str = "The capital of France is"
    per_op_mode: bool = True
    extra_manifest: dict[str, Any] = field(default_factory=dict)


def make_wrapper(model: nn.Module, layout: str, max_cache_len: int) -> ExtCacheWrapper | StandardLLMWrapper:
    if layout == GEMMA4_LAYOUT:
        return ExtCacheWrapper(model, max_cache_len).eval()
    if layout == LLM_STANDARD_LAYOUT:
        return StandardLLMWrapper(model, max_cache_len).eval()
    raise ValueError(f"unknown layout {layout!r}")


def eager_stepper(wrapper: nn.Module, layout: str) -> Stepper:
    if layout == GEMMA4_LAYOUT:
        assert isinstance(wrapper, ExtCacheWrapper)
        return EagerExtStepper(wrapper, wrapper)
    assert isinstance(wrapper, StandardLLMWrapper)
    return EagerStandardStepper(wrapper)


def max_context_for(layout: str, max_cache_len: int) -> int:
    # ext layout: the mask is [1, L-1] (slot L-1 is never attendable) -> L-1 usable positions.
    return max_cache_len - 1 if layout == GEMMA4_LAYOUT else max_cache_len


def run_export(req: ExportRequest, log: Logger = _log) -> dict[str, Any]:
    from .tokenizer import chat_prompt_ids

    t_all = time.time()
    req.out_dir.mkdir(parents=True, exist_ok=True)
    max_ctx = max_context_for(req.layout, req.max_cache_len)
    prompt_ids = chat_prompt_ids(req.hf_tokenizer, req.prompt)
    log(f"[{req.layout}] prompt {req.prompt!r} -> {len(prompt_ids)} chat-template ids: {prompt_ids}")

    wrapper = make_wrapper(req.model, req.layout, req.max_cache_len)
    n_cache = len(wrapper.specs)
    log(f"  cache layers: {n_cache} " + ", ".join(
        f"L{s.layer_idx}:{'sliding' if s.is_sliding else 'full'}{list(s.shape())}" for s in wrapper.specs))

    t0 = time.time()
    fp32_ids = greedy(eager_stepper(wrapper, req.layout), prompt_ids, req.stop_ids, max_ctx)
    log(f"  [eager fp32] greedy ids: {fp32_ids}  ({time.time() - t0:.1f}s)")

    quant_eager_ids: list[int] | None = None
    if req.quantize != "none":
        t0 = time.time()
        quantize_model(req.model, req.quantize, log)
        quant_eager_ids = greedy(eager_stepper(wrapper, req.layout), prompt_ids, req.stop_ids, max_ctx)
        log(f"  [eager {req.quantize}] greedy ids: {quant_eager_ids}  ({time.time() - t0:.1f}s)")

    t0 = time.time()
    if isinstance(wrapper, StandardLLMWrapper):
        wrapper.reset_cache()
    ep = export_program(wrapper, req.layout)
    log(f"  [export] torch.export OK ({time.time() - t0:.1f}s): {len(ep.graph_signature.user_inputs)} user inputs, "
        f"output kinds {_out_kinds(ep)}")
    exported_ids = greedy(_exported_stepper(ep, wrapper, req.layout), prompt_ids, req.stop_ids, max_ctx)
    log(f"  [exported program, python] greedy ids: {exported_ids}")

    constant_methods: dict[str, Any] | None = None
    if req.layout == LLM_STANDARD_LAYOUT:
        constant_methods = {
            "get_max_seq_len": req.max_cache_len,
            "get_max_context_len": req.max_cache_len,
            "get_bos_id": req.bos_id,
            "get_eos_ids": list(req.eos_ids),
            "use_kv_cache": True,
            "enable_dynamic_shape": False,
        }
    t0 = time.time()
    pte_path = req.out_dir / "model.pte"
    lower_to_pte(ep, pte_path, constant_methods, log, per_op_mode=req.per_op_mode)
    t_lower = time.time() - t0
    log(f"  [lower] XNNPACK(per_op_mode={req.per_op_mode}) + to_executorch: {t_lower:.1f}s")

    desc = describe_pte(pte_path)
    in_names, out_names = io_names(req.layout, n_cache)
    layout_text = format_layout(desc, in_names, out_names)
    log("  .pte layout:\n" + "\n".join("    " + ln for ln in layout_text.splitlines()))

    pte_ids = greedy(PteStepper(pte_path, req.layout, req.max_cache_len, n_cache, [s.shape() for s in wrapper.specs]),
                     prompt_ids, req.stop_ids, max_ctx)
    log(f"  [pte, executorch runtime] greedy ids: {pte_ids}")

    model_ids = fp32_ids if quant_eager_ids is None else quant_eager_ids
    if pte_ids == model_ids:
        source = "eagerFp32" if quant_eager_ids is None else "eagerQuantized"
    else:
        source = "pte"
    # expectedTokenIds must be what the .pte computes (the C++ runner must reproduce them exactly).
    expected = pte_ids

    from .tokenizer import save_tokenizer_files  # noqa: F401  (callers save tokenizer files)

    v = versions()
    manifest: dict[str, Any] = {
        "name": req.name,
        "version": req.version,
        "runtime": "executorch",
        "runtimeVersion": strip_local(v["executorch"]),
        "profile": RUNNER_PROFILES[req.layout],
        "maxContext": max_ctx,
        "reference": {"prompt": req.prompt, "expectedTokenIds": expected},
        "promptTokenIds": prompt_ids,
        "weights": req.weights,
        "quantization": req.quantize,
        "xnnpackPerOpMode": req.per_op_mode,
        "exportedWith": v,
        "eagerFp32TokenIds": fp32_ids,
        "quantizedPteTokenIds": pte_ids,
        "expectedTokenIdsSource": source,
        "pteEqualsEagerFp32": pte_ids == fp32_ids,
        "_comment": (
            "reference.expectedTokenIds are the greedy ids the .pte itself computes (ExecuTorch Python runtime), "
            "cross-checked against the eager model the .pte contains (expectedTokenIdsSource). "
            "eagerFp32TokenIds come from the unquantized FP32 eager model; with int4 on random weights they can differ."
        ),
        "layout": desc,
        **req.extra_manifest,
    }
    if quant_eager_ids is not None:
        manifest["eagerQuantizedTokenIds"] = quant_eager_ids
    manifest["exportedProgramTokenIds"] = exported_ids
    (req.out_dir / "orchard-model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"  wrote {req.out_dir / 'orchard-model.json'}  (total {time.time() - t_all:.1f}s)")
    return manifest


def _out_kinds(ep: torch.export.ExportedProgram) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in ep.graph_signature.output_specs:
        counts[str(o.kind).split(".")[-1]] = counts.get(str(o.kind).split(".")[-1], 0) + 1
    return counts


def _exported_stepper(ep: torch.export.ExportedProgram, wrapper: nn.Module, layout: str) -> Stepper:
    mod = ep.module()
    if layout == GEMMA4_LAYOUT:
        assert isinstance(wrapper, ExtCacheWrapper)
        return EagerExtStepper(mod, wrapper)

    class _S:
        def __init__(self) -> None:
            self.reset()

        def reset(self) -> None:
            for name, buf in mod.named_buffers():
                if "cache" in name:
                    buf.zero_()

        def step(self, token: int, pos: int) -> torch.Tensor:
            with torch.no_grad():
                return mod(torch.tensor([[token]], dtype=torch.long), torch.tensor([pos], dtype=torch.long))[0, -1]

    return _S()
