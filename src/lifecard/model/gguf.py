"""Read a llama.cpp GGUF file: its config, its tensors under Hugging Face names, its tokenizer material.

Every tensor is dequantized to float32 with gguf-py's own kernels and the Q/K row order that
llama.cpp's converter applies for its rotary layout is undone, so the result equals the HF checkpoint
the GGUF was made from, up to quantization.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGUFReader
from gguf.gguf_reader import ReaderTensor
from gguf.quants import dequantize

from lifecard.model.config import ModelConfig

# GGUF general.architecture -> ModelConfig.family (Mistral GGUFs are written as "llama")
ARCH_FAMILIES = {"llama": "llama", "qwen2": "qwen2"}

# tokenizer.ggml.token_type values that become added tokens (llama.cpp's llama_token_type)
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4

# Control tokens that end a turn or a document. GGUF has no generation_config.json, so like llama.cpp
# we stop on these as well as on tokenizer.ggml.eos_token_id (SmolLM2 says eos <|im_end|> but its base
# habits still end text with <|endoftext|>).
END_OF_GENERATION_TOKENS = frozenset(
    {"<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>"}
)

_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
# tensors that describe the model rather than being weights of it
_NON_WEIGHTS = {"rope_freqs.weight"}

_MISSING = object()


class ModelFileError(ValueError):
    """A model file or folder lifecard cannot use; the message names the path and the fix."""


def open_gguf(path: str | Path) -> GGUFReader:
    """Open a GGUF file (memory-mapped; nothing is dequantized yet)."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelFileError(
            f"{path} is not a GGUF file (it does not start with 'GGUF'): "
            "pass a .gguf model file or a Hugging Face model folder"
        )
    try:
        return GGUFReader(path)
    except ValueError as e:
        raise ModelFileError(f"{path} is a GGUF file that cannot be read ({e}): download it again") from e


def read_gguf(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """The config, every weight as float32 under its HF name, and the tokenizer material of a GGUF file."""
    reader = open_gguf(path)
    material = read_tokenizer_material(reader)
    config = read_config(reader, material)
    return config, dict(iter_weights(reader, config)), material


def read_config(reader: GGUFReader, material: dict[str, Any]) -> ModelConfig:
    """Build the ModelConfig from `{arch}.*` metadata; bos/eos come from the tokenizer material."""
    arch = str(_meta(reader, "general.architecture"))
    family = ARCH_FAMILIES.get(arch)
    if family is None:
        raise ModelFileError(
            f"{_path(reader)} holds a {arch!r} model; lifecard runs the Llama family "
            f"(GGUF architectures {', '.join(ARCH_FAMILIES)}): use a model of that family"
        )

    def key(name: str, default: Any = _MISSING) -> Any:
        return _meta(reader, f"{arch}.{name}", default)

    hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
    head_dim = int(key("attention.key_length", hidden // heads))
    rope_theta = _f32_value(key("rope.freq_base", 10000.0))
    tensors = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in tensors:
        raise ModelFileError(f"{_path(reader)} has no token_embd.weight tensor: it is not a complete model")
    return ModelConfig(
        family=family,
        vocab_size=int(tensors["token_embd.weight"].shape[1]),  # GGUF shape is [hidden, vocab]
        hidden_size=hidden,
        intermediate_size=int(key("feed_forward_length")),
        num_layers=int(key("block_count")),
        num_heads=heads,
        num_kv_heads=int(key("attention.head_count_kv", heads)),
        head_dim=head_dim,
        rope_theta=rope_theta,
        rms_norm_eps=_f32_value(key("attention.layer_norm_rms_epsilon", 1e-5)),
        max_position_embeddings=int(key("context_length", 2048)),
        tie_word_embeddings="output.weight" not in tensors,
        attention_bias=family == "qwen2" or "blk.0.attn_q.bias" in tensors,
        rope_scaling=_rope_scaling(reader, arch, tensors, head_dim, rope_theta),
        bos_token_id=material["bos_id"],
        eos_token_ids=tuple(material["eos_ids"]),
    )


def read_tokenizer_material(reader: GGUFReader) -> dict[str, Any]:
    """The byte-level BPE vocabulary, merges, special ids and chat template stored in a GGUF file.

    Only byte-level BPE ('gpt2' in GGUF terms: Llama 3, Qwen2, SmolLM2, Mistral Nemo...) is rebuilt from
    GGUF; SentencePiece ('llama') vocabularies need the model's own tokenizer.json.
    """
    model = _meta(reader, "tokenizer.ggml.model", None)
    if model != "gpt2":
        raise ModelFileError(
            f"{_path(reader)} has a {model!r} tokenizer, which lifecard cannot rebuild from GGUF "
            "(it rebuilds byte-level BPE, 'gpt2'): use the model's Hugging Face folder with tokenizer.json"
        )
    tokens = [str(t) for t in _meta(reader, "tokenizer.ggml.tokens")]
    types = [int(t) for t in _meta(reader, "tokenizer.ggml.token_type", [1] * len(tokens))]
    bos = _meta(reader, "tokenizer.ggml.bos_token_id", None)
    eos = _meta(reader, "tokenizer.ggml.eos_token_id", None)
    return {
        "model": model,
        "pre": str(_meta(reader, "tokenizer.ggml.pre", "default")),
        "tokens": tokens,
        "token_types": types,
        "merges": [str(m) for m in _meta(reader, "tokenizer.ggml.merges")],
        "bos_id": None if bos is None else int(bos),
        "eos_id": None if eos is None else int(eos),
        "eos_ids": _end_of_generation_ids(reader, tokens, types),
        "add_bos": bool(_meta(reader, "tokenizer.ggml.add_bos_token", False)),
        "chat_template": _meta(reader, "tokenizer.chat_template", None),
    }


def weight_shapes(reader: GGUFReader) -> dict[str, tuple[int, ...]]:
    """HF name -> torch shape of every weight, in file order, without dequantizing anything."""
    return {name: _torch_shape(t) for name, t in _weights(reader)}


def iter_weights(reader: GGUFReader, config: ModelConfig) -> Iterator[tuple[str, torch.Tensor]]:
    """Dequantize one tensor at a time (float32, HF name and row order) so callers can stream them."""
    for name, t in _weights(reader):
        array = dequantize(t.data, t.tensor_type).reshape(_torch_shape(t))
        if config.family == "llama":
            if ".q_proj." in name:
                array = unpermute_rotary_rows(array, config.num_heads)
            elif ".k_proj." in name:
                array = unpermute_rotary_rows(array, config.num_kv_heads)
        # F32 tensors come back as read-only views of the memory map: copy those, keep fresh arrays
        yield name, torch.from_numpy(np.require(array, np.float32, ["C", "W"]))


def unpermute_rotary_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary row order for a q or k projection (weight [heads*head_dim, in] or bias).

    HF's rotary embedding pairs dimension j of a head with j + head_dim/2; llama.cpp pairs 2j with
    2j+1, so its converter interleaves the two halves of each head: row (h, j, s) of the GGUF tensor,
    viewed as [heads, head_dim/2, 2], is row (h, s, j) of the HF tensor viewed as [heads, 2, head_dim/2].
    """
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_name(gguf_name: str) -> str | None:
    """The HF parameter name of a GGUF tensor name, or None when it is not a known weight."""
    stem, dot, suffix = gguf_name.rpartition(".")
    if not dot or suffix not in ("weight", "bias"):
        return None
    if stem in _GLOBAL_NAMES:
        return f"{_GLOBAL_NAMES[stem]}.{suffix}"
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _BLOCK_NAMES:
        return f"model.layers.{int(parts[1])}.{_BLOCK_NAMES[parts[2]]}.{suffix}"
    return None


def _weights(reader: GGUFReader) -> Iterator[tuple[str, ReaderTensor]]:
    for t in reader.tensors:
        if t.name in _NON_WEIGHTS:
            continue
        name = hf_name(t.name)
        if name is None:
            raise ModelFileError(
                f"{_path(reader)} has a tensor {t.name!r} that a Llama-family model does not have: "
                "it is another architecture"
            )
        yield name, t


def _torch_shape(t: ReaderTensor) -> tuple[int, ...]:
    # GGUF lists dimensions fastest-varying first, torch slowest first
    return tuple(int(d) for d in reversed(t.shape))


def _path(reader: GGUFReader) -> str:
    return str(reader.data.filename)


def _meta(reader: GGUFReader, key: str, default: Any = _MISSING) -> Any:
    field = reader.get_field(key)
    if field is None:
        if default is _MISSING:
            raise ModelFileError(
                f"{_path(reader)} lacks the GGUF metadata key {key!r}: it is not a complete model file"
            )
        return default
    return field.contents()


def _f32_value(x: float) -> float:
    # GGUF stores these as float32: the shortest decimal that round-trips through float32 is the value
    # the model was made with (1e-05, not 9.999999747378752e-06)
    return float(str(np.float32(x)))


def _end_of_generation_ids(reader: GGUFReader, tokens: list[str], types: list[int]) -> list[int]:
    ids = {
        int(v)
        for k in ("eos_token_id", "eot_token_id", "eom_token_id")
        if (v := _meta(reader, f"tokenizer.ggml.{k}", None)) is not None
    }
    ids |= {
        i
        for i, (tok, kind) in enumerate(zip(tokens, types, strict=True))
        if kind == TOKEN_TYPE_CONTROL and tok in END_OF_GENERATION_TOKENS
    }
    return sorted(ids)


def _rope_scaling(
    reader: GGUFReader,
    arch: str,
    tensors: dict[str, ReaderTensor],
    head_dim: int,
    theta: float,
) -> dict[str, Any] | None:
    """HF's rope_scaling dict for the scaling a GGUF file describes, or None."""
    if "rope_freqs.weight" in tensors:
        divisors = dequantize(tensors["rope_freqs.weight"].data, tensors["rope_freqs.weight"].tensor_type)
        return llama3_rope_scaling(np.asarray(divisors, dtype=np.float64), head_dim, theta, _path(reader))
    kind = _meta(reader, f"{arch}.rope.scaling.type", "none")
    if kind == "none":
        return None
    if kind == "linear":
        return {"rope_type": "linear", "factor": float(_meta(reader, f"{arch}.rope.scaling.factor"))}
    raise ModelFileError(
        f"{_path(reader)} uses {kind!r} rope scaling, which lifecard does not run: use a model without it"
    )


def llama3_rope_scaling(
    divisors: np.ndarray, head_dim: int, theta: float, path: str | Path
) -> dict[str, Any]:
    """Recover Llama 3.1-style rope_scaling from llama.cpp's per-frequency divisors (rope_freqs).

    llama.cpp stores the scaling only as the table it produces. Every Llama 3.x model uses low/high
    frequency factors 1 and 4 over an 8192-token original context, so the factor is the largest divisor;
    the whole table is then recomputed and must match, or the file is refused rather than run wrong.
    """
    params = {
        "rope_type": "llama3",
        "factor": float(divisors.max()),
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    if divisors.shape != (head_dim // 2,) or not np.allclose(
        llama3_rope_divisors(params, head_dim, theta), divisors, rtol=1e-4
    ):
        raise ModelFileError(
            f"{path} stores a rope scaling table (rope_freqs) that is not Llama 3.1's: "
            "use the model's Hugging Face folder instead"
        )
    return params


def llama3_rope_divisors(params: dict[str, Any], head_dim: int, theta: float) -> np.ndarray:
    """What each rotary frequency is divided by under Llama 3.1 scaling: [head_dim // 2]."""
    factor, low, high = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
    context = params["original_max_position_embeddings"]
    inv_freq = theta ** -(np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * np.pi / inv_freq
    # long wavelengths are slowed by `factor`, short ones kept, the band between blended smoothly
    smooth = (context / wavelen - low) / (high - low)
    blended = 1 / ((1 - smooth) / factor + smooth)
    return np.where(wavelen < context / high, 1.0, np.where(wavelen > context / low, factor, blended))
