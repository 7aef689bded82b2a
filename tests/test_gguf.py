"""GGUF reading: config from metadata, dequantization, llama.cpp's q/k permutation undone, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lifecard.model.files import default_model_path
from lifecard.model.gguf import ModelFileError, llama3_rope_divisors, llama3_rope_scaling, read_gguf


def _tolerance(name: str) -> float:
    # worst-case error of the storage type the tiny file uses for this tensor (weights are ~N(0, 0.1))
    return 0.1 if name.endswith("k_proj.weight") or "v_proj" in name or "mlp" in name else 0.02


def test_llama_weights_round_trip(make_gguf):
    tiny = make_gguf(arch="llama", tie=False)
    config, weights, material = read_gguf(tiny.path)

    assert weights.keys() == tiny.originals.keys()
    for name, expected in tiny.expected.items():
        assert weights[name].dtype == torch.float32
        # exact against what storage leaves: the q/k permutation is undone exactly
        assert torch.equal(weights[name], torch.from_numpy(expected)), name
        assert np.allclose(weights[name].numpy(), tiny.originals[name], atol=_tolerance(name)), name
    for name, original in tiny.originals.items():  # block 0 and the norms are stored as F32
        if name.startswith("model.layers.0.") or name.endswith("norm.weight"):
            assert torch.equal(weights[name], torch.from_numpy(original)), name

    assert config.family == "llama"
    assert (config.hidden_size, config.intermediate_size, config.num_layers) == (64, 96, 2)
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == (4, 2, 16)
    assert config.vocab_size == tiny.bpe.get_vocab_size()
    assert not config.tie_word_embeddings and not config.attention_bias
    assert (config.rope_theta, config.rms_norm_eps, config.rope_scaling) == (100000.0, 1e-5, None)
    assert config.bos_token_id == 1
    assert config.eos_token_ids == (0, 2)  # eos <|im_end|> plus the <|endoftext|> control token
    assert material["pre"] == "smollm" and material["chat_template"]


def test_missing_output_weight_means_tied_embeddings(make_gguf):
    config, weights, _ = read_gguf(make_gguf(tie=True).path)
    assert config.tie_word_embeddings
    assert "lm_head.weight" not in weights


def test_qwen2_is_not_permuted_and_has_biases(make_gguf):
    tiny = make_gguf(arch="qwen2")
    config, weights, _ = read_gguf(tiny.path)
    assert config.family == "qwen2" and config.attention_bias
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.bias"):
        assert torch.equal(weights[name], torch.from_numpy(tiny.originals[name]))
    assert {n for n in weights if n.endswith(".bias")} == {n for n in tiny.originals if n.endswith(".bias")}


def test_linear_rope_scaling_from_metadata(make_gguf):
    tiny = make_gguf(metadata={"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4.0})
    config, _, _ = read_gguf(tiny.path)
    assert config.rope_scaling == {"rope_type": "linear", "factor": 4.0}


def test_llama3_rope_table_becomes_rope_scaling(make_gguf):
    params = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    table = llama3_rope_divisors(params, 16, 100000.0).astype(np.float32)
    tiny = make_gguf(extra_tensors={"rope_freqs.weight": table})
    config, weights, _ = read_gguf(tiny.path)
    assert config.rope_scaling == params
    assert weights.keys() == tiny.originals.keys()  # the table is not a weight


def test_llama3_rope_divisors_match_transformers():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import _compute_llama3_parameters

    params = {
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    hf = LlamaConfig(
        hidden_size=512,
        num_attention_heads=4,
        max_position_embeddings=131072,
        rope_parameters={**params, "rope_theta": 500000.0},
    )
    scaled, _ = _compute_llama3_parameters(hf)
    plain = 500000.0 ** -(np.arange(0, 128, 2) / 128)
    assert np.allclose(
        llama3_rope_divisors(params, 128, 500000.0), plain / scaled.double().numpy(), rtol=1e-5
    )


def test_llama3_rope_table_that_does_not_fit_is_refused():
    with pytest.raises(ModelFileError, match="rope_freqs"):
        llama3_rope_scaling(np.linspace(1.0, 3.0, 8), 16, 10000.0, "m.gguf")


def test_unsupported_rope_scaling_is_refused(make_gguf):
    with pytest.raises(ModelFileError, match="'yarn' rope scaling"):
        read_gguf(make_gguf(metadata={"llama.rope.scaling.type": "yarn"}).path)


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(ModelFileError, match="is not a GGUF file"):
        read_gguf(path)


def test_unsupported_architecture(make_gguf):
    with pytest.raises(ModelFileError, match="holds a 'phi3' model; lifecard runs the Llama family"):
        read_gguf(make_gguf(arch="phi3").path)


def test_sentencepiece_tokenizer_points_to_tokenizer_json(make_gguf):
    with pytest.raises(ModelFileError, match=r"'llama' tokenizer.*tokenizer\.json"):
        read_gguf(make_gguf(tokenizer_model="llama").path)


def test_unknown_tensor_is_refused(make_gguf):
    tiny = make_gguf(extra_tensors={"blk.0.attn_qkv.weight": np.zeros((4, 64), np.float32)})
    with pytest.raises(ModelFileError, match=r"'blk\.0\.attn_qkv\.weight'"):
        read_gguf(tiny.path)


@pytest.mark.integration
def test_default_model_weights_equal_transformers_gguf_loader():
    """Every dequantized, unpermuted tensor equals what transformers' own GGUF loader produces."""
    from transformers import AutoModelForCausalLM

    path = default_model_path()
    config, ours, _ = read_gguf(path)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    theirs = hf.state_dict()

    assert config.tie_word_embeddings and hf.config.tie_word_embeddings
    assert set(theirs) - set(ours) == {"lm_head.weight"}  # transformers lists the tied copy too
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name
    assert (config.num_layers, config.hidden_size, config.num_heads, config.num_kv_heads) == (30, 576, 9, 3)
    assert config.rope_theta == hf.config.rope_parameters["rope_theta"]
