"""Cold start of `lifecard generate` on a cached model: seconds to the first token and peak resident
memory, next to transformers loading the same cached weights and generating the same way.

    .venv/bin/python benchmarks/startup.py [--repeats 3]

Each run is a fresh process (the OS file cache stays warm, as it does for a user's second start).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent

HF_SCRIPT = """
import sys, torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
folder = sys.argv[1]
tok = PreTrainedTokenizerFast(tokenizer_file=folder + "/tokenizer.json")
model = LlamaForCausalLM(LlamaConfig.from_json_file(folder + "/config.json")).to(torch.bfloat16)
model.load_state_dict(load_file(folder + "/model.bfloat16.safetensors"), strict=False)
ids = torch.tensor([tok.encode("Hi")])
with torch.inference_mode():
    out = model.generate(ids, max_new_tokens=1, do_sample=False, pad_token_id=0)
    sys.stdout.write(tok.decode(out[0, ids.shape[1]:])); sys.stdout.flush()
    model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
"""


def first_byte(cmd: list[str]) -> tuple[float, float, float]:
    """(seconds to the first byte on stdout, total seconds, peak RSS in MB) of one fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.read(1)
    first = time.perf_counter() - t0
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return first, time.perf_counter() - t0, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent.parent / "src"))
    from lifecard.model.files import cache_root, model_fingerprint

    ours = [str(BIN / "lifecard"), "generate", "Hi", "--raw", "--temperature", "0", "-n", "8"]
    subprocess.run(ours, check=True, capture_output=True)  # make sure the conversion is cached
    folder = cache_root() / "models" / model_fingerprint(None)
    theirs = [sys.executable, "-c", HF_SCRIPT, str(folder)]
    runs: dict[str, list[tuple[float, float, float]]] = {"lifecard": [], "transformers": []}
    for _ in range(args.repeats):
        runs["lifecard"].append(first_byte(ours))
        runs["transformers"].append(first_byte(theirs))
    print(f"# cold start, cached default model, bfloat16, median of {args.repeats} fresh processes\n")
    print("| | first token (s) | peak RSS (MB) |")
    print("|---|---|---|")
    med = {k: (statistics.median(r[0] for r in v), max(r[2] for r in v)) for k, v in runs.items()}
    for name, (ttft, rss) in med.items():
        print(f"| {name} | {ttft:.2f} | {rss:.0f} |")
    ratio = med["transformers"][0] / med["lifecard"][0]
    print(
        f"\nlifecard reaches its first token {ratio:.2f}× sooner, with "
        f"{med['lifecard'][1] / med['transformers'][1]:.2f}× the peak memory"
    )


if __name__ == "__main__":
    main()
