"""The figures that say whether a card works, each measured through the engine's real serving path
(the card mounted in the bank at a strength; slot 0 is the base).

    fidelity  1 − KL(teacher ‖ card) / KL(teacher ‖ base), per answer token, on held-out prompts;
              teacher = the base with the card's persona as its system prompt. 1: the card behaves
              as the persona text would; 0: no closer than the bare base.
    recall    share of held-out questions whose greedy reply contains an expected word.
    markers   share of replies that contain at least one of the tone's marker words.
    drift     perplexity with the card / without it, on a general text the project did not write.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from lifecard.cards.card import Card
from lifecard.engine.generate import Engine, Request
from lifecard.engine.sampling import SamplingParams
from lifecard.forge.examples import answer_logp


@contextmanager
def mounted(engine: Engine, card: Card, strengths: Sequence[float]) -> Iterator[list[int]]:
    """One slot per strength, all mounted at once so every measure runs them in one batch
    (strength 0 is slot 0, the base itself)."""
    slots: list[int] = []
    try:
        for s in strengths:
            slots.append(engine.mount([(card, s)]).slot if s != 0 else 0)
        yield slots
    finally:
        for slot in slots:
            if slot:
                engine.unmount(slot)


def replies(
    engine: Engine, slots: Sequence[int], prompts: Sequence[str], max_tokens: int = 48
) -> list[list[str]]:
    """Greedy replies to every prompt on every slot, in one batch; [slot][prompt]."""
    params = SamplingParams(temperature=0, max_tokens=max_tokens)
    ids = [engine.chat_prompt([{"role": "user", "content": p}]) for p in prompts]
    texts = [c.text for c in engine.generate([Request(i, params, slot) for slot in slots for i in ids])]
    return [texts[k * len(ids) : (k + 1) * len(ids)] for k in range(len(slots))]


def recall(answers: Sequence[str], expected: Sequence[Sequence[str]]) -> float:
    hits = [
        any(word.lower() in a.lower() for word in words) for a, words in zip(answers, expected, strict=True)
    ]
    return sum(hits) / max(len(hits), 1)


def marker_rate(answers: Sequence[str], markers: Sequence[str]) -> float:
    """Share of answers with at least one marker, matched as whole words, plurals too ("arr" is not
    in "carry", "clock" is in "clocks"); markers in scripts without spaces (Chinese) match anywhere."""
    patterns = [
        re.compile(rf"(?<!\w){re.escape(m.strip())}(?:e?s)?(?!\w)", re.IGNORECASE)
        if m.strip().isascii()
        else re.compile(re.escape(m.strip()))
        for m in markers
        if m.strip()
    ]
    return sum(any(p.search(a) for p in patterns) for a in answers) / max(len(answers), 1)


@torch.inference_mode()
def teacher_kl(
    engine: Engine,
    system: str,
    prompts: Sequence[str],
    slots: Sequence[int],
    max_tokens: int = 32,
    seed: int = 0,
) -> list[float]:
    """Mean KL(teacher ‖ slot) per answer token over the teacher's own sampled answers, per slot."""
    teacher = [
        engine.chat_prompt([{"role": "system", "content": system}, {"role": "user", "content": p}])
        for p in prompts
    ]
    params = [
        SamplingParams(temperature=0.7, top_p=0.9, max_tokens=max_tokens, seed=seed + i)
        for i in range(len(prompts))
    ]
    answers = [
        c.tokens for c in engine.generate([Request(t, p) for t, p in zip(teacher, params, strict=True)])
    ]
    keep = [i for i, a in enumerate(answers) if a]
    t_logp = answer_logp(engine.model, [(teacher[i] + answers[i], len(teacher[i])) for i in keep])
    students = [engine.chat_prompt([{"role": "user", "content": prompts[i]}]) for i in keep]
    out = []
    for slot in slots:
        plugs = engine.bank.plugs([slot] * len(keep))
        s_logp = answer_logp(
            engine.model, [(s + answers[i], len(s)) for s, i in zip(students, keep, strict=True)], plugs
        )
        total = sum(
            float(F.kl_div(s, t, log_target=True, reduction="sum"))
            for s, t in zip(s_logp, t_logp, strict=True)
        )
        out.append(total / max(sum(len(t) for t in t_logp), 1))
    return out


@torch.inference_mode()
def perplexity(engine: Engine, rows: Sequence[list[int]], slot: int, batch: int = 8) -> float:
    """Perplexity of every token after each row's first, on one slot."""
    nll, count = 0.0, 0
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        plugs = engine.bank.plugs([slot] * len(chunk))
        for r, logp in zip(chunk, answer_logp(engine.model, [(r, 1) for r in chunk], plugs), strict=True):
            nll -= float(logp.gather(-1, torch.tensor(r[1:])[:, None]).sum())
            count += len(r) - 1
    return math.exp(nll / max(count, 1))
