"""Shared by the benchmark scripts: the default model in both implementations, and timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from lifecard.engine.generate import Engine
from lifecard.model.files import load_model_files
from lifecard.model.llama import Transformer
from lifecard.model.sockets import SocketBank


def load_both(dtype: torch.dtype, num_slots: int = 9, max_rank: int = 16):
    """Our engine and transformers' LlamaForCausalLM on the very same converted weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg, weights, tokenizer, source = load_model_files(None, dtype)
    ours = Engine(
        Transformer.from_state_dict(cfg, weights, dtype),
        tokenizer,
        SocketBank(cfg, num_slots, max_rank),
        source,
    )
    hf = LlamaForCausalLM(LlamaConfig(**cfg.to_hf())).to(dtype)
    hf.load_state_dict(weights, strict=False)  # lm_head is tied to the embedding
    hf.eval().requires_grad_(False)
    return ours, hf


def random_lora(cfg, rank: int, seed: int, scale: float = 0.02):
    """A LoRA on every projection of every layer: the heaviest card of that rank."""
    g = torch.Generator().manual_seed(seed)
    return {
        (layer, p): (torch.randn(rank, inp, generator=g) * scale, torch.randn(out, rank, generator=g) * scale)
        for layer in range(cfg.num_layers)
        for p, (out, inp) in cfg.projection_shapes().items()
    }


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
