"""Training examples as token rows with a target mask, and the cross-entropy a tune minimises.

An `Example` is one sequence; `mask[i] = 1` when token i is a target (predicted from tokens < i).
Chats put the loss on assistant tokens only (through each turn's end-of-turn token, so replies
learn to stop); documents put it on every token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lifecard.forge.lora import LossFn, TrainPlugs
from lifecard.forge.progress import ForgeError
from lifecard.model.llama import Transformer
from lifecard.model.sockets import Plugs
from lifecard.model.tokenizer import Tokenizer

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    ids: list[int]
    mask: list[int]  # 1 where the token is a target


def chat_example(tokenizer: Tokenizer, messages: Messages, max_tokens: int = 384) -> Example:
    """Loss on every assistant turn, rendered by the model's own chat template."""
    ids: list[int] = []
    mask: list[int] = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = tokenizer.encode_chat(messages[:k], add_generation_prompt=True)
        full = tokenizer.encode_chat(messages[: k + 1], add_generation_prompt=False)
        if full[: len(ids)] != ids or full[: len(prompt)] != prompt:
            raise ForgeError(
                "this model's chat template does not render a conversation as a prefix of its longer "
                "self, so assistant turns cannot be masked: use question/answer pairs or documents"
            )
        end = _turn_end(tokenizer, full, len(prompt))
        mask += [0] * (len(prompt) - len(ids)) + [1] * (end - len(prompt))
        ids = full[:end]
    if not ids:
        raise ForgeError("a chat example has no assistant message: add one with the reply to learn")
    return Example(ids[:max_tokens], mask[:max_tokens])


def document_examples(tokenizer: Tokenizer, text: str, chunk_tokens: int = 128) -> list[Example]:
    """Plain text (facts, memories, notes) in chunks of `chunk_tokens`, every token a target."""
    ids = tokenizer.encode(text)
    chunks = [ids[i : i + chunk_tokens] for i in range(0, len(ids), chunk_tokens)]
    return [Example(c, [0] + [1] * (len(c) - 1)) for c in chunks if len(c) > 1]


def _turn_end(tokenizer: Tokenizer, full: list[int], start: int) -> int:
    """Index just past the assistant turn's end-of-turn token (or the end when there is none)."""
    for i in range(start, len(full)):
        if full[i] in tokenizer.eos_ids:
            return i + 1
    return len(full)


def collate(examples: Sequence[Example]) -> tuple[Tensor, Tensor, Tensor]:
    """(ids [n, t] right-padded, positions [n, t], mask [n, t] float). Padding sits after each row's
    last real token, so causal attention never lets a real token see it."""
    width = max(len(e.ids) for e in examples)
    ids = torch.zeros(len(examples), width, dtype=torch.long)
    mask = torch.zeros(len(examples), width)
    for i, e in enumerate(examples):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.mask)] = torch.tensor(e.mask, dtype=torch.float)
    return ids, torch.arange(width).expand(len(examples), width), mask


def collate_ids(rows: Sequence[list[int]]) -> tuple[Tensor, Tensor, Tensor]:
    """`collate` for bare token rows (every token a target)."""
    return collate([Example(r, [1] * len(r)) for r in rows])


def answer_logp(
    model: Transformer, rows: Sequence[tuple[list[int], int]], plugs: Plugs | None = None
) -> list[Tensor]:
    """Log-probabilities of the next token at each answer position, per row: rows are (ids, start)
    with the answer at ids[start:]; returns [len(ids) - start, vocab] per row (the distribution
    that predicts each answer token). Only those positions reach the vocabulary projection."""
    ids, positions, _ = collate_ids([r for r, _ in rows])
    spans = [len(r) - start for r, start in rows]
    at = torch.zeros(len(rows), max(spans), dtype=torch.long)
    for i, (r, start) in enumerate(rows):
        at[i] = torch.arange(start - 1, start - 1 + max(spans)).clamp(max=len(r) - 2)
    logp = model(ids, positions, plugs=plugs, logits_at=at).log_softmax(-1)  # [b, k, vocab]
    return [logp[i, :n] for i, n in enumerate(spans)]


def anchored(
    loss: LossFn, model: Transformer, tokenizer: Tokenizer, weight: float = 1.0, rows: int = 4
) -> LossFn:
    """`loss` plus weight · KL(base ‖ student) on plain text the forge ships (data/neutral.txt,
    never the eval's corpus): a tune on a few dozen short answers otherwise learns them by bending
    everything else (measured: perplexity on ordinary prose ×9 at strength 1 without it). Each call
    takes the next `rows` paragraphs, so the whole text is covered in turn."""
    from lifecard.forge import data

    texts = [e for t in data.neutral_texts() for e in document_examples(tokenizer, t, 96)]
    turn = [0]

    def with_anchor(plugs: TrainPlugs, batch: list[int]) -> Tensor:
        start = turn[0] % len(texts)
        turn[0] += rows
        ids, positions, mask = collate([texts[(start + i) % len(texts)] for i in range(rows)])
        with torch.no_grad():
            base = model(ids, positions).log_softmax(-1)
        student = model(ids, positions, plugs=plugs).log_softmax(-1)
        kl = F.kl_div(student, base, log_target=True, reduction="none").sum(-1)  # [rows, t]
        return loss(plugs, batch) + weight * (kl * mask).sum() / mask.sum()

    return with_anchor


def cross_entropy(model: Transformer, examples: Sequence[Example]) -> LossFn:
    """Mean negative log-likelihood of the target tokens of the chosen examples. Logits are made
    only where a target is predicted: for short answers after a chat template, a third of the
    positions, so two thirds of the vocabulary projection and its softmax are skipped."""

    def loss(plugs: TrainPlugs, batch: list[int]) -> Tensor:
        chosen = [examples[i] for i in batch]
        ids, positions, _ = collate(chosen)
        where = [[i - 1 for i, m in enumerate(e.mask) if m and i > 0] for e in chosen]  # predicting positions
        width = max(1, *map(len, where))
        at = torch.tensor([w + [(w or [0])[-1]] * (width - len(w)) for w in where])  # [n, k], padded
        valid = torch.tensor([[1.0] * len(w) + [0.0] * (width - len(w)) for w in where])
        logits = model(ids, positions, plugs=plugs, logits_at=at)  # [n, k, vocab]
        nll = F.cross_entropy(logits.transpose(1, 2), ids.gather(1, at + 1), reduction="none")  # [n, k]
        return (nll * valid).sum() / valid.sum()

    return loss
