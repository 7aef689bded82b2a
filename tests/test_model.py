"""Our forward against transformers' on the same weights; the cache and ragged batches."""

import pytest
import torch
from tiny import hf_tiny, ours_from

from lifecard.model.config import ConfigError, ModelConfig
from lifecard.model.llama import KVCache


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("tie", [False, True])
def test_logits_match_transformers(family, tie):
    hf = hf_tiny(family, tie=tie)
    ours = ours_from(hf)
    ids = torch.randint(0, 96, (3, 11))
    positions = torch.arange(11).expand(3, 11)
    diff = (ours(ids, positions) - hf(ids).logits).abs().max()
    assert diff <= 1e-5


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_cached_decode_matches_full_forward(family):
    hf = hf_tiny(family)
    ours = ours_from(hf)
    ids = torch.randint(0, 96, (2, 12))
    ref = hf(ids).logits
    cache = KVCache(ours.cfg, 2, 12, torch.float32)
    positions = torch.arange(12).expand(2, 12)
    steps = [ours(ids[:, :7], positions[:, :7], cache)]
    steps += [ours(ids[:, i : i + 1], positions[:, i : i + 1], cache) for i in range(7, 12)]
    assert (torch.cat(steps, dim=1) - ref).abs().max() <= 1e-5


def test_ragged_rows_equal_each_row_alone():
    ours = ours_from(hf_tiny())
    prompts = [[5, 6, 7, 8, 9, 10, 11], [20, 21, 22], [30, 31, 32, 33, 34]]
    width = max(map(len, prompts))
    ids = torch.zeros(3, width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p)
    lengths = torch.tensor([len(p) for p in prompts])
    cache = KVCache(ours.cfg, 3, 16, torch.float32)
    batched = [ours(ids, torch.arange(width).expand(3, width), cache, logits_at=lengths - 1)]
    nxt = torch.tensor([[40], [41], [42]])
    for step in range(3):  # decode with every row at its own position
        batched.append(ours(nxt + step, (lengths + step)[:, None], cache)[:, -1])
    for i, p in enumerate(prompts):
        alone = torch.tensor([[*p, 40 + i, 41 + i, 42 + i]])
        ref = hf_tiny()(alone).logits[0]
        got = torch.stack([b[i] for b in batched])  # logits after the prompt and each fed token
        want = ref[len(p) - 1 : len(p) + 3]
        assert (got - want).abs().max() <= 1e-5


def test_bf16_stays_close_to_fp32():
    hf = hf_tiny()
    ids = torch.randint(0, 96, (2, 9))
    positions = torch.arange(9).expand(2, 9)
    exact = ours_from(hf)(ids, positions)
    half = ours_from(hf, torch.bfloat16)(ids, positions)
    assert half.dtype == torch.float32  # logits always come back in fp32
    assert (half - exact).abs().max() < 0.1 * exact.abs().max()


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="model_type 'gpt2'"):
        ModelConfig.from_hf({"model_type": "gpt2"})
    with pytest.raises(ConfigError, match="lacks the field 'vocab_size'"):
        ModelConfig.from_hf({"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2})


def test_llama3_rope_scaling_matches_transformers():
    from transformers import LlamaConfig, LlamaForCausalLM

    from lifecard.model.llama import Transformer

    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    torch.manual_seed(0)
    hf = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=64,
            rope_parameters={"rope_theta": 500000.0, **scaling},
        )
    ).eval()
    cfg = ModelConfig.from_hf(hf.config.to_dict())
    assert cfg.rope_scaling is not None and cfg.rope_theta == 500000.0
    ours = Transformer.from_state_dict(cfg, hf.state_dict())
    ids = torch.randint(0, 50, (1, 40))
    assert (ours(ids, torch.arange(40)[None]) - hf(ids).logits).abs().max() <= 1e-5
