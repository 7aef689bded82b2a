"""Prefill and decode tokens/s of our engine vs transformers' `generate`, same weights, same dtype,
in one run; and what a LoRA on every row costs vs the empty bank.

    .venv/bin/python benchmarks/decode.py [--dtype bfloat16] [--tokens 64] [--prompt 128] [--repeats 5]

Each run is timed token by token (ours: the stream; transformers: a streamer), so prefill is the
time to the first token and decode the steady rate after it. Runs are interleaved (ours, theirs,
ours with a card, …) and the median taken, because this machine is shared and noisy; compare
the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import load_both, random_lora

from lifecard.engine.generate import Request
from lifecard.engine.sampling import SamplingParams


class Clock:
    """A transformers streamer that only notes when each token arrives (the first call is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def timed(step, arrivals: list[float]):
    def run(*args):
        logits = step(*args)
        arrivals.append(time.perf_counter())
        return logits

    return run


def rates(start: float, arrivals: list[float], batch: int, prompt: int) -> tuple[float, float]:
    """(prefill tok/s, decode tok/s) from when each step's tokens arrived."""
    first, last = arrivals[0], arrivals[-1]
    return batch * prompt / (first - start), batch * (len(arrivals) - 1) / (last - first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per row")
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens per row")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    engine, hf = load_both(dtype)
    engine.bank.write(1, random_lora(engine.cfg, 16, seed=1))
    print(
        f"# decode benchmark: {engine.source}, {args.dtype}, {torch.get_num_threads()} threads, "
        f"prompt {args.prompt}, {args.tokens} new tokens per row, median of {args.repeats}"
    )

    def ours(batch: int, slot: int) -> tuple[float, float]:
        prompt = torch.randint(
            100, 40000, (args.prompt,), generator=torch.Generator().manual_seed(1)
        ).tolist()
        params = SamplingParams(temperature=0, max_tokens=args.tokens, ignore_eos=True)
        arrivals: list[float] = []
        for step in ("prefill", "decode"):  # note when each forward's logits are ready
            setattr(engine, step, timed(getattr(type(engine), step).__get__(engine), arrivals))
        start = time.perf_counter()
        try:
            engine.generate([Request(prompt, params, slot) for _ in range(batch)])
        finally:
            del engine.prefill, engine.decode
        return rates(start, arrivals[:-1] if len(arrivals) > args.tokens else arrivals, batch, args.prompt)

    def theirs(batch: int) -> tuple[float, float]:
        prompt = torch.randint(100, 40000, (args.prompt,), generator=torch.Generator().manual_seed(1))
        ids = prompt.expand(batch, -1).contiguous()
        clock = Clock()
        start = time.perf_counter()
        with torch.inference_mode():
            hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
                pad_token_id=0,
                streamer=clock if batch == 1 else None,
            )
        if batch == 1:
            return rates(start, clock.times[1:], batch, args.prompt)
        # transformers' streamers take batch 1 only: time the whole call, and a 1-token call for prefill
        total = time.perf_counter() - start
        t0 = time.perf_counter()
        with torch.inference_mode():
            hf.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False, pad_token_id=0
            )
        first = time.perf_counter() - t0
        return batch * args.prompt / first, batch * (args.tokens - 1) / (total - first)

    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        ours(batch, 0), theirs(batch)  # warm up
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "hf": [], "lora": []}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits all alike
            runs["ours"].append(ours(batch, 0))
            runs["hf"].append(theirs(batch))
            runs["lora"].append(ours(batch, 1))
        med = {
            k: (statistics.median(p for p, _ in v), statistics.median(d for _, d in v))
            for k, v in runs.items()
        }
        rows.append((batch, med))

    print(
        "\n| batch | prefill ours | prefill HF | ratio | decode ours | decode HF | ratio | decode, LoRA r16 on every row | vs empty bank |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for batch, m in rows:
        (po, do), (ph, dh), (_, dl) = m["ours"], m["hf"], m["lora"]
        print(
            f"| {batch} | {po:.0f} | {ph:.0f} | {po / ph:.2f}× | {do:.1f} | {dh:.1f} | {do / dh:.2f}× | {dl:.1f} | {dl / do:.2f}× |"
        )
    print("\n(tokens/s; LoRA = rank 16 on all 7 projections of all layers, every row on that slot)")


if __name__ == "__main__":
    main()
