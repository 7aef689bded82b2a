"""Choosing the next token: sampling parameters, the logit filters, the per-row sampler, stop strings.

The filters are pure functions on logits `[b, V]` (float32) with one parameter per row as a 1-D
tensor `[b]`, so one batch carries rows with different settings. Each masks removed tokens with
-inf and always keeps the row's most likely token. `sample_next` applies them in Hugging Face's
order: repetition penalty → temperature → top-k → top-p → min-p → softmax → draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

GREEDY_BELOW = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    """How one request chooses its tokens; invalid values raise `ValueError` at construction.

    The defaults (temperature 0.7, top-p 0.9) are the usual chat settings of common runtimes;
    temperature 0 is greedy decoding. `num_beams > 1` is deterministic beam search: it needs
    temperature 0 and no repetition penalty, and ignores top-k, top-p and min-p (as Hugging Face's
    `do_sample=False` does). `stop` strings end the text and are not part of it.
    """

    temperature: float = 0.7  # 0 = greedy (argmax)
    top_k: int = 0  # 0 = off
    top_p: float = 0.9  # 1.0 = off
    min_p: float = 0.0  # 0.0 = off
    repetition_penalty: float = 1.0  # 1.0 = off; applies to every token of the prompt and the output
    seed: int | None = None  # None = a fresh random seed
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    num_beams: int = 1  # 1 = no beam search
    length_penalty: float = 1.0  # beam score = sum of log-probs / generated length ** length_penalty
    ignore_eos: bool = False  # keep going past end-of-sequence (benchmarks want a fixed length)

    def __post_init__(self) -> None:
        problem = self._first_problem()
        if problem:
            raise ValueError(problem)

    @property
    def is_greedy(self) -> bool:
        # below 1e-5, logits / T overflows float32: such a temperature means greedy (as in vLLM)
        return self.temperature < GREEDY_BELOW

    def _first_problem(self) -> str | None:
        checks = [  # (field, is it valid, the rule)
            ("temperature", _is_number(self.temperature) and self.temperature >= 0, "must be ≥ 0"),
            ("top_k", _is_int(self.top_k) and self.top_k >= 0, "must be an integer ≥ 0 (0 = off)"),
            ("top_p", _is_number(self.top_p) and 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("min_p", _is_number(self.min_p) and 0 <= self.min_p <= 1, "must be in [0, 1]"),
            (
                "repetition_penalty",
                _is_number(self.repetition_penalty) and self.repetition_penalty > 0,
                "must be > 0 (1 = off)",
            ),
            (
                "seed",
                self.seed is None or (_is_int(self.seed) and 0 <= self.seed < 2**64),
                "must be None or an integer in [0, 2**64)",
            ),
            ("max_tokens", _is_int(self.max_tokens) and self.max_tokens >= 1, "must be an integer ≥ 1"),
            (
                "stop",
                isinstance(self.stop, tuple) and all(isinstance(s, str) and s for s in self.stop),
                "must be a tuple of non-empty strings",
            ),
            ("num_beams", _is_int(self.num_beams) and self.num_beams >= 1, "must be an integer ≥ 1"),
            ("length_penalty", _is_number(self.length_penalty), "must be a finite number"),
        ]
        for name, ok, rule in checks:
            if not ok:
                return f"{name} {rule}, got {getattr(self, name)!r}"
        if self.num_beams > 1 and self.temperature != 0:
            return (
                f"beam search is deterministic: num_beams={self.num_beams} needs temperature 0, "
                f"got {self.temperature!r}"
            )
        if self.num_beams > 1 and self.repetition_penalty != 1:
            return (
                f"beam search takes no repetition penalty: num_beams={self.num_beams} needs "
                f"repetition_penalty 1, got {self.repetition_penalty!r}"
            )
        return None


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# --- the filters: logits [b, V] float32, parameters [b] ---------------------------------------


def apply_repetition_penalty(logits: Tensor, seen_mask: Tensor, penalty: Tensor) -> Tensor:
    """CTRL's penalty as Hugging Face defines it: a seen token's logit l becomes l / p if l > 0,
    else l * p, so p > 1 always makes a seen token less likely (and p < 1 more likely).

    seen_mask [b, V] bool (prompt and output tokens so far), penalty [b] (1 = off).
    """
    p = penalty[:, None]  # [b, 1]
    penalised = torch.where(logits < 0, logits * p, logits / p)
    return torch.where(seen_mask, penalised, logits)


def apply_temperature(logits: Tensor, temperature: Tensor) -> Tensor:
    """logits / T per row; temperature [b] > 0 (greedy rows never reach the filters)."""
    return logits / temperature[:, None]


def apply_top_k(logits: Tensor, top_k: Tensor) -> Tensor:
    """Keep the tokens whose logit is ≥ the row's k-th largest (ties at the k-th value all stay,
    as in Hugging Face). top_k [b] int64, 0 = off; k > V keeps everything.
    """
    vocab_size = logits.shape[-1]
    k = torch.where(top_k > 0, top_k.clamp(max=vocab_size), vocab_size)  # [b]
    sorted_logits = logits.sort(dim=-1, descending=True).values  # [b, V]
    kth_largest = sorted_logits.gather(-1, (k - 1)[:, None])  # [b, 1]
    return logits.masked_fill(logits < kth_largest, -math.inf)


def apply_top_p(logits: Tensor, top_p: Tensor) -> Tensor:
    """Keep the smallest set of most likely tokens whose probability sums to ≥ p: a token stays
    while the mass of the tokens ranked above it is < p. Equal probabilities rank by token id.
    top_p [b] in (0, 1], 1 = off.
    """
    probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True, stable=True)  # [b, V]
    mass_above = F.pad(probs.cumsum(dim=-1)[:, :-1], (1, 0))  # [b, V], exclusive prefix sum
    # p = 1 is off outright: rounding can push the mass above a tail token to 1.0
    remove_sorted = (mass_above >= top_p[:, None]) & (top_p < 1)[:, None]
    remove_sorted[:, 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


def apply_min_p(logits: Tensor, min_p: Tensor) -> Tensor:
    """Remove the tokens whose probability is < min_p × the row's top probability.
    min_p [b] in [0, 1], 0 = off; the top token always stays since min_p ≤ 1.
    """
    probs = logits.softmax(dim=-1)  # [b, V]
    threshold = min_p[:, None] * probs.amax(dim=-1, keepdim=True)  # [b, 1]
    return logits.masked_fill(probs < threshold, -math.inf)


# --- the sampler ---------------------------------------------------------------------------


@dataclass
class RowState:
    """One request's sampling state across decode steps.

    `generator` belongs to this row alone, so a seeded row draws the same tokens whether it runs
    alone or in a batch. `seen` marks the prompt and output tokens, kept only when the row has a
    repetition penalty.
    """

    params: SamplingParams
    generator: torch.Generator
    seen: Tensor | None  # [V] bool

    @classmethod
    def start(
        cls, params: SamplingParams, prompt_ids: Sequence[int], vocab_size: int, device: torch.device | str
    ) -> RowState:
        generator = torch.Generator(device=device)
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        seen = None
        if params.repetition_penalty != 1.0:
            seen = torch.zeros(vocab_size, dtype=torch.bool, device=device)
            seen[torch.tensor(list(prompt_ids), dtype=torch.long, device=device)] = True
        return cls(params, generator, seen)

    def observe(self, token: Tensor) -> None:
        """Record an output token (a 0-d int64 tensor, so no device sync) for the penalty."""
        if self.seen is not None:
            self.seen[token] = True


def sample_next(logits: Tensor, rows: Sequence[RowState]) -> Tensor:
    """Choose one token per row from last-position logits [b, V] (any float dtype; computed in
    float32) and record it in its row's state. Returns int64 [b].

    Greedy rows (temperature 0) take the first index of the largest penalised logit, like
    torch.argmax and Hugging Face's greedy search; the others are filtered and drawn with their own
    generator. Filters run only when some row uses them, and each row sees its own parameters.
    """
    logits = logits.float()
    device = logits.device

    def column(values: list[float] | list[int], dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    params = [row.params for row in rows]
    if any(p.repetition_penalty != 1.0 for p in params):
        vocab_size = logits.shape[-1]
        no_penalty = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        seen = torch.stack([no_penalty if row.seen is None else row.seen for row in rows])  # [b, V]
        logits = apply_repetition_penalty(logits, seen, column([p.repetition_penalty for p in params]))

    tokens = logits.argmax(dim=-1)  # [b]
    sampled = [i for i, p in enumerate(params) if not p.is_greedy]
    if sampled:
        chosen = [params[i] for i in sampled]
        filtered = apply_temperature(logits[sampled], column([p.temperature for p in chosen]))
        if any(p.top_k > 0 for p in chosen):
            filtered = apply_top_k(filtered, column([p.top_k for p in chosen], torch.long))
        if any(p.top_p < 1.0 for p in chosen):
            filtered = apply_top_p(filtered, column([p.top_p for p in chosen]))
        if any(p.min_p > 0.0 for p in chosen):
            filtered = apply_min_p(filtered, column([p.min_p for p in chosen]))
        probs = filtered.softmax(dim=-1)  # [len(sampled), V]
        # the draw loops over rows because each row owns its generator
        for j, i in enumerate(sampled):
            tokens[i] = torch.multinomial(probs[j], 1, generator=rows[i].generator)[0]

    for i, row in enumerate(rows):
        row.observe(tokens[i])
    return tokens


# --- stop strings --------------------------------------------------------------------------


class StopMatcher:
    """Cuts streamed text at the first stop string, which is never emitted.

    `push` emits what can no longer be part of a stop string and holds back the longest tail that
    is the start of one, so a stop string split across tokens is still caught. After a stop,
    everything else is dropped. `flush` hands back the held tail when the stream ends otherwise.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(stop)
        self._held = ""
        self.is_stopped = False

    def push(self, piece: str) -> tuple[str, bool]:
        """Returns (text to emit, whether a stop string has been met)."""
        if self.is_stopped:
            return "", True
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            self.is_stopped = True
            return text[:cut], True
        keep = self._longest_stop_prefix_tail(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _longest_stop_prefix_tail(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of some stop string."""
        longest = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest
