"""Make examples/cards/pirate.card: a steering card for the default model, with no training.

Contrastive activation addition (CAA), in four steps:

1. Run each user message twice through the frozen base: once under a pirate system prompt, once
   under a plain one, and keep every decoder layer's output at the last prompt token (the position
   that is about to write the reply).
2. Per layer, the mean difference pirate − plain over all messages is the "pirate" direction.
3. Normalise it per layer to unit length, then give it the typical size of that layer's residual
   stream (the mean norm of the plain run's hidden state), so one coefficient means the same on
   every layer although the residual stream grows ~20× with depth.
4. Keep a middle band of layers (1/3..2/3 of the depth) and store the coefficient as the steer
   module's `scale`, chosen so that strength 1 is clearly piratical and still fluent.

Run: .venv/bin/python examples/make_steer_card.py   (about 15 seconds on a laptop CPU)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from lifecard.cards.card import Card
from lifecard.engine.generate import Engine, Request
from lifecard.engine.sampling import SamplingParams

OUT = Path(__file__).parent / "cards" / "pirate.card"
SEED = 0
COEFFICIENT = 0.025  # per-layer push, as a fraction of that layer's typical hidden-state norm
STRENGTHS = (-1.0, 0.0, 0.5, 1.0, 1.5, 2.0)  # printed as samples

PIRATE = "You are a pirate captain. You always talk like a pirate: arr, matey, ahoy, ye, me hearties."
PLAIN = "You are a helpful assistant. You always talk plainly."
USER_MESSAGES = [
    "Tell me about your morning.",
    "What is the weather like today?",
    "How do I cook rice?",
    "Where are you going next?",
    "What do you think of my new coat?",
    "Can you recommend a good book?",
    "How was your weekend?",
    "What should I eat for dinner?",
    "Explain how a compass works.",
    "Who is your best friend?",
    "What is your favourite drink?",
    "Describe the place where you live.",
    "Give me some advice about money.",
    "What are you afraid of?",
    "How do you fix a leaking boat?",
    "Say hello to my little brother.",
]
SAMPLE_PROMPTS = ["Tell me about your morning.", "How do I make a cup of tea?"]


def last_token_states(engine: Engine, system: str, user: str) -> torch.Tensor:
    """[layers, hidden]: each decoder layer's output at the last prompt token."""
    ids = engine.chat_prompt([{"role": "system", "content": system}, {"role": "user", "content": user}])
    hidden: list[torch.Tensor] = []
    with torch.inference_mode():
        engine.model(torch.tensor([ids]), torch.arange(len(ids))[None], hidden_out=hidden)
    return torch.stack([h[0, -1] for h in hidden]).float()


def pirate_vectors(engine: Engine) -> tuple[torch.Tensor, list[int]]:
    """([num_layers, hidden] with zero rows outside the band, the band's layers), before the coefficient."""
    pirate = torch.stack([last_token_states(engine, PIRATE, u) for u in USER_MESSAGES])  # [n, L, hidden]
    plain = torch.stack([last_token_states(engine, PLAIN, u) for u in USER_MESSAGES])
    direction = (pirate - plain).mean(0)  # [L, hidden]
    unit = direction / direction.norm(dim=-1, keepdim=True)
    size = plain.norm(dim=-1).mean(0, keepdim=True).T  # [L, 1] typical residual norm per layer
    num_layers = engine.cfg.num_layers
    band = list(range(num_layers // 3, 2 * num_layers // 3))
    vectors = torch.zeros_like(unit)
    vectors[band] = unit[band] * size[band]
    return vectors, band


def samples(engine: Engine, card: Card, strengths=STRENGTHS) -> dict[float, list[str]]:
    """Greedy replies at each strength (0 = the base), every strength on its own bank slot, all in
    one batch: rows of one batch may run different slots."""
    mounts = {s: engine.mount([(card, s)]) for s in strengths}
    prompts = [engine.chat_prompt([{"role": "user", "content": p}]) for p in SAMPLE_PROMPTS]
    params = SamplingParams(temperature=0, max_tokens=40)
    requests = [Request(ids, params, m.slot) for m in mounts.values() for ids in prompts]
    texts = [c.text for c in engine.generate(requests)]
    for m in mounts.values():
        if m.slot:
            engine.unmount(m.slot)
    n = len(prompts)
    return {s: texts[i * n : (i + 1) * n] for i, s in enumerate(strengths)}


def main() -> None:
    torch.manual_seed(SEED)  # nothing here is random; kept so a changed recipe stays reproducible
    engine = Engine.load(dtype="float32")
    start = time.perf_counter()
    vectors, band = pirate_vectors(engine)
    seconds = time.perf_counter() - start
    pairs = [[PIRATE, PLAIN, u] for u in USER_MESSAGES]
    data = json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode()
    card = Card.new(
        id="pirate",
        name="Captain Pip",
        base=engine.base,
        description="Talks like a pirate: a steering vector on the middle layers, no training.",
        persona={
            "description": "Captain Pip, an old sea dog who has sailed every ocean twice.",
            "personality": "boisterous, salty, cheerful; says arr, matey, ahoy",
            "scenario": "Aboard the Salty Gull, somewhere off the coast.",
            "first_mes": "Ahoy, matey! What brings ye aboard?",
            "tags": ["pirate", "style", "example"],
            "creator": "lifecard examples",
            "creator_notes": "A style card: steering only. Strength 1 is clear, 2 starts to break down; "
            "negative strengths steer away from pirate talk.",
        },
        steer={layer: vectors[layer] for layer in band},
        steer_module_scale=COEFFICIENT,
        strength={"default": 1.0, "min": -2.0, "max": 2.0},
        forge={
            "method": "manual-steer",
            "seed": SEED,
            "steps": 0,
            "seconds": round(seconds, 2),
            "data_sha256": hashlib.sha256(data).hexdigest(),
            "recipe": "CAA: mean(last-token hidden | pirate system) − mean(… | plain system), "
            "unit per layer × mean hidden norm, layers 1/3..2/3 of the depth",
            "pairs": len(pairs),
            "coefficient": COEFFICIENT,
            "script": "examples/make_steer_card.py",
        },
        dtype=torch.float32,
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    card.write(OUT)
    card = Card.read(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): layers {band[0]}..{band[-1]}, made in {seconds:.1f} s")

    steered = samples(engine, card)
    for i, prompt in enumerate(SAMPLE_PROMPTS):
        print(f"\n### {prompt}")
        for s, texts in steered.items():
            print(f"strength {s:+.1f}{' (base)' if s == 0 else '       '}:  {texts[i]!r}")


if __name__ == "__main__":
    main()
