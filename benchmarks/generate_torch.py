"""The PyTorch peer of benchmarks/generate.ts: the same decoder, generating one token at a time.

Pre-LN GPT with the shapes of lib/decoder.ts (fused QKV [d,3d], weights stored [in,out], tied head,
learned positions, tanh GELU, LayerNorm eps 1e-5), under torch.inference_mode. Each step samples the
next token from softmax(logits of the last position) with torch.multinomial and reads it back with
.item(), as lib/sampling.ts's generate reads its logits back each step. With a KV cache a step runs
the newest token only (keys and values of the past concatenated per layer); without one it reruns the
whole sequence so far. The .ts starts it with the spec as JSON and sends commands on stdin, one a line:
"info", or "cache 120" / "nocache 120" (generate 120 new tokens; answers ms per token as JSON).

  echo "cache 20" | .cache/bench-venv/bin/python benchmarks/generate_torch.py --serve \
    '{"config": {"vocabSize": 96, "contextLength": 128, "dModel": 128, "nLayers": 4, "nHeads": 4,
      "dFF": 512, "positional": "learned"}, "prompt": [1, 2, 3], "threads": 2}'
"""
import json
import math
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def init(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, f, L = cfg["dModel"], cfg["dFF"], cfg["nLayers"]
    P = {"wte": torch.randn(cfg["vocabSize"], d, generator=g) * 0.02,
         "wpe": torch.randn(cfg["contextLength"], d, generator=g) * 0.02,
         "lnf.g": torch.ones(d), "lnf.b": torch.zeros(d)}
    for l in range(L):
        p = f"h{l}."
        for name, shape in [("attn.qkv.w", [d, 3 * d]), ("attn.proj.w", [d, d]), ("mlp.fc.w", [d, f]), ("mlp.proj.w", [f, d])]:
            std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.w") else 0.02
            P[p + name] = torch.randn(shape, generator=g) * std
        for name, n in [("attn.qkv.b", 3 * d), ("attn.proj.b", d), ("mlp.fc.b", f), ("mlp.proj.b", d), ("ln1.b", d), ("ln2.b", d)]:
            P[p + name] = torch.zeros(n)
        P[p + "ln1.g"], P[p + "ln2.g"] = torch.ones(d), torch.ones(d)
    return P


def forward(P, cfg, ids, past):
    """ids [B,T] at positions offset.. (offset = cached length) -> logits [B,T,V], the cache with T more."""
    B, T = ids.shape
    d, H = cfg["dModel"], cfg["nHeads"]
    dh = d // H
    offset = past[0][0].shape[2] if past else 0
    h = P["wte"][ids] + P["wpe"][offset:offset + T]
    # causal: query i (position offset+i) sees keys 0..offset+i
    mask = torch.full((T, offset + T), float("-inf")).triu(offset + 1) if T > 1 else None
    new = []
    for l in range(cfg["nLayers"]):
        p = f"h{l}."
        x = F.layer_norm(h, (d,), P[p + "ln1.g"], P[p + "ln1.b"], 1e-5)
        q, k, v = (x @ P[p + "attn.qkv.w"] + P[p + "attn.qkv.b"]).view(B, T, 3 * H, dh).transpose(1, 2).split(H, dim=1)
        if past:
            k, v = torch.cat([past[l][0], k], dim=2), torch.cat([past[l][1], v], dim=2)
        new.append((k, v))
        s = (q / math.sqrt(dh)) @ k.transpose(-1, -2)
        if mask is not None:
            s = s + mask
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, d)
        h = h + a @ P[p + "attn.proj.w"] + P[p + "attn.proj.b"]
        x = F.layer_norm(h, (d,), P[p + "ln2.g"], P[p + "ln2.b"], 1e-5)
        x = F.gelu(x @ P[p + "mlp.fc.w"] + P[p + "mlp.fc.b"], approximate="tanh")
        h = h + x @ P[p + "mlp.proj.w"] + P[p + "mlp.proj.b"]
    h = F.layer_norm(h, (d,), P["lnf.g"], P["lnf.b"], 1e-5)
    return h @ P["wte"].T, new


@torch.inference_mode()
def generate(P, cfg, prompt, n, use_cache, gen):
    seq = list(prompt)
    past = None
    t0 = time.perf_counter()
    for _ in range(n):
        if use_cache and past is not None:
            logits, past = forward(P, cfg, torch.tensor([[seq[-1]]]), past)
        else:
            logits, past = forward(P, cfg, torch.tensor([seq[-cfg["contextLength"]:]]), None)
        probs = torch.softmax(logits[0, -1], dim=-1)
        seq.append(torch.multinomial(probs, 1, generator=gen).item())
    return (time.perf_counter() - t0) * 1000 / n


def main():
    spec = json.loads(sys.argv[-1])
    torch.set_num_threads(spec["threads"])
    cfg = spec["config"]
    P = init(cfg, spec.get("seed", 42))
    gen = torch.Generator().manual_seed(1)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "info":
            out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        else:
            out = {"ms_per_token": generate(P, cfg, spec["prompt"], int(words[1]), words[0] == "cache", gen)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
