"""Prefill and decode tokens/s of our engine vs transformers' `generate`, same weights, same dtype,
in one run; and what a LoRA on every row costs vs the empty bank.

    .venv/bin/python benchmarks/decode.py [--dtype bfloat16] [--tokens 64] [--prompt 128] [--repeats 3]

Runs are interleaved (ours, theirs, ours, …) and the median is taken, because this machine is
shared and noisy; compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse

import torch
from common import load_both, median_time, random_lora

from lifecard.engine.generate import Request
from lifecard.engine.sampling import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--tokens", type=int, default=64, help="decode tokens per row")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens per row")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    engine, hf = load_both(dtype)
    engine.bank.write(1, random_lora(engine.cfg, 16, seed=1))
    print(
        f"# decode benchmark: {engine.source}, {args.dtype}, {torch.get_num_threads()} threads, "
        f"prompt {args.prompt}, {args.tokens} new tokens per row, median of {args.repeats}"
    )

    def ours(batch: int, new: int, slot: int = 0):
        prompt = torch.randint(
            100, 40000, (args.prompt,), generator=torch.Generator().manual_seed(batch)
        ).tolist()
        params = SamplingParams(temperature=0, max_tokens=new, ignore_eos=True)
        return lambda: engine.generate([Request(prompt, params, slot) for _ in range(batch)])

    def theirs(batch: int, new: int):
        prompt = torch.randint(100, 40000, (args.prompt,), generator=torch.Generator().manual_seed(batch))
        ids = prompt.expand(batch, -1).contiguous()
        kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)

        def run():
            with torch.inference_mode():
                hf.generate(ids, attention_mask=torch.ones_like(ids), **kw)

        return run

    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        for fn in (ours(batch, 2), theirs(batch, 2)):  # warm up both
            fn()
        t = {name: [] for name in ("ours_1", "ours_n", "lora_1", "lora_n", "hf_1", "hf_n")}
        for _ in range(args.repeats):  # interleave, so drift in machine load hits both alike
            t["ours_1"].append(median_time(ours(batch, 1), 1))
            t["hf_1"].append(median_time(theirs(batch, 1), 1))
            t["ours_n"].append(median_time(ours(batch, 1 + args.tokens), 1))
            t["hf_n"].append(median_time(theirs(batch, 1 + args.tokens), 1))
            t["lora_1"].append(median_time(ours(batch, 1, slot=1), 1))
            t["lora_n"].append(median_time(ours(batch, 1 + args.tokens, slot=1), 1))
        med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
        prefill = {k: batch * args.prompt / med[f"{k}_1"] for k in ("ours", "hf", "lora")}
        decode = {k: batch * args.tokens / (med[f"{k}_n"] - med[f"{k}_1"]) for k in ("ours", "hf", "lora")}
        rows.append((batch, prefill, decode))

    print(
        "\n| batch | prefill ours | prefill HF | ratio | decode ours | decode HF | ratio | decode, LoRA r16 on every row | vs empty bank |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for batch, p, d in rows:
        print(
            f"| {batch} | {p['ours']:.0f} | {p['hf']:.0f} | {p['ours'] / p['hf']:.2f}× | {d['ours']:.1f} | "
            f"{d['hf']:.1f} | {d['ours'] / d['hf']:.2f}× | {d['lora']:.1f} | {d['lora'] / d['ours']:.2f}× |"
        )
    print("\n(tokens/s; LoRA = rank 16 on all 7 projections of all layers, every row on that slot)")


if __name__ == "__main__":
    main()
