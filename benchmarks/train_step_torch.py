"""The PyTorch peer of benchmarks/train-step.ts: the same decoder, the same training step.

Pre-LN GPT with the shapes of lib/decoder.ts (fused QKV [d,3d], weights stored [in,out], tied head,
learned positions, tanh GELU, LayerNorm eps 1e-5), GPT-2 init, cross-entropy, global-norm clipping
at 1.0 and AdamW(betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices only): what lib/train.ts's
trainStep does. The .ts starts it with the spec as JSON and sends it commands on stdin, one a line:
"info" (versions, threads) or "eager 5" / "sdpa 5" (take 5 steps; answers their times as JSON).

  echo "eager 3" | .cache/bench-venv/bin/python benchmarks/train_step_torch.py --serve \
    '{"config": {"vocabSize": 96, "contextLength": 128, "dModel": 128, "nLayers": 4, "nHeads": 4,
      "dFF": 512, "positional": "learned"}, "batch": 32, "seq": 64, "threads": 2}'
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
    shapes = [("wte", [cfg["vocabSize"], d])]
    if cfg["positional"] == "learned":
        shapes.append(("wpe", [cfg["contextLength"], d]))
    for l in range(L):
        p = f"h{l}."
        shapes += [(p + "ln1.g", [d]), (p + "ln1.b", [d]), (p + "attn.qkv.w", [d, 3 * d]), (p + "attn.qkv.b", [3 * d]),
                   (p + "attn.proj.w", [d, d]), (p + "attn.proj.b", [d]), (p + "ln2.g", [d]), (p + "ln2.b", [d]),
                   (p + "mlp.fc.w", [d, f]), (p + "mlp.fc.b", [f]), (p + "mlp.proj.w", [f, d]), (p + "mlp.proj.b", [d])]
    shapes += [("lnf.g", [d]), ("lnf.b", [d])]
    params = {}
    for name, shape in shapes:
        if name.endswith(".g"):
            t = torch.ones(shape)
        elif name.endswith(".b"):
            t = torch.zeros(shape)
        else:
            std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.w") else 0.02
            t = torch.randn(shape, generator=g) * std
        params[name] = t.requires_grad_()
    return params


def sinusoids(n, d):
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    i2 = torch.arange(0, d, 2, dtype=torch.float32)
    angle = pos / torch.pow(10000.0, i2 / d)
    pe = torch.zeros(n, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return pe


def forward(P, cfg, ids, sdpa):
    B, T = ids.shape
    d, H = cfg["dModel"], cfg["nHeads"]
    dh = d // H
    pos = P["wpe"][:T] if cfg["positional"] == "learned" else sinusoids(T, d)
    h = P["wte"][ids] + pos
    mask = torch.full((T, T), -1e9).triu(1)
    for l in range(cfg["nLayers"]):
        p = f"h{l}."
        x = F.layer_norm(h, (d,), P[p + "ln1.g"], P[p + "ln1.b"], 1e-5)
        qkv = (x @ P[p + "attn.qkv.w"] + P[p + "attn.qkv.b"]).view(B, T, 3 * H, dh).transpose(1, 2)
        q, k, v = qkv.split(H, dim=1)
        if sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = torch.softmax((q / math.sqrt(dh)) @ k.transpose(-1, -2) + mask, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, T, d)
        h = h + a @ P[p + "attn.proj.w"] + P[p + "attn.proj.b"]
        x = F.layer_norm(h, (d,), P[p + "ln2.g"], P[p + "ln2.b"], 1e-5)
        x = F.gelu(x @ P[p + "mlp.fc.w"] + P[p + "mlp.fc.b"], approximate="tanh")
        h = h + x @ P[p + "mlp.proj.w"] + P[p + "mlp.proj.b"]
    h = F.layer_norm(h, (d,), P["lnf.g"], P["lnf.b"], 1e-5)
    return h @ P["wte"].T


class Step:
    """One model + optimizer; .run(n) takes n training steps and returns their times."""

    def __init__(self, spec, sdpa):
        self.cfg, self.B, self.T, self.sdpa = spec["config"], spec["batch"], spec["seq"], sdpa
        self.P = init(self.cfg, spec.get("seed", 42))
        decay = [t for t in self.P.values() if t.dim() >= 2]
        no_decay = [t for t in self.P.values() if t.dim() < 2]
        # torch's default AdamW on CPU tensors (the for-loop implementation), as a user writes it.
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                     lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
        self.gen = torch.Generator().manual_seed(1)

    def run(self, n):
        B, T, V = self.B, self.T, self.cfg["vocabSize"]
        times = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            ids = torch.randint(0, V, (B, T + 1), generator=self.gen)  # drawn outside the timer, as in the .ts
            t0 = time.perf_counter()
            logits = forward(self.P, self.cfg, ids[:, :-1], self.sdpa)
            loss = F.cross_entropy(logits.reshape(B * T, V), ids[:, 1:].reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(self.P.values()), 1.0)
            self.opt.step()
            loss.item()  # a read-back each step, as the .ts does
            times.append((time.perf_counter() - t0) * 1000)
        return {"times_ms": times, "cpu_ms": (time.process_time() - cpu0) * 1000, "wall_ms": (time.perf_counter() - wall0) * 1000}


def main():
    # --serve SPEC: read commands from stdin, one JSON answer a line ("info", or "<eager|sdpa> <n>").
    spec = json.loads(sys.argv[-1])
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec.get("seed", 42))
    steps = {"eager": Step(spec, sdpa=False), "sdpa": Step(spec, sdpa=True)}
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "info":
            out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        else:
            out = steps[words[0]].run(int(words[1]))
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
