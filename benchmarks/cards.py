"""Plugging cards: mount time, and decode throughput of a batch whose rows carry different cards —
vs the same batch on one card, vs transformers + PEFT's mixed-adapter `generate(adapter_names=…)`,
same weights, ranks and dtype, in one run.

    .venv/bin/python benchmarks/cards.py [--dtype float32] [--rank 16] [--targets qv|all] [--batch 8]

Runs are interleaved and the median taken: this machine is shared and noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import load_both, random_lora

from lifecard.cards.card import Card
from lifecard.engine.generate import Request
from lifecard.engine.sampling import SamplingParams

TARGETS = {
    "qv": ("q_proj", "v_proj"),
    "all": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}


def make_cards(
    engine, n: int, rank: int, targets: tuple[str, ...], folder: Path, dtype: torch.dtype
) -> list[Path]:
    paths = []
    for i in range(n):
        lora = {k: v for k, v in random_lora(engine.cfg, rank, seed=100 + i).items() if k[1] in targets}
        card = Card.new(
            id=f"bench{i}",
            name=f"Bench {i}",
            base=engine.base,
            lora=lora,
            lora_alpha=float(rank),
            dtype=dtype,
        )
        path = folder / f"bench{i}.card"
        card.write(path)
        paths.append(path)
    return paths


def peft_model(hf, cards: list[Card], targets: tuple[str, ...], rank: int):
    """transformers + PEFT holding the very same factors as our cards, one adapter per card."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), init_lora_weights=False)
    model = get_peft_model(hf, config, adapter_name="c0")
    for i in range(1, len(cards)):
        model.add_adapter(f"c{i}", config)
    with torch.no_grad():
        for i, card in enumerate(cards):
            for (layer, proj), (a, b) in card.lora.items():
                part = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
                module = model.base_model.model.model.layers[layer].get_submodule(f"{part}.{proj}")
                module.lora_A[f"c{i}"].weight.copy_(a)
                module.lora_B[f"c{i}"].weight.copy_(b)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="float32", choices=["bfloat16", "float32"])
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--targets", default="all", choices=sorted(TARGETS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mounts", type=int, default=50, help="mount/unmount cycles timed")
    ap.add_argument(
        "--card-dtype", default="float32", choices=["bfloat16", "float32"], help="as stored in the file"
    )
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    targets = TARGETS[args.targets]
    engine, hf = load_both(dtype, num_slots=args.batch + 1, max_rank=args.rank)
    folder = Path(tempfile.mkdtemp(prefix="lifecard-bench-"))
    paths = make_cards(engine, args.batch, args.rank, targets, folder, getattr(torch, args.card_dtype))
    size_mb = paths[0].stat().st_size / 1e6
    print(
        f"# cards benchmark: {args.dtype}, {torch.get_num_threads()} threads, rank {args.rank} on "
        f"{'+'.join(targets)}, card file {size_mb:.1f} MB, batch {args.batch}, prompt {args.prompt}, "
        f"{args.tokens} new tokens per row, median of {args.repeats}\n"
    )

    # --- mount: read + validate + compose + write into the bank; unmount
    mount_ms, unmount_ms = [], []
    before = engine.bank.nbytes
    for i in range(args.mounts):
        t0 = time.perf_counter()
        mount = engine.mount([(Card.read(paths[i % len(paths)]), 1.0)])
        t1 = time.perf_counter()
        engine.unmount(mount.slot)
        unmount_ms.append((time.perf_counter() - t1) * 1e3)
        mount_ms.append((t1 - t0) * 1e3)
    assert engine.bank.nbytes == before
    peft_ms = []
    from peft import PeftModel

    cards = [Card.read(p) for p in paths]
    peft = peft_model(hf, cards, targets, args.rank)
    with tempfile.TemporaryDirectory() as tmp:
        peft.save_pretrained(tmp, selected_adapters=["c0"])
        for i in range(min(args.mounts, 20)):
            t0 = time.perf_counter()
            peft.load_adapter(str(Path(tmp) / "c0"), adapter_name=f"load{i}")  # PEFT saves per adapter name
            peft_ms.append((time.perf_counter() - t0) * 1e3)
            peft.delete_adapter(f"load{i}")
    assert isinstance(peft, PeftModel)

    # --- decode: all different cards vs all the same card vs PEFT's mixed-adapter batch
    slots = [engine.mount([(card, 1.0)]).slot for card in cards]
    prompt = torch.randint(100, 40000, (args.prompt,), generator=torch.Generator().manual_seed(0)).tolist()

    def ours(row_slots: list[int], new: int):
        params = SamplingParams(temperature=0, max_tokens=new, ignore_eos=True)
        return lambda: engine.generate([Request(prompt, params, s) for s in row_slots])

    ids = torch.tensor([prompt] * args.batch)
    names = [f"c{i}" for i in range(args.batch)]

    def theirs(new: int):
        kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)

        def run():
            with torch.inference_mode():
                peft.generate(input_ids=ids, attention_mask=torch.ones_like(ids), adapter_names=names, **kw)

        return run

    runs = {
        "different": lambda n: ours(slots, n),
        "same": lambda n: ours([slots[0]] * args.batch, n),
        "base": lambda n: ours([0] * args.batch, n),
        "peft": theirs,
    }
    for make in runs.values():
        make(2)()  # warm up
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, make in runs.items():
            short, long = make(1), make(1 + args.tokens)
            t0 = time.perf_counter()
            short()
            t1 = time.perf_counter()
            long()
            t2 = time.perf_counter()
            times[name].append((t2 - t1) - (t1 - t0))
    tps = {k: args.batch * args.tokens / statistics.median(v) for k, v in times.items()}

    print("| what | figure |")
    print("|---|---|")
    print(
        f"| mount a {size_mb:.1f} MB card (read + validate + compose + bank write), median | "
        f"{statistics.median(mount_ms):.1f} ms |"
    )
    print(
        f"| unmount, median | {statistics.median(unmount_ms):.2f} ms (bank back to {before / 1e6:.0f} MB) |"
    )
    print(
        f"| PEFT `load_adapter` of the same LoRA, median | {statistics.median(peft_ms):.1f} ms "
        f"({statistics.median(peft_ms) / statistics.median(mount_ms):.1f}× ours) |"
    )
    print(f"| decode, batch {args.batch}, {args.batch} different cards | {tps['different']:.1f} tok/s |")
    print(f"| decode, batch {args.batch}, all the same card | {tps['same']:.1f} tok/s |")
    print(f"| decode, batch {args.batch}, no card | {tps['base']:.1f} tok/s |")
    print(
        f"| transformers + PEFT, batch {args.batch}, {args.batch} different adapters | {tps['peft']:.1f} tok/s |"
    )
    print(f"| different / same | {tps['different'] / tps['same']:.2f}× |")
    print(f"| different: ours / PEFT | {tps['different'] / tps['peft']:.2f}× |")


if __name__ == "__main__":
    main()
