"""A profile: one structured description of a person, the input of `lifecard forge card`.

Schema (YAML or JSON; docs/forge.md has full examples in English and Chinese):

    name: Ada Quill                  # required
    id: ada-quill                    # optional slug; made from the name when absent
    language: en                     # en | zh: which built-in prompts and questions to use
    identity: …                      # who they are (→ persona.description)
    tone:                            # how they speak
      description: …                 # (→ persona.personality)
      like: …                        # the trait, as a system prompt would say it   (→ steer)
      unlike: …                      # its opposite (optional)
      markers: [word, …]             # words that show the tone (style-marker eval)
    preferences: [ …, … ]            # likes and dislikes
    values: [ …, … ]                 # what they care about
    knowledge:                       # facts about their life (→ tune, recall eval)
      - fact: I grew up in Bramblewick.
        questions: [Where did you grow up?, What's your home town?, Where are you from?]
        answer: [Bramblewick]        # a correct reply contains one of these
    documents: [ …, … ]              # longer free text: memories, notes (→ tune)
    examples:                        # example dialogues (→ tune, and the persona's mes_example)
      - [{user: …}, {assistant: …}]
    scenario: …
    greeting: …
    tags: [ … ]
    creator: …

Of each fact's questions, the last is held out of training and asked by the eval.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lifecard.forge.progress import ForgeError

LANGUAGES = ("en", "zh")
MAX_PROFILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Fact:
    fact: str
    questions: list[str]  # the last one is held out
    answer: list[str]  # keywords; a reply containing any of them counts as recalled

    @property
    def train_questions(self) -> list[str]:
        return self.questions[:-1] if len(self.questions) > 1 else self.questions

    @property
    def held_out_question(self) -> str | None:
        return self.questions[-1] if len(self.questions) > 1 else None


@dataclass(frozen=True)
class Profile:
    name: str
    id: str
    language: str = "en"
    identity: str = ""
    tone: str = ""
    like: str = ""
    unlike: str = ""
    markers: list[str] = field(default_factory=list)
    preferences: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    knowledge: list[Fact] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    examples: list[list[dict[str, str]]] = field(default_factory=list)
    scenario: str = ""
    greeting: str = ""
    tags: list[str] = field(default_factory=list)
    creator: str = ""
    extra_persona: dict[str, Any] = field(default_factory=dict)  # imported fields a profile lacks

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        if not path.is_file():
            raise ForgeError(f"profile {path} does not exist: give the path of a .yaml or .json profile")
        if path.stat().st_size > MAX_PROFILE_BYTES:
            raise ForgeError(f"profile {path.name} is over 1 MiB: move long texts into documents files")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                raw = json.loads(text)
            else:
                import yaml

                raw = yaml.safe_load(text)
        except Exception as e:  # yaml's and json's errors both carry where they happened
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            what = getattr(e, "problem", None) or str(e).splitlines()[0] or type(e).__name__
            raise ForgeError(
                f"profile {path.name} cannot be parsed ({where}{what}): fix its syntax "
                "(quote texts that contain ': ', or '?' and ',' inside [ ])"
            ) from None
        return cls.from_mapping(raw, path.name)

    @classmethod
    def from_mapping(cls, raw: Any, label: str = "profile") -> Profile:
        """Validate a parsed profile; ForgeError names the field and the fix."""
        if not isinstance(raw, dict):
            raise ForgeError(f"{label} must be a mapping of fields (name, identity, tone, …)")
        known = {
            "name",
            "id",
            "language",
            "identity",
            "tone",
            "preferences",
            "values",
            "knowledge",
            "documents",
            "examples",
            "scenario",
            "greeting",
            "tags",
            "creator",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ForgeError(f"{label} has an unknown field {unknown[0]!r}: use {', '.join(sorted(known))}")
        name = _string(raw, "name", label, required=True)
        slug = _string(raw, "id", label) or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "card"
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", slug):
            raise ForgeError(f"{label}: id {slug!r} must be a slug (a-z, 0-9, '.', '_', '-'): e.g. ada-quill")
        language = _string(raw, "language", label) or "en"
        if language not in LANGUAGES:
            raise ForgeError(f"{label}: language {language!r} is not one of {', '.join(LANGUAGES)}")
        tone = raw.get("tone") or {}
        if isinstance(tone, str):
            tone = {"description": tone}
        if not isinstance(tone, dict):
            raise ForgeError(
                f"{label}: tone must be a text or a mapping with description, like, unlike, markers"
            )
        return cls(
            name=name,
            id=slug,
            language=language,
            identity=_string(raw, "identity", label),
            tone=_string(tone, "description", f"{label}: tone"),
            like=_string(tone, "like", f"{label}: tone"),
            unlike=_string(tone, "unlike", f"{label}: tone"),
            markers=_strings(tone, "markers", f"{label}: tone"),
            preferences=_strings(raw, "preferences", label),
            values=_strings(raw, "values", label),
            knowledge=[
                _fact(f, f"{label}: knowledge[{i}]") for i, f in enumerate(_list(raw, "knowledge", label))
            ],
            documents=_strings(raw, "documents", label),
            examples=[
                _dialogue(d, f"{label}: examples[{i}]") for i, d in enumerate(_list(raw, "examples", label))
            ],
            scenario=_string(raw, "scenario", label),
            greeting=_string(raw, "greeting", label),
            tags=_strings(raw, "tags", label),
            creator=_string(raw, "creator", label),
        )

    @classmethod
    def from_persona(cls, persona: dict[str, Any]) -> Profile:
        """A profile from a persona (Character Card V3 `data` fields), for `forge import`: the
        text fields map across; the character book's entries become documents."""
        from lifecard.cards.persona import book_facts

        mapping = {
            "name": persona.get("name", ""),
            "identity": persona.get("description", ""),
            "tone": {"description": persona.get("personality", "")},
            "scenario": persona.get("scenario", ""),
            "greeting": persona.get("first_mes", ""),
            "tags": [t for t in persona.get("tags", []) if isinstance(t, str) and t.strip()],
            "creator": persona.get("creator", ""),
            "documents": book_facts(persona),
        }
        profile = cls.from_mapping(mapping, f"character card {persona.get('name', '')!r}")
        keep = {k: persona[k] for k in ("mes_example", "system_prompt", "character_book") if persona.get(k)}
        return replace(profile, extra_persona=keep)

    def persona(self) -> dict[str, Any]:
        """The card's persona (Character Card V3 fields); facts go into its character book."""
        description = self.identity
        if self.preferences:
            description += "\nPreferences: " + "; ".join(self.preferences) + "."
        if self.values:
            description += "\nValues: " + "; ".join(self.values) + "."
        persona: dict[str, Any] = {
            "name": self.name,
            "description": description.strip(),
            "personality": self.tone,
            "scenario": self.scenario,
            "first_mes": self.greeting,
            "mes_example": "\n".join(_example_text(d) for d in self.examples),
            "tags": self.tags,
            "creator": self.creator,
        }
        if self.knowledge:
            persona["character_book"] = {
                "name": f"{self.name}'s life",
                "entries": [
                    {"keys": f.answer, "content": f.fact, "enabled": True, "insertion_order": i}
                    for i, f in enumerate(self.knowledge)
                ],
            }
        return {k: v for k, v in {**persona, **self.extra_persona}.items() if v}

    def checks(self) -> dict[str, Any]:
        """What the eval asks of the card: held-out questions with their answers, style markers."""
        return {
            "language": self.language,
            "questions": [
                {"q": f.held_out_question, "expect": f.answer} for f in self.knowledge if f.held_out_question
            ],
            "markers": self.markers,
        }


def _string(raw: dict[str, Any], key: str, label: str, required: bool = False) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise ForgeError(f"{label} needs a {key!r}: add it")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ForgeError(f"{label}: {key!r} must be a text")
    return value.strip()


def _list(raw: dict[str, Any], key: str, label: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise ForgeError(f"{label}: {key!r} must be a list")
    return value


def _strings(raw: dict[str, Any], key: str, label: str) -> list[str]:
    items = _list(raw, key, label)
    for i, x in enumerate(items):
        if not (isinstance(x, (str, int, float)) and str(x).strip()):
            hint = " (in YAML, quote a text that contains ': ')" if isinstance(x, dict) else ""
            raise ForgeError(f"{label}: item {i} of {key!r} must be a non-empty text{hint}")
    return [str(x).strip() for x in items]


def _fact(raw: Any, label: str) -> Fact:
    if isinstance(raw, str):
        raise ForgeError(f"{label} needs fact, questions and answer (a fact alone cannot be asked about)")
    if not isinstance(raw, dict):
        raise ForgeError(f"{label} must be a mapping with fact, questions and answer")
    fact = _string(raw, "fact", label, required=True)
    questions = _strings(raw, "questions", label)
    if not questions:
        raise ForgeError(
            f"{label} needs at least one question (two or more: the last is held out for the eval)"
        )
    answer = raw.get("answer")
    answers = [answer] if isinstance(answer, str) else _strings(raw, "answer", label)
    if not answers or not all(str(a).strip() for a in answers):
        raise ForgeError(f"{label} needs an answer: the word(s) a correct reply contains")
    return Fact(fact, questions, [str(a).strip() for a in answers])


def _dialogue(raw: Any, label: str) -> list[dict[str, str]]:
    """[{user: …}, {assistant: …}, …] or {user: …, assistant: …} → chat messages."""
    turns = [raw] if isinstance(raw, dict) else raw
    if not isinstance(turns, list) or not turns:
        raise ForgeError(f"{label} must be a list of turns like {{user: …}} and {{assistant: …}}")
    messages = []
    for turn in turns:
        if not isinstance(turn, dict) or not turn:
            raise ForgeError(f"{label}: each turn is a mapping {{user: …}} or {{assistant: …}}")
        for role, content in turn.items():
            if role not in ("user", "assistant") or not isinstance(content, str) or not content.strip():
                raise ForgeError(f"{label}: a turn must be user: text or assistant: text, not {role!r}")
            messages.append({"role": role, "content": content.strip()})
    if not any(m["role"] == "assistant" for m in messages):
        raise ForgeError(f"{label} has no assistant turn: add the persona's reply")
    return messages


def _example_text(messages: list[dict[str, str]]) -> str:
    lines = ["<START>"]
    for m in messages:
        lines.append(("{{user}}: " if m["role"] == "user" else "{{char}}: ") + m["content"])
    return "\n".join(lines)
