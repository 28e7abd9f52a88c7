"""CLI: `python -m orchard_export tiny|hf ...`."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from .models import GEMMA4_LAYOUT, LAYOUTS, LLM_STANDARD_LAYOUT, load_hf_model, tiny_gemma4, tiny_llama
from .pipeline import ExportRequest, run_export
from .tokenizer import build_tiny_tokenizer, save_tokenizer_files, to_hf_tokenizer

TINY_CACHE_LEN = 64
REAL_CACHE_LEN = 512  # capped by Gemma 4 E2B's sliding_window=512 (reference recipe)


def export_tiny(layout: str, out_dir: Path, seed: int = 0, quantize: str = "int4",
                max_cache_len: int = TINY_CACHE_LEN, per_op_mode: bool = True) -> dict[str, Any]:
    flavour = "gemma4" if layout == GEMMA4_LAYOUT else "llama2"
    tok, spec = build_tiny_tokenizer(flavour)
    hf_tok = to_hf_tokenizer(tok, spec)
    vocab = tok.get_vocab_size()
    if layout == GEMMA4_LAYOUT:
        model = tiny_gemma4(vocab, max_cache_len, seed)
        name = "tiny-gemma4-e2b-random"
    elif layout == LLM_STANDARD_LAYOUT:
        model = tiny_llama(vocab, max_cache_len, seed)
        name = "tiny-llama-random"
    else:
        raise ValueError(layout)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tokenizer_files(tok, spec, out_dir)
    req = ExportRequest(
        layout=layout, out_dir=out_dir, model=model, hf_tokenizer=hf_tok, stop_ids=spec.stop_ids,
        bos_id=spec.bos_id, eos_ids=list(spec.stop_ids), max_cache_len=max_cache_len, quantize=quantize,
        name=name, version="0.0.1", weights="random", extra_manifest={"seed": seed}, per_op_mode=per_op_mode,
    )
    return run_export(req)


def _hf_stop_ids(model_dir: Path, hf_tok: Any, model: Any) -> tuple[list[int], int]:
    ids: set[int] = set()
    gen_cfg = getattr(model, "generation_config", None)
    for src in (getattr(gen_cfg, "eos_token_id", None), getattr(model.config, "eos_token_id", None), hf_tok.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(x) for x in src)
    for marker in ("<turn|>", "<end_of_turn>", "<|eot_id|>"):
        tid = hf_tok.convert_tokens_to_ids(marker)
        if isinstance(tid, int) and tid != hf_tok.unk_token_id and tid is not None:
            ids.add(tid)
    bos = hf_tok.bos_token_id if hf_tok.bos_token_id is not None else -1
    return sorted(ids), int(bos)


def export_hf(model_dir: Path, layout: str, out_dir: Path, quantize: str = "int4",
              max_cache_len: int = REAL_CACHE_LEN, name: str | None = None,
              per_op_mode: bool = True) -> dict[str, Any]:
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = load_hf_model(model_dir)
    stop_ids, bos = _hf_stop_ids(model_dir, hf_tok, model)
    out_dir.mkdir(parents=True, exist_ok=True)
    for fname in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (model_dir / fname).exists():
            shutil.copy2(model_dir / fname, out_dir / fname)
    if not (out_dir / "chat_template.jinja").exists() and getattr(hf_tok, "chat_template", None):
        (out_dir / "chat_template.jinja").write_text(hf_tok.chat_template)
    req = ExportRequest(
        layout=layout, out_dir=out_dir, model=model, hf_tokenizer=hf_tok, stop_ids=tuple(stop_ids),
        bos_id=bos, eos_ids=stop_ids, max_cache_len=max_cache_len, quantize=quantize,
        name=name or model_dir.name, version="1", weights=str(model_dir.name), per_op_mode=per_op_mode,
    )
    return run_export(req)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="orchard_export", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tiny", help="export a tiny random-weight model (no downloads)")
    t.add_argument("--layout", choices=LAYOUTS, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quantize", choices=("none", "int4"), default="int4")
    t.add_argument("--max-cache-len", type=int, default=TINY_CACHE_LEN)
    h = sub.add_parser("hf", help="export a local Hugging Face model folder")
    h.add_argument("--model-dir", type=Path, required=True)
    h.add_argument("--layout", choices=LAYOUTS, required=True)
    h.add_argument("--out", type=Path, required=True)
    h.add_argument("--quantize", choices=("none", "int4"), default="int4")
    h.add_argument("--max-cache-len", type=int, default=REAL_CACHE_LEN)
    h.add_argument("--name", default=None)
    for sp in (t, h):
        sp.add_argument("--fused-xnnpack", action="store_true",
                        help="XnnpackPartitioner(per_op_mode=False): faster lowering; the recipe uses per-op mode "
                             "because fused subgraphs failed on the Pi's XNNPACK")
    a = p.parse_args(argv)
    t0 = time.time()
    if a.cmd == "tiny":
        m = export_tiny(a.layout, a.out, seed=a.seed, quantize=a.quantize, max_cache_len=a.max_cache_len,
                        per_op_mode=not a.fused_xnnpack)
    else:
        m = export_hf(a.model_dir, a.layout, a.out, quantize=a.quantize, max_cache_len=a.max_cache_len, name=a.name,
                      per_op_mode=not a.fused_xnnpack)
    same = m["quantizedPteTokenIds"] == m["eagerFp32TokenIds"]
    print(f"done in {time.time() - t0:.1f}s -> {a.out}  (pte ids == eager fp32 ids: {same}; "
          f"expectedTokenIds source: {m['expectedTokenIdsSource']})")
    return 0
