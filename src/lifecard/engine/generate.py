"""The engine: a loaded base, its socket bank, and generation (batched sampling, streaming, beams).

Rows of one batch carry their own prompt, sampling settings and bank slot. A batch is prefilled in
one forward (right-padded, each row at its own positions), then decoded one token per row per step;
rows that finish leave the batch at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lifecard.cards.base import BaseInfo
from lifecard.cards.compose import Mix
from lifecard.engine.beam import BeamSearch
from lifecard.engine.mounts import Mount, MountTable
from lifecard.engine.sampling import RowState, SamplingParams, StopMatcher, sample_next
from lifecard.model.config import ModelConfig
from lifecard.model.files import DEFAULT_MODEL_FILE, load_model_files, model_fingerprint
from lifecard.model.llama import KVCache, Transformer
from lifecard.model.sockets import SocketBank
from lifecard.model.tokenizer import StreamDecoder, Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """'auto' is bfloat16: faster than float32 on this project's CPUs (AMX/AVX-512 bf16, see
    BENCHMARKS.md) and the native dtype of GPUs; 'float32' is the exact reference."""
    if name == "auto":
        return torch.bfloat16
    if name not in DTYPES:
        raise ValueError(f"--dtype must be one of auto, {', '.join(DTYPES)}; got {name!r}")
    return DTYPES[name]


def resolve_device(name: str) -> str:
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA GPU here: use --device cpu")
    return name


@dataclass
class Request:
    prompt: list[int]  # token ids
    params: SamplingParams = field(default_factory=SamplingParams)
    slot: int = 0  # bank slot; 0 = the base


@dataclass
class Completion:
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"  # "stop" (EOS or a stop string) | "length" (max_tokens or context)


@dataclass
class Row:
    """One request while it runs: its sampler, detokenizer, stop matcher and place in the cache."""

    index: int  # the caller's handle (position in its request list, job id, …)
    request: Request
    sampler: RowState
    decoder: StreamDecoder
    stops: StopMatcher
    limit: int  # cache positions this row may fill (its context)
    length: int = 0  # positions filled in the cache
    out: Completion = field(default_factory=Completion)


class Engine:
    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        bank: SocketBank,
        source: str = "",
        base: BaseInfo | None = None,
        strict: bool = False,
    ):
        self.model, self.tokenizer, self.bank, self.source = model, tokenizer, bank, source
        self.cfg: ModelConfig = model.cfg
        self.device = model.device
        self.dtype = model.dtype
        # a base without a known fingerprint (e.g. built in memory) gets an all-zero one
        self.base = base or BaseInfo.from_config(self.cfg, source or "in-memory model", "0" * 64)
        self.mounts = MountTable(bank, self.base, strict=strict)

    def mount(self, mix: Mix) -> Mount:
        """Plug a card, or a weighted mix [(card, strength), …], into a bank slot; no reload.
        Run a request on it with `Request(..., slot=mount.slot)`."""
        return self.mounts.mount(mix)

    def unmount(self, slot: int) -> None:
        self.mounts.unmount(slot)

    @classmethod
    def load(
        cls,
        model: str | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        num_slots: int = 4,
        max_rank: int = 16,
        strict: bool = False,
    ) -> Engine:
        """Load a base (None = the default SmolLM2-135M-Instruct; a .gguf file; an HF directory).
        The bank starts with `num_slots` slots of rank `max_rank` and grows as cards are mounted."""
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        cfg, weights, tokenizer, source = load_model_files(model, torch_dtype)
        net = Transformer.from_state_dict(cfg, weights, torch_dtype, device)
        del weights
        bank = SocketBank(cfg, num_slots, max_rank, device=device)  # float32: see SocketBank
        model_id = DEFAULT_MODEL_FILE if model is None else Path(model).name
        base = BaseInfo.from_config(cfg, model_id, model_fingerprint(model))
        return cls(net, tokenizer, bank, source, base, strict)

    # --- prompts -------------------------------------------------------------------------------

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        return self.tokenizer.encode_chat(messages, add_generation_prompt=True)

    # --- generation ----------------------------------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Run every request to completion in one batch; beam requests run on their own."""
        results = [Completion() for _ in requests]
        batch = [i for i, r in enumerate(requests) if r.params.num_beams == 1]
        for i, r in enumerate(requests):
            if r.params.num_beams > 1:
                results[i] = self.beam_search(r)
        if batch:
            finished = [Completion() for _ in batch]
            for _ in self.stream([requests[i] for i in batch], finished):
                pass
            for j, i in enumerate(batch):
                results[i] = finished[j]
        return results

    @torch.inference_mode()
    def stream(
        self, requests: Sequence[Request], results: list[Completion] | None = None
    ) -> Iterator[tuple[int, str]]:
        """Yield (request index, new text) as tokens are chosen; text never splits a UTF-8 character
        and never contains a stop string. Fills `results[i]` with each finished Completion."""
        if any(r.params.num_beams > 1 for r in requests):
            raise ValueError("beam search returns whole sequences, not a stream: use generate()")
        if not requests:  # nothing to run (and no cache to size)
            return
        cache = KVCache(self.cfg, len(requests), self._cache_len(requests), self.dtype, self.device)
        rows = [self.start_row(i, r, cache.max_len) for i, r in enumerate(requests)]
        logits = self.prefill(rows, cache)
        while rows:
            tokens = sample_next(logits, [row.sampler for row in rows]).tolist()
            finished = []
            for j, (row, token) in enumerate(zip(rows, tokens, strict=True)):
                text, done = self.advance(row, token)
                if text:
                    yield row.index, text
                if done:
                    finished.append(j)
                    if results is not None:
                        results[row.index] = row.out
            if finished:  # finished rows leave the batch and its cache
                keep = [j for j in range(len(rows)) if j not in finished]
                rows = [rows[j] for j in keep]
                if not rows:
                    break
                cache.reorder(torch.tensor(keep, device=self.device))
            logits = self.decode(rows, cache)

    @torch.inference_mode()
    def beam_search(self, request: Request) -> Completion:
        params = request.params
        prompt_len = len(request.prompt)
        max_new = min(params.max_tokens, self.cfg.max_position_embeddings - prompt_len)
        self._check_prompt(request.prompt)
        search = BeamSearch(
            params.num_beams, params.length_penalty, self.tokenizer.eos_ids, max_new, self.device
        )
        n = params.num_beams
        cache = KVCache(self.cfg, 1, prompt_len + max_new, self.dtype, self.device)
        plugs = self.bank.plugs([request.slot])
        ids = torch.tensor([request.prompt], device=self.device)
        logits = self.model(
            ids,
            torch.arange(prompt_len, device=self.device)[None],
            cache,
            plugs,
            torch.tensor([prompt_len - 1], device=self.device),
        )
        logits = logits.expand(n, -1)
        cache.reorder(
            torch.zeros(n, dtype=torch.long, device=self.device)
        )  # every beam starts from the prompt
        plugs = self.bank.plugs([request.slot] * n)
        pos = prompt_len
        while True:
            parents, tokens = search.step(logits)
            if search.is_done:
                break
            cache.reorder(parents)
            logits = self.model(tokens[:, None], torch.full((n, 1), pos, device=self.device), cache, plugs)[
                :, -1
            ]
            pos += 1
        out = search.best()
        ended_on_eos = bool(out) and out[-1] in self.tokenizer.eos_ids
        text_ids = out[:-1] if ended_on_eos else out
        text = self.tokenizer.decode(text_ids)
        cut = min((i for i in (text.find(s) for s in params.stop) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
        return Completion(out, text, "stop" if ended_on_eos or cut >= 0 else "length")

    # --- building blocks of a decode loop (used by `stream` and the scheduler) -----------------

    def _check_prompt(self, prompt: list[int]) -> None:
        if not prompt:
            raise ValueError("the prompt is empty: give at least one token")
        limit = self.cfg.max_position_embeddings
        if len(prompt) >= limit:
            raise ValueError(
                f"the prompt has {len(prompt)} tokens; this model's context is {limit}: shorten it"
            )

    def start_row(self, index: int, request: Request, limit: int) -> Row:
        """A row for `request` whose cache holds `limit` positions; refuses a prompt that cannot run."""
        self._check_prompt(request.prompt)
        if len(request.prompt) >= limit:
            raise ValueError(
                f"the prompt has {len(request.prompt)} tokens; the context here is {limit}: shorten it"
            )
        sampler = RowState.start(request.params, request.prompt, self.cfg.vocab_size, self.device)
        return Row(
            index, request, sampler, StreamDecoder(self.tokenizer), StopMatcher(request.params.stop), limit
        )

    def _cache_len(self, requests: Sequence[Request]) -> int:
        need = max(len(r.prompt) + r.params.max_tokens for r in requests)
        return min(need, self.cfg.max_position_embeddings)

    def prefill(self, rows: list[Row], cache: KVCache) -> torch.Tensor:
        """All prompts in one forward, right-padded; returns each row's last-position logits [b, V]."""
        lengths = [len(row.request.prompt) for row in rows]
        width = max(lengths)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for j, row in enumerate(rows):
            ids[j, : lengths[j]] = torch.tensor(row.request.prompt)
            row.length = lengths[j]
        positions = torch.arange(width).expand(len(rows), width)
        plugs = self.bank.plugs([row.request.slot for row in rows])
        last = torch.tensor(lengths) - 1
        return self.model(ids.to(self.device), positions.to(self.device), cache, plugs, last.to(self.device))

    def decode(self, rows: list[Row], cache: KVCache) -> torch.Tensor:
        """One token per row (each row's last chosen one) → next logits [b, V]; cache row j is rows[j]."""
        ids = torch.tensor([[row.out.tokens[-1]] for row in rows], device=self.device)
        positions = torch.tensor([[row.length] for row in rows], device=self.device)
        for row in rows:
            row.length += 1
        plugs = self.bank.plugs([row.request.slot for row in rows])
        return self.model(ids, positions, cache, plugs)[:, -1]

    def advance(self, row: Row, token: int) -> tuple[str, bool]:
        """Record one chosen token; returns (text to emit, is the row finished)."""
        out = row.out
        out.tokens.append(token)
        if token in self.tokenizer.eos_ids and not row.request.params.ignore_eos:
            out.finish_reason = "stop"
            text = row.stops.push(row.decoder.flush())[0] + row.stops.flush()
            out.text += text
            return text, True
        text, stopped = row.stops.push(row.decoder.push(token))
        out.text += text
        if stopped:
            out.finish_reason = "stop"
            return text, True
        # row.length is where this token would be written: the context ends there
        if len(out.tokens) >= row.request.params.max_tokens or row.length >= row.limit:
            tail = row.stops.push(row.decoder.flush())[0] + row.stops.flush()
            out.text += tail
            return text + tail, True
        return text, False
