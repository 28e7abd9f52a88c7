"""End-to-end tests: tiny random-weight exports for both layouts (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from orchard_export.cli import export_tiny
from orchard_export.models import GEMMA4_LAYOUT, LLM_STANDARD_LAYOUT, RUNNER_PROFILES
from orchard_export.pipeline import PteStepper, describe_pte, greedy, strip_local
from orchard_export.tokenizer import (
    GEMMA4_SPEC, LLAMA2_SPEC, REFERENCE_PROMPT, build_tiny_tokenizer, chat_prompt_ids, to_hf_tokenizer,
)

L = 64
OUT_FILES = ("model.pte", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "orchard-model.json")


@pytest.fixture(scope="module")
def gemma4_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gemma4")
    return out, export_tiny(GEMMA4_LAYOUT, out, seed=0, max_cache_len=L)


@pytest.fixture(scope="module")
def llama_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("llama")
    return out, export_tiny(LLM_STANDARD_LAYOUT, out, seed=0, max_cache_len=L)


def test_gemma4_tokenizer_ids() -> None:
    tok, spec = build_tiny_tokenizer("gemma4")
    assert 512 <= tok.get_vocab_size() <= 1024
    for name, tid in {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<|turn>": 105, "<turn|>": 106, "\n": 107}.items():
        assert tok.token_to_id(name) == tid, name
    assert tok.token_to_id("<0x00>") is not None and tok.token_to_id("<0xFF>") is not None
    hf = to_hf_tokenizer(tok, spec)
    text = hf.apply_chat_template([{"role": "user", "content": REFERENCE_PROMPT}], add_generation_prompt=True,
                                  tokenize=False)
    assert text == "<bos><|turn>user\nThe capital of France is<turn|>\n<|turn>model\n"
    sys_text = hf.apply_chat_template([{"role": "system", "content": "Be brief."},
                                       {"role": "assistant", "content": " hi "}], tokenize=False)
    assert sys_text == "<bos><|turn>system\nBe brief.<turn|>\n<|turn>model\nhi<turn|>\n"
    ids = chat_prompt_ids(hf, REFERENCE_PROMPT)
    assert ids[:2] == [2, 105] and ids[-3] == 105 and ids[-1] == 107
    assert ids.count(105) == 2 and ids.count(106) == 1 and 107 in ids
    assert hf.decode(ids, skip_special_tokens=False) == text
    # byte fallback round-trips arbitrary UTF-8
    assert hf.decode(hf("héllo ✓", add_special_tokens=False)["input_ids"]) == "héllo ✓"


def test_llama_tokenizer_ids() -> None:
    tok, spec = build_tiny_tokenizer("llama2")
    assert (tok.token_to_id("<unk>"), tok.token_to_id("<s>"), tok.token_to_id("</s>")) == (0, 1, 2)
    hf = to_hf_tokenizer(tok, spec)
    text = hf.apply_chat_template([{"role": "user", "content": REFERENCE_PROMPT}], add_generation_prompt=True,
                                  tokenize=False)
    assert text == "<s>[INST] The capital of France is [/INST]"
    assert chat_prompt_ids(hf, REFERENCE_PROMPT)[0] == 1


def _check_manifest(out: Path, m: dict[str, Any], layout: str, max_ctx: int) -> None:
    import executorch.version

    for f in OUT_FILES:
        assert (out / f).is_file(), f
    on_disk = json.loads((out / "orchard-model.json").read_text())
    assert on_disk == m
    assert m["runtime"] == "executorch"
    assert m["runtimeVersion"] == strip_local(executorch.version.__version__) and "+" not in m["runtimeVersion"]
    assert m["profile"] == RUNNER_PROFILES[layout]
    assert m["maxContext"] == max_ctx
    assert m["weights"] == "random"
    assert m["reference"]["prompt"] == REFERENCE_PROMPT
    exp = m["reference"]["expectedTokenIds"]
    assert 1 <= len(exp) <= 16 and all(isinstance(i, int) for i in exp)
    assert set(m["exportedWith"]) == {"torch", "executorch", "torchao", "transformers"}
    assert m["quantizedPteTokenIds"] == exp
    assert m["eagerQuantizedTokenIds"] == exp  # .pte == eager model it contains
    assert isinstance(m["name"], str) and isinstance(m["version"], str)
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert cfg["chat_template"] == (out / "chat_template.jinja").read_text()


def _rerun_pte(out: Path, m: dict[str, Any], layout: str, shapes: list[tuple[int, ...]], stop: tuple[int, ...]) -> list[int]:
    n = len(shapes)
    stepper = PteStepper(out / "model.pte", layout, L, n, shapes)
    return greedy(stepper, m["promptTokenIds"], stop, m["maxContext"])


def test_gemma4_layout_and_tokens(gemma4_export: tuple[Path, dict[str, Any]]) -> None:
    out, m = gemma4_export
    _check_manifest(out, m, GEMMA4_LAYOUT, L - 1)
    hf = to_hf_tokenizer(*build_tiny_tokenizer("gemma4"))
    assert m["promptTokenIds"] == chat_prompt_ids(hf, REFERENCE_PROMPT)
    assert m["promptTokenIds"][:2] == [2, 105]

    fwd = describe_pte(out / "model.pte")["forward"]
    ins, outs = fwd["inputs"], fwd["outputs"]
    assert ins[0] == {"dtype": "int64", "sizes": [1, 1]}
    assert ins[1] == {"dtype": "int64", "sizes": [1, L - 1]}
    assert ins[2] == {"dtype": "int64", "sizes": [1, 1]}
    assert ins[3] == {"dtype": "int64", "sizes": [1]}
    n = (len(ins) - 4) // 3
    assert n >= 2 and len(ins) == 4 + 3 * n
    ks, vs, cs = ins[4:4 + n], ins[4 + n:4 + 2 * n], ins[4 + 2 * n:]
    for k, v in zip(ks, vs):
        assert k == v and k["dtype"] == "float32" and len(k["sizes"]) == 4
        assert k["sizes"][0] == 1 and k["sizes"][2] == L
    assert len({tuple(k["sizes"]) for k in ks}) == 2  # sliding vs full-attention head_dim
    assert all(c == {"dtype": "int64", "sizes": [1]} for c in cs)
    assert len(outs) == 6 * n + 1
    assert outs[:3 * n] == ins[4:]
    assert outs[3 * n] == {"dtype": "float32", "sizes": [1, 1, len(hf)]}
    assert outs[3 * n + 1:] == ins[4:]

    shapes = [tuple(k["sizes"]) for k in ks]
    assert _rerun_pte(out, m, GEMMA4_LAYOUT, shapes, GEMMA4_SPEC.stop_ids) == m["reference"]["expectedTokenIds"]


def test_llama_layout_and_tokens(llama_export: tuple[Path, dict[str, Any]]) -> None:
    out, m = llama_export
    _check_manifest(out, m, LLM_STANDARD_LAYOUT, L)
    desc = describe_pte(out / "model.pte")
    fwd = desc["forward"]
    assert fwd["inputs"] == [{"dtype": "int64", "sizes": [1, 1]}, {"dtype": "int64", "sizes": [1]}]
    assert len(fwd["outputs"]) == 1 and fwd["outputs"][0]["sizes"] == [1, 1, 512]
    assert desc["get_max_seq_len"]["value"] == [L]
    assert desc["get_max_context_len"]["value"] == [L]
    assert desc["get_bos_id"]["value"] == [1]
    assert desc["get_eos_ids"]["value"] == [2]
    assert desc["use_kv_cache"]["value"] == [True]
    assert desc["enable_dynamic_shape"]["value"] == [False]
    assert _rerun_pte(out, m, LLM_STANDARD_LAYOUT, [], LLAMA2_SPEC.stop_ids) == m["reference"]["expectedTokenIds"]
