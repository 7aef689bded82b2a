"""A tiny random Llama/Qwen2 in both implementations (transformers' and ours) on the same weights."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from lifecard.model.config import ModelConfig
from lifecard.model.llama import Transformer

SIZES = dict(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rope_theta=10000.0,
)


def hf_tiny(family: str = "llama", seed: int = 0, tie: bool = False):
    torch.manual_seed(seed)
    if family == "qwen2":
        hf = Qwen2ForCausalLM(Qwen2Config(**SIZES, tie_word_embeddings=tie))
    else:
        hf = LlamaForCausalLM(LlamaConfig(**SIZES, tie_word_embeddings=tie))
    for name, p in hf.named_parameters():  # random norms and biases, so a wrong wiring shows
        if name.endswith("bias") or "norm" in name:
            torch.nn.init.normal_(p, mean=0.0 if name.endswith("bias") else 1.0, std=0.3)
    return hf.eval().requires_grad_(False)


def ours_from(hf, dtype: torch.dtype = torch.float32) -> Transformer:
    cfg = ModelConfig.from_hf(hf.config.to_dict())
    return Transformer.from_state_dict(cfg, hf.state_dict(), dtype)


def tiny(family: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float32) -> Transformer:
    return ours_from(hf_tiny(family, seed), dtype)
