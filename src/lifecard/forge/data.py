"""Built-in data the card forge needs, shipped inside the package (lifecard/forge/data/):

- prompts.jsonl: chat prompts, one {"text", "lang", "topic"} object a line, for teacher trajectories
  and held-out evaluation; `train_prompts` and `eval_prompts` split them the same way every time.
- questions.json: templates asking a persona about its own fields, per language; `knowledge` ones
  carry a `{topic}` placeholder.
- neutral.txt: plain factual paragraphs, one a line, that bound steering strength by perplexity.

All were written for this project. They are read as package resources, so they work from a wheel.
"""

from __future__ import annotations

import json
import zlib
from functools import cache
from importlib.resources import files

LANGS = ("en", "zh")
FIELDS = ("identity", "tone", "preferences", "values", "knowledge", "general")
EVAL_ONE_IN = 5  # a prompt is held out for evaluation when crc32(text) % EVAL_ONE_IN == 0


@cache
def _read(name: str) -> str:
    return (files("lifecard.forge") / "data" / name).read_text(encoding="utf-8")


def _check_lang(lang: str | None) -> None:
    if lang is not None and lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; built-in data has {', '.join(LANGS)}")


def prompts(lang: str | None = None) -> list[dict[str, str]]:
    """Every built-in prompt, in file order; only those in `lang` when given."""
    _check_lang(lang)
    rows = [json.loads(line) for line in _read("prompts.jsonl").splitlines() if line.strip()]
    return [row for row in rows if lang is None or row["lang"] == lang]


def is_held_out(text: str) -> bool:
    """Whether a prompt belongs to the evaluation split. Decided by the text alone, so adding or
    removing other prompts never moves a prompt between the splits."""
    return zlib.crc32(text.encode("utf-8")) % EVAL_ONE_IN == 0


def train_prompts(lang: str | None = None) -> list[str]:
    """Prompt texts for generating training data: everything not held out."""
    return [row["text"] for row in prompts(lang) if not is_held_out(row["text"])]


def eval_prompts(lang: str | None = None) -> list[str]:
    """Prompt texts held out for evaluation; never used to make a card."""
    return [row["text"] for row in prompts(lang) if is_held_out(row["text"])]


def question_templates(lang: str) -> dict[str, list[str]]:
    """Questions about a persona's own fields, keyed by field (see FIELDS)."""
    _check_lang(lang)
    table: dict[str, list[str]] = json.loads(_read("questions.json"))[lang]
    return {field: list(table[field]) for field in FIELDS}


def neutral_texts() -> list[str]:
    """Plain descriptive English paragraphs with no persona in them."""
    return [line.strip() for line in _read("neutral.txt").splitlines() if line.strip()]
