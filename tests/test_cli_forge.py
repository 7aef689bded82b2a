"""`lifecard forge …` and `lifecard eval` as a user runs them: bad input fails with one line before
any model loads and writes nothing; on the default model, a steering card is forged and measured,
and a tune is interrupted and resumed."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_cli import LIFECARD, lifecard, one_error_line

from lifecard.cards.card import Card

PROFILES = Path(__file__).parent.parent / "examples" / "profiles"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["forge", "card", "missing.yaml", "-o", "x.card"], "missing.yaml does not exist"),
        (["forge", "card", "{bad}", "-o", "x.card"], "line 1"),
        (["forge", "card", "{unknown}", "-o", "x.card"], "unknown field 'mood'"),
        (["forge", "tune", "{badjsonl}", "--name", "X", "-o", "x.card"], "data.jsonl:2 is not valid JSON"),
        (["forge", "steer", "--name", "X", "-o", "x.card"], "give the trait with --like"),
        (
            ["forge", "steer", "--name", "X", "--like", "y", "--max-drift", "0.9", "-o", "x.card"],
            "--max-drift",
        ),
        (
            ["forge", "steer", "--name", "X", "--like", "y", "--method", "svd", "-o", "x.card"],
            "--method 'svd'",
        ),
        (["forge", "bake", "{profile}", "--budget", "huge", "-o", "x.card"], "--budget 'huge'"),
        (["forge", "import", "{badpng}", "-o", "x.card"], "evil.png"),
        (["eval", "missing.card"], "missing.card"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args: list[str], says: str, tmp_path: Path) -> None:
    files = {
        "{bad}": ("bad.yaml", "name: [a, b?, c]\n"),
        "{unknown}": ("unknown.yaml", "name: A\nmood: happy\n"),
        "{badjsonl}": ("data.jsonl", '{"question": "q", "answer": "a"}\n{oops\n'),
        "{profile}": ("p.yaml", "name: A\n"),
        # a PNG signature, then a chunk whose CRC is wrong
        "{badpng}": ("evil.png", base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAAAAAAAA==")),
    }
    resolved = []
    for a in args:
        if a in files:
            name, content = files[a]
            path = tmp_path / name
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            a = str(path)
        resolved.append(a.replace("x.card", str(tmp_path / "x.card")))
    line = one_error_line(lifecard(*resolved, timeout=60))
    assert says in line
    assert not (tmp_path / "x.card").exists()


@pytest.mark.integration
def test_a_steering_card_from_a_profile_is_forged_and_measured(tmp_path: Path) -> None:
    out = tmp_path / "pip.card"
    made = lifecard(
        "forge", "steer", str(PROFILES / "captain-pip.yaml"), "-o", str(out), "--no-eval", timeout=600
    )
    assert made.returncode == 0, made.stderr
    forge = Card.read(out).manifest["forge"]
    assert forge["method"] == "steer" and forge["neutral_ppl_ratio"] <= 1.08
    assert len(forge["bands_tried"]) == 3 and forge["layers"][0] >= 5  # a middle band of 30 layers

    measured = lifecard("eval", str(out), "--quick", timeout=600)
    assert measured.returncode == 0, measured.stderr
    figures = Card.read(out).manifest["eval"]
    assert figures["drift"] < 1.2 and {"markers", "markers_base", "fidelity"} <= set(figures)
    assert (tmp_path / "pip.eval" / "sweep.png").stat().st_size > 5000
    assert "Strength sweep" in (tmp_path / "pip.eval" / "report.md").read_text()


@pytest.mark.integration
def test_an_interrupted_tune_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "facts.jsonl"
    pairs = [("What is your name?", "I'm Ada Quill."), ("Where are you from?", "Bramblewick, in Cornwall.")]
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in pairs * 3))
    ckpt, out = tmp_path / "ckpt", tmp_path / "ada.card"
    args = [
        "forge",
        "tune",
        str(data),
        "--name",
        "Ada",
        "--steps",
        "20",
        "--held-out",
        "0",
        "--checkpoint",
        str(ckpt),
        "-o",
        str(out),
    ]
    proc = subprocess.Popen([*LIFECARD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (ckpt / "tune.pt").exists():  # the first checkpoint is written at step 10
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr and proc.stderr.read()
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again to resume" in err
    assert not out.exists()

    resumed = lifecard(*args, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    forge = Card.read(out).manifest["forge"]
    assert forge["method"] == "tune" and forge["resumed_from"] >= 10 and forge["steps"] == 20
