"""Tiny SentencePiece-style BPE tokenizers built with the `tokenizers` library.

Two flavours:

* ``gemma4``  — Gemma style (normalizer Replace " "->"▁", Split " " pre-tokenizer,
  byte-fallback BPE) with special tokens at Gemma 4's ids:
  0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, 105 <|turn>, 106 <turn|>, 107 "\\n".
* ``llama2``  — Llama-2 style (Metaspace prepend_scheme="first", byte-fallback BPE)
  with <unk>=0, <s>=1, </s>=2.

Nothing is downloaded: the BPE merges are trained on the embedded text below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

REFERENCE_PROMPT = "The capital of France is"

# A few KB of plain English used to train the tiny BPE merges.
TRAINING_TEXT = """\
The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.
The capital of Spain is Madrid. The capital of Japan is Tokyo. The capital of Canada is Ottawa.
Paris is a beautiful city on the river Seine, famous for the Eiffel Tower and the Louvre museum.
France is a country in Western Europe. Its people speak French, and its capital is Paris.
Raspberry Pi computers are small, cheap single board computers that run Linux.
An orchard is a place where fruit trees grow: apples, pears, cherries and plums.
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
Language models predict the next token given the previous tokens in a sequence of text.
When you ask a question, the model answers with words it has learned from a large amount of text.
Hello! How are you today? I am fine, thank you. What is your name? My name is Orchard.
The weather is sunny and warm this morning, but it may rain later in the afternoon.
Water boils at one hundred degrees Celsius at sea level and freezes at zero degrees.
The sun rises in the east and sets in the west. The moon orbits the earth once a month.
Cats and dogs are popular pets. Birds sing in the trees and fish swim in the sea.
Please write a short story about a robot who learns to play the piano in a small town.
Once upon a time there was a little robot that lived in a quiet house near the orchard.
Every day the robot watched the children play music, and it wished it could play too.
One evening it sat at the old piano and pressed a key. The sound was soft and bright.
Numbers: one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve.
Colours: red, orange, yellow, green, blue, indigo, violet, black, white and grey.
The history of science is full of people who asked simple questions and found deep answers.
Computers store information as bits, and a byte is made of eight bits.
A good answer is short, correct and kind. A great answer also explains why.
The train leaves the station at nine o'clock and arrives in the capital before noon.
Students read books in the library, and teachers help them understand difficult ideas.
Bread is made from flour, water, salt and yeast. It is baked in a hot oven.
The river flows from the mountains to the sea, passing through forests, fields and towns.
In the summer the days are long; in the winter the nights are long and cold.
Thank you for your help. You are welcome. Have a nice day, and see you tomorrow.
The capital of France is Paris, and the capital of the United Kingdom is London.
"""

BYTE_TOKENS: list[str] = [f"<0x{i:02X}>" for i in range(256)]

GEMMA4_PAD, GEMMA4_EOS, GEMMA4_BOS, GEMMA4_UNK = 0, 1, 2, 3
GEMMA4_TURN_OPEN, GEMMA4_TURN_CLOSE, GEMMA4_NEWLINE = 105, 106, 107

LLAMA_UNK, LLAMA_BOS, LLAMA_EOS = 0, 1, 2

GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{%- if message['content'] is string -%}"
    "{%- set content = message['content'] -%}"
    "{%- else -%}"
    "{%- set content = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}"
    "{%- endif -%}"
    "{{ '<|turn>' + role + '\n' + (content | trim) + '<turn|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|turn>model\n' }}{%- endif -%}"
)

LLAMA2_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system_message = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['content'] is string -%}{%- set content = message['content'] -%}"
    "{%- else -%}{%- set content = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}{%- endif -%}"
    "{%- if loop.index0 == 0 and system_message != '' -%}"
    "{%- set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + content -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ bos_token + '[INST] ' + (content | trim) + ' [/INST]' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ ' ' + (content | trim) + ' ' + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


@dataclass(frozen=True)
class TokenizerSpec:
    """Special-token bookkeeping for one tokenizer flavour."""

    flavour: str
    bos_token: str
    eos_token: str
    pad_token: str | None
    unk_token: str
    bos_id: int
    eos_id: int
    stop_ids: tuple[int, ...]
    chat_template: str


def _train_merges(tok: Tokenizer, n_merge_tokens: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a BPE on TRAINING_TEXT with the tokenizer's normalizer/pre-tokenizer; return (vocab, merges)."""
    trainer = trainers.BpeTrainer(vocab_size=n_merge_tokens, special_tokens=[], show_progress=False)
    tok.train_from_iterator(TRAINING_TEXT.splitlines(), trainer=trainer)
    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    merges_raw: list[Any] = data["model"]["merges"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in merges_raw]
    return vocab, merges  # type: ignore[return-value]


def _assemble(prefix: list[str], trained_vocab: dict[str, int], merges: list[tuple[str, str]],
              target_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab: dict[str, int] = {t: i for i, t in enumerate(prefix)}
    for tok_str, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
        if len(vocab) >= target_size:
            break
        if tok_str not in vocab:
            vocab[tok_str] = len(vocab)
    kept = [m for m in merges if m[0] in vocab and m[1] in vocab and (m[0] + m[1]) in vocab]
    return vocab, kept


def build_gemma4_tokenizer(vocab_size: int = 768) -> Tokenizer:
    """Gemma-4-style byte-fallback BPE with special tokens at Gemma 4's ids."""
    normalizer = normalizers.Replace(" ", "▁")
    pre_tok = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizer
    trainer_tok.pre_tokenizer = pre_tok
    trained, merges = _train_merges(trainer_tok, vocab_size)

    prefix: list[str] = ["<pad>", "<eos>", "<bos>", "<unk>"]
    while len(prefix) < GEMMA4_TURN_OPEN:
        prefix.append(f"<unused{len(prefix) - 4}>")
    prefix += ["<|turn>", "<turn|>", "\n"]
    prefix += BYTE_TOKENS
    vocab, merges = _assemble(prefix, trained, merges, vocab_size)

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"] + [t for t in prefix[4:GEMMA4_TURN_OPEN]] + ["<|turn>", "<turn|>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken("\n", special=False, normalized=False)])
    return tok


def build_llama2_tokenizer(vocab_size: int = 512) -> Tokenizer:
    """Llama-2-style byte-fallback BPE: <unk>=0, <s>=1, </s>=2, Metaspace(prepend_scheme='first')."""
    pre_tok = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tok
    trained, merges = _train_merges(trainer_tok, vocab_size)

    prefix = ["<unk>", "<s>", "</s>"] + BYTE_TOKENS
    vocab, merges = _assemble(prefix, trained, merges, vocab_size)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    return tok


GEMMA4_SPEC = TokenizerSpec(
    flavour="gemma4", bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
    bos_id=GEMMA4_BOS, eos_id=GEMMA4_EOS, stop_ids=(GEMMA4_EOS, GEMMA4_TURN_CLOSE),
    chat_template=GEMMA4_CHAT_TEMPLATE,
)
LLAMA2_SPEC = TokenizerSpec(
    flavour="llama2", bos_token="<s>", eos_token="</s>", pad_token=None, unk_token="<unk>",
    bos_id=LLAMA_BOS, eos_id=LLAMA_EOS, stop_ids=(LLAMA_EOS,), chat_template=LLAMA2_CHAT_TEMPLATE,
)


def build_tiny_tokenizer(flavour: str) -> tuple[Tokenizer, TokenizerSpec]:
    if flavour == "gemma4":
        return build_gemma4_tokenizer(), GEMMA4_SPEC
    if flavour == "llama2":
        return build_llama2_tokenizer(), LLAMA2_SPEC
    raise ValueError(f"unknown tokenizer flavour {flavour!r}")


def to_hf_tokenizer(tok: Tokenizer, spec: TokenizerSpec) -> Any:
    """Wrap a `tokenizers.Tokenizer` in transformers' PreTrainedTokenizerFast."""
    from transformers import PreTrainedTokenizerFast

    kwargs: dict[str, Any] = dict(bos_token=spec.bos_token, eos_token=spec.eos_token, unk_token=spec.unk_token)
    if spec.pad_token is not None:
        kwargs["pad_token"] = spec.pad_token
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    hf.chat_template = spec.chat_template
    return hf


def save_tokenizer_files(tok: Tokenizer, spec: TokenizerSpec, out_dir: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json and chat_template.jinja."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    cfg: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": spec.bos_token,
        "eos_token": spec.eos_token,
        "unk_token": spec.unk_token,
        "add_bos_token": False,
        "add_eos_token": False,
        "model_max_length": 1_000_000,
        "chat_template": spec.chat_template,
    }
    if spec.pad_token is not None:
        cfg["pad_token"] = spec.pad_token
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "chat_template.jinja").write_text(spec.chat_template)


def chat_prompt_ids(hf_tokenizer: Any, prompt: str) -> list[int]:
    """Render `prompt` as one user message with add_generation_prompt and tokenize it."""
    messages = [{"role": "user", "content": prompt}]
    text = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
