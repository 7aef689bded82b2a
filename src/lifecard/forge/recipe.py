"""`forge card`: one profile → one card with several modules, each made by the method that fits.

    tone.like / unlike                      → steer  (a vector per layer, no training)
    identity, tone, preferences, values…    → bake   (the persona text distilled into a LoRA)
    knowledge, examples, documents          → tune   (supervised LoRA, trained on top of the bake)

The bake and tune LoRAs become one LoRA module by exact concatenation (rank r_bake + r_tune,
each scale folded into B): the card computes exactly the sum the tune was trained against.
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
from lifecard.forge.lora import Factors, LoraRecipe, concat
from lifecard.forge.profile import Profile
from lifecard.forge.progress import Progress, digest
from lifecard.forge.steer import SteerRecipe, steer
from lifecard.forge.tune import TuneData, tune


@dataclass(frozen=True)
class Budget:
    """How much work each part gets. `tiny` is for tests and demos; `standard` for real cards."""

    bake_prompts: int
    bake_tokens: int
    bake: LoraRecipe
    tune: LoraRecipe
    steer: SteerRecipe


BUDGETS = {
    "tiny": Budget(
        4,
        8,
        LoraRecipe(rank=2, steps=2, batch_size=4),
        LoraRecipe(rank=2, steps=2, batch_size=4),
        SteerRecipe(prompts=4),
    ),
    "quick": Budget(24, 32, LoraRecipe(steps=24), LoraRecipe(steps=40), SteerRecipe(prompts=24)),
    "standard": Budget(48, 48, LoraRecipe(steps=60), LoraRecipe(steps=120, lr=1e-3), SteerRecipe()),
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
    no steer; no knowledge, examples or documents: no tune)."""
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
    loras: list[tuple[Factors, float]] = []
    sub = Path(checkpoint_dir) if checkpoint_dir else None
    bake_recipe = replace(plan.bake, seed=seed)
    baked, record = bake(
        engine,
        persona,
        bake_recipe,
        lang=profile.language,
        prompts=plan.bake_prompts,
        max_tokens=plan.bake_tokens,
        progress=progress,
        checkpoint_dir=sub,
    )
    loras.append((baked.factors, bake_recipe.scale))
    parts.append(record)
    data = tune_data(profile)
    if data.chats or data.documents:
        tune_recipe = replace(plan.tune, seed=seed)
        tuned, record = tune(
            model, tokenizer, data, tune_recipe, frozen=loras, progress=progress, checkpoint_dir=sub
        )
        loras.append((tuned.factors, tune_recipe.scale))
        parts.append(record)
    lora = concat(loras)
    steers = steer_vectors is not None
    return Card.new(
        id=profile.id,
        name=profile.name,
        base=engine.base,
        description=(profile.identity.splitlines() or [""])[0][:200],
        persona=persona,
        lora=lora,
        lora_alpha=float(next(iter(lora.values()))[0].shape[0]),  # scales are folded into B
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
