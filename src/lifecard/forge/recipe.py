"""`forge card`: one profile → one card with up to two modules, each made by the method that fits.

tone.like / unlike                      → steer module (a vector per layer, no training)
identity, tone, preferences, values…    → LoRA module: bake (the persona text distilled:
knowledge, examples, documents            KL to the teacher) and tune (cross-entropy on the
                                          examples) in the same batches — see bake.bake
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lifecard.cards.card import Card
from lifecard.engine.generate import Engine
from lifecard.forge.bake import bake
from lifecard.forge.lora import LoraRecipe
from lifecard.forge.profile import Profile
from lifecard.forge.progress import Progress, digest
from lifecard.forge.steer import SteerRecipe, steer
from lifecard.forge.tune import TuneData, encode


@dataclass(frozen=True)
class Budget:
    """How much work each part gets. `tiny` is for tests and demos; `standard` for real cards."""

    bake_prompts: int
    bake_tokens: int
    lora: LoraRecipe
    steer: SteerRecipe


BUDGETS = {
    "tiny": Budget(4, 8, LoraRecipe(rank=2, steps=2, batch_size=4), SteerRecipe(prompts=4)),
    "quick": Budget(24, 32, LoraRecipe(steps=30), SteerRecipe(prompts=16)),
    "standard": Budget(40, 48, LoraRecipe(steps=100, batch_size=12, lr=3e-3), SteerRecipe()),
}


def tune_data(profile: Profile) -> TuneData:
    """Each fact's training questions answered with the fact itself; the example dialogues; documents."""
    chats = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": f.fact}]
        for f in profile.knowledge
        for q in f.train_questions
    ]
    return TuneData(chats + profile.examples, profile.documents)


def forge_profile(
    engine: Engine,
    profile: Profile,
    *,
    budget: str | Budget = "standard",
    seed: int = 0,
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
) -> Card:
    """Make the card for `profile` on `engine`'s base. Parts without input are skipped (no tone.like:
    no steer; no knowledge, examples or documents: a bake alone)."""
    progress = progress or Progress()
    plan = BUDGETS[budget] if isinstance(budget, str) else budget
    torch.manual_seed(seed)
    persona = profile.persona()
    model, tokenizer = engine.model, engine.tokenizer
    started = time.perf_counter()
    parts: list[dict[str, Any]] = []
    steer_vectors, coefficient = None, 1.0
    if profile.like:
        steer_vectors, coefficient, record = steer(
            model,
            tokenizer,
            replace(plan.steer, seed=seed),
            like=profile.like,
            unlike=profile.unlike or None,
            lang=profile.language,
            progress=progress,
        )
        parts.append(record)
    lora_recipe = replace(plan.lora, seed=seed)
    baked, record = bake(
        engine,
        persona,
        lora_recipe,
        examples=encode(tokenizer, tune_data(profile)),
        lang=profile.language,
        prompts=plan.bake_prompts,
        max_tokens=plan.bake_tokens,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
    )
    parts.append(record)
    steers = steer_vectors is not None
    return Card.new(
        id=profile.id,
        name=profile.name,
        base=engine.base,
        description=(profile.identity.splitlines() or [""])[0][:200],
        persona=persona,
        lora=baked.factors,
        lora_alpha=lora_recipe.alpha,
        steer=steer_vectors,
        steer_module_scale=coefficient,
        strength={"default": 1.0, "min": -2.0 if steers else 0.0, "max": 2.0},
        forge={
            "method": "profile",
            "seed": seed,
            "steps": sum(int(p.get("steps_taken", 0)) for p in parts),
            "seconds": round(time.perf_counter() - started, 1),
            "data_sha256": digest(asdict(profile)),
            "budget": budget if isinstance(budget, str) else "custom",
            "parts": parts,
            "checks": profile.checks(),
        },
        dtype=torch.float32,
    )
