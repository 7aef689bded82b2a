"""Character cards in and out: reading Character Card V1/V2/V3 files safely, and exporting V3 PNGs.

A character card is a persona that chat front-ends (SillyTavern, RisuAI, chub.ai, …) pass around.
A life card's `persona` holds exactly the fields of a V3 card's `data` object (schema.json,
`$defs/persona`), so a character card becomes a persona by picking those fields out.

The formats, all detected by content, never by file extension:

  JSON    V1: a flat object (`name`, `description`, `personality`, `scenario`, `first_mes`,
          `mes_example`; the older Pygmalion spelling `char_name`, `char_persona`, … too).
          V2: `{"spec": "chara_card_v2", "spec_version": "2.0", "data": {...}}`.
          V3: `{"spec": "chara_card_v3", "spec_version": "3.0", "data": {...}}`.
  PNG     the avatar image with the JSON, base64-encoded, in a text chunk: keyword `chara` (V2,
          or V1) and/or `ccv3` (V3; preferred when both are there). The chunk may be tEXt,
          zTXt (zlib) or iTXt (zlib or not), anywhere between IHDR and IEND.
  CHARX   a zip with the V3 JSON as `card.json` at its root and the assets beside it; the main
          icon is the asset `{"type": "icon", "name": "main", "uri": "embeded://<path>"}`.

Every file here comes from strangers, so reading checks before it trusts: total size first, then
every PNG chunk's length and CRC, bounded streaming decompression (a few KiB of zlib can claim
gigabytes), and for zips the entry count, every name (nothing may climb out of the archive),
declared sizes and ratios, then reads that stop at the limit whatever the headers claim. Nothing
is extracted or written to disk. Every refusal is one `CharacterCardError` sentence naming the
file, the problem and the fix.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

MiB = 2**20
MAX_FILE_BYTES = 16 * MiB  # a whole card file of any format: a large avatar plus a large lorebook
MAX_TEXT_CHUNK_BYTES = 4 * MiB  # one PNG text chunk as stored
MAX_INFLATED_BYTES = 4 * MiB  # a zTXt/iTXt chunk after decompression
MAX_CARD_JSON_BYTES = 4 * MiB  # a CHARX's card.json
MAX_ZIP_ENTRIES = 1000
MAX_ZIP_TOTAL_BYTES = 32 * MiB  # every entry of a CHARX, uncompressed, as declared
MAX_ZIP_RATIO = 100  # deflate of real text or images stays far below; runs of zeros do not
ZIP_RATIO_FLOOR = MiB  # small entries may compress well (a blank lorebook), so only bigger ones are checked
MAX_BOOK_BYTES = 2 * MiB  # the character book (lorebook) as compact JSON

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("ccv3", "chara")  # PNG text keywords, preferred first
SPECS = ("chara_card_v2", "chara_card_v3")
ICON_URI_PREFIXES = ("embeded://", "embedded://")  # the V3 spec spells it "embeded"

# older (Pygmalion / TavernAI) V1 spellings -> V3 names
V1_ALIASES = {
    "char_name": "name",
    "char_persona": "personality",
    "world_scenario": "scenario",
    "char_greeting": "first_mes",
    "example_dialogue": "mes_example",
}
# the V3 `data` fields every writer must emit, with their empty values
V3_REQUIRED: dict[str, Any] = {
    "name": "",
    "description": "",
    "tags": [],
    "creator": "",
    "character_version": "",
    "mes_example": "",
    "extensions": {},
    "system_prompt": "",
    "post_history_instructions": "",
    "first_mes": "",
    "alternate_greetings": [],
    "personality": "",
    "scenario": "",
    "creator_notes": "",
    "group_only_greetings": [],
}
V2_FIELDS = (
    *("name", "description", "personality", "scenario", "first_mes", "mes_example", "creator_notes"),
    *("system_prompt", "post_history_instructions", "alternate_greetings", "character_book", "tags"),
    *("creator", "character_version", "extensions"),
)
V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")

FIX_REEXPORT = "export the card again from the program that made it"
FIX_COPY = "download or copy the file again"
FIX_EDIT = "fix it in a character card editor and export the card again"


class CharacterCardError(ValueError):
    """A character card lifecard refuses; str(e) is one sentence naming the file, the problem and the fix."""


@dataclass(frozen=True)
class CharacterCard:
    persona: dict[str, Any]  # exactly the schema's persona fields; `name` is non-empty
    spec: str  # "chara_card_v2" | "chara_card_v3" | "v1"
    avatar: bytes | None  # the PNG itself, or a CHARX's main icon
    source: str  # the file name it was read from


class _Refusal(Exception):
    """Raised below the public functions, which add the file name: (problem, fix)."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


# ---------------------------------------------------------------- reading


def read_character_card(data: bytes, filename: str) -> CharacterCard:
    """Parse a V1/V2/V3 character card from JSON, PNG or CHARX bytes; refuse anything malformed."""
    try:
        return _read(bytes(data), filename)
    except _Refusal as r:
        raise CharacterCardError(f"{filename}: {r.problem}; {r.fix}.") from None


def _read(data: bytes, source: str) -> CharacterCard:
    if not data:
        raise _Refusal("the file is empty", "choose the card file itself, not an empty copy")
    if len(data) > MAX_FILE_BYTES:
        raise _Refusal(
            f"the file is {len(data):,} bytes, over the {MAX_FILE_BYTES // MiB} MiB limit for a card",
            "shrink its avatar or lorebook and export it again",
        )
    kind = _sniff(data)
    avatar: bytes | None
    if kind == "png":
        obj, avatar = _parse_json(_png_card_text(data), "the PNG's card text"), data
    elif kind == "charx":
        obj, avatar = _read_charx(data)
    elif kind == "json":
        obj, avatar = _parse_json(data, "the file"), None
    else:
        raise _Refusal(
            "this is not a character card (neither PNG, JSON nor CHARX)",
            "choose a .png, .json or .charx character card",
        )
    spec, fields = _card_fields(obj)
    return CharacterCard(persona=_persona(fields), spec=spec, avatar=avatar, source=source)


def _sniff(data: bytes) -> str:
    if data.startswith(PNG_SIGNATURE[:4]):  # a damaged signature still gets a PNG-specific message
        return "png"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "charx"
    if re.match(rb"(?:\xef\xbb\xbf)?\s*[{\[]", data):
        return "json"
    return "unknown"


def _parse_json(raw: bytes, what: str) -> dict[str, Any]:
    """UTF-8 JSON that must be an object. Duplicate keys keep the last value, as JSON.parse does in
    the browsers that write most cards; NaN/Infinity are refused since no card JSON may hold them."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def finite(text: str) -> float:
        x = float(text)
        if not math.isfinite(x):
            raise ValueError(f"the number {text} is too large")
        return x

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _Refusal(f"{what} is not UTF-8 text (byte {e.start})", FIX_REEXPORT) from None
    try:
        obj = json.loads(text, parse_constant=no_constant, parse_float=finite)
    except RecursionError:
        raise _Refusal(f"{what} is JSON nested too deeply to read", FIX_REEXPORT) from None
    except ValueError as e:
        raise _Refusal(f"{what} is not valid JSON ({e})", FIX_REEXPORT) from None
    if not isinstance(obj, dict):
        raise _Refusal(f"{what} holds JSON that is {_json_type(obj)}, not an object", FIX_REEXPORT)
    return obj


def _card_fields(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(spec, the object holding the persona fields): V2/V3 keep them under `data`, V1 at the top."""
    spec = obj.get("spec")
    if spec is None:
        aliased = {new: obj[old] for old, new in V1_ALIASES.items() if old in obj}
        return "v1", {**aliased, **obj}  # the current names win over the old spellings
    if spec not in SPECS:
        raise _Refusal(
            f"its spec is {spec!r}, not one of {', '.join(SPECS)}",
            "export it as a Character Card V2 or V3",
        )
    data = obj.get("data")
    if not isinstance(data, dict):
        raise _Refusal(f"the {spec} card has no 'data' object (it is {_json_type(data)})", FIX_REEXPORT)
    return spec, data


# ---------------------------------------------------------------- the persona


@cache
def _persona_fields() -> dict[str, str]:
    """Persona field -> kind of value, read from schema.json so the two cannot drift apart."""
    schema = json.loads((resources.files("lifecard.cards") / "schema.json").read_text("utf-8"))
    kinds: dict[str, str] = {}
    for key, rule in schema["$defs"]["persona"]["properties"].items():
        if rule.get("$ref") == "#/$defs/string_list":
            kinds[key] = "string_list"
        elif rule.get("type") == "array" and rule.get("items") == {"type": "object"}:
            kinds[key] = "object_list"
        elif rule.get("type") == "object" and "additionalProperties" in rule:
            kinds[key] = "string_map"
        elif rule.get("type") in ("string", "integer", "object"):
            kinds[key] = rule["type"]
        else:
            raise RuntimeError(f"schema.json: persona field {key!r} has a type charcard.py does not know")
    return kinds


_KIND_NAMES = {
    "string": "a string",
    "string_list": "a list of strings",
    "object": "an object",
    "string_map": "an object of strings",
    "integer": "an integer",
    "object_list": "a list of objects",
}


def _persona(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's persona fields of a card's data: unknown keys dropped, nulls treated as absent,
    numbers written as strings where text is expected; anything else of the wrong type is refused."""
    persona: dict[str, Any] = {}
    problems: list[str] = []
    for key, kind in _persona_fields().items():
        value = fields.get(key)
        if value is None:
            continue
        coerced = _coerce(value, kind)
        if coerced is None:
            problems.append(f"'{key}' should be {_KIND_NAMES[kind]} but is {_json_type(value)}")
        else:
            persona[key] = coerced
    if problems:
        raise _Refusal(f"wrong field types: {', '.join(problems)}", FIX_EDIT)
    name = persona.get("name", "").strip()
    if not name:
        raise _Refusal(
            "the character has no name ('name' is missing or empty)",
            "name it in a character card editor and export the card again",
        )
    persona["name"] = name
    book = persona.get("character_book")
    if book is not None:
        size = len(json.dumps(book, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_BOOK_BYTES:
            raise _Refusal(
                f"its lorebook (character_book) is {size:,} bytes, over the {MAX_BOOK_BYTES // MiB} MiB cap",
                "split or trim the lorebook and export the card again",
            )
    return persona


def _coerce(value: Any, kind: str) -> Any:
    """`value` as `kind`, or None when it cannot be one without guessing."""
    if kind == "string":
        return _as_text(value)
    if kind == "string_list":
        if isinstance(value, str):  # a lone greeting or tag
            return [value] if value else []
        items = [_as_text(v) for v in value] if isinstance(value, list) else None
        return items if items is not None and None not in items else None
    if kind == "integer":  # Unix seconds; some writers emit Date.now() / 1000
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)
    if kind == "object":
        return value if isinstance(value, dict) else None
    if kind == "string_map":
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        return value if ok else None
    if kind == "object_list":
        ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
        return value if ok else None
    raise AssertionError(kind)


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):  # character_version: 1.2
        return str(value)
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


# ---------------------------------------------------------------- PNG


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of every chunk from IHDR to IEND, each length and CRC checked; bytes after IEND
    are ignored, as image viewers do."""
    if not data.startswith(PNG_SIGNATURE):
        raise _Refusal("it starts like a PNG but its 8-byte signature is wrong", FIX_COPY)
    view, pos, index = memoryview(data), len(PNG_SIGNATURE), 0
    while True:
        if pos + 12 > len(data):
            raise _Refusal(f"the PNG is truncated: it ends before chunk {index} (no IEND)", FIX_COPY)
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if not (ctype.isascii() and ctype.isalpha()):
            raise _Refusal(f"PNG chunk {index} has an invalid type {ctype!r}", FIX_COPY)
        name = ctype.decode()
        if index == 0 and ctype != b"IHDR":
            raise _Refusal(f"the PNG's first chunk is {name}, not IHDR", FIX_COPY)
        if ctype in (b"tEXt", b"zTXt", b"iTXt") and length > MAX_TEXT_CHUNK_BYTES:
            raise _Refusal(
                f"its {name} chunk is {length:,} bytes, over the {MAX_TEXT_CHUNK_BYTES // MiB} MiB limit",
                "trim the card's text or lorebook and export it again",
            )
        end = pos + 8 + length
        if end + 4 > len(data):
            raise _Refusal(f"the PNG is truncated inside its {name} chunk (chunk {index})", FIX_COPY)
        body = view[pos + 8 : end]
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(body, zlib.crc32(ctype)) != crc:
            raise _Refusal(
                f"PNG chunk {index} ({name}) fails its CRC check, so the file is damaged", FIX_COPY
            )
        yield ctype, bytes(body)
        if ctype == b"IEND":
            return
        pos, index = end + 4, index + 1


def _png_card_text(data: bytes) -> bytes:
    """The decoded JSON bytes of the card's text chunk: the first `ccv3` one, else the first `chara`."""
    found: dict[str, tuple[bytes, bytes]] = {}
    for ctype, body in _png_chunks(data):
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = body.split(b"\0", 1)[0]
            key = keyword.decode("latin-1")
            if key in CARD_KEYWORDS and key not in found:
                found[key] = (ctype, body)
    for key in CARD_KEYWORDS:
        if key in found:
            text = _text_chunk_value(*found[key])
            what = f"the '{key}' text chunk"
            try:
                return base64.b64decode(re.sub(rb"\s+", b"", text), validate=True)
            except binascii.Error as e:
                raise _Refusal(f"{what} is not valid base64 ({e})", FIX_REEXPORT) from None
    raise _Refusal(
        "the PNG holds no character card (no 'chara' or 'ccv3' text chunk): it is a plain image",
        "export the character as a PNG card, not just its picture",
    )


def _text_chunk_value(ctype: bytes, body: bytes) -> bytes:
    """The text of a tEXt, zTXt or iTXt chunk, decompressed when the chunk says so."""
    keyword, sep, rest = body.partition(b"\0")
    what = f"the {ctype.decode()} chunk '{keyword.decode('latin-1')}'"
    if not sep:
        raise _Refusal(f"{what} has no text after its keyword", FIX_REEXPORT)
    if ctype == b"tEXt":
        return rest
    if ctype == b"zTXt":
        if rest[:1] != b"\0":
            raise _Refusal(f"{what} uses an unknown compression method", FIX_REEXPORT)
        return _inflate(rest[1:], what)
    # iTXt: compression flag, method, language tag \0, translated keyword \0, text
    if len(rest) < 2 or rest[0] not in (0, 1):
        raise _Refusal(f"{what} has an invalid compression flag", FIX_REEXPORT)
    compressed, method = rest[0], rest[1]
    parts = rest[2:].split(b"\0", 2)
    if len(parts) != 3:
        raise _Refusal(
            f"{what} is malformed (its language and translated keyword are not terminated)", FIX_REEXPORT
        )
    if not compressed:
        return parts[2]
    if method != 0:
        raise _Refusal(f"{what} uses an unknown compression method", FIX_REEXPORT)
    return _inflate(parts[2], what)


def _inflate(compressed: bytes, what: str) -> bytes:
    """zlib-decompress at most MAX_INFLATED_BYTES: max_length stops a bomb after the limit, not at the end."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(compressed, MAX_INFLATED_BYTES + 1)
    except zlib.error as e:
        raise _Refusal(f"{what} holds corrupt compressed data ({e})", FIX_COPY) from None
    if len(out) > MAX_INFLATED_BYTES:
        raise _Refusal(
            f"{what} decompresses to more than {MAX_INFLATED_BYTES // MiB} MiB (a decompression bomb?)",
            "trim the card's text and export it again",
        )
    if not inflater.eof:
        raise _Refusal(f"{what} holds a truncated compressed stream", FIX_COPY)
    return out


# ---------------------------------------------------------------- CHARX (zip)


def _read_charx(data: bytes) -> tuple[dict[str, Any], bytes | None]:
    """card.json and the main icon of a CHARX, read in memory with every size bounded."""
    # every central directory record starts with this signature, so this bounds the entry count
    # before zipfile builds one object per entry
    if data.count(b"PK\x01\x02") > MAX_ZIP_ENTRIES:
        raise _too_many_entries()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = _checked_entries(archive.infolist())
            if "card.json" not in entries:
                raise _Refusal(
                    "the CHARX (zip) has no card.json at its root",
                    "export the character as a CHARX card, or choose its .png or .json card",
                )
            obj = _parse_json(_read_entry(archive, entries["card.json"], MAX_CARD_JSON_BYTES), "card.json")
            icon = _icon_path(obj)
            avatar = _read_entry(archive, entries[icon], MAX_FILE_BYTES) if icon in entries else None
    except _ZIP_ERRORS as e:
        raise _Refusal(f"the CHARX is not a readable zip ({e})", FIX_COPY) from None
    return obj, avatar


# what zipfile may raise on a damaged archive (our own _Refusal is not among them)
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    struct.error,
    zlib.error,
)


def _too_many_entries() -> _Refusal:
    return _Refusal(
        f"the CHARX holds more than {MAX_ZIP_ENTRIES} files", "remove unused assets and export it again"
    )


def _checked_entries(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """The entries by name, once every one is known to be safe; one bad entry refuses the whole file."""
    if len(infos) > MAX_ZIP_ENTRIES:
        raise _too_many_entries()
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.orig_filename  # before zipfile cuts it at a NUL
        if _is_unsafe_zip_name(name):
            raise _Refusal(
                f"the CHARX holds a file named {name!r}, a path that could climb out of the archive",
                "do not use this file, which may be crafted to write outside its folder",
            )
        if name in entries:
            raise _Refusal(f"the CHARX holds two files named {name!r}", FIX_REEXPORT)
        if info.flag_bits & 0x1:
            raise _Refusal(f"the CHARX's {name!r} is encrypted", "export the card again without a password")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refusal(
                f"the CHARX's {name!r} uses compression method {info.compress_type}, not stored or deflate",
                FIX_REEXPORT,
            )
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise _Refusal(
                f"the CHARX's {name!r} claims to expand {info.file_size // max(info.compress_size, 1):,}-fold"
                " when unpacked (a zip bomb?)",
                "do not use this file",
            )
        total += info.file_size
        entries[name] = info
    if total > MAX_ZIP_TOTAL_BYTES:
        raise _Refusal(
            f"the CHARX unpacks to {total:,} bytes, over the {MAX_ZIP_TOTAL_BYTES // MiB} MiB limit",
            "remove unused assets and export it again",
        )
    return entries


def _is_unsafe_zip_name(name: str) -> bool:
    if not name or "\\" in name or "\0" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return True
    return any(part in ("", ".", "..") for part in name.removesuffix("/").split("/"))


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """An entry's bytes, never more than `limit` whatever its header declares."""
    if info.file_size > limit:
        raise _Refusal(
            f"the CHARX's {info.filename!r} is {info.file_size:,} bytes, over the {limit // MiB} MiB limit",
            "shrink it and export the card again",
        )
    try:
        with archive.open(info) as f:
            out = f.read(limit + 1)  # zipfile also stops at the declared size
    except zipfile.BadZipFile as e:
        raise _Refusal(
            f"the CHARX's {info.filename!r} does not match its header ({e}): it is damaged, or holds more"
            " than its declared size (a zip bomb?)",
            FIX_COPY,
        ) from None
    if len(out) != info.file_size:
        raise _Refusal(f"the CHARX's {info.filename!r} is shorter than its declared size", FIX_COPY)
    return out


def _icon_path(obj: dict[str, Any]) -> str | None:
    """The zip path of the card's main icon (`type` icon, `name` main, else the first icon)."""
    data = obj.get("data")
    assets = data.get("assets") if isinstance(data, dict) else None
    if not isinstance(assets, list):
        return None
    icons = [a for a in assets if isinstance(a, dict) and a.get("type") == "icon"]
    icons.sort(key=lambda a: a.get("name") != "main")  # stable: the first main icon, else the first icon
    for icon in icons[:1]:
        uri = icon.get("uri")
        for prefix in ICON_URI_PREFIXES:
            if isinstance(uri, str) and uri.startswith(prefix):
                return uri.removeprefix(prefix)
    return None


# ---------------------------------------------------------------- writing (export)


def to_character_card_v3(persona: Mapping[str, Any]) -> dict[str, Any]:
    """The persona as a Character Card V3 object, every required `data` field present."""
    checked = _checked_persona(persona)
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": {**copy.deepcopy(V3_REQUIRED), **checked}}


def _to_character_card_v2(persona: Mapping[str, Any]) -> dict[str, Any]:
    """The persona as a V2 object, without V3-only fields; V1 fields mirrored at the top for V1 readers."""
    v3 = to_character_card_v3(persona)["data"]
    data = {k: v3[k] for k in V2_FIELDS if k in v3}
    return {**{k: data[k] for k in V1_FIELDS}, "spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def write_png_card(persona: Mapping[str, Any], avatar_png: bytes | None = None) -> bytes:
    """A PNG card: the avatar (or a plain 64×64 square) with `chara` (V2) and `ccv3` (V3) tEXt chunks
    before IEND; card chunks already in the avatar are replaced. Readable by read_character_card."""
    texts = [
        _chunk(b"tEXt", b"chara\0" + _b64_json(_to_character_card_v2(persona))),
        _chunk(b"tEXt", b"ccv3\0" + _b64_json(to_character_card_v3(persona))),
    ]
    if any(len(t) - 12 > MAX_TEXT_CHUNK_BYTES for t in texts):
        raise CharacterCardError(
            f"persona: the card text is over the {MAX_TEXT_CHUNK_BYTES // MiB} MiB a PNG card chunk may hold;"
            " trim the lorebook or example messages."
        )
    try:
        chunks = list(_png_chunks(avatar_png if avatar_png is not None else _blank_png()))
    except _Refusal as r:
        raise CharacterCardError(f"avatar: {r.problem}; choose a PNG image as the avatar.") from None
    kept = [_chunk(t, b) for t, b in chunks if t != b"IEND" and not _is_card_chunk(t, b)]
    out = b"".join([PNG_SIGNATURE, *kept, *texts, _chunk(b"IEND", b"")])
    if len(out) > MAX_FILE_BYTES:
        raise CharacterCardError(
            f"avatar: the PNG card would be {len(out):,} bytes, over the {MAX_FILE_BYTES // MiB} MiB limit;"
            " choose a smaller avatar."
        )
    return out


def _checked_persona(persona: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return _persona(persona)
    except _Refusal as r:
        raise CharacterCardError(f"persona: {r.problem}; fix the persona before exporting it.") from None


def _b64_json(obj: dict[str, Any]) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return base64.b64encode(text.encode("utf-8"))


def _is_card_chunk(ctype: bytes, body: bytes) -> bool:
    return ctype in (b"tEXt", b"zTXt", b"iTXt") and body.split(b"\0", 1)[0].decode("latin-1") in CARD_KEYWORDS


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(ctype)))
    )


def _blank_png(size: int = 64, rgb: tuple[int, int, int] = (128, 128, 128)) -> bytes:
    """A solid size×size RGB PNG: the avatar of a persona that has none."""
    row = b"\0" + bytes(rgb) * size  # filter byte 0 (None), then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"".join(
        [
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(row * size)),
            _chunk(b"IEND", b""),
        ]
    )
