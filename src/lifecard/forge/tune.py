"""`forge tune`: knowledge and style from examples — supervised LoRA with a held-out split.

Data files (one or more; the format is told by each line, not the file name):

    chats      .jsonl  {"messages": [{"role": "user", "content": …}, {"role": "assistant", …}, …]}
    pairs      .jsonl  {"question": …, "answer": …}   (also "prompt"/"completion", "q"/"a")
    documents  .jsonl  {"text": …}      or any .txt / .md file: facts, memories, notes

Every pair becomes a one-turn chat; the loss is on assistant tokens only (documents: every token).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lifecard.forge.examples import (
    Example,
    Messages,
    anchored,
    chat_example,
    cross_entropy,
    document_examples,
)
from lifecard.forge.lora import LoraRecipe, TrainResult, train_lora
from lifecard.forge.progress import Checkpoints, ForgeError, Progress, digest
from lifecard.model.llama import Transformer
from lifecard.model.tokenizer import Tokenizer

MAX_DATA_BYTES = 64 << 20


@dataclass(frozen=True)
class TuneData:
    chats: list[Messages]
    documents: list[str]

    def record(self) -> dict[str, Any]:
        return {"chats": len(self.chats), "documents": len(self.documents)}


def read_data(paths: Sequence[str | Path]) -> TuneData:
    chats: list[Messages] = []
    documents: list[str] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ForgeError(f"data file {path} does not exist: give the path of a .jsonl, .txt or .md file")
        if path.stat().st_size > MAX_DATA_BYTES:
            raise ForgeError(f"data file {path} is over {MAX_DATA_BYTES >> 20} MiB: split it or sample it")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ForgeError(f"data file {path} is not UTF-8 text: save it as UTF-8") from None
        if path.suffix.lower() in (".txt", ".md"):
            documents.append(text)
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                kind, value = parse_line(line, f"{path.name}:{n}")
                (chats if kind == "chat" else documents).append(value)  # type: ignore[arg-type]
    if not chats and not documents:
        raise ForgeError("the data files hold no examples: add chats, question/answer pairs or text")
    return TuneData(chats, documents)


def parse_line(line: str, where: str) -> tuple[str, Messages | str]:
    """One JSONL line → ("chat", messages) or ("document", text); ForgeError naming `where`."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as e:
        raise ForgeError(f"{where} is not valid JSON ({e.msg}): write one JSON object per line") from None
    if not isinstance(item, dict):
        raise ForgeError(f'{where} is not a JSON object: write {{"messages": [...]}} or a pair')
    if "messages" in item:
        return "chat", _messages(item["messages"], where)
    for q, a in (("question", "answer"), ("prompt", "completion"), ("q", "a")):
        if q in item or a in item:
            if not (_text(item.get(q)) and _text(item.get(a))):
                raise ForgeError(f"{where} needs non-empty strings for both {q!r} and {a!r}")
            return "chat", [{"role": "user", "content": item[q]}, {"role": "assistant", "content": item[a]}]
    if _text(item.get("text")):
        return "document", item["text"]
    raise ForgeError(
        f"{where} has none of the fields messages, question/answer, prompt/completion or text: add one"
    )


def _messages(value: Any, where: str) -> Messages:
    if not isinstance(value, list) or not value:
        raise ForgeError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ForgeError(f"{where}: message {i} needs a role of system, user or assistant")
        if not isinstance(m.get("content"), str):
            raise ForgeError(f"{where}: message {i} needs its content as a string")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise ForgeError(f"{where}: the chat has no assistant message to learn from: add the reply")
    return out


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def encode(tokenizer: Tokenizer, data: TuneData) -> list[Example]:
    examples = [chat_example(tokenizer, chat) for chat in data.chats]
    for text in data.documents:
        examples += document_examples(tokenizer, text)
    return examples


def held_out_split(n: int, fraction: float, seed: int) -> list[int]:
    """A seeded random `fraction` of 0..n-1 (at least one when n ≥ 5; none for fewer examples)."""
    if n < 5 or fraction <= 0:
        return []
    k = max(1, round(n * fraction))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1)).tolist()[:k])


def tune(
    model: Transformer,
    tokenizer: Tokenizer,
    data: TuneData,
    recipe: LoraRecipe,
    *,
    held_out_fraction: float = 0.1,
    anchor: float = 1.0,
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train; returns the result and the `forge` record (how to make it again)."""
    examples = encode(tokenizer, data)
    held_out = held_out_split(len(examples), held_out_fraction, recipe.seed)
    data_sha = digest({"chats": data.chats, "documents": data.documents})
    key = {
        "method": "tune",
        "recipe": recipe.record(),
        "data": data_sha,
        "anchor": anchor,
    }
    ce = cross_entropy(model, examples)
    result = train_lora(
        model,
        anchored(ce, model, tokenizer, anchor) if anchor else ce,
        len(examples),
        recipe,
        held_out=held_out,
        held_out_loss=ce,
        progress=progress,
        checkpoints=Checkpoints(checkpoint_dir, key),
        name="tune",
    )
    record = {
        "method": "tune",
        **recipe.record(),
        "data_sha256": data_sha,
        **data.record(),
        "examples": len(examples),
        "anchor": anchor,
        "held_out": len(held_out),
        **result.record(),
    }
    return result, record
