"""Shared fixtures: a tiny byte-level BPE and tiny GGUF model files written the way llama.cpp writes them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = [
    "the quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!",
    "def main(argv):\n    return sum(int(x) for x in argv)  # 12345\n",
    "Hello world, hello there. I'm here, you're there, we'll see.",
    "你好，世界。今天天气很好。",
]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SIZES = dict(hidden=64, heads=4, kv_heads=2, intermediate=96, layers=2)

# HF parameter (inside model.layers.{i}.) -> GGUF tensor, written independently of lifecard's own table
_BLOCK = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
# storage type per HF parameter in block 1 (block 0 stays F32 so its values must round-trip exactly)
_BLOCK1_TYPES = {
    "self_attn.q_proj": Q.Q8_0,
    "self_attn.k_proj": Q.Q4_1,
    "self_attn.v_proj": Q.Q4_0,
    "self_attn.o_proj": Q.F16,
    "mlp.gate_proj": Q.Q5_0,
    "mlp.up_proj": Q.Q5_1,
    "mlp.down_proj": Q.BF16,
}


@dataclass
class TinyGGUF:
    path: Path
    originals: dict[str, np.ndarray]  # HF name -> float32 weight before storage
    expected: dict[str, np.ndarray]  # HF name -> what storing it in its GGUF type leaves
    bpe: Tokenizer  # the tokenizer whose vocabulary the file carries


@pytest.fixture(scope="session")
def tiny_bpe() -> Tokenizer:
    """A 320-token byte-level BPE with SmolLM2's pre-tokenizer (digits split, then GPT-2 byte level)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


@pytest.fixture
def lifecard_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point lifecard's model cache at a fresh folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LIFECARD_CACHE", str(root))
    return root


@pytest.fixture
def make_gguf(tmp_path: Path, tiny_bpe: Tokenizer) -> Callable[..., TinyGGUF]:
    """Factory: write a tiny random model as llama.cpp's converter would (q/k rows permuted for llama)."""

    def make(
        arch: str = "llama",
        tie: bool = True,
        name: str = "tiny.gguf",
        tokenizer_model: str = "gpt2",
        pre: str = "smollm",
        seed: int = 0,
        metadata: dict[str, Any] | None = None,
        extra_tensors: dict[str, np.ndarray] | None = None,
    ) -> TinyGGUF:
        rng = np.random.default_rng(seed)
        originals = _random_weights(rng, arch, tie, vocab=tiny_bpe.get_vocab_size())
        path = tmp_path / name
        writer = gguf.GGUFWriter(str(path), arch)
        _write_metadata(writer, tiny_bpe, tokenizer_model, pre)
        for key, value in (metadata or {}).items():
            writer.add_key_value(key, value, gguf.GGUFValueType.get_type(value))
        expected = {}
        for hf, w in originals.items():
            qtype = _storage_type(hf)
            stored = _converter_permute(hf, w) if arch == "llama" else w
            _add_tensor(writer, _gguf_name(hf), stored, qtype)
            expected[hf] = _stored_values(w, qtype)
        for gguf_name, array in (extra_tensors or {}).items():
            writer.add_tensor(gguf_name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return TinyGGUF(path, originals, expected, tiny_bpe)

    return make


def _random_weights(rng: np.random.Generator, arch: str, tie: bool, vocab: int) -> dict[str, np.ndarray]:
    h, i, heads, kv = SIZES["hidden"], SIZES["intermediate"], SIZES["heads"], SIZES["kv_heads"]
    q, k = h, h // heads * kv

    def rand(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.1

    w = {"model.embed_tokens.weight": rand(vocab, h), "model.norm.weight": 1 + rand(h)}
    if not tie:
        w["lm_head.weight"] = rand(vocab, h)
    for layer in range(SIZES["layers"]):
        p = f"model.layers.{layer}."
        shapes = {"q_proj": (q, h), "k_proj": (k, h), "v_proj": (k, h), "o_proj": (h, q)}
        w |= {f"{p}self_attn.{n}.weight": rand(*s) for n, s in shapes.items()}
        w |= {f"{p}mlp.gate_proj.weight": rand(i, h), f"{p}mlp.up_proj.weight": rand(i, h)}
        w |= {f"{p}mlp.down_proj.weight": rand(h, i)}
        w |= {f"{p}input_layernorm.weight": 1 + rand(h), f"{p}post_attention_layernorm.weight": 1 + rand(h)}
        if arch == "qwen2":
            w |= {f"{p}self_attn.{n}.bias": rand(s[0]) for n, s in shapes.items() if n != "o_proj"}
    return w


def _write_metadata(writer: gguf.GGUFWriter, bpe: Tokenizer, tokenizer_model: str, pre: str) -> None:
    writer.add_block_count(SIZES["layers"])
    writer.add_context_length(256)
    writer.add_embedding_length(SIZES["hidden"])
    writer.add_feed_forward_length(SIZES["intermediate"])
    writer.add_head_count(SIZES["heads"])
    writer.add_head_count_kv(SIZES["kv_heads"])
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    vocab = sorted(bpe.get_vocab().items(), key=lambda item: item[1])
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([3 if token in SPECIALS else 1 for token, _ in vocab])
    writer.add_token_merges([" ".join(m) for m in json.loads(bpe.to_str())["model"]["merges"]])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)


def _gguf_name(hf: str) -> str:
    top = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
    stem, suffix = hf.rsplit(".", 1)
    if stem in top:
        return f"{top[stem]}.{suffix}"
    _, _, layer, param = stem.split(".", 3)
    return f"blk.{layer}.{_BLOCK[param]}.{suffix}"


def _storage_type(hf: str) -> Q:
    if hf == "model.embed_tokens.weight" or hf == "lm_head.weight":
        return Q.Q8_0
    if hf.startswith("model.layers.1.") and hf.endswith(".weight"):
        return _BLOCK1_TYPES.get(hf.removeprefix("model.layers.1.").removesuffix(".weight"), Q.F32)
    return Q.F32


def _converter_permute(hf: str, w: np.ndarray) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf's q/k reordering: each head's two rotary halves interleaved."""
    if "q_proj" in hf:
        heads = SIZES["heads"]
    elif "k_proj" in hf:
        heads = SIZES["kv_heads"]
    else:
        return w
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_tensor(writer: gguf.GGUFWriter, name: str, w: np.ndarray, qtype: Q) -> None:
    if qtype in (Q.F32, Q.F16):
        writer.add_tensor(name, w.astype(np.float16 if qtype == Q.F16 else np.float32))
    else:
        writer.add_tensor(name, gguf.quants.quantize(w, qtype), raw_dtype=qtype)


def _stored_values(w: np.ndarray, qtype: Q) -> np.ndarray:
    # row-wise blocks: quantizing then permuting rows equals permuting then quantizing
    return gguf.quants.dequantize(gguf.quants.quantize(w, qtype), qtype).reshape(w.shape).astype(np.float32)
