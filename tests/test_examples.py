"""The example cards in examples/cards: they read and validate, hold the modules their scripts make,
record how they were made, and `inspect` shows them. The integration test mounts each on the default
model: strength 1 changes the greedy output, strength 0 is the base."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lifecard.cards.card import Card
from lifecard.cards.inspect import format_inspection, inspect_card
from lifecard.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PIRATE, ADA = EXAMPLES / "cards" / "pirate.card", EXAMPLES / "cards" / "ada.card"


def script(name: str):
    """An example script as a module (its main() is not run)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256_json(data) -> str:
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize("path", [PIRATE, ADA], ids=["pirate", "ada"])
def test_example_cards_read_and_validate(path):
    card = Card.read(path)  # every check of docs/card-format.md section 7, digest included
    assert card.digest_ok and card.digest() == card.manifest["content_sha256"]
    assert path.stat().st_size < 6_000_000
    base = card.manifest["base"]
    assert (base["family"], base["hidden_size"], base["num_layers"]) == ("llama", 576, 30)
    assert card.manifest["persona"]["name"] == card.name


def test_pirate_is_a_steering_card_on_the_middle_layers():
    card = Card.read(PIRATE)
    assert card.lora_module is None and card.steer_module is not None
    assert card.steer_module["layers"] == list(range(10, 20))  # 1/3..2/3 of 30 layers
    assert card.strength_range == (-2.0, 2.0) and card.default_strength == 1.0
    steer = card.steer
    assert steer is not None and steer.shape == (30, 576)
    assert not steer[:10].any() and not steer[20:].any() and steer[10:20].norm(dim=-1).min() > 0


def test_ada_is_a_rank_8_lora_on_q_and_v_of_every_layer():
    card = Card.read(ADA)
    lora = card.lora_module
    assert card.steer_module is None and lora is not None
    assert (lora["rank"], lora["alpha"], lora["targets"]) == (8, 16.0, ["q_proj", "v_proj"])
    assert lora["layers"] == list(range(30))
    assert len(card.tensors) == 30 * 2 * 2
    a, b = card.lora[0, "v_proj"]
    assert a.shape == (8, 576) and b.shape == (192, 8) and b.abs().max() > 0  # B trained away from 0


def test_cards_record_how_they_were_made_from_the_scripts_data():
    steer, lora = script("make_steer_card"), script("make_lora_card")
    forge = Card.read(PIRATE).manifest["forge"]
    assert forge["method"] == "manual-steer" and forge["seed"] == steer.SEED
    pairs = [[steer.PIRATE, steer.PLAIN, u] for u in steer.USER_MESSAGES]
    assert forge["data_sha256"] == sha256_json(pairs)
    forge = Card.read(ADA).manifest["forge"]
    assert forge["method"] == "manual-lora" and forge["seed"] == lora.SEED and forge["steps"] == lora.STEPS
    assert forge["data_sha256"] == sha256_json(lora.TRAIN)


@pytest.mark.parametrize("path", [PIRATE, ADA], ids=["pirate", "ada"])
def test_inspect_shows_the_example_cards(path):
    summary = inspect_card(path)
    assert summary["digest"]["ok"] and summary["signature"]["status"] == "absent"
    text = format_inspection(summary)
    assert summary["name"] in text and "content    sha256" in text and " ok" in text
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == path.stem


@pytest.mark.integration
def test_example_cards_change_the_default_model_and_strength_0_is_the_base():
    from lifecard.cards.base import check_card
    from lifecard.engine.generate import Engine, Request
    from lifecard.engine.sampling import SamplingParams

    engine = Engine.load(dtype="float32")
    params = SamplingParams(temperature=0, max_tokens=12)
    for path, question, expect in [
        (PIRATE, "Tell me about your morning.", None),
        (ADA, "What is your name?", "Ada Quill"),
    ]:
        card = Card.read(path)
        assert check_card(card, engine.base, strict=True) == []  # made on exactly these weights
        on, off = engine.mount([(card, 1.0)]), engine.mount([(card, 0.0)])
        assert on.slot != 0 and off.slot == 0
        ids = engine.chat_prompt([{"role": "user", "content": question}])
        base, carded, zero = engine.generate([Request(ids, params, s) for s in (0, on.slot, off.slot)])
        assert zero.tokens == base.tokens
        assert carded.tokens != base.tokens
        if expect:
            assert expect in carded.text, carded.text
        engine.unmount(on.slot)
    assert torch.count_nonzero(engine.bank.steer) == 0  # unmounting left the bank empty
