"""Model construction: tiny random-weight models and local HF folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

GEMMA4_LAYOUT = "gemma4-e2b-extcache"
LLM_STANDARD_LAYOUT = "llm-standard"
LAYOUTS = (GEMMA4_LAYOUT, LLM_STANDARD_LAYOUT)
# The orchard-runner --profile each layout is run with. gemma4-extcache reads the
# layer count and cache sizes from the program, so it takes the tiny export as well
# as the real E2B (whose fixed sizes the runner's gemma4-e2b-extcache profile also has).
RUNNER_PROFILES: dict[str, str] = {GEMMA4_LAYOUT: "gemma4-extcache", LLM_STANDARD_LAYOUT: "llm-standard"}


def tiny_gemma4(vocab_size: int, max_cache_len: int, seed: int) -> nn.Module:
    """A Gemma-4-E2B-shaped text model: sliding/full alternation, wider full-attention heads,
    per-layer embeddings (PLE), kv-shared trailing layers, final logit softcapping."""
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    torch.manual_seed(seed)
    cfg = Gemma4TextConfig(
        vocab_size=vocab_size,
        vocab_size_per_layer_input=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        global_head_dim=32,
        hidden_size_per_layer_input=8,
        # 3 cache-owning layers (S, S, F) + 1 kv-shared full layer reusing layer 2's K/V
        layer_types=["sliding_attention", "sliding_attention", "full_attention", "full_attention"],
        num_kv_shared_layers=1,
        sliding_window=max_cache_len,
        max_position_embeddings=max(max_cache_len, 128),
        final_logit_softcapping=30.0,
        tie_word_embeddings=True,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    cfg._attn_implementation = "sdpa"
    return Gemma4ForCausalLM(cfg).eval()


def tiny_llama(vocab_size: int, max_cache_len: int, seed: int) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max(max_cache_len, 128),
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg).eval()


def load_hf_model(model_dir: Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a local HF checkpoint (no hub access). Multimodal Gemma 4 checkpoints load through
    AutoModelForImageTextToText; the wrappers only use the text decoder + lm_head."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    kwargs: dict[str, Any] = dict(dtype=dtype, local_files_only=True, attn_implementation="sdpa")
    if hasattr(cfg, "text_config") and cfg.model_type.startswith("gemma4"):
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(model_dir, **kwargs).eval()
    return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).eval()
