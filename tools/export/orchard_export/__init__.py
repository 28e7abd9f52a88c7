"""Orchard export tool: HF causal LM -> ExecuTorch .pte (XNNPACK) + tokenizer + orchard-model.json."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
