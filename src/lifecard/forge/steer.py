"""`forge steer`: tone and values in seconds, no training (contrastive activation addition).

1. Contrast: each built-in prompt is run twice through the frozen base — once under a system
   prompt describing the trait, once under its opposite — and every decoder layer's output at the
   last prompt token (where the reply begins) is kept. Pairs from a JSONL file instead contrast two
   replies to one prompt, averaged over the reply's tokens.
2. Direction per layer: the mean of the paired differences ("mean", CAA), or their first principal
   component signed to agree with the mean ("pca", representation engineering). It is normalised,
   then given that layer's typical residual norm, so one coefficient means the same at every depth.
3. Strength per band: the largest coefficient whose perplexity on a neutral corpus stays within
   `max_drift` of the base's (bisection), stored as the module scale, so strength 1 is as strong
   as is safe.
4. Layers: of three candidate bands (a third of the depth each, in the middle of the network), the
   one that, at its safe coefficient, moves the negative runs furthest toward the positive ones
   at the last layer — the most trait per unit of damage.
   Negative strength steers toward the opposite trait.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lifecard.forge import data
from lifecard.forge.examples import Messages, collate, collate_ids, document_examples
from lifecard.forge.progress import ForgeError, Progress, digest
from lifecard.model.llama import Transformer
from lifecard.model.tokenizer import Tokenizer


@dataclass(frozen=True)
class SteerRecipe:
    method: str = "mean"  # "mean" | "pca"
    prompts: int = 32
    max_drift: float = 1.08  # perplexity ratio on the neutral corpus at strength 1
    band: float = 1 / 3  # fraction of the layers that carry the vector
    seed: int = 0


@dataclass(frozen=True)
class Contrast:
    """One pair: token ids and which positions to average, for the positive and the negative side."""

    pos: tuple[list[int], slice]
    neg: tuple[list[int], slice]


class SteerPlugs:
    """Adds coefficient · vectors[layer] to each decoder layer's output; no LoRA."""

    def __init__(self, vectors: Tensor, coefficient: float):
        self.vectors, self.coefficient = vectors, coefficient  # [layers, hidden]

    def lora_delta(self, y: Tensor, x: Tensor, layer: int, group: str) -> Tensor:
        return y

    def steer(self, h: Tensor, layer: int) -> Tensor:
        return h + (self.coefficient * self.vectors[layer]).to(h.dtype)


def trait_contrasts(tokenizer: Tokenizer, like: str, unlike: str, prompts: Sequence[str]) -> list[Contrast]:
    def render(system: str, prompt: str) -> tuple[list[int], slice]:
        ids = tokenizer.encode_chat(
            [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        )
        return ids, slice(len(ids) - 1, len(ids))

    return [Contrast(render(like, p), render(unlike, p)) for p in prompts]


def read_pairs(path: str | Path) -> list[dict[str, str]]:
    """JSONL lines {"positive": reply, "negative": reply, "prompt": optional question}."""
    path = Path(path)
    if not path.is_file():
        raise ForgeError(f"pairs file {path} does not exist: give a .jsonl file of positive/negative pairs")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise ForgeError(f"{path.name}:{n} is not valid JSON ({e.msg}): one object per line") from None
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and item[k].strip() for k in ("positive", "negative")
        ):
            raise ForgeError(f'{path.name}:{n} needs non-empty strings "positive" and "negative"')
        pairs.append({k: str(item.get(k, "")) for k in ("prompt", "positive", "negative")})
    if len(pairs) < 2:
        raise ForgeError(
            f"{path.name} holds {len(pairs)} pair(s): give at least 2 (a dozen or more is better)"
        )
    return pairs


def pair_contrasts(tokenizer: Tokenizer, pairs: Sequence[dict[str, str]]) -> list[Contrast]:
    def render(prompt: str, reply: str) -> tuple[list[int], slice]:
        messages: Messages = [{"role": "user", "content": prompt or "Say something."}]
        start = len(tokenizer.encode_chat(messages))
        ids = tokenizer.encode_chat(
            [*messages, {"role": "assistant", "content": reply}], add_generation_prompt=False
        )
        return ids, slice(start, len(ids))

    return [Contrast(render(p["prompt"], p["positive"]), render(p["prompt"], p["negative"])) for p in pairs]


@torch.inference_mode()
def states(
    model: Transformer, rows: Sequence[tuple[list[int], slice]], plugs: Any = None, batch: int = 16
) -> Tensor:
    """[n, layers, hidden] float32: each layer's output averaged over each row's chosen positions."""
    out = []
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        ids, positions, _ = collate_ids([r[0] for r in chunk])
        hidden: list[Tensor] = []
        model(ids, positions, plugs=plugs, hidden_out=hidden)
        stacked = torch.stack(hidden, 1).float()  # [b, layers, t, hidden]
        out += [stacked[j, :, sl].mean(1) for j, (_, sl) in enumerate(chunk)]
    return torch.stack(out)


def directions(pos: Tensor, neg: Tensor, method: str) -> Tensor:
    """pos, neg: [n, layers, hidden] → unit directions [layers, hidden]."""
    diff = pos - neg
    mean = diff.mean(0)
    if method == "pca":
        centred = diff - mean
        # first right-singular vector per layer: [layers, n, hidden] → [layers, hidden]
        v = torch.linalg.svd(centred.transpose(0, 1), full_matrices=False).Vh[:, 0]
        sign = torch.sign((v * mean).sum(-1, keepdim=True))
        mean = v * torch.where(sign == 0, 1.0, sign)
    elif method != "mean":
        raise ForgeError(f"steer method {method!r} is unknown: use mean or pca")
    return mean / mean.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def layer_scores(pos: Tensor, neg: Tensor, unit: Tensor) -> list[float]:
    """Per layer, how consistently the pairs separate along the direction (mean / std of the
    paired differences' projections): reported, and a hint of where the trait lives."""
    proj = ((pos - neg) * unit).sum(-1)  # [n, layers]
    score = proj.mean(0) / proj.std(0).clamp(min=1e-6) if proj.shape[0] > 1 else proj.mean(0)
    return [round(float(x), 3) for x in score]


def candidate_bands(layers: int, fraction: float) -> list[list[int]]:
    """Bands of ⌈fraction·layers⌉ layers starting at 20%, 33% and 47% of the depth: the middle,
    where CAA and repeng find steering works best (early layers hold wording, late ones act too late)."""
    width = max(1, math.ceil(layers * fraction))
    starts = sorted({min(round(layers * f), layers - width) for f in (0.2, 0.33, 0.47)})
    return [list(range(s, s + width)) for s in starts]


def effect(
    model: Transformer,
    contrasts: Sequence[Contrast],
    vectors: Tensor,
    coefficient: float,
    pos: Tensor,
    neg: Tensor,
) -> float:
    """How far the steered negative runs move toward the positive ones at the last layer, as a
    share of the gap: 0 = not at all, 1 = all the way."""
    steered = states(model, [c.neg for c in contrasts], SteerPlugs(vectors, coefficient))[:, -1]
    gap = pos[:, -1] - neg[:, -1]  # [n, hidden]
    unit = gap.mean(0) / gap.mean(0).norm().clamp(min=1e-12)
    return float(((steered - neg[:, -1]) @ unit).mean() / (gap @ unit).mean().clamp(min=1e-12))


@torch.inference_mode()
def perplexity(model: Transformer, ids: Tensor, positions: Tensor, mask: Tensor, plugs: Any = None) -> float:
    logits = model(ids, positions, plugs=plugs)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    target = mask[:, 1:]
    return math.exp(float((nll * target).sum() / target.sum()))


def choose_coefficient(
    model: Transformer,
    vectors: Tensor,
    corpus: tuple[Tensor, Tensor, Tensor],
    max_drift: float,
    base: float,
    steps: int = 6,
) -> tuple[float, float]:
    """Bisection in log space over [0.003, 0.3] for the largest coefficient whose perplexity ratio
    to `base` is ≤ max_drift; returns (coefficient, ratio)."""

    def ratio(c: float) -> float:
        return perplexity(model, *corpus, plugs=SteerPlugs(vectors, c)) / base

    lo, hi = math.log(3e-3), math.log(0.3)
    best, best_ratio = 3e-3, 1.0  # below that a coefficient does nothing measurable
    for _ in range(steps):
        mid = (lo + hi) / 2
        r = ratio(math.exp(mid))
        if r <= max_drift:
            lo, best, best_ratio = mid, math.exp(mid), r
        else:
            hi = mid
    return best, best_ratio


def neutral_corpus(tokenizer: Tokenizer, paragraphs: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    examples = [
        e for text in data.neutral_texts()[:paragraphs] for e in document_examples(tokenizer, text, 96)
    ]
    return collate(examples)


def steer(
    model: Transformer,
    tokenizer: Tokenizer,
    recipe: SteerRecipe,
    *,
    like: str | None = None,
    unlike: str | None = None,
    pairs: Sequence[dict[str, str]] | None = None,
    lang: str = "en",
    progress: Progress | None = None,
) -> tuple[dict[int, Tensor], float, dict[str, Any]]:
    """(vectors per chosen layer [hidden], the coefficient for strength 1, the `forge` record)."""
    progress = progress or Progress()
    if pairs:
        contrasts = pair_contrasts(tokenizer, pairs)
        source: Any = list(pairs)
    elif like:
        prompts = data.train_prompts(lang)[: recipe.prompts]
        unlike = unlike or "You speak in a plain, neutral, ordinary way."
        contrasts = trait_contrasts(tokenizer, like, unlike, prompts)
        source = {"like": like, "unlike": unlike, "prompts": prompts}
    else:
        raise ForgeError("steer needs a trait (--like, optionally --unlike) or a --pairs JSONL file")
    bands = candidate_bands(model.cfg.num_layers, recipe.band)
    progress.start("contrast", 1 + len(bands))
    pos = states(model, [c.pos for c in contrasts])
    neg = states(model, [c.neg for c in contrasts])
    progress.advance()
    unit = directions(pos, neg, recipe.method)
    size = torch.cat([pos, neg]).norm(dim=-1).mean(0)  # [layers] typical residual norm
    corpus = neutral_corpus(tokenizer)
    base = perplexity(model, *corpus)
    tried = []  # per band: the safe coefficient, its drift and its effect
    for band in bands:
        vectors = torch.zeros_like(unit)
        vectors[band] = unit[band] * size[band, None]
        coefficient, drift = choose_coefficient(model, vectors, corpus, recipe.max_drift, base)
        moved = effect(model, contrasts, vectors, coefficient, pos, neg)
        tried.append((moved, band, coefficient, drift, vectors))
        progress.advance(layers=f"{band[0]}-{band[-1]}", effect=round(moved, 3))
    moved, band, coefficient, drift, vectors = max(tried, key=lambda t: t[0])
    record = {
        **asdict(recipe),
        "method": "steer",
        "direction": recipe.method,
        "data_sha256": digest(source),
        "pairs": len(contrasts),
        "layers": band,
        "effect": round(moved, 4),
        "bands_tried": [
            {"layers": [b[0], b[-1]], "coefficient": round(c, 5), "drift": round(d, 4), "effect": round(m, 4)}
            for m, b, c, d, _ in tried
        ],
        "layer_scores": layer_scores(pos, neg, unit),
        "coefficient": round(coefficient, 6),
        "neutral_ppl_ratio": round(drift, 4),
    }
    return {layer: vectors[layer] for layer in band}, coefficient, record
