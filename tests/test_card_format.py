"""The .card file, format 1: round trip, the digest rule as the spec states it, atomic writes,
the Card API the engine uses, signatures, inspect, and the shipped schema and spec example."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from importlib import resources
from pathlib import Path

import pytest
import torch

from lifecard.cards import validate
from lifecard.cards.base import BaseInfo, check_card
from lifecard.cards.card import Card
from lifecard.cards.inspect import format_inspection, inspect_card
from lifecard.cards.validate import CardError, check_manifest
from lifecard.model.config import ModelConfig
from lifecard.model.sockets import SocketBank

CFG = ModelConfig(
    family="llama", vocab_size=96, hidden_size=64, intermediate_size=128, num_layers=3, num_heads=4,
    num_kv_heads=2, head_dim=16,
)  # fmt: skip
BASE = BaseInfo.from_config(CFG, "tiny/llama", "ab" * 32)
SPEC = Path(__file__).resolve().parents[1] / "docs" / "card-format.md"


def make_lora(rank: int = 4, layers=(0, 2), targets=("q_proj", "down_proj"), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = CFG.projection_shapes()
    return {
        (layer, p): (
            torch.randn(rank, shapes[p][1], generator=g),
            torch.randn(shapes[p][0], rank, generator=g),
        )
        for layer in layers
        for p in targets
    }


def make_card(dtype: torch.dtype | None = None, **kw) -> Card:
    g = torch.Generator().manual_seed(1)
    args = dict(
        id="ada",
        name="Ada",
        base=BASE,
        persona={"description": "A mathematician.", "tags": ["math", "poetry"], "first_mes": "Hello."},
        description="Ada, terse and exact.",
        created="2025-01-02T03:04:05Z",
        lora=make_lora(),
        lora_alpha=8.0,
        lora_module_scale=0.5,
        steer={1: torch.randn(64, generator=g)},
        steer_module_scale=3.0,
        forge={
            "method": "manual",
            "seed": 7,
            "steps": 0,
            "seconds": 0.1,
            "data_sha256": "cd" * 32,
            "lr": 1e-3,
        },
        eval={"fidelity": 0.81, "ppl_ratio": 1.02},
        dtype=dtype,
    )
    args.update(kw)
    return Card.new(**args)  # type: ignore[arg-type]


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_round_trip_keeps_tensors_and_manifest(tmp_path, dtype):
    card = make_card(dtype)
    path = tmp_path / "ada.card"
    card.write(path)
    back = Card.read(path)
    assert back.digest_ok is True
    assert back.manifest == card.manifest
    assert back.manifest["content_sha256"] == card.digest() == back.digest()
    assert set(back.tensors) == set(card.tensors)
    for name, t in card.tensors.items():
        assert back.tensors[name].dtype == dtype
        assert torch.equal(back.tensors[name], t), name
    assert back.path == path and back.label == "ada.card"
    assert back.id == "ada" and back.name == "Ada"
    assert back.nbytes == card.nbytes == sum(t.numel() * t.element_size() for t in card.tensors.values())


def test_file_layout_is_safetensors_with_the_two_keys(tmp_path):
    path = tmp_path / "ada.card"
    make_card().write(path)
    from safetensors import safe_open

    with safe_open(path, "pt") as f:  # any safetensors reader opens a card
        meta = f.metadata()
        names = set(f.keys())
    assert meta["lifecard.format"] == "1"
    assert json.loads(meta["lifecard.manifest"])["id"] == "ada"
    assert names == {f"lora.{la}.{p}.{m}" for la in (0, 2) for p in ("q_proj", "down_proj") for m in "AB"} | {
        "steer.1"
    }


def test_digest_follows_the_rule_written_in_the_spec(tmp_path):
    """Recompute content_sha256 from the raw file bytes exactly as docs/card-format.md states it."""
    path = tmp_path / "ada.card"
    make_card(torch.bfloat16).write(path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    manifest = json.loads(header.pop("__metadata__")["lifecard.manifest"])
    body = {k: v for k, v in manifest.items() if k not in ("content_sha256", "signature")}
    h = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    h.update(b"\n")
    for name in sorted(header):
        info = header[name]
        h.update(f"{name}\n{info['dtype']}\n{json.dumps(info['shape'], separators=(',', ':'))}\n".encode())
        begin, end = info["data_offsets"]
        h.update(raw[8 + n + begin : 8 + n + end])
    assert manifest["content_sha256"] == h.hexdigest()


def test_rewriting_a_read_card_over_its_own_file(tmp_path):
    path = tmp_path / "ada.card"
    make_card().write(path)
    card = Card.read(path)  # tensors are views of the mapped file
    card.write(path)
    again = Card.read(path)
    assert again.manifest == card.manifest
    assert all(torch.equal(again.tensors[n], t) for n, t in card.tensors.items())


def test_read_tensors_are_writable_without_touching_the_file(tmp_path):
    path = tmp_path / "ada.card"
    make_card().write(path)
    before = path.read_bytes()
    card = Card.read(path)
    card.tensors["steer.1"].zero_()  # private copy-on-write map
    assert path.read_bytes() == before
    assert Card.read(path).digest_ok


def test_prompt_only_card_has_no_modules(tmp_path):
    card = Card.new(id="plain", name="Plain", base=BASE)
    card.write(tmp_path / "plain.card")
    back = Card.read(tmp_path / "plain.card")
    assert back.manifest["modules"] == [] and back.tensors == {}
    assert back.lora == {} and back.steer is None and back.lora_scale == 0.0
    assert back.lora_factors() == {} and back.steer_vector() is None


# ---------------------------------------------------------------- atomic writes


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "ada.card")


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_card(tmp_path, monkeypatch):
    path = tmp_path / "ada.card"
    make_card().write(path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    other = make_card(name="Other", created="2025-02-02")
    with pytest.raises(OSError, match="No space"):
        other.write(path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise PermissionError("read-only target")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        make_card().write(tmp_path / "ada.card")
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_an_invalid_card_before_creating_anything(tmp_path):
    card = make_card()
    card.tensors["steer.1"][3] = float("nan")  # type: ignore[index]
    with pytest.raises(CardError, match=r"card ada\.card holds 1 NaN or infinite value in tensor steer\.1"):
        card.write(tmp_path / "ada.card")
    assert list(tmp_path.iterdir()) == []


def test_write_keeps_the_mode_of_the_replaced_file(tmp_path):
    path = tmp_path / "ada.card"
    make_card().write(path)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    make_card().write(path)
    assert path.stat().st_mode & 0o777 == 0o640


# ---------------------------------------------------------------- the API the engine uses


def test_lora_and_steer_views():
    card = make_card()
    lora = make_lora()
    assert set(card.lora) == set(lora)
    for key, (a, b) in lora.items():
        assert torch.equal(card.lora[key][0], a) and torch.equal(card.lora[key][1], b)
    assert card.lora_scale == 8.0 / 4
    assert card.steer is not None and card.steer.shape == (3, 64)
    assert card.steer[0].abs().sum() == 0 and card.steer[2].abs().sum() == 0
    assert torch.equal(card.steer[1], card.tensors["steer.1"])
    assert card.default_strength == 1.0
    assert card.strength_range == (-2.0, 2.0)  # a steering card may steer away


def test_lora_factors_fold_alpha_over_rank_scale_and_strength():
    card = make_card()
    factors = card.lora_factors(0.75)
    for key, (a, b) in card.lora.items():
        fa, fb = factors[key]
        assert torch.equal(fa, a)
        torch.testing.assert_close(fb, b * (8.0 / 4) * 0.5 * 0.75)
    v = card.steer_vector(-1.5)
    assert v is not None
    torch.testing.assert_close(v, card.steer * 3.0 * -1.5)
    # no strength: the card's default
    torch.testing.assert_close(card.lora_factors()[(0, "q_proj")][1], card.lora[(0, "q_proj")][1] * 2.0 * 0.5)


def test_strength_outside_the_range_is_refused():
    card = make_card(strength={"default": 1.0, "min": 0.0, "max": 1.5})
    with pytest.raises(CardError, match=r"card ada takes a strength in \[0\.0, 1\.5\].*not 2"):
        card.lora_factors(2)
    with pytest.raises(CardError, match="strength"):
        card.steer_vector(-0.1)


def test_factors_plug_into_the_socket_bank():
    card = make_card(torch.bfloat16)
    base_cfg_bank = SocketBank(CFG, num_slots=3, max_rank=8, dtype=torch.float32)
    base_cfg_bank.write(2, lora=card.lora_factors(1.0), steer=card.steer_vector(1.0))
    assert base_cfg_bank.slot_groups[2] == frozenset({"qkv", "down"})
    assert base_cfg_bank.slot_steers[2]
    torch.testing.assert_close(base_cfg_bank.steer[2], card.steer.float() * 3.0)  # scaled in fp32


def test_new_defaults_and_steer_from_a_full_tensor():
    steer = torch.zeros(3, 64)
    steer[2] = 1.0
    card = Card.new(id="s", name="S", base=BASE, steer=steer)
    assert card.manifest["modules"] == [{"kind": "steer", "layers": [2], "scale": 1.0}]
    assert set(card.tensors) == {"steer.2"}
    assert card.manifest["persona"] == {"name": "S"}
    assert card.manifest["forge"] == {"method": "manual"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", card.manifest["created"])
    lora_only = Card.new(id="l", name="L", base=BASE, lora=make_lora())
    assert lora_only.strength_range == (0.0, 2.0)
    assert (
        lora_only.lora_module is not None and lora_only.lora_module["alpha"] == 4.0
    )  # alpha defaults to rank


def test_new_refuses_mixed_ranks_gaps_and_unknown_projections():
    lora = make_lora()
    a, b = lora[(0, "q_proj")]
    with pytest.raises(CardError, match=r"ranks \[3, 4\]"):
        Card.new(id="x", name="X", base=BASE, lora={**lora, (0, "q_proj"): (a[:3], b[:, :3])})
    with pytest.raises(CardError, match="layer 2 q_proj is missing"):
        Card.new(id="x", name="X", base=BASE, lora={k: v for k, v in lora.items() if k != (2, "q_proj")})
    with pytest.raises(CardError, match="lm_head, not a projection"):
        Card.new(id="x", name="X", base=BASE, lora={**lora, (0, "lm_head"): (a, b)})
    with pytest.raises(CardError, match=r"card x holds tensor lora\.0\.q_proj\.A of shape \[4, 32\]"):
        Card.new(id="x", name="X", base=BASE, lora={**lora, (0, "q_proj"): (a[:, :32], b)})
    with pytest.raises(CardError, match="as F64"):
        Card.new(id="x", name="X", base=BASE, steer={0: torch.ones(64, dtype=torch.float64)})
    with pytest.raises(CardError, match=r"manifest field id|id is"):
        Card.new(id="Not A Slug", name="X", base=BASE)


def test_check_card_accepts_its_own_base():
    assert check_card(make_card(), BASE) == []
    assert check_card(make_card(), BASE, strict=True) == []
    assert make_card().base == BASE


# ---------------------------------------------------------------- signature


def test_signature_without_cryptography_is_reported_not_verified(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_crypto(name, *args, **kw):
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    card = make_card()
    sig = {"alg": "ed25519", "public_key": "11" * 32, "value": "22" * 64}
    signed = Card({**card.manifest, "signature": sig}, card.tensors)
    path = tmp_path / "ada.card"
    signed.write(path)  # the digest is unchanged, so the signature is kept
    monkeypatch.setattr(builtins, "__import__", no_crypto)
    back = Card.read(path)
    assert back.manifest["signature"] == sig
    assert back.signature_status() == "present, not verified"
    d = inspect_card(path)
    assert d["signature"] == {"present": True, "alg": "ed25519", "public_key": "11" * 32,
                              "status": "present, not verified"}  # fmt: skip
    assert "install the cryptography package" in format_inspection(d)
    with pytest.raises(RuntimeError, match="pip install cryptography"):
        card.signed(b"\1" * 32)


def test_signature_is_dropped_when_the_content_changes(tmp_path):
    card = make_card()
    sig = {"alg": "ed25519", "public_key": "11" * 32, "value": "22" * 64}
    changed = Card({**card.manifest, "name": "Changed", "signature": sig}, card.tensors)
    changed.write(tmp_path / "ada.card")
    assert "signature" not in Card.read(tmp_path / "ada.card").manifest


def test_ed25519_signature_verifies(tmp_path):
    pytest.importorskip("cryptography")
    card = make_card().signed(bytes(range(32)))
    path = tmp_path / "ada.card"
    card.write(path)
    back = Card.read(path)
    assert back.signature_status() == "verified"
    forged = Card(
        {**back.manifest, "signature": {**back.manifest["signature"], "value": "00" * 64}}, back.tensors
    )
    assert forged.signature_status() == "invalid"


# ---------------------------------------------------------------- inspect


def test_inspect_reports_everything_as_json(tmp_path):
    path = tmp_path / "ada.card"
    make_card(torch.bfloat16).write(path)
    d = inspect_card(path)
    json.dumps(d)  # plain JSON values only
    assert d["id"] == "ada" and d["format"] == "1" and d["file_bytes"] == path.stat().st_size
    assert d["persona"]["tags"] == ["math", "poetry"]
    lora, steer = d["modules"]
    assert lora == {
        "kind": "lora", "rank": 4, "alpha": 8.0, "alpha_over_rank": 2.0, "targets": ["q_proj", "down_proj"],
        "layers": [0, 2], "scale": 0.5, "tensors": 8, "bytes": lora["bytes"], "dtypes": ["bfloat16"],
    }  # fmt: skip
    assert lora["bytes"] == 2 * 2 * (4 * 64 + 64 * 4 + 4 * 128 + 64 * 4)
    assert steer["kind"] == "steer" and steer["layers"] == [1] and steer["bytes"] == 128
    assert d["digest"]["ok"] is True
    assert d["signature"] == {"present": False, "alg": None, "public_key": None, "status": "absent"}
    assert d["eval"] == {"fidelity": 0.81, "ppl_ratio": 1.02}
    text = format_inspection(d)
    for needle in (
        "Ada (ada) v1.0.0", "A mathematician.", "math, poetry", "llama  tiny/llama", "hidden 64, 3 layers",
        "rank 4, alpha 8 (α/r 2)", "layers 0,2 (2)", "steer", "default 1, range [-2, 2]",
        "method manual, data_sha256 cdcdcdcdcdcd…, lr 0.001, seconds 0.1, seed 7", "fidelity 0.81",
        "sha256 ", " ok", "signature  absent",
    ):  # fmt: skip
        assert needle in text, needle


def test_inspect_shows_a_digest_mismatch_instead_of_refusing(tmp_path):
    path = tmp_path / "ada.card"
    make_card().write(path)
    raw = bytearray(path.read_bytes())
    raw[-4] ^= 0x01  # the lowest mantissa bit of the last float32: still finite, but different
    path.write_bytes(bytes(raw))
    with pytest.raises(CardError, match="fails its content digest"):
        Card.read(path)
    d = inspect_card(path)
    assert d["digest"]["ok"] is False
    assert "MISMATCH" in format_inspection(d)


# ---------------------------------------------------------------- schema and spec


def test_schema_ships_as_package_data_and_is_a_valid_schema():
    import jsonschema

    text = resources.files("lifecard.cards").joinpath("schema.json").read_text("utf-8")
    jsonschema.Draft202012Validator.check_schema(json.loads(text))
    assert validate.schema() == json.loads(text)


def test_the_worked_example_in_the_spec_is_a_valid_manifest():
    text = SPEC.read_text("utf-8")
    example = text.split("## Worked example", 1)[1]
    block = re.search(r"```json\n(.*?)```", example, re.S)
    assert block is not None
    manifest = json.loads(block.group(1))
    assert check_manifest(manifest, "example.card") == []


def test_spec_limits_match_the_code():
    text = SPEC.read_text("utf-8")
    assert f"{validate.MAX_HEADER_BYTES:,} bytes" in text
    assert f"{validate.MAX_FILE_BYTES:,} bytes" in text
    assert f"{validate.MAX_TENSORS:,} tensors" in text
