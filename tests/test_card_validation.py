"""Every way a card is refused, each with a real malformed file on disk.

Each refusal must be a CardError whose message is one sentence that names the file, the field and
the fix. Files are written by hand here (safetensors.torch.save_file, raw bytes), never through
Card.write, which refuses to write them.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from lifecard.cards import validate
from lifecard.cards.base import BaseInfo, check_card
from lifecard.cards.card import Card
from lifecard.cards.validate import CardError, content_digest, tensor_bytes
from lifecard.model.config import ModelConfig

CFG = ModelConfig(
    family="llama", vocab_size=96, hidden_size=64, intermediate_size=128, num_layers=3, num_heads=4,
    num_kv_heads=2, head_dim=16,
)  # fmt: skip
FP = "ab" * 32
BASE = BaseInfo.from_config(CFG, "tiny/llama", FP)
CODES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int32: "I32",
}


@pytest.fixture
def good() -> Card:
    g = torch.Generator().manual_seed(0)
    lora = {
        (layer, p): (torch.randn(4, 64, generator=g), torch.randn(out, 4, generator=g))
        for layer in (0, 2)
        for p, out in (("q_proj", 64), ("v_proj", 32))
    }
    return Card.new(
        id="ada", name="Ada", base=BASE, lora=lora, steer={1: torch.randn(64, generator=g)},
        created="2025-01-02T03:04:05Z",
    )  # fmt: skip


def seal(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The manifest with the content digest of exactly these tensors."""
    chunks = [(n, CODES[t.dtype], tuple(t.shape), tensor_bytes(t)) for n, t in tensors.items()]
    return {**manifest, "content_sha256": content_digest(manifest, chunks)}


def write(
    path: Path, tensors: dict[str, torch.Tensor], manifest: Any = None, *, meta=None, sealed=True
) -> Path:
    if meta is None:
        if sealed and isinstance(manifest, dict):
            manifest = seal(manifest, tensors)
        meta = {"lifecard.format": "1", "lifecard.manifest": json.dumps(manifest)}
    save_file({n: t.contiguous() for n, t in tensors.items()}, path, metadata=meta)
    return path


def edited(card: Card, **changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(card.manifest)), **changes}


def refused(path: Path, match: str, **kw: Any) -> CardError:
    with pytest.raises(CardError) as info:
        Card.read(path, **kw)
    return check_message(info.value, path.name, match)


def check_message(e: CardError, file: str, match: str) -> CardError:
    msg = str(e)
    assert msg.startswith(f"card {file} "), msg
    assert "\n" not in msg and ": " in msg, msg  # one sentence, with a fix after the colon
    assert isinstance(e, ValueError)
    assert __import__("re").search(match, msg), f"{match!r} not in {msg!r}"
    return e


# ---------------------------------------------------------------- not a card file


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.card"
    path.write_bytes(random.Random(0).randbytes(4096))
    refused(path, r"is not a safetensors file, or is cut short")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.card"
    path.write_bytes(b"")
    refused(path, r"is empty \(0 bytes\)")


def test_shorter_than_the_length_prefix(tmp_path):
    path = tmp_path / "tiny.card"
    path.write_bytes(b"\x10\x00\x00")
    refused(path, r"is 3 bytes, too short to be a safetensors file")


def test_truncated_inside_the_header(tmp_path, good):
    path = tmp_path / "cut.card"
    good.write(path)
    path.write_bytes(path.read_bytes()[:100])
    refused(path, r"announce a \d+-byte header in a 100-byte file")


def test_truncated_inside_the_tensors(tmp_path, good):
    path = tmp_path / "cut.card"
    good.write(path)
    path.write_bytes(path.read_bytes()[:-10])
    refused(path, r"is cut short: its tensors need \d+ bytes, the file has \d+: copy it again")


def test_stray_bytes_after_the_tensors(tmp_path, good):
    path = tmp_path / "long.card"
    good.write(path)
    path.write_bytes(path.read_bytes() + b"junk")
    refused(path, r"has 4 stray bytes after its last tensor")


def test_header_that_is_not_json(tmp_path):
    path = tmp_path / "bad.card"
    body = b"{not json"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    refused(path, r"is not a safetensors file \(its header is not JSON")


def test_header_entry_that_is_malformed(tmp_path):
    path = tmp_path / "bad.card"
    body = json.dumps(
        {"__metadata__": {"lifecard.format": "1", "lifecard.manifest": "{}"}, "steer.0": {"dtype": "F32"}}
    ).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    refused(path, r"header entry of tensor 'steer\.0' is malformed")


def test_overlapping_tensor_ranges(tmp_path):
    path = tmp_path / "bad.card"
    meta = {"lifecard.format": "1", "lifecard.manifest": "{}"}
    entry = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    body = json.dumps({"__metadata__": meta, "steer.0": entry, "steer.1": entry}).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + b"\0" * 8)
    refused(path, r"tensor steer\.1 starts at byte \d+, expected \d+")


# ---------------------------------------------------------------- limits


def test_header_over_the_limit(tmp_path, good, monkeypatch):
    path = tmp_path / "big.card"
    good.write(path)
    monkeypatch.setattr(validate, "MAX_HEADER_BYTES", 256)
    refused(path, r"has a \d+-byte header, over the limit of 256 bytes: shorten the manifest")


def test_file_over_the_limit(tmp_path, good, monkeypatch):
    path = tmp_path / "big.card"
    good.write(path)
    monkeypatch.setattr(validate, "MAX_FILE_BYTES", 4096)
    refused(path, r"is \d+ bytes, over the limit of 4096 bytes for a card: forge it with a lower rank")
    with pytest.raises(CardError, match="over the limit of 4096 bytes"):
        good.write(tmp_path / "again.card")
    assert not (tmp_path / "again.card").exists()


def test_too_many_tensors(tmp_path, good, monkeypatch):
    path = tmp_path / "many.card"
    good.write(path)
    monkeypatch.setattr(validate, "MAX_TENSORS", 4)
    refused(path, r"holds 9 tensors, over the limit of 4")


def test_write_refuses_a_header_over_the_limit(tmp_path, good, monkeypatch):
    monkeypatch.setattr(validate, "MAX_HEADER_BYTES", 256)
    with pytest.raises(
        CardError, match=r"card big\.card would have a \d+-byte header, over the limit of 256"
    ):
        good.write(tmp_path / "big.card")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- format keys and manifest JSON


def test_plain_safetensors_without_the_format_key(tmp_path):
    path = write(tmp_path / "adapter.card", {"steer.0": torch.zeros(64)}, meta={"format": "pt"})
    refused(path, r"is a safetensors file without __metadata__\['lifecard\.format'\]: it is not a life card")
    path = tmp_path / "bare.card"
    save_file({"x": torch.zeros(2)}, path)
    refused(path, r"without __metadata__\['lifecard\.format'\]")


def test_unknown_format_version(tmp_path, good):
    path = write(
        tmp_path / "future.card", dict(good.tensors), meta={"lifecard.format": "2", "lifecard.manifest": "{}"}
    )
    refused(path, r"is card format '2', this lifecard reads format '1': upgrade lifecard")


def test_missing_manifest_key(tmp_path):
    path = write(tmp_path / "nomani.card", {"steer.0": torch.zeros(64)}, meta={"lifecard.format": "1"})
    refused(path, r"has no __metadata__\['lifecard\.manifest'\] string")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", r"has a manifest \(lifecard\.manifest\) that is not valid JSON"),
        ('{"id": "a", "id": "b"}', r"not valid JSON \(the key 'id' appears twice\)"),
        ('{"eval": {"x": NaN}}', r"not valid JSON \(NaN is not JSON\)"),
        ('{"eval": {"x": 1e999}}', r"not valid JSON \(the number 1e999 is not finite\)"),
        ("[1, 2]", r"has a manifest that is a JSON list, not an object"),
    ],
)
def test_manifest_that_is_not_a_json_object(tmp_path, text, match):
    path = write(
        tmp_path / "m.card",
        {"steer.0": torch.zeros(64)},
        meta={"lifecard.format": "1", "lifecard.manifest": text},
    )
    refused(path, match)


# ---------------------------------------------------------------- schema


def _modules_with(good: Card, **change: Any) -> list[dict[str, Any]]:
    mods = json.loads(json.dumps(good.manifest["modules"]))
    mods[0].update(change)
    return mods


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda c: {"modules": _modules_with(c, rank=0)},
            r"modules\[0\]\.rank: 0 is less than the minimum of 1",
        ),
        (
            lambda c: {"modules": _modules_with(c, rank=4.0)},
            r"modules\[0\]\.rank must be of type integer, not 4\.0",
        ),
        (lambda c: {"modules": _modules_with(c, rank="4")}, r"modules\[0\]\.rank must be of type integer"),
        (
            lambda c: {"modules": _modules_with(c, kind="ia3")},
            r"modules\[0\]\.kind is \"ia3\", it must be one of lora",
        ),
        (
            lambda c: {"modules": _modules_with(c, targets=["lm_head"])},
            r"modules\[0\]\.targets\[0\] is \"lm_head\"",
        ),
        (lambda c: {"persona": {"description": "no name"}}, r"persona\.name is missing"),
        (
            lambda c: {"persona": {"name": "A", "personalty": "typo"}},
            r"persona\.personalty is not a field of format 1",
        ),
        (lambda c: {"id": "Ada Lovelace"}, r"id is \"Ada Lovelace\", not a slug \(1-64 of a-z"),
        (
            lambda c: {"base": {**c.manifest["base"], "fingerprint": "xyz"}},
            r"base\.fingerprint is \"xyz\", not a sha256 digest",
        ),
        (lambda c: {"strength": {"default": 1.0, "min": 0.0}}, r"strength\.max is missing"),
        (
            lambda c: {"signature": {"alg": "rsa", "public_key": "11" * 32, "value": "22" * 64}},
            r"signature\.alg",
        ),
        (lambda c: {"surprise": 1}, r"surprise is not a field of format 1"),
        (lambda c: {"created": "yesterday"}, r"created is \"yesterday\", not an ISO 8601 date"),
    ],
)
def test_manifest_not_matching_the_schema(tmp_path, good, change, match):
    path = write(tmp_path / "schema.card", dict(good.tensors), edited(good, **change(good)))
    e = refused(path, "has a manifest that does not fit format 1: " + match)
    assert str(e).endswith("fix it or forge the card again") or "more problem" in str(e)


def test_missing_required_field_and_counting_more_problems(tmp_path, good):
    manifest = edited(good)
    del manifest["version"]
    manifest["modules"] = _modules_with(good, rank=0, alpha=-1)
    path = write(tmp_path / "many.card", dict(good.tensors), manifest)
    e = refused(path, r"does not fit format 1: .*\(and 2 more problems\)$")
    assert len(e.problems) == 3
    assert any("version is missing" in p for p in e.problems)
    assert any("modules[0].alpha" in p for p in e.problems)


def test_extension_fields_are_allowed(tmp_path, good):
    path = write(tmp_path / "x.card", dict(good.tensors), edited(good, **{"x-studio": {"color": "teal"}}))
    assert Card.read(path).manifest["x-studio"] == {"color": "teal"}


# ---------------------------------------------------------------- rules across fields


def test_created_that_is_not_a_real_date(tmp_path, good):
    path = write(tmp_path / "d.card", dict(good.tensors), edited(good, created="2024-13-01"))
    refused(path, r"has manifest field created '2024-13-01', not a real date")


def test_module_layer_beyond_the_base(tmp_path, good):
    manifest = edited(good, modules=_modules_with(good, layers=[0, 2, 5]))
    path = write(tmp_path / "deep.card", dict(good.tensors), manifest)
    refused(path, r"modules\[0\]\.layers with layer 5, but base\.num_layers is 3")


def test_two_lora_modules(tmp_path, good):
    mods = json.loads(json.dumps(good.manifest["modules"]))
    path = write(tmp_path / "two.card", dict(good.tensors), edited(good, modules=[mods[0], mods[0]]))
    refused(path, r"lists 2 lora modules in its manifest, format 1 holds at most one of each kind")


def test_projections_inconsistent_with_hidden_size(tmp_path, good):
    base = edited(good)["base"]
    base["projections"]["o_proj"] = [60, 64]
    path = write(tmp_path / "p.card", dict(good.tensors), edited(good, base=base))
    refused(path, r"base\.projections\.o_proj = \[60, 64\], whose out size is not base\.hidden_size 64")


def test_strength_default_outside_its_range(tmp_path, good):
    manifest = edited(good, strength={"default": 3.0, "min": -2.0, "max": 2.0})
    path = write(tmp_path / "s.card", dict(good.tensors), manifest)
    refused(
        path, r"has strength\.default 3\.0 outside \[strength\.min -2\.0, strength\.max 2\.0\]: set a default"
    )


def test_lone_surrogate_in_the_manifest(tmp_path, good):
    text = json.dumps(edited(good)).replace('"name": "Ada"', '"name": "A\\ud800"', 1)
    path = write(
        tmp_path / "u.card", dict(good.tensors), meta={"lifecard.format": "1", "lifecard.manifest": text}
    )
    refused(path, r"a string that is not valid Unicode")


# ---------------------------------------------------------------- tensors against the manifest


def test_unknown_tensor_name(tmp_path, good):
    tensors = {**good.tensors, "model.embed_tokens.weight": torch.zeros(2, 2)}
    path = write(tmp_path / "extra.card", tensors, edited(good))
    refused(
        path, r"holds a tensor named 'model\.embed_tokens\.weight', which format 1 does not know.*: remove it"
    )


def test_tensor_that_no_module_lists(tmp_path, good):
    tensors = {**good.tensors, "steer.2": torch.zeros(64)}
    path = write(tmp_path / "extra.card", tensors, edited(good))
    refused(path, r"holds tensor steer\.2, which no module of its manifest lists")


def test_leading_zero_layer_is_not_a_card_name(tmp_path, good):
    tensors = {**good.tensors, "steer.01": torch.zeros(64)}
    path = write(tmp_path / "extra.card", tensors, edited(good))
    refused(path, r"tensor named 'steer\.01', which format 1 does not know")


def test_a_without_b(tmp_path, good):
    tensors = {n: t for n, t in good.tensors.items() if n != "lora.2.v_proj.B"}
    path = write(tmp_path / "pair.card", tensors, edited(good))
    refused(
        path,
        r"holds tensor lora\.2\.v_proj\.A without its partner lora\.2\.v_proj\.B: a LoRA pair needs both",
    )


def test_listed_pair_missing_entirely(tmp_path, good):
    tensors = {n: t for n, t in good.tensors.items() if not n.startswith("lora.0.q_proj.")}
    path = write(tmp_path / "gap.card", tensors, edited(good))
    refused(path, r"lists layer 0 and target q_proj in modules\[0\] but holds no lora\.0\.q_proj\.A/B")


def test_listed_steer_layer_missing(tmp_path, good):
    tensors = {n: t for n, t in good.tensors.items() if n != "steer.1"}
    path = write(tmp_path / "gap.card", tensors, edited(good))
    refused(path, r"lists layer 1 in modules\[1\]\.layers but holds no tensor steer\.1")


@pytest.mark.parametrize(("dtype", "code"), [(torch.int32, "I32"), (torch.float64, "F64")])
def test_wrong_dtype(tmp_path, good, dtype, code):
    tensors = {**good.tensors, "steer.1": good.tensors["steer.1"].to(dtype)}
    path = write(tmp_path / "dtype.card", tensors, edited(good))
    refused(path, rf"holds tensor steer\.1 as {code}, a card stores only F32, F16 or BF16: convert it")


def test_shape_not_matching_the_rank(tmp_path, good):
    tensors = dict(good.tensors)
    tensors["lora.0.q_proj.A"] = tensors["lora.0.q_proj.A"][:3]
    tensors["lora.0.q_proj.B"] = tensors["lora.0.q_proj.B"][:, :3]
    path = write(tmp_path / "rank.card", tensors, edited(good))
    e = refused(
        path,
        r"holds tensor lora\.0\.q_proj\.A of shape \[3, 64\], its manifest \(modules\[0\]\.rank.*"
        r"calls for \[4, 64\]: forge the card again \(and 1 more problem\)",
    )
    assert "lora.0.q_proj.B of shape [64, 3]" in e.problems[1]


def test_shape_not_matching_the_projection(tmp_path, good):
    tensors = {**good.tensors, "lora.2.v_proj.B": torch.zeros(64, 4)}  # v_proj's out is 32 on this base
    path = write(tmp_path / "proj.card", tensors, edited(good))
    refused(path, r"lora\.2\.v_proj\.B of shape \[64, 4\].*calls for \[32, 4\]")


def test_steer_shape_not_matching_hidden_size(tmp_path, good):
    tensors = {**good.tensors, "steer.1": torch.zeros(60)}
    path = write(tmp_path / "steer.card", tensors, edited(good))
    refused(
        path, r"holds tensor steer\.1 of shape \[60\], its manifest \(base\.hidden_size\) calls for \[64\]"
    )


# ---------------------------------------------------------------- values and digest


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf(tmp_path, good, dtype, bad):
    tensors = {n: t.to(dtype) for n, t in good.tensors.items()}
    tensors["lora.2.v_proj.B"] = tensors["lora.2.v_proj.B"].clone()
    tensors["lora.2.v_proj.B"][5, 1] = bad
    tensors["lora.2.v_proj.B"][7, 2] = bad
    path = write(tmp_path / "nan.card", tensors, edited(good))
    refused(path, r"holds 2 NaN or infinite values in tensor lora\.2\.v_proj\.B: the forge diverged")


def test_large_finite_values_pass(tmp_path, good):
    tensors = {n: t.to(torch.float16) for n, t in good.tensors.items()}
    tensors["steer.1"] = torch.full((64,), 65504.0, dtype=torch.float16)  # the largest finite float16
    card = Card.read(write(tmp_path / "max.card", tensors, edited(good)))
    assert card.tensors["steer.1"].max().item() == 65504.0


def _data_start(path: Path) -> int:
    return 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_digest_mismatch_after_flipping_one_tensor_bit(tmp_path, good):
    path = tmp_path / "flip.card"
    good.write(path)
    raw = bytearray(path.read_bytes())
    raw[_data_start(path)] ^= 0x01  # lowest mantissa bit of the first value: still finite
    path.write_bytes(bytes(raw))
    refused(path, r"fails its content digest \(content_sha256\): it was changed or damaged after it was made")
    assert Card.read(path, verify_digest=False).digest_ok is None


def test_digest_mismatch_after_editing_the_manifest(tmp_path, good):
    path = write(tmp_path / "edit.card", dict(good.tensors), edited(good, name="Mallory"), sealed=False)
    refused(path, r"fails its content digest")


def test_digest_ignores_how_the_manifest_json_is_spelled(tmp_path, good):
    text = json.dumps(edited(good), indent=2, ensure_ascii=True)  # another spelling of the same manifest
    meta = {"lifecard.format": "1", "lifecard.manifest": text}
    assert Card.read(write(tmp_path / "pretty.card", dict(good.tensors), meta=meta)).digest_ok


# ---------------------------------------------------------------- against the base


def _read(tmp_path: Path, good: Card) -> Card:
    good.write(tmp_path / "ada.card")
    return Card.read(tmp_path / "ada.card")


def _other_base(**kw: Any) -> BaseInfo:
    """Another model: `kw` changes its shape; its weights (fingerprint) always differ."""
    return BaseInfo.from_config(ModelConfig(**{**CFG.as_dict(), **kw}), "other/model", "cd" * 32)


def test_another_family_is_refused(tmp_path, good):
    card = _read(tmp_path, good)
    with pytest.raises(CardError) as info:
        check_card(card, _other_base(family="qwen2"))
    check_message(info.value, "ada.card", r"was made for a llama model, this model is qwen2: forge it again")


def test_another_hidden_size_is_refused(tmp_path, good):
    card = _read(tmp_path, good)
    with pytest.raises(CardError) as info:
        check_card(card, _other_base(hidden_size=32, num_heads=2))
    e = check_message(
        info.value,
        "ada.card",
        r"^card ada\.card was made for hidden size 64, this model has 32: forge it again for "
        r"this model \(and \d+ more problems\)$",
    )  # fmt: skip
    assert any("q_proj of shape [out, in] [64, 64], this model's is [32, 32]" in p for p in e.problems)


def test_another_layer_count_is_refused(tmp_path, good):
    card = _read(tmp_path, good)
    with pytest.raises(CardError) as info:
        check_card(card, _other_base(num_layers=4))
    check_message(
        info.value, "ada.card", r"was made for 3 layers, this model has 4: forge it again for this model"
    )


def test_another_projection_size_is_refused(tmp_path, good):
    card = _read(tmp_path, good)
    with pytest.raises(CardError) as info:
        check_card(card, _other_base(intermediate_size=96))
    e = check_message(
        info.value,
        "ada.card",
        r"was made for gate_proj of shape \[out, in\] \[128, 64\], this model's is \[96, 64\]",
    )
    assert len(e.problems) == 3  # gate, up, down


def test_other_weights_of_the_same_shape_warn_or_refuse_when_strict(tmp_path, good):
    card = _read(tmp_path, good)
    other = _other_base()
    warnings = check_card(card, other)
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "card ada.card was made for other weights of the same shape (tiny/llama, abababababab…)"
    )
    with pytest.raises(CardError) as info:
        check_card(card, other, strict=True)
    check_message(info.value, "ada.card", r"other weights of the same shape.*it may behave differently")


def test_another_vocabulary_warns(tmp_path, good):
    card = _read(tmp_path, good)
    warnings = check_card(
        card, BaseInfo.from_config(ModelConfig(**{**CFG.as_dict(), "vocab_size": 100}), "x", FP)
    )
    assert warnings == [
        "card ada.card was made for a vocabulary of 96 tokens, this model has 100: it fits but was made on "
        "another model; forge it again for this model"
    ]


def test_base_info_refuses_a_bad_fingerprint():
    with pytest.raises(ValueError, match="sha256"):
        BaseInfo.from_config(CFG, "tiny", "not-a-digest")
