"""`forge bake`: persona text into weights (prompt baking / context distillation).

teacher = the base with the persona as its system prompt; student = the base + a LoRA, without it.
The teacher answers a set of prompts (built-in diverse prompts plus questions about the persona's
own fields); the student learns to match the teacher's next-token distributions along those
answers, minimising KL(teacher ‖ student) per answer token.

The teacher's distributions are computed once and kept as their top-k tokens plus the mass of the
rest: KL over that coarsening (k+1 outcomes) is what is minimised — a lower bound of the full KL,
within a hair of it when the top k hold nearly all the mass, and 1/1000th of the memory. The eval
measures fidelity with the full distributions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lifecard.cards.persona import persona_prompt
from lifecard.engine.generate import Engine, Request
from lifecard.engine.sampling import SamplingParams
from lifecard.forge import data
from lifecard.forge.examples import Example, answer_logp, cross_entropy
from lifecard.forge.lora import LoraRecipe, LossFn, TrainPlugs, TrainResult, train_lora
from lifecard.forge.progress import Checkpoints, Progress, digest
from lifecard.forge.tune import held_out_split
from lifecard.model.llama import Transformer

TOP_K = 64


@dataclass(frozen=True)
class Trajectory:
    """One teacher answer, as the student sees it. Answer targets are ids[start:]."""

    ids: list[int]  # student prompt (no persona) + the teacher's answer
    start: int  # index of the first answer token
    top_ids: Tensor  # [answer, k] the teacher's most likely next tokens at each answer position
    top_logp: Tensor  # [answer, k] their log-probabilities
    rest_logp: Tensor  # [answer] log of the teacher's remaining mass


def bake_prompts(persona: Mapping[str, Any], lang: str, count: int, seed: int) -> list[str]:
    """`count` prompts: questions on the persona's fields (a third) and built-in training prompts."""
    gen = torch.Generator().manual_seed(seed)
    templates = [t for ts in data.question_templates(lang).values() for t in ts if "{topic}" not in t]
    general = data.train_prompts(lang)
    n_fields = min(len(templates), count // 3)
    pick_t = torch.randperm(len(templates), generator=gen).tolist()[:n_fields]
    pick_g = torch.randperm(len(general), generator=gen).tolist()[: count - n_fields]
    return [templates[i] for i in pick_t] + [general[i] for i in pick_g]


@torch.no_grad()  # not inference_mode: the kept targets take part in the student's autograd graph
def trajectories(
    engine: Engine,
    system: str,
    prompts: Sequence[str],
    *,
    max_tokens: int,
    seed: int,
    progress: Progress,
    batch: int = 16,
) -> list[Trajectory]:
    """The teacher (persona in context) answers every prompt, sampled with a per-prompt seed."""
    progress.start("teacher answers", len(prompts))
    out: list[Trajectory] = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        teacher = [
            engine.chat_prompt([{"role": "system", "content": system}, {"role": "user", "content": p}])
            for p in chunk
        ]
        params = [
            SamplingParams(temperature=0.7, top_p=0.9, max_tokens=max_tokens, seed=seed + start + i)
            for i in range(len(chunk))
        ]
        answers = engine.generate([Request(t, p) for t, p in zip(teacher, params, strict=True)])
        kept = [(p, t, a.tokens) for p, t, a in zip(chunk, teacher, answers, strict=True) if a.tokens]
        teacher_logp = answer_logp(engine.model, [(t + a, len(t)) for _, t, a in kept])
        for (p, _, a), at in zip(kept, teacher_logp, strict=True):
            top_logp, top_ids = at.topk(TOP_K, dim=-1)
            rest = (1 - top_logp.exp().sum(-1)).clamp(min=1e-12).log()
            student = engine.chat_prompt([{"role": "user", "content": p}])
            out.append(Trajectory(student + a, len(student), top_ids, top_logp, rest))
        progress.advance(len(chunk))
    return out


def distillation(model: Transformer, trajs: Sequence[Trajectory]) -> LossFn:
    """Mean over answer tokens of KL(teacher ‖ student) on the (top-k + rest) coarsening."""

    def loss(plugs: TrainPlugs, batch: list[int]) -> Tensor:
        chosen = [trajs[i] for i in batch]
        total, count = torch.zeros(()), 0
        for t, s in zip(chosen, answer_logp(model, [(t.ids, t.start) for t in chosen], plugs), strict=True):
            s_top = s.gather(-1, t.top_ids)  # [n, k]
            s_rest = (1 - s_top.exp().sum(-1)).clamp(min=1e-12).log()
            kl = (t.top_logp.exp() * (t.top_logp - s_top)).sum(-1) + t.rest_logp.exp() * (
                t.rest_logp - s_rest
            )
            total, count = total + kl.sum(), count + len(kl)
        return total / max(count, 1)

    return loss


def joint(distill: LossFn, supervised: LossFn, num_trajectories: int) -> LossFn:
    """One loss over two kinds of example: indices below `num_trajectories` are teacher answers
    (KL), the rest supervised examples (cross-entropy); a batch's loss is the sum of its parts."""

    def loss(plugs: TrainPlugs, batch: list[int]) -> Tensor:
        answers = [i for i in batch if i < num_trajectories]
        examples = [i - num_trajectories for i in batch if i >= num_trajectories]
        total = distill(plugs, answers) if answers else torch.zeros(())
        return total + supervised(plugs, examples) if examples else total

    return loss


def bake(
    engine: Engine,
    persona: Mapping[str, Any],
    recipe: LoraRecipe,
    *,
    examples: Sequence[Example] = (),
    lang: str = "en",
    prompts: int = 48,
    max_tokens: int = 48,
    held_out_fraction: float = 0.1,
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Bake `persona` into a LoRA on `engine.model`; returns the result and the `forge` record.

    `examples` (knowledge, dialogues, documents: what a tune learns) are learned by the same LoRA in
    the same steps, mixed into every batch with the teacher's answers. Trained one after the other,
    the tune — a few dozen short answers — pulled the card away from the persona on everything else
    (fidelity fell from positive to −0.66) and cost a second training run; the teacher's answers in
    the same batches hold it to the persona."""
    progress = progress or Progress()
    system = persona_prompt(persona)
    chosen = bake_prompts(persona, lang, prompts, recipe.seed)
    checkpoints = Checkpoints(checkpoint_dir, {"system": system, "prompts": chosen, "max_tokens": max_tokens})
    saved = checkpoints.load("teacher")
    if saved is not None:
        trajs = [Trajectory(**t) for t in saved["trajectories"]]
    else:
        trajs = trajectories(
            engine, system, chosen, max_tokens=max_tokens, seed=recipe.seed, progress=progress
        )
        checkpoints.save("teacher", {"trajectories": [t.__dict__ for t in trajs]})
    name = "bake+tune" if examples else "bake"
    total = len(trajs) + len(examples)
    held_out = held_out_split(total, held_out_fraction, recipe.seed)
    data_sha = digest({"system": system, "prompts": chosen, "examples": [e.ids for e in examples]})
    key = {"recipe": recipe.record(), "data": data_sha, "max_tokens": max_tokens}
    result = train_lora(
        engine.model,
        joint(distillation(engine.model, trajs), cross_entropy(engine.model, examples), len(trajs)),
        total,
        recipe,
        held_out=held_out,
        progress=progress,
        checkpoints=Checkpoints(checkpoint_dir, key),
        name=name,
    )
    record = {
        "method": name,
        **recipe.record(),
        "data_sha256": data_sha,
        "prompts": len(chosen),
        "answer_tokens": sum(t.top_ids.shape[0] for t in trajs),
        "examples": len(examples),
        "max_tokens": max_tokens,
        "top_k": TOP_K,
        "held_out": len(held_out),
        **result.record(),
    }
    return result, record
