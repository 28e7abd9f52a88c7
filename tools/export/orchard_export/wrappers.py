"""Export wrappers: bind transformers' cache API to explicit tensors.

`ExtCacheWrapper` (layout ``gemma4-e2b-extcache``) takes the KV caches as graph
inputs and mutates them in place (torch.export records them as user-input
mutations), exactly like the reference deployment's external-cache .pte.

`StandardLLMWrapper` (layout ``llm-standard``) keeps the KV caches as module
buffers (ExecuTorch's standard LLM layout: forward(tokens, input_pos)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from transformers.cache_utils import Cache, DummyLayer, StaticLayer, get_layer_types_and_kwargs


@dataclass(frozen=True)
class CacheLayerSpec:
    """Static metadata of one KV-cache-owning decoder layer."""

    layer_idx: int
    layer_type: str
    num_kv_heads: int
    head_dim: int
    max_cache_len: int

    @property
    def is_sliding(self) -> bool:
        return self.layer_type in ("sliding_attention", "chunked_attention")

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.num_kv_heads, self.max_cache_len, self.head_dim)


class BoundCacheLayer(StaticLayer):
    """A StaticLayer whose keys/values/cumulative_length are caller-provided tensors.

    Unlike `StaticSlidingWindowLayer` it never rolls: the context is capped at
    ``max_cache_len <= sliding_window`` (as in the reference recipe, L=512), so a
    sliding layer behaves like a full cache with a sliding mask. The write slot is
    ``cumulative_length`` (a tensor), which is also returned as the query offset so
    masks are correct for every position (not specialised at trace time).
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, cumulative_length: torch.Tensor,
                 is_sliding: bool) -> None:
        super().__init__(max_cache_len=keys.shape[2])
        self.keys = keys
        self.values = values
        self.cumulative_length = cumulative_length
        self.dtype, self.device = keys.dtype, keys.device
        self.batch_size, self.num_heads = keys.shape[0], keys.shape[1]
        self.k_head_dim = keys.shape[-1]
        self.v_head_dim = values.shape[-1]
        self.is_initialized = True
        self.is_sliding = is_sliding  # type: ignore[misc]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        return None

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.max_cache_len, 0

    def get_seq_length(self) -> torch.Tensor:  # type: ignore[override]
        return self.cumulative_length


def text_config(model: nn.Module) -> Any:
    cfg = model.config
    return cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    base = text_model(model)
    return base.layers  # type: ignore[return-value]


def text_model(model: nn.Module) -> nn.Module:
    """The decoder stack: model.model (CausalLM) or model.model.language_model (multimodal)."""
    inner = model.model  # type: ignore[attr-defined]
    return getattr(inner, "language_model", inner)


def compute_cache_specs(model: nn.Module, max_cache_len: int) -> tuple[list[str], list[CacheLayerSpec]]:
    """Per decoder layer cache type (incl. 'dummy' for kv-shared layers) and specs of cache-owning layers."""
    cfg = text_config(model)
    layer_types, _ = get_layer_types_and_kwargs(cfg)
    sw = getattr(cfg, "sliding_window", None)
    if sw is not None and any(t in ("sliding_attention", "chunked_attention") for t in layer_types):
        if max_cache_len > sw:
            raise ValueError(f"max_cache_len={max_cache_len} exceeds sliding_window={sw}; not supported (no rolling)")
    specs: list[CacheLayerSpec] = []
    for i, lt in enumerate(layer_types):
        if lt == "dummy":
            continue
        attn = decoder_layers(model)[i].self_attn
        head_dim = int(attn.head_dim)
        kv_heads = int(attn.k_proj.out_features) // head_dim
        specs.append(CacheLayerSpec(i, lt, kv_heads, head_dim, max_cache_len))
    return list(layer_types), specs


def build_bound_cache(layer_types: list[str], specs: list[CacheLayerSpec], keys: list[torch.Tensor],
                      values: list[torch.Tensor], cumlens: list[torch.Tensor]) -> Cache:
    layers: list[Any] = []
    j = 0
    for lt in layer_types:
        if lt == "dummy":
            layers.append(DummyLayer())
        else:
            layers.append(BoundCacheLayer(keys[j], values[j], cumlens[j], specs[j].is_sliding))
            j += 1
    return Cache(layers=layers)


class _LogitsHead(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.decoder = text_model(model)
        self.lm_head = model.lm_head  # type: ignore[attr-defined]
        cap = getattr(text_config(model), "final_logit_softcapping", None)
        self.softcap: float | None = float(cap) if cap else None

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               position_ids: torch.Tensor, cache: Cache) -> torch.Tensor:
        out = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           past_key_values=cache, use_cache=True)
        logits = self.lm_head(out.last_hidden_state)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class ExtCacheWrapper(_LogitsHead):
    """forward(input_ids, attention_mask, position_ids, cache_position, k_caches, v_caches, cumlens)
    -> (logits, k_caches, v_caches, cumlens). Caches are mutated in place."""

    def __init__(self, model: nn.Module, max_cache_len: int) -> None:
        super().__init__(model)
        self.layer_types, self.specs = compute_cache_specs(model, max_cache_len)
        self.max_cache_len = max_cache_len

    def allocate(self, dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        ks = [torch.zeros(s.shape(), dtype=dtype) for s in self.specs]
        vs = [torch.zeros(s.shape(), dtype=dtype) for s in self.specs]
        cs = [torch.zeros(1, dtype=torch.int64) for _ in self.specs]
        return ks, vs, cs

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                cache_position: torch.Tensor, k_caches: list[torch.Tensor], v_caches: list[torch.Tensor],
                cumlen_caches: list[torch.Tensor]) -> tuple[Any, ...]:
        # cache_position is part of the reference I/O contract; the write slot comes from cumlen (== cache_position).
        del cache_position
        cache = build_bound_cache(self.layer_types, self.specs, k_caches, v_caches, cumlen_caches)
        logits = self.logits(input_ids, attention_mask, position_ids, cache)
        return logits, k_caches, v_caches, cumlen_caches


class StandardLLMWrapper(_LogitsHead):
    """ExecuTorch standard LLM layout: forward(tokens[1,1], input_pos[1]) -> logits[1,1,vocab].

    KV caches are registered buffers (mutable state inside the program)."""

    def __init__(self, model: nn.Module, max_cache_len: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(model)
        self.layer_types, self.specs = compute_cache_specs(model, max_cache_len)
        self.max_cache_len = max_cache_len
        for j, s in enumerate(self.specs):
            self.register_buffer(f"k_cache_{j}", torch.zeros(s.shape(), dtype=dtype), persistent=False)
            self.register_buffer(f"v_cache_{j}", torch.zeros(s.shape(), dtype=dtype), persistent=False)

    def reset_cache(self) -> None:
        for j in range(len(self.specs)):
            getattr(self, f"k_cache_{j}").zero_()
            getattr(self, f"v_cache_{j}").zero_()

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        n = len(self.specs)
        ks = [getattr(self, f"k_cache_{j}") for j in range(n)]
        vs = [getattr(self, f"v_cache_{j}") for j in range(n)]
        # each layer gets its own copy: BoundCacheLayer.update() increments it in place
        cs = [input_pos.clone() for _ in range(n)]
        cache = build_bound_cache(self.layer_types, self.specs, ks, vs, cs)
        position_ids = input_pos.unsqueeze(0) + torch.arange(tokens.shape[1], dtype=input_pos.dtype).unsqueeze(0)
        return self.logits(tokens, None, position_ids, cache)
