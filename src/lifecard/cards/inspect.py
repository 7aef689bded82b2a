"""`lifecard inspect FILE [--json]`: what a card holds, as a JSON-ready dict and as readable text.

A card that fails validation is refused (CardError) like everywhere else; a card whose content
digest does not match is still shown, with the mismatch reported, so it can be diagnosed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lifecard.cards.card import Card
from lifecard.cards.validate import FORMAT_VERSION

_PERSONA_ORDER = (
    "name",
    "nickname",
    "description",
    "personality",
    "scenario",
    "system_prompt",
    "first_mes",
    "mes_example",
    "tags",
    "creator",
    "creator_notes",
    "character_version",
    "character_book",
)


def inspect_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything `lifecard inspect` shows, as plain JSON values. Raises CardError for a malformed card."""
    path = Path(path)
    card = Card.read(path, verify_digest=False)
    m = card.manifest
    computed = card.digest()

    modules = []
    for mod in m["modules"]:
        prefix = "lora." if mod["kind"] == "lora" else "steer."
        tensors = [t for n, t in card.tensors.items() if n.startswith(prefix)]
        info: dict[str, Any] = {"kind": mod["kind"]}
        if mod["kind"] == "lora":
            info |= {
                "rank": mod["rank"],
                "alpha": mod["alpha"],
                "alpha_over_rank": mod["alpha"] / mod["rank"],
                "targets": mod["targets"],
            }
        info |= {
            "layers": mod["layers"],
            "scale": mod.get("scale", 1.0),
            "tensors": len(tensors),
            "bytes": sum(t.numel() * t.element_size() for t in tensors),
            "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in tensors}),
        }
        modules.append(info)

    sig = m.get("signature")
    return {
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "format": FORMAT_VERSION,
        "id": m["id"],
        "name": m["name"],
        "version": m["version"],
        "created": m["created"],
        "description": m.get("description", ""),
        "persona": m["persona"],
        "base": m["base"],
        "modules": modules,
        "tensor_bytes": card.nbytes,
        "strength": m["strength"],
        "forge": m["forge"],
        "eval": m.get("eval", {}),
        "extensions": {k: v for k, v in m.items() if k.startswith("x-")},
        "digest": {
            "content_sha256": m["content_sha256"],
            "computed": computed,
            "ok": computed == m["content_sha256"],
        },
        "signature": {
            "present": sig is not None,
            "alg": sig["alg"] if sig else None,
            "public_key": sig["public_key"] if sig else None,
            "status": card.signature_status(),
        },
    }


def format_inspection(d: dict[str, Any]) -> str:
    """The dict from `inspect_card` as readable plain text (no colour codes; fine to pipe)."""
    lines = [f"{Path(d['file']).name} — {d['name']} ({d['id']}) v{d['version']}, created {d['created']}"]
    if d["description"]:
        lines.append(f"  {_short(d['description'], 200)}")
    lines.append("")

    persona = d["persona"]
    keys = [k for k in _PERSONA_ORDER if k in persona] + sorted(k for k in persona if k not in _PERSONA_ORDER)
    lines.append(_row("persona", _persona_value("name", persona["name"])))
    lines += [
        _row("", f"{k:<14} {_persona_value(k, persona[k])}") for k in keys if k != "name" and persona[k]
    ]

    b = d["base"]
    lines.append(_row("base", f"{b['family']}  {b['model_id'] or '(no model id)'}"))
    lines.append(
        _row(
            "",
            f"hidden {b['hidden_size']}, {b['num_layers']} layers, vocab {b['vocab_size']}, "
            f"fingerprint {b['fingerprint'][:16]}…",
        )
    )

    if not d["modules"]:
        lines.append(_row("modules", "none (a prompt-only card: the persona text is all it carries)"))
    for i, mod in enumerate(d["modules"]):
        parts = []
        if mod["kind"] == "lora":
            parts.append(
                f"rank {mod['rank']}, alpha {_num(mod['alpha'])} (α/r {_num(mod['alpha_over_rank'])})"
            )
            parts.append("targets " + " ".join(mod["targets"]))
        parts.append(f"layers {_ranges(mod['layers'])} ({len(mod['layers'])})")
        parts.append(f"scale {_num(mod['scale'])}")
        n = mod["tensors"]
        parts.append(f"{n} tensor{'s' if n != 1 else ''}, {'/'.join(mod['dtypes'])}, {_bytes(mod['bytes'])}")
        lines.append(_row("modules" if i == 0 else "", f"{mod['kind']:<6}" + ", ".join(parts)))

    s = d["strength"]
    lines.append(
        _row("strength", f"default {_num(s['default'])}, range [{_num(s['min'])}, {_num(s['max'])}]")
    )
    forge = dict(sorted(d["forge"].items(), key=lambda kv: kv[0] != "method"))  # method first
    lines.append(_row("forge", _fields(forge) or "(not recorded)"))
    lines.append(_row("eval", _fields(d["eval"]) or "(none recorded)"))
    if d["extensions"]:
        lines.append(_row("extensions", _fields(d["extensions"])))

    dg = d["digest"]
    verdict = (
        "ok" if dg["ok"] else f"MISMATCH (the content hashes to {dg['computed'][:16]}…): the file was changed"
    )
    lines.append(_row("content", f"sha256 {dg['content_sha256'][:16]}… {verdict}"))
    sig = d["signature"]
    if not sig["present"]:
        lines.append(_row("signature", "absent"))
    else:
        status = sig["status"]
        if status == "present, not verified":
            status += " (install the cryptography package to verify it)"
        elif status == "verified" and not dg["ok"]:
            status += ", but over a digest the content no longer matches"
        lines.append(_row("signature", f"{sig['alg']} key {sig['public_key'][:16]}…: {status}"))
    lines.append(
        _row(
            "file",
            f"{_bytes(d['file_bytes'])} ({_bytes(d['tensor_bytes'])} of tensors), format {d['format']}",
        )
    )
    return "\n".join(lines)


# ---------------------------------------------------------------- text helpers


def _row(label: str, value: str) -> str:
    return f"{label:<11}{value}"


def _short(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _persona_value(key: str, value: Any) -> str:
    if key == "character_book" and isinstance(value, dict):
        entries = value.get("entries") or []
        return f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    if isinstance(value, list):
        return _short(", ".join(map(str, value)), 100)
    if isinstance(value, dict):
        return f"{len(value)} field{'s' if len(value) != 1 else ''}"
    return _short(str(value), 100)


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _fields(d: dict[str, Any]) -> str:
    out = []
    for k, v in d.items():
        if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
            v = v[:12] + "…"  # a digest
        elif isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, (dict, list)):
            v = _short(str(v), 60)
        out.append(f"{k} {v}")
    return _short(", ".join(out), 300)


def _ranges(xs: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8'."""
    out: list[str] = []
    xs = sorted(xs)
    start = prev = xs[0]
    for x in [*xs[1:], None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(out)


def _bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    x = n / 1000
    for unit in ("kB", "MB"):
        if x < 1000:
            return f"{x:.1f} {unit}"
        x /= 1000
    return f"{x:.1f} GB"
