"""Forging speed: one LoRA training step (forward, backward, AdamW) through our sockets vs
transformers + PEFT on the very same weights, LoRA (rank 8, α 16, every projection) and batch.

    .venv/bin/python benchmarks/forge.py [--dtype float32] [--batch 12] [--tokens 80] [--repeats 5]

The batch is supervised (cross-entropy on every token, logits everywhere) so both sides do the
same work; the runs are interleaved and the median taken: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from common import load_both

from lifecard.forge.lora import EVERY, LoraRecipe, TrainPlugs, init_factors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--tokens", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    from peft import LoraConfig, get_peft_model

    engine, hf = load_both(dtype)
    recipe = LoraRecipe()
    factors = init_factors(engine.cfg, recipe, torch.Generator().manual_seed(0))
    ours_params = [t.requires_grad_() for pair in factors.values() for t in pair]
    ours_opt = torch.optim.AdamW(ours_params, lr=recipe.lr)
    peft = get_peft_model(hf, LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, target_modules=list(EVERY)))
    peft.train()
    peft_opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=recipe.lr)

    ids = torch.randint(
        0, engine.cfg.vocab_size, (args.batch, args.tokens), generator=torch.Generator().manual_seed(1)
    )
    positions = torch.arange(args.tokens).expand(args.batch, args.tokens)

    def loss_of(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:])

    def ours() -> None:
        loss = loss_of(engine.model(ids, positions, plugs=TrainPlugs(engine.cfg, factors, recipe.scale)))
        ours_opt.zero_grad()
        loss.backward()
        ours_opt.step()

    def theirs() -> None:
        loss = loss_of(peft(input_ids=ids).logits)
        peft_opt.zero_grad()
        loss.backward()
        peft_opt.step()

    times: dict[str, list[float]] = {"lifecard": [], "peft": []}
    for step in range(args.repeats + 1):  # the first round warms up and is not counted
        for name, fn in (("lifecard", ours), ("peft", theirs)):
            t0 = time.perf_counter()
            fn()
            if step:
                times[name].append(time.perf_counter() - t0)
    ours_s, peft_s = statistics.median(times["lifecard"]), statistics.median(times["peft"])
    tokens = args.batch * args.tokens
    print(
        f"training step, {args.dtype}, batch {args.batch} × {args.tokens} tokens, LoRA r{recipe.rank} on every projection"
    )
    print("| who | s/step | tokens/s |\n|---|---|---|")
    print(f"| lifecard (sockets) | {ours_s:.2f} | {tokens / ours_s:.0f} |")
    print(f"| transformers + PEFT | {peft_s:.2f} | {tokens / peft_s:.0f} |")
    print(f"ratio (PEFT time / ours): {peft_s / ours_s:.2f}×")


if __name__ == "__main__":
    main()
