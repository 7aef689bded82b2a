"""Life cards on the command line: plug, re-weigh and unplug in a running chat, without a reload."""

from pathlib import Path

import pytest
from test_cli import lifecard, one_error_line

CARDS = Path(__file__).parent.parent / "examples" / "cards"
ADA, PIRATE = str(CARDS / "ada.card"), str(CARDS / "pirate.card")
QUESTION = "What is your name?"


def replies(stdout: str) -> list[str]:
    return stdout.splitlines()


def test_a_missing_card_is_one_line_before_the_model_loads(tmp_path):
    result = lifecard("generate", "hi", "--card", str(tmp_path / "nope.card"), "--model", "/nonexistent")
    assert "nope.card" in one_error_line(result)  # cards are checked first: no model load is wasted


def test_a_malformed_card_is_one_line(tmp_path):
    bad = tmp_path / "bad.card"
    bad.write_bytes(b"\x00" * 64)
    result = lifecard("generate", "hi", "--card", str(bad), "--model", "/nonexistent")
    assert "bad.card" in one_error_line(result)


@pytest.mark.integration
def test_chat_switches_cards_live():
    script = "\n".join(
        [
            QUESTION,  # with ada at its default strength
            "/reset",
            "/card strength ada 0",
            QUESTION,  # strength 0: the base
            "/reset",
            "/card strength ada 9",  # out of range: refused, ada stays at 0
            "/card add " + PIRATE + " 1.0",
            "/cards",
            "/card rm ada",
            "/card rm pirate",
            QUESTION,  # nothing plugged: the base again
            "/exit",
        ]
    )
    result = lifecard("chat", "--temperature", "0", "-n", "16", "--card", ADA, stdin=script + "\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    ada_reply, zero_reply, base_reply = replies(result.stdout)
    base = lifecard("generate", QUESTION, "--temperature", "0", "-n", "16").stdout.strip()
    assert "Ada Quill" in ada_reply
    assert zero_reply == base_reply == base
    assert "takes a strength in [0.0, 2.0]" in result.stderr  # the refused strength, in one line
    assert "pirate  Captain Pip  strength 1" in result.stderr  # /cards lists both
    assert "ada  Ada Quill  strength 0" in result.stderr


@pytest.mark.integration
def test_generate_mixes_cards_given_on_the_command_line():
    base = lifecard("generate", QUESTION, "--temperature", "0", "-n", "16")
    mixed = lifecard(
        "generate", QUESTION, "--temperature", "0", "-n", "16", "--card", ADA, "--card", PIRATE + ":0.5"
    )
    assert base.returncode == mixed.returncode == 0, mixed.stderr
    assert mixed.stdout != base.stdout
