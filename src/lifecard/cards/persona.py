"""A card's persona as text: the system prompt a base model would need to play it.

The forge bakes this text into weights (the teacher sees it, the student does not), and the eval
uses the same text to build the teacher it compares a card against. One function, so both agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def persona_prompt(persona: Mapping[str, Any]) -> str:
    """The persona's fields (Character Card V3 names) as one system prompt, in a fixed order."""
    name = str(persona.get("name", "")).strip()
    parts = [f"You are {name}. Stay in character: answer as {name}, in the first person."]
    for key, label in (
        ("description", ""),
        ("personality", "Personality: "),
        ("scenario", "Scenario: "),
        ("system_prompt", ""),
    ):
        text = str(persona.get(key, "") or "").strip()
        if text:
            parts.append(label + text)
    facts = book_facts(persona)
    if facts:
        parts.append("What you know about yourself:\n" + "\n".join(f"- {f}" for f in facts))
    example = str(persona.get("mes_example", "") or "").strip()
    if example:
        parts.append("Examples of how you talk:\n" + example)
    text = "\n\n".join(parts)
    return text.replace("{{char}}", name).replace("{{user}}", "User")


def book_facts(persona: Mapping[str, Any]) -> list[str]:
    """The contents of the persona's character book entries (its lorebook), enabled ones only."""
    book = persona.get("character_book") or {}
    entries = book.get("entries", []) if isinstance(book, Mapping) else []
    return [
        str(e["content"]).strip()
        for e in entries
        if isinstance(e, Mapping) and e.get("content") and e.get("enabled", True)
    ]
