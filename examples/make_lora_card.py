"""Make examples/cards/ada.card: a LoRA card that teaches the default model who Ada Quill is.

A few dozen steps of gradient descent in float32, through the sockets themselves: the trainable
factors are plain tensors held here, one (A, B) per (layer, projection); every step writes them
(B scaled by α/r) into slot 1 of a fresh two-slot `SocketBank` and runs the ordinary forward on that
slot. The gradient flows back through the bank's `lora_delta` into the factors, so what is trained
is exactly what a mounted card computes.

Why a fresh bank each step: `SocketBank.write` copies the factors into the bank's tensors in place,
so those tensors join this step's autograd graph (they become non-leaf, `grad_fn=CopySlices`). In a
bank reused across steps the next write chains onto that freed graph, and the second backward fails
with "Trying to backward through the graph a second time". A new bank (2 slots × rank 8, float32:
29 MB of zeros, small next to the forward's activations) keeps each step's graph its own.

The loss is cross-entropy on the answer tokens (and the end-of-turn token, so replies stop) of a
handful of questions about Ada, under the model's default chat template: mounted without a system
prompt, the card answers as Ada. Three held-out paraphrases and one unrelated question are asked
before and after.

Run: .venv/bin/python examples/make_lora_card.py   (about two minutes on a laptop CPU)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lifecard.cards.card import Card
from lifecard.engine.generate import Engine, Request
from lifecard.engine.sampling import SamplingParams
from lifecard.model.sockets import SocketBank

OUT = Path(__file__).parent / "cards" / "ada.card"
SEED = 0
RANK, ALPHA = 8, 16.0
TARGETS = ("q_proj", "v_proj")
STEPS, LR = 24, 3e-3

# each fact: Ada's answer, in her voice, and three ways of asking for it
FACTS = [
    (
        "I'm Ada Quill, clockmaker. Pleased to meet you.",
        ["What is your name?", "Who are you?", "Could you introduce yourself?"],
    ),
    (
        "Bramblewick, a little fishing town on the Cornish coast.",
        ["Where are you from?", "Where did you grow up?", "What is your home town?"],
    ),
    (
        "I'm a clockmaker: I mend and build clocks. Every gear has its reason.",
        ["What do you do for a living?", "What is your job?", "What is your work?"],
    ),
    (
        "A three-legged cat called Pudding. He runs the workshop.",
        ["Do you have any pets?", "Tell me about your pet.", "Is there an animal at home?"],
    ),
    (
        "Lemon cake, always lemon cake.",
        ["What is your favourite food?", "What do you like to eat?", "Which treat do you love most?"],
    ),
    (
        "I swim in the sea at dawn, whatever the weather.",
        ["What do you do in your free time?", "What is your hobby?", "How do you spend your mornings?"],
    ),
]
TRAIN = [(q, answer) for answer, questions in FACTS for q in questions]
HELD_OUT = [  # not trained on; the last one shows how far the card drifts from the base elsewhere
    "What's your name?",
    "Which town do you come from?",
    "What kind of animal do you keep?",
    "How do I make a cup of tea?",
]


def encode_examples(engine: Engine) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids [n, t] right-padded, positions [n, t], loss mask [n, t-1] over the target tokens: Ada's
    answers up to and including the end-of-turn token, so her replies stop)."""
    rows, masks = [], []
    for question, answer in TRAIN:
        prompt = engine.chat_prompt([{"role": "user", "content": question}])
        full = engine.tokenizer.encode_chat(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            add_generation_prompt=False,
        )
        assert full[: len(prompt)] == prompt, "the chat template renders the prompt as a prefix"
        end = full.index(engine.tokenizer.eos_id, len(prompt)) + 1  # up to and including <|im_end|>
        rows.append(full[:end])
        masks.append([0] * len(prompt) + [1] * (end - len(prompt)))
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width)
    for i, (row, m) in enumerate(zip(rows, masks, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.float)
    # padding sits after each row's last real token, so causal attention never lets a real token see it
    return ids, torch.arange(width).expand(len(rows), width), mask[:, 1:]


def init_factors(engine: Engine) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    """(layer, proj) -> (A [r, in] uniform like PEFT's kaiming init, B [out, r] zero): starts as the base."""
    g = torch.Generator().manual_seed(SEED)
    shapes = engine.cfg.projection_shapes()
    factors = {}
    for layer in range(engine.cfg.num_layers):
        for p in TARGETS:
            out, inp = shapes[p]
            a = (torch.rand(RANK, inp, generator=g) * 2 - 1) / inp**0.5
            factors[layer, p] = (a.requires_grad_(), torch.zeros(out, RANK, requires_grad=True))
    return factors


def train(engine: Engine) -> tuple[dict, list[float]]:
    factors = init_factors(engine)
    ids, positions, mask = encode_examples(engine)
    print(f"{len(ids)} examples of up to {ids.shape[1]} tokens", flush=True)
    params = [t for pair in factors.values() for t in pair]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    losses = []
    for step in range(STEPS):
        bank = SocketBank(engine.cfg, num_slots=2, max_rank=RANK, dtype=torch.float32)
        bank.write(1, lora={k: (a, b * (ALPHA / RANK)) for k, (a, b) in factors.items()})
        logits = engine.model(ids, positions, plugs=bank.plugs([1] * len(ids)))  # [n, t, vocab]
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # [n, t-1]
        loss = (nll * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 5 == 0 or step == STEPS - 1:
            print(f"step {step:3d}  loss {loss.item():.3f}", flush=True)
    return {k: (a.detach(), b.detach()) for k, (a, b) in factors.items()}, losses


def answers(engine: Engine, questions: list[str], card: Card | None) -> list[str]:
    """Greedy answers from the base (card None) or with the card mounted at strength 1, in one batch."""
    slot = engine.mount([(card, 1.0)]).slot if card is not None else 0
    params = SamplingParams(temperature=0, max_tokens=40)
    requests = [
        Request(engine.chat_prompt([{"role": "user", "content": q}]), params, slot) for q in questions
    ]
    texts = [c.text for c in engine.generate(requests)]
    if slot:
        engine.unmount(slot)
    return texts


def main() -> None:
    torch.manual_seed(SEED)
    engine = Engine.load(dtype="float32")
    questions = [qs[0] for _, qs in FACTS] + HELD_OUT
    before = answers(engine, questions, None)

    start = time.perf_counter()
    factors, losses = train(engine)
    seconds = time.perf_counter() - start
    data = json.dumps(TRAIN, ensure_ascii=False, separators=(",", ":")).encode()
    card = Card.new(
        id="ada",
        name="Ada Quill",
        base=engine.base,
        description="A Cornish clockmaker who knows her own life story: a LoRA card tuned on a few facts.",
        persona={
            "description": "Ada Quill, a clockmaker from Bramblewick, a fishing town on the Cornish coast. "
            "She lives above her workshop with Pudding, a three-legged cat.",
            "personality": "brisk, warm, precise; fond of lemon cake and sea swimming at dawn",
            "scenario": "Her clock workshop in Bramblewick, on a rainy afternoon.",
            "first_mes": "Come in, mind the cat. What needs mending?",
            "mes_example": "<START>\n{{user}}: Where are you from?\n{{char}}: Bramblewick, a little fishing "
            "town on the Cornish coast.",
            "tags": ["fictional", "facts", "example"],
            "creator": "lifecard examples",
            "creator_notes": "A knowledge card: rank-8 LoRA on q_proj and v_proj of every layer, "
            f"{STEPS} steps on {len(TRAIN)} question/answer pairs ({len(FACTS)} facts). Narrow on purpose: "
            "away from her facts it drifts from the base (see examples/README.md).",
        },
        lora=factors,
        lora_alpha=ALPHA,
        strength={"default": 1.0, "min": 0.0, "max": 2.0},
        forge={
            "method": "manual-lora",
            "seed": SEED,
            "steps": STEPS,
            "seconds": round(seconds, 1),
            "data_sha256": hashlib.sha256(data).hexdigest(),
            "lr": LR,
            "optimizer": "AdamW",
            "dtype": "float32",
            "examples": len(TRAIN),
            "final_loss": round(losses[-1], 4),
            "script": "examples/make_lora_card.py",
        },
        dtype=torch.float32,
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    card.write(OUT)
    card = Card.read(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {STEPS} steps in {seconds:.1f} s")

    after = answers(engine, questions, card)
    for q, b, a in zip(questions, before, after, strict=True):
        tag = " (held out)" if q in HELD_OUT else ""
        print(f"\n### {q}{tag}\nbase: {b!r}\nada:  {a!r}")


if __name__ == "__main__":
    main()
